"""The figures an administrator reads after a run or a rehearsal: the report's summary (each
table and file counted once), what was not copied and why, the operations not run, the backup
and DNS advice; and the rehearsal's estimate of the real run's duration and downtime."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from appliance import services as node_services
from migrations_engine import executor, rehearsal
from migrations_engine.models import MigrationRun, OperationStatus, RunStatus
from migrations_engine.operations import OPERATION_BY_NAME
from migrations_engine.plan import PlannedOperation
from migrations_engine.report import moved_summary, objects_not_copied, report_build, report_html
from tests.engine.runs import FULL_INFO

ONLINE = {"log_bin": True, "format": "ROW", "server_version": "10.11.6-MariaDB"}
HA_INFO: dict[str, Any] = FULL_INFO | {
    "server_role": "ha_master",
    "server_role_label": "HA Master",
    "ha": {"replication_peer": "192.0.2.11", "load_balancing_domain": "lb.mycompany.test"},
}


def operation(label: str, result: Any) -> dict[str, Any]:
    return {"label": label, "result": result}


# What the report counts and lists.


def test_what_was_not_copied_is_listed_with_the_operation_and_the_reason() -> None:
    operations = [
        operation("Pre-copies data", {"refused": [{"kind": "view", "name": "v", "reason": "r"}]}),
        operation("Copies data", {"refused": [{"kind": "event", "name": "e", "reason": "never"}]}),
        operation("Restarts the services", None),
        operation("Copies the chosen accounts", {"refused": ["not a dict"]}),
    ]
    assert objects_not_copied(operations) == [
        {"operation": "Pre-copies data", "kind": "view", "name": "v", "reason": "r"},
        {"operation": "Copies data", "kind": "event", "name": "e", "reason": "never"},
    ]


def test_the_summary_counts_each_table_and_file_once_with_its_last_figures() -> None:
    began = timezone.now()
    run = MigrationRun(downtime_started_at=began, downtime_ended_at=began + timedelta(seconds=7.46))
    operations = [
        operation(
            "Pre-copies data", {"tables": {"subscriber": {"rows": 10}, "voucher": {"rows": 5}}}
        ),
        operation(
            "Pre-copies the traffic logs",
            {"files": [{"path": "a.log.gz", "bytes": 100}, {"path": "b.log.gz", "bytes": 50}]},
        ),
        operation("Copies data", {"tables": {"subscriber": {"rows": 12}}}),
        operation("Copies the syslog data", {"files": [{"path": "a.log.gz", "bytes": 120}]}),
        operation("Restarts the services", None),
    ]
    summary = moved_summary(run, operations)
    assert (summary.tables, summary.rows, summary.files, summary.bytes) == (2, 17, 2, 170)
    assert summary.downtime_seconds == 7.5


def test_a_downtime_not_over_is_not_measured() -> None:
    run = MigrationRun(downtime_started_at=timezone.now())
    assert moved_summary(run, []).downtime_seconds is None


def finished_ha_run() -> MigrationRun:
    run = MigrationRun.objects.create(
        source_address="192.0.2.10",
        source_info=HA_INFO,
        source_fingerprint="AA:BB",
        current_info={"ip_address": "192.0.2.20"},
        copy_traffic_logs=False,
    )
    executor.run_plan(run)
    began = timezone.now() - timedelta(minutes=3)
    results: dict[str, Any] = {
        "backup_current": {"backup": "B-9", "bytes": 2048, "directory": "/backups/B-9"},
        "copy_data_and_replica": {
            "tables": {"subscriber": {"rows": 3, "checksum": "c1"}},
            "refused": [{"kind": "event", "name": "purge", "reason": "events are not copied"}],
        },
    }
    for state in run.operations.all():
        state.status = OperationStatus.SUCCEEDED
        state.started_at = began
        state.finished_at = began + timedelta(seconds=2.25)
        state.result = results.get(state.name, {})
        state.save()
    MigrationRun.objects.filter(id=run.id).update(
        status=RunStatus.SUCCEEDED,
        started_at=began,
        downtime_started_at=began,
        downtime_ended_at=began + timedelta(seconds=30),
    )
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_the_report_gives_what_moved_what_did_not_run_the_backup_and_the_dns_to_revert() -> None:
    run = finished_ha_run()
    report = report_build(run)
    assert report["summary"] == {
        "tables": 1,
        "rows": 3,
        "files": 0,
        "bytes": 0,
        "downtime_seconds": 30.0,
    }
    not_run = {row["label"]: row["reason"] for row in report["not_run"]}
    assert not_run["Copies data"] == (
        "the source is in high availability: its data is copied with the replica"
    )
    assert not_run["Copies the syslog data"] == "Copy User Traffic Logs is off"
    assert "Deactivates the replica" not in not_run
    assert report["backup"] == {"backup": "B-9", "bytes": 2048, "directory": "/backups/B-9"}
    assert report["dns_advice"] == [
        "The domain appliance-old.mycompany.test is resolved with the IP address 192.0.2.20.",
        "The domain lb.mycompany.test is also resolved with the IP address 192.0.2.20.",
    ]
    assert report["objects_not_copied"] == [
        {
            "operation": "Copies data and activates replica",
            "kind": "event",
            "name": "purge",
            "reason": "events are not copied",
        }
    ]
    assert {op["seconds"] for op in report["operations"]} == {2.2}
    assert report["source"]["server_role"] == "HA Master"
    assert report["options"]["tables"] == "all"


@pytest.mark.django_db
def test_the_html_report_shows_the_downtime_the_tables_and_the_restore_command() -> None:
    run = finished_ha_run()
    MigrationRun.objects.filter(id=run.id).update(report=report_build(run))
    run.refresh_from_db()
    page = report_html(run)
    assert "Service downtime: <strong>30.0 s</strong>" in page
    assert "<td>subscriber</td><td>3</td>" in page
    assert "manage.py restore_backup B-9" in page
    assert "<td>purge</td><td>events are not copied</td>" in page
    assert "lb.mycompany.test is also resolved with the IP address 192.0.2.20" in page


# The rehearsal's estimate of the real run.


def planned(*names: str) -> list[PlannedOperation]:
    """A plan in which these operations run (in the order of the list of operations)."""
    return [
        PlannedOperation(name, operation.label, name in names, "")
        for name, operation in OPERATION_BY_NAME.items()
    ]


WINDOW = ("source_maintenance", "copy_data", "modify_source_configuration")
AFTER = ("update_certificates", "restart_services", "final_operations")
ONLINE_PLAN = planned(
    "backup_current", "copy_settings", "precopy_data", "await_cutover", *WINDOW, *AFTER
)
OFFLINE_PLAN = planned("backup_current", "copy_settings", *WINDOW, *AFTER)
COPY = SimpleNamespace(rows=2_000_000, bytes=100_000_000, seconds=10.0)


def rehearsed_run(**fields: Any) -> MigrationRun:
    info = FULL_INFO | {"data_binlog": ONLINE, "traffic_log_bytes": 250_000_000}
    return MigrationRun(source_address="192.0.2.10", source_info=info, **fields)


def test_a_copy_inside_the_window_makes_the_downtime_and_nothing_is_online() -> None:
    window = rehearsal._window(rehearsed_run(), COPY, OFFLINE_PLAN, 2.5)
    # the copy, then about 3 s for each other operation from maintenance to the restart
    assert window["downtime_seconds"] == 10.0 + 3 * 4
    assert window["online_seconds"] == 0.0
    assert window["downtime_basis"] == "the whole data copy happens inside the maintenance window"


def test_an_online_copy_leaves_only_the_verification_inside_the_window() -> None:
    window = rehearsal._window(rehearsed_run(), COPY, ONLINE_PLAN, 2.5)
    assert window["downtime_seconds"] == 2.5 + 3 * 4
    assert window["online_seconds"] == 10.0 + 2.5
    assert window["downtime_basis"].startswith("at most: the verification of every table")


def test_a_swap_adds_the_reboots_to_the_downtime() -> None:
    plan = planned(*[row.name for row in ONLINE_PLAN if row.runs], "reboot_systems")
    window = rehearsal._window(rehearsed_run(swap_configuration=True), COPY, plan, 2.5)
    assert window["downtime_seconds"] == 2.5 + 120 + 3 * 5


def test_the_log_precopy_counts_in_the_time_online() -> None:
    plan = planned(*[row.name for row in ONLINE_PLAN if row.runs], "precopy_syslog", "copy_syslog")
    window = rehearsal._window(rehearsed_run(copy_traffic_logs=True), COPY, plan, 2.5)
    assert window["online_seconds"] == 10.0 + 2.5 + 10.0  # 250 MB at 25 MB/s


def test_the_log_precopy_counts_in_the_time_online_when_the_data_is_copied_in_the_window() -> None:
    plan = planned(*[row.name for row in OFFLINE_PLAN if row.runs], "precopy_syslog", "copy_syslog")
    window = rehearsal._window(rehearsed_run(copy_traffic_logs=True), COPY, plan, 2.5)
    assert window["online_seconds"] == 10.0  # 250 MB of logs at 25 MB/s


@pytest.fixture
def data_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """This system holds 50 MB of data (what its backup writes)."""
    monkeypatch.setattr(node_services, "data_size_bytes", lambda: 50_000_000)


def test_the_estimate_adds_each_part_from_the_measured_speed(data_here: None) -> None:
    estimate = rehearsal._estimate(rehearsed_run(), COPY, OFFLINE_PLAN)
    # 10 MB/s measured: the 50 MB backup takes 5 s; 8 operations run, about 3 s each
    assert estimate["backup_seconds"] == 5.0
    assert estimate["traffic_logs_seconds"] == 0.0
    assert estimate["reboot_seconds"] == 0.0
    assert estimate["other_operations_seconds"] == 24.0
    assert estimate["total_seconds"] == 10.0 + 5.0 + 24.0
    assert estimate["basis"] == (
        "data copy measured now (2,000,000 rows in 10.0 s); "
        "backup of this system's 50.0 MB at the same speed; "
        "about 3 s per other operation"
    )


def test_the_estimate_counts_the_logs_and_the_reboots_when_chosen(data_here: None) -> None:
    run = rehearsed_run(copy_traffic_logs=True, swap_configuration=True)
    estimate = rehearsal._estimate(run, COPY, OFFLINE_PLAN)
    assert estimate["traffic_logs_seconds"] == 10.0
    assert estimate["reboot_seconds"] == 120.0
    assert estimate["total_seconds"] == 10.0 + 5.0 + 10.0 + 120.0 + 24.0
    assert "traffic logs at 25 MB/s" in estimate["basis"]
    assert estimate["basis"].endswith("about 120 s for the reboots")


def test_a_copy_that_took_no_time_gives_no_backup_estimate(data_here: None) -> None:
    instant = SimpleNamespace(rows=0, bytes=0, seconds=0.0)
    estimate = rehearsal._estimate(rehearsed_run(), instant, OFFLINE_PLAN)
    assert estimate["backup_seconds"] == 0.0
    assert estimate["total_seconds"] == 24.0


@pytest.mark.django_db
def test_the_rehearsal_lists_what_would_not_be_migrated_and_why(data_here: None) -> None:
    info = FULL_INFO | {
        "data_tables": [{"name": "subscriber"}, {"name": "voucher"}, {"name": "event_log"}]
    }
    run = MigrationRun.objects.create(
        source_address="192.0.2.10", source_info=info, tables=["subscriber"]
    )
    executor.run_plan(run)
    copy = SimpleNamespace(
        rows=3,
        bytes=3000,
        seconds=1.0,
        tables={"subscriber": SimpleNamespace(rows=3, checksum="c1")},
        views=[],
        triggers=[],
        routines=[],
        refused=[],
    )
    settings = {"general": {"title": "t"}, "network": {"gateway": "g"}, "dns": {"servers": []}}
    outcome = rehearsal._outcome(run, copy, settings, 0.5)
    assert outcome["tables_not_migrated"] == [
        {"name": "event_log", "reason": "not chosen in the data selection"},
        {"name": "voucher", "reason": "not chosen in the data selection"},
    ]
    assert outcome["settings"] == {
        "migrated": ["general"],
        "not_migrated": [
            {"group": "dns", "reason": "site-bound: only copied with Swap Configuration"},
            {"group": "network", "reason": "site-bound: only copied with Swap Configuration"},
        ],
    }
    assert outcome["licence"] == {
        "guid": "G-1",
        "migrated": False,
        "reason": "Migrate License is off",
    }
    assert outcome["rows_per_second"] == 3
    assert outcome["estimate"]["downtime_basis"] == (
        "the whole data copy happens inside the maintenance window"
    )
