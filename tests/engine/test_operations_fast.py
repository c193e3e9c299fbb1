"""The operations of a run without a demo: why each one runs or not, what it does with what the
source answers (the peer API replaced by a recorder), what its undo takes back from what it
remembered, and the pure helpers behind the messages and figures Execution shows."""

from __future__ import annotations

import gzip
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from appliance import services as node_services
from appliance.backup import Backup, BackupError
from appliance.certificates import self_signed_certificate
from appliance.models import Licence, LicenceState, Setting
from migrations_engine import notifications
from migrations_engine.context import Progress, RunContext
from migrations_engine.datacopy.objects import EVENTS_NOT_COPIED, RefusedObject
from migrations_engine.datacopy.sql import SourceDatabase
from migrations_engine.handoffs import OnlineVerified, RunHandoffs
from migrations_engine.models import CutoverMode, MigrationRun, OperationState, RunStatus
from migrations_engine.online_copy import (
    SSL_CONNECTION_FAILED,
    BinlogPosition,
    Lag,
    OnlineCheck,
    TableCheck,
)
from migrations_engine.operations import (
    OPERATION_BY_NAME,
    backup_ops,
    data_ops,
    precopy_ops,
    source_ops,
    system_ops,
)
from migrations_engine.operations.backup_ops import BackupCurrentSystem
from migrations_engine.operations.base import OperationFailed
from migrations_engine.operations.data_ops import (
    CopyAccounts,
    CopyData,
    CopyDataAndActivateReplica,
    _raise_replica_error,
    _verified_tables,
    _verifying_message,
    certificate_names,
    events_not_copied,
)
from migrations_engine.operations.licence_ops import MigrateLicence
from migrations_engine.operations.precopy_ops import (
    AwaitCutover,
    CutoverOrder,
    LagHistory,
    PreCopyData,
    PreCopyLogs,
    _notify_waiting,
    _verified_line,
    _waiting_message,
    applied_sequence,
    window_seconds,
)
from migrations_engine.operations.remote_ops import (
    CopySyslog,
    _files_report,
    write_lines,
)
from migrations_engine.operations.settings_ops import CopySettings, ModifySourceConfiguration
from migrations_engine.operations.source_ops import (
    DeactivateReplica,
    FinalOperations,
    PlaceSourceUnderMaintenance,
)
from migrations_engine.operations.system_ops import (
    RestartServices,
    UpdateCertificates,
    run_local_command,
)
from migrations_engine.plan import PlanFacts
from migrations_engine.source_info import SourceInfo
from tests.engine.runs import FULL_INFO

STANDALONE: dict[str, Any] = FULL_INFO
HA_MASTER: dict[str, Any] = FULL_INFO | {
    "server_role": "ha_master",
    "server_role_label": "HA Master",
    "ha": {
        "replication_peer": "192.0.2.11",
        "round_robin_hosts": ["192.0.2.10", "192.0.2.11"],
        "load_balancing_domain": "lb.mycompany.test",
    },
}
BEHIND = Lag(events=500, seconds=12, bytes=40_000, caught_up=False)
POSITION = {"file": "binlog.000002", "position": 900, "gtid": "0-2-50"}


class PeerRecorder:
    """The source's peer API as a list of the calls made, answering from `answers`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}

    def record(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls.append((method, args, kwargs))
        return self.answers.get(method)

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> PeerRecorder:
    recorder = PeerRecorder()

    def peer_call(context: RunContext, method: str, *args: Any, **kwargs: Any) -> Any:
        return recorder.record(method, args, kwargs)

    monkeypatch.setattr(RunContext, "peer_call", peer_call)
    return recorder


def running_run(info: dict[str, Any] = STANDALONE, **fields: Any) -> MigrationRun:
    """A run a worker holds (fence 0), with no operation rows yet."""
    return MigrationRun.objects.create(
        source_address="192.0.2.10",
        source_info=info,
        status=RunStatus.RUNNING,
        active=True,
        started_at=timezone.now(),
        **fields,
    )


def add_state(run: MigrationRun, name: str, memory: dict[str, Any] | None = None) -> OperationState:
    return OperationState.objects.create(
        run=run,
        position=run.operations.count() + 1,
        name=name,
        label=OPERATION_BY_NAME[name].label,
        memory=memory or {},
    )


def context_for(
    name: str,
    memory: dict[str, Any] | None = None,
    *,
    run: MigrationRun | None = None,
    info: dict[str, Any] = STANDALONE,
    **fields: Any,
) -> RunContext:
    """The context an operation gets while it runs, on a run of its own (or `run`)."""
    run = run or running_run(info, **fields)
    return RunContext(run, add_state(run, name, memory), run.fence)


def progress_of(context: RunContext) -> Progress:
    return Progress(context.state, context.fence)


def stored_memory(context: RunContext) -> dict[str, Any]:
    context.state.refresh_from_db()
    return context.state.memory


# Why an operation runs or not, as the plan shows it.


def test_copies_the_chosen_accounts_says_how_many_were_chosen() -> None:
    chosen = PlanFacts(source_is_ha=False, accounts=("ann", "bob", "cy"))
    assert CopyAccounts().applies(chosen) == (True, "3 accounts were chosen")
    assert CopyAccounts().applies(PlanFacts(source_is_ha=False)) == (False, "all data is migrated")


def test_with_chosen_accounts_only_their_lines_are_copied_and_only_in_the_window() -> None:
    facts = PlanFacts(
        source_is_ha=False, copy_traffic_logs=True, accounts=("ann",), binlog_refusal=""
    )
    assert CopyData().applies(facts) == (False, "only the chosen accounts are migrated")
    runs, reason = PreCopyLogs().applies(facts)
    assert not runs and "inside the window" in reason
    runs, reason = PreCopyData().applies(facts)
    assert not runs and reason.endswith("because only the chosen accounts are migrated")
    assert CopySyslog().applies(facts)[0]


def test_an_ha_source_says_why_its_data_is_copied_inside_the_window() -> None:
    refused = PlanFacts(source_is_ha=True, binlog_refusal="the source's binary log is off")
    runs, reason = CopyDataAndActivateReplica().applies(refused)
    assert runs
    assert reason.endswith("inside the maintenance window because the source's binary log is off")
    runs, reason = CopyDataAndActivateReplica().applies(
        PlanFacts(source_is_ha=True, binlog_refusal="")
    )
    assert runs and "pre-copied while it served" in reason


def test_keeping_in_sync_says_whether_it_waits_for_a_time_or_for_the_copy() -> None:
    waits = PlanFacts(source_is_ha=False, cutover_waits=True)
    assert AwaitCutover().applies(waits) == (
        True,
        "the cutover waits for the chosen time or for Cut over now",
    )
    online = PlanFacts(source_is_ha=False, binlog_refusal="")
    assert AwaitCutover().applies(online)[1] == (
        "the maintenance window begins once the copy has caught up"
    )
    assert AwaitCutover().applies(PlanFacts(source_is_ha=False)) == (
        False,
        "nothing is copied while the source serves",
    )


# The pure helpers behind Execution's messages and figures.


def test_the_transactions_applied_add_up_over_every_replication_domain() -> None:
    assert applied_sequence("0-2-100,1-3-5") == 105
    assert applied_sequence(" 0-2-7 , 1-3-8") == 15
    assert applied_sequence("") == 0
    assert applied_sequence("junk,0-2-x,0-2-4") == 4


def test_a_lag_history_with_fewer_than_two_samples_measures_nothing() -> None:
    empty = LagHistory(60, deque())
    assert (empty.apply_rate, empty.shrink_rate, empty.full, empty.falling_behind) == (
        0.0,
        0.0,
        False,
        False,
    )
    single = LagHistory(60, deque([(0.0, 500, 1000)]))
    assert (single.apply_rate, single.shrink_rate, single.falling_behind) == (0.0, 0.0, False)


def test_the_window_without_a_measured_rate_falls_back_on_the_seconds_behind(
    settings: Any,
) -> None:
    settings.MIGRATION_VERIFY_MARGIN = 10
    nothing_measured = LagHistory(60, deque([(0.0, 500, 1000)]))
    assert window_seconds(BEHIND, nothing_measured) == 12 + 10
    unknown = Lag(events=None, seconds=None, bytes=0, caught_up=False)
    assert window_seconds(unknown, nothing_measured) == 10


def test_the_waiting_message_names_what_the_cutover_waits_for() -> None:
    at = timezone.make_aware(datetime(2030, 1, 2, 3, 4))
    assert _waiting_message(CutoverOrder(CutoverMode.AT, at, False)) == (
        "the cutover begins at 2030-01-02 03:04"
    )
    assert _waiting_message(CutoverOrder(CutoverMode.MANUAL, None, False)) == (
        "waiting for Cut over now"
    )
    assert _waiting_message(CutoverOrder(CutoverMode.CAUGHT_UP, None, False)) == (
        "the cutover begins once the copy has caught up"
    )


def test_a_stopped_replica_cuts_over_but_a_restarting_source_is_waited_for() -> None:
    order = CutoverOrder(CutoverMode.CAUGHT_UP, None, False)
    assert order.due(Lag(None, None, 0, caught_up=False, error="Duplicate entry"))
    assert not order.due(Lag(None, None, 0, caught_up=False, waiting="connection refused"))
    assert CutoverOrder(CutoverMode.AT, None, False).due(BEHIND)  # no time given: now


def test_the_verification_message_says_which_tables_are_checked_in_the_window() -> None:
    assert _verifying_message(None, None) == "verifying every table on both servers"
    assert _verifying_message(None, []).startswith("no table was written since")
    assert _verifying_message(None, ["voucher", "event_log"]).endswith(": voucher, event_log")


def table_check(name: str, rows: int, *, equal: bool = True) -> TableCheck:
    return TableCheck(name, rows, rows, "c1", "c1" if equal else "c2")


def test_each_table_in_the_report_says_when_it_was_verified() -> None:
    online = OnlineVerified(
        POSITION,
        {"subscriber": table_check("subscriber", 3).as_dict()},
        (),
    )
    again = table_check("voucher", 7)
    tables = _verified_tables(online, [again])
    assert list(tables) == ["subscriber", "voucher"]
    assert tables["subscriber"]["verified"] == (
        "while the source served (at binlog.000002:900 (GTID 0-2-50))"
    )
    assert tables["voucher"]["verified"] == "inside the maintenance window"
    assert tables["voucher"]["rows"] == 7
    rechecked = _verified_tables(online, [table_check("subscriber", 4)])
    assert rechecked["subscriber"]["verified"] == "inside the maintenance window"
    assert rechecked["subscriber"]["rows"] == 4


def test_the_verification_log_line_names_the_tables_that_differ() -> None:
    check = OnlineCheck(
        BinlogPosition("binlog.000002", 900),
        [table_check("subscriber", 3), table_check("voucher", 4, equal=False)],
        1.25,
    )
    line = _verified_line(check)
    assert line.startswith("2 tables (7 rows) verified on both servers while the source served")
    assert line.endswith("in 1.2 s; differ, verified again inside the window: voucher")


def test_the_sources_events_are_listed_as_not_copied_once_each() -> None:
    source = SourceInfo.stored({"data_events": ["nightly_purge", "hourly_stats"]})
    listed = [
        RefusedObject("event", "nightly_purge", EVENTS_NOT_COPIED),
        RefusedObject("view", "hourly_stats", "refused"),
    ]
    added = events_not_copied(source, listed)
    assert [(item.kind, item.name) for item in added] == [("event", "hourly_stats")]
    assert added[0].reason == EVENTS_NOT_COPIED


def test_the_names_a_certificate_is_for_are_read_from_it(tmp_path: Path) -> None:
    cert, key = tmp_path / "db.crt", tmp_path / "db.key"
    self_signed_certificate(
        cert_path=cert, key_path=key, common_name="db.mycompany.test", addresses=["192.0.2.10"]
    )
    assert certificate_names(cert.read_text()) == ["db.mycompany.test", "192.0.2.10"]
    assert certificate_names("not a certificate") == []


def test_a_replica_that_cannot_verify_the_source_says_which_names_its_certificate_holds(
    tmp_path: Path,
) -> None:
    cert, key = tmp_path / "db.crt", tmp_path / "db.key"
    self_signed_certificate(
        cert_path=cert, key_path=key, common_name="other.test", addresses=["192.0.2.99"]
    )
    source = SourceDatabase("run", "pw", "192.0.2.10", 3306, "data", certificate=cert.read_text())
    status = {"Last_IO_Errno": SSL_CONNECTION_FAILED, "Last_IO_Error": "certificate mismatch"}
    with pytest.raises(OperationFailed) as failed:
        _raise_replica_error(status, source)
    assert "192.0.2.10:3306" in str(failed.value)
    assert "(it names: other.test, 192.0.2.99)" in str(failed.value)
    assert "SubjectAltName includes 192.0.2.10" in failed.value.fix
    with pytest.raises(OperationFailed, match="Replication stopped: Duplicate entry"):
        _raise_replica_error({"Last_Error": "Duplicate entry"}, source)
    _raise_replica_error({"Last_IO_Errno": 0}, source)  # no error: nothing raised


def test_lines_are_written_gzipped_and_no_partial_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "traffic.log.gz"
    assert write_lines(target, [b"ann 1\n", b"ann 2\n"]) == 2
    assert gzip.decompress(target.read_bytes()) == b"ann 1\nann 2\n"
    assert [path.name for path in tmp_path.iterdir()] == ["traffic.log.gz"]


def test_a_file_pass_over_no_file_is_complete() -> None:
    assert _files_report(0, 0, "", final=True).fraction == 1.0
    halfway = _files_report(1, 4, "b.log.gz")
    assert (halfway.fraction, halfway.figures) == (0.25, {"files": 1, "files_total": 4})


# Operations on the source through its peer API, and their undo.

on_db = pytest.mark.django_db


@on_db
def test_maintenance_takes_an_ha_masters_round_robin_hosts_and_undo_puts_them_back(
    peer: PeerRecorder,
) -> None:
    context = context_for("source_maintenance", info=HA_MASTER)
    result = PlaceSourceUnderMaintenance().run(context, progress_of(context))
    assert result["round_robin_hosts_removed"] == ["192.0.2.10", "192.0.2.11"]
    assert peer.calls[:2] == [
        ("maintenance", (), {"enabled": True, "reason": f"migration run {context.run.id}"}),
        ("round_robin_hosts", ([],), {}),
    ]
    peer.calls.clear()
    PlaceSourceUnderMaintenance().undo(context)
    assert peer.calls == [
        ("round_robin_hosts", (["192.0.2.10", "192.0.2.11"],), {}),
        ("maintenance", (), {"enabled": False}),
    ]


@on_db
def test_undoing_a_standalone_sources_maintenance_only_switches_it_off(
    peer: PeerRecorder,
) -> None:
    context = context_for("source_maintenance")
    result = PlaceSourceUnderMaintenance().run(context, progress_of(context))
    assert "round_robin_hosts_removed" not in result
    peer.calls.clear()
    PlaceSourceUnderMaintenance().undo(context)
    assert peer.calls == [("maintenance", (), {"enabled": False})]


@on_db
def test_the_downtime_begins_when_maintenance_first_goes_on_not_on_a_resume(
    peer: PeerRecorder,
) -> None:
    context = context_for("source_maintenance")
    PlaceSourceUnderMaintenance().run(context, progress_of(context))
    context.run.refresh_from_db()
    first = context.run.downtime_started_at
    assert first is not None
    PlaceSourceUnderMaintenance().run(context, progress_of(context))
    context.run.refresh_from_db()
    assert context.run.downtime_started_at == first


@on_db
def test_undoing_the_replicas_deactivation_starts_the_ha_replication_again(
    peer: PeerRecorder,
) -> None:
    context = context_for("deactivate_replica", info=HA_MASTER)
    assert DeactivateReplica().run(context, progress_of(context)) == {"replication": "stopped"}
    DeactivateReplica().undo(context)
    assert peer.calls == [
        ("replication", (), {"running": False}),
        ("replication", (), {"running": True}),
    ]


@on_db
def test_final_operations_put_the_hosts_back_and_leave_a_retired_source_in_maintenance(
    peer: PeerRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[Any] = []
    monkeypatch.setattr(source_ops, "replica_stop", stopped.append)
    run = running_run(HA_MASTER)
    add_state(run, "source_maintenance", {"round_robin_hosts": ["192.0.2.10", "192.0.2.11"]})
    peer.answers["revoke"] = 2
    context = context_for("final_operations", run=run)
    result = FinalOperations().run(context, progress_of(context))
    assert result["round_robin_hosts_restored"] == ["192.0.2.10", "192.0.2.11"]
    assert result["source_maintenance"] == "on (the source is retired)"
    assert result["credentials_revoked"] == 2
    assert "maintenance" not in peer.methods()
    assert ("revoke", (f"run-{run.id}",), {}) in peer.calls
    assert stopped == []  # no replica was started by this run


@on_db
def test_final_operations_of_a_swap_take_the_source_out_of_maintenance_and_stop_the_replica(
    peer: PeerRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[Any] = []
    monkeypatch.setattr(source_ops, "replica_stop", stopped.append)
    run = running_run(HA_MASTER, swap_configuration=True)
    add_state(run, "copy_data_and_replica")
    context = context_for("final_operations", run=run)
    result = FinalOperations().run(context, progress_of(context))
    assert ("maintenance", (), {"enabled": False}) in peer.calls
    assert result["source_maintenance"].startswith("off")
    assert "round_robin_hosts" not in peer.methods()
    assert len(stopped) == 1 and "replica" in result


# Settings, here and on the source.

HERE_SETTINGS: dict[str, dict[str, Any]] = {
    "general": {"title": "new system"},
    "dns": {"servers": ["10.0.0.53"]},
}
SOURCE_SETTINGS: dict[str, dict[str, Any]] = {
    "general": {"title": "old system", "motd": "hello"},
    "dns": {"servers": ["192.0.2.53"]},
    "network": {"gateway": "192.0.2.1"},
}


def settings_here(values: dict[str, dict[str, Any]]) -> None:
    for group, pairs in values.items():
        for key, value in pairs.items():
            Setting.objects.create(group=group, key=key, value=value)


@on_db
def test_copying_settings_without_a_swap_keeps_the_site_bound_groups_and_undo_restores(
    peer: PeerRecorder,
) -> None:
    settings_here(HERE_SETTINGS)
    peer.answers["settings"] = {"settings": SOURCE_SETTINGS}
    context = context_for("copy_settings")
    result = CopySettings().run(context, progress_of(context))
    assert result == {"groups_applied": ["general"], "groups_kept": ["dns", "network"]}
    assert node_services.settings_export() == {
        "general": {"title": "old system", "motd": "hello"},
        "dns": {"servers": ["10.0.0.53"]},
    }
    CopySettings().undo(context)
    assert node_services.settings_export() == HERE_SETTINGS


@on_db
def test_a_swap_takes_the_sources_identity_and_undo_gives_this_systems_back(
    peer: PeerRecorder,
) -> None:
    settings_here(HERE_SETTINGS)
    before = node_services.identity_get()
    peer.answers["settings"] = {"settings": SOURCE_SETTINGS}
    context = context_for("copy_settings", swap_configuration=True)
    CopySettings().run(context, progress_of(context))
    assert node_services.identity_get() == {
        "host_name": "appliance-old",
        "domain_name": "mycompany.test",
        "ip_address": "192.0.2.10",
    }
    assert node_services.settings_export() == SOURCE_SETTINGS
    CopySettings().undo(context)
    assert node_services.identity_get() == before
    assert node_services.settings_export() == HERE_SETTINGS


@on_db
def test_a_resumed_settings_copy_still_undoes_to_the_settings_from_before_the_run(
    peer: PeerRecorder,
) -> None:
    settings_here(HERE_SETTINGS)
    peer.answers["settings"] = {"settings": SOURCE_SETTINGS}
    context = context_for("copy_settings", swap_configuration=True)
    CopySettings().run(context, progress_of(context))
    CopySettings().run(context, progress_of(context))  # resumed after a crash
    CopySettings().undo(context)
    assert node_services.settings_export() == HERE_SETTINGS


@on_db
def test_the_swap_cannot_go_on_when_this_systems_settings_were_not_kept(
    peer: PeerRecorder,
) -> None:
    peer.answers["settings"] = {"settings": SOURCE_SETTINGS}
    context = context_for("modify_source_configuration", swap_configuration=True)
    with pytest.raises(OperationFailed, match="former settings were not kept") as failed:
        ModifySourceConfiguration().run(context, progress_of(context))
    assert failed.value.fix == "Start over."
    assert "configuration" not in peer.methods()


@on_db
def test_a_swap_gives_the_source_only_this_systems_site_bound_settings_and_identity(
    peer: PeerRecorder,
) -> None:
    peer.answers["settings"] = {"settings": SOURCE_SETTINGS}
    run = running_run(swap_configuration=True)
    kept = {"previous": HERE_SETTINGS | {"network": {"gateway": "10.0.0.1"}}}
    identity = {"host_name": "newgw", "domain_name": "mycompany.test", "ip_address": "10.0.0.2"}
    add_state(run, "copy_settings", kept | {"identity": identity})
    context = context_for("modify_source_configuration", run=run)
    result = ModifySourceConfiguration().run(context, progress_of(context))
    sent = peer.calls[-1]
    assert sent == (
        "configuration",
        ({"dns": {"servers": ["10.0.0.53"]}, "network": {"gateway": "10.0.0.1"}},),
        {"identity": identity},
    )
    assert result == {"source_took": ["dns", "network"], "source_identity": identity}


@on_db
def test_without_a_swap_the_source_is_marked_migrated_and_undo_restores_it(
    peer: PeerRecorder,
) -> None:
    peer.answers["settings"] = {"settings": SOURCE_SETTINGS}
    context = context_for("modify_source_configuration")
    result = ModifySourceConfiguration().run(context, progress_of(context))
    fqdn = node_services.node_get().fqdn
    assert result == {"source_marked_migrated_to": fqdn}
    assert peer.calls[-1] == ("configuration", ({},), {"migrated_to": fqdn})
    ModifySourceConfiguration().undo(context)
    assert peer.calls[-1] == (
        "configuration",
        (SOURCE_SETTINGS,),
        {
            "identity": {
                "host_name": "appliance-old",
                "domain_name": "mycompany.test",
                "ip_address": "192.0.2.10",
            },
            "migrated_to": "",
        },
    )


# The licence.

LICENSED: dict[str, Any] = STANDALONE | {
    "licence": {
        "guid": "G-1",
        "state": "active",
        "has_active_maintenance": True,
        "holder": "ACME",
        "maintenance_until": "2031-05-06",
    }
}


@on_db
def test_the_licence_moves_here_then_the_source_releases_it(peer: PeerRecorder) -> None:
    context = context_for("migrate_licence", info=LICENSED, migrate_licence=True)
    result = MigrateLicence().run(context, progress_of(context))
    licence = node_services.licence_get()
    assert (licence.guid, licence.state, licence.holder) == ("G-1", LicenceState.ACTIVE, "ACME")
    assert str(licence.maintenance_until) == "2031-05-06"
    assert peer.calls == [
        ("licence_release", (), {"guid": "G-1", "transferred_to": node_services.node_get().fqdn})
    ]
    assert result == {"guid": "G-1", "current_system": "active", "source": "transferred"}


@on_db
def test_a_licence_claimed_here_before_a_crash_is_released_on_the_source_on_resume(
    peer: PeerRecorder,
) -> None:
    Licence.objects.create(guid="G-1", state=LicenceState.ACTIVE)
    context = context_for("migrate_licence", info=LICENSED, migrate_licence=True)
    MigrateLicence().run(context, progress_of(context))
    assert peer.methods() == ["licence_release"]


@on_db
def test_another_active_licence_here_stops_the_move_before_the_source_releases_its_own(
    peer: PeerRecorder,
) -> None:
    Licence.objects.create(guid="OTHER", state=LicenceState.ACTIVE)
    context = context_for("migrate_licence", info=LICENSED, migrate_licence=True)
    with pytest.raises(OperationFailed, match="already has another active licence"):
        MigrateLicence().run(context, progress_of(context))
    assert node_services.licence_get().guid == "OTHER"
    assert peer.calls == []


@on_db
def test_a_source_without_a_licence_has_nothing_to_migrate(peer: PeerRecorder) -> None:
    unlicensed = STANDALONE | {"licence": {"guid": "", "state": "none"}}
    context = context_for("migrate_licence", info=unlicensed, migrate_licence=True)
    with pytest.raises(OperationFailed, match="no licence to migrate"):
        MigrateLicence().run(context, progress_of(context))
    assert node_services.licence_get().state == LicenceState.NONE
    assert peer.calls == []


# The backup, the certificates and the services here.


def fake_backup(backup_id: str) -> Backup:
    return Backup(backup_id, Path("/backups") / backup_id, {"parts": {"data": {"bytes": 1234}}})


@on_db
def test_a_resumed_backup_reuses_the_one_taken_before(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    monkeypatch.setattr(backup_ops, "backup_get", fake_backup)
    monkeypatch.setattr(backup_ops, "backup_create", lambda reason, progress: taken.append(reason))
    context = context_for("backup_current", {"backup": "B-1"})
    result = BackupCurrentSystem().run(context, progress_of(context))
    assert result == {"backup": "B-1", "bytes": 1234, "directory": "/backups/B-1"}
    assert taken == []


@on_db
def test_a_backup_that_went_missing_is_taken_again_and_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def gone(backup_id: str) -> Backup:
        raise BackupError("no such backup")

    monkeypatch.setattr(backup_ops, "backup_get", gone)
    monkeypatch.setattr(backup_ops, "backup_create", lambda reason, progress: fake_backup("B-2"))
    context = context_for("backup_current", {"backup": "B-1"})
    result = BackupCurrentSystem().run(context, progress_of(context))
    assert result["backup"] == "B-2"
    assert RunHandoffs.of(context.run).backup == "B-2"
    assert "the backup recorded earlier is gone" in MigrationRun.objects.get(id=context.run.id).log


@on_db
def test_a_backup_that_cannot_be_taken_says_to_free_space(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(reason: str, progress: Any) -> Backup:
        raise BackupError("Not enough free space for the backup.")

    monkeypatch.setattr(backup_ops, "backup_create", full)
    context = context_for("backup_current")
    with pytest.raises(OperationFailed, match="Not enough free space") as failed:
        BackupCurrentSystem().run(context, progress_of(context))
    assert failed.value.fix.startswith("Free space")
    assert RunHandoffs.of(context.run).backup == ""


def certificate_here() -> bytes:
    node = node_services.node_get()
    self_signed_certificate(
        cert_path=node_services.certificate_path(),
        key_path=node_services.private_key_path(),
        common_name="before.test",
        addresses=[node.ip_address],
    )
    return node_services.certificate_path().read_bytes()


@on_db
def test_a_new_certificate_is_made_for_this_system_and_undo_brings_the_old_one_back() -> None:
    before = certificate_here()
    context = context_for("update_certificates")
    result = UpdateCertificates().run(context, progress_of(context))
    assert result["from"] == "new"
    assert result["certificate_for"] == node_services.node_get().fqdn
    assert result["fingerprint"] == node_services.tls_fingerprint()
    assert node_services.certificate_path().read_bytes() != before
    UpdateCertificates().undo(context)
    assert node_services.certificate_path().read_bytes() == before


@on_db
def test_a_swap_with_a_source_that_does_not_say_where_its_certificate_is_stops() -> None:
    before = certificate_here()
    info = STANDALONE | {"certificate_files": {"certificate": "", "key": ""}}
    context = context_for("update_certificates", info=info, swap_configuration=True)
    with pytest.raises(OperationFailed, match="did not say where its certificate is"):
        UpdateCertificates().run(context, progress_of(context))
    assert node_services.certificate_path().read_bytes() == before


@on_db
def test_a_restart_command_that_fails_runs_again_on_resume(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system_ops, "wait_until_web_answers", lambda context, progress: 1.04)
    settings.APPLIANCE_RESTART_COMMAND = "false"
    context = context_for("restart_services")
    with pytest.raises(OperationFailed, match="failed with exit status 1"):
        RestartServices().run(context, progress_of(context))
    assert "requested_at" not in stored_memory(context)
    settings.APPLIANCE_RESTART_COMMAND = "true"
    result = RestartServices().run(context, progress_of(context))
    assert result == {"restarted": True, "answered_after_seconds": 1.0}
    assert "requested_at" in stored_memory(context)


@on_db
def test_a_restart_asked_for_before_is_not_asked_again_and_ends_the_downtime(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system_ops, "wait_until_web_answers", lambda context, progress: 0.0)
    settings.APPLIANCE_RESTART_COMMAND = "false"  # would fail if it ran
    began = timezone.now()
    context = context_for(
        "restart_services", {"requested_at": began.isoformat()}, downtime_started_at=began
    )
    RestartServices().run(context, progress_of(context))
    context.run.refresh_from_db()
    assert context.run.downtime_ended_at is not None
    assert context.run.downtime_seconds is not None
    assert "service downtime:" in context.run.log


@on_db
def test_a_command_that_cannot_start_or_does_not_finish_says_so() -> None:
    context = context_for("restart_services")
    with pytest.raises(OperationFailed, match="could not start"):
        run_local_command("/nonexistent/restart-services", context)
    with pytest.raises(OperationFailed, match="did not finish within 0 seconds"):
        run_local_command("sleep 5", context, timeout=0.2)
    assert run_local_command("echo restarted", context) == "restarted"
    assert (
        "$ echo restarted -> exit 0\nrestarted" in MigrationRun.objects.get(id=context.run.id).log
    )


# The online pre-copy and the data copy inside the window.


@on_db
def test_undoing_the_precopy_stops_the_replica_so_the_window_copies_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped: list[Any] = []
    monkeypatch.setattr(precopy_ops, "replica_stop", stopped.append)
    run = running_run()
    precopy = context_for("precopy_data", {"start": POSITION, "replicating": True}, run=run)
    PreCopyData().undo(precopy)
    assert len(stopped) == 1
    handed = RunHandoffs.of(run).precopy
    assert handed is not None and not handed.replicating

    copied: list[str] = []

    def copy_whole(context: RunContext, progress: Progress) -> dict[str, Any]:
        copied.append("whole")
        return {"rows": 10}

    def cutover(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a stopped replica cannot finish the copy")

    monkeypatch.setattr(data_ops, "copy_and_upgrade", copy_whole)
    monkeypatch.setattr(data_ops, "cutover", cutover)
    copy = context_for("copy_data", run=run)
    assert CopyData().run(copy, progress_of(copy)) == {"rows": 10}
    assert copied == ["whole"]


@on_db
def test_undoing_the_log_copy_removes_partial_files_and_keeps_the_copied_logs(
    settings: Any,
) -> None:
    logs = Path(settings.APPLIANCE_TRAFFIC_LOG_DIR)
    (logs / "2024").mkdir(parents=True)
    (logs / "2024" / "a.log.gz").write_bytes(b"done")
    (logs / "2024" / ".b.log.gz.partial").write_bytes(b"half")
    (logs / ".c.log.gz.partial").write_bytes(b"half")
    CopySyslog().undo(context_for("copy_syslog"))
    assert sorted(str(path.relative_to(logs)) for path in logs.rglob("*.*")) == ["2024/a.log.gz"]


def report_of(lag: Lag, history: LagHistory, order: CutoverOrder) -> OperationState:
    context = context_for("await_cutover")
    AwaitCutover()._report(progress_of(context), order, lag, history)
    context.state.refresh_from_db()
    return context.state


@on_db
def test_a_copy_falling_behind_warns_with_the_window_a_cutover_now_would_take(
    settings: Any,
) -> None:
    settings.MIGRATION_VERIFY_MARGIN = 10
    growing = LagHistory(60, deque([(0.0, 100, 0), (60.0, 500, 600)]))  # 10 a second
    state = report_of(BEHIND, growing, CutoverOrder(CutoverMode.MANUAL, None, False))
    assert state.message.startswith("The copy is not catching up")
    assert "(500 transactions (12 s) behind the source)" in state.message
    assert state.message.endswith("the maintenance window would then last about 60 s.")
    assert state.figures["falling_behind"] is True
    assert state.figures["window_seconds"] == 60
    assert state.fraction == 0.5


@on_db
def test_a_shrinking_lag_gives_the_time_to_catch_up() -> None:
    shrinking = LagHistory(60, deque([(0.0, 1100, 0), (60.0, 500, 600)]))  # 10 fewer a second
    state = report_of(BEHIND, shrinking, CutoverOrder(CutoverMode.CAUGHT_UP, None, False))
    assert state.eta_seconds == pytest.approx(50)
    assert state.message == "the cutover begins once the copy has caught up"
    assert state.figures["in_sync"] is False
    assert "falling_behind" not in state.figures


@on_db
def test_a_source_that_does_not_answer_is_said_to_be_waited_for() -> None:
    waiting = Lag(None, None, 0, caught_up=False, waiting="connection refused")
    state = report_of(
        waiting, LagHistory(60, deque()), CutoverOrder(CutoverMode.MANUAL, None, False)
    )
    assert state.message == ("waiting for the source: connection refused; waiting for Cut over now")


@on_db
def test_the_administrators_are_told_once_that_the_run_waits_for_its_cutover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    told: list[int] = []
    monkeypatch.setattr(
        notifications, "notify_waiting_for_cutover", lambda run: told.append(run.id)
    )
    context = context_for("await_cutover")
    assert _notify_waiting(context, CutoverOrder(CutoverMode.CAUGHT_UP, None, False))
    assert told == []  # it cuts over by itself: nobody has to act
    assert _notify_waiting(context, CutoverOrder(CutoverMode.MANUAL, None, False))
    assert told == [context.run.id]
    assert stored_memory(context)["waiting_notified"] is True
