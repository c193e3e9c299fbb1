"""The rehearsal (dry run) of a prepared migration.

It copies the source's data into a scratch database on this system, verifies it (per chunk and
per table, as the real copy does), measures the speed, estimates how long the real run will
take, and lists what would be migrated and what would not, with the reason. The source is not
put in maintenance mode, neither system's configuration changes, and the scratch database is
removed at the end, whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from appliance import services as node_services
from config.env import MySQLURL
from migrations_engine.context import (
    PROGRESS_INTERVAL,
    copier_database,
    run_log,
    source_database_url,
)
from migrations_engine.datacopy import CopyError, ProgressEvent, copy_database, copy_forget
from migrations_engine.executor import run_facts
from migrations_engine.models import MigrationRun, RunStatus
from migrations_engine.peer_client import PeerClient, PeerError
from migrations_engine.plan import plan_build
from migrations_engine.secrets import SecretMissing, secret_get
from migrations_engine.services import licence_refusal

SCRATCH_SUFFIX = "_rehearsal"
STEP_SECONDS = 3.0
"""What one operation without bulk work (settings, maintenance, certificates...) takes, about."""
REBOOT_SECONDS = 120.0
"""What rebooting both systems takes, about (a swap only)."""
LOG_BYTES_PER_SECOND = 25e6
"""Traffic log copy speed over SFTP, as measured on the reference machine."""

Report = Callable[[float, str], None]


class RehearsalFailed(Exception):
    """The rehearsal could not be completed; the message says why and what to do."""


def rehearsal_ref(run: MigrationRun) -> str:
    """How the source knows the rehearsal's credentials (apart from the real run's)."""
    return f"{run.peer_ref}-rehearsal"


def scratch_database() -> MySQLURL:
    """The scratch database beside this system's data database (through the copier's account)."""
    return copier_database(settings.DATA_DB.database + SCRATCH_SUFFIX)


def rehearse(run: MigrationRun, report: Report | None = None) -> dict[str, Any]:
    """Rehearse the run's data copy and return what the real run would do and how long."""
    say = report or (lambda fraction, message: None)
    client = PeerClient(str(run.source_address), run.source_certificate, run.source_port)
    try:
        client.login(secret_get(run, "admin_password"))
        source_settings = client.settings()["settings"]
        account = client.database_account(rehearsal_ref(run))
    except PeerError as error:
        raise RehearsalFailed(f"The source refused the rehearsal: {error}") from error
    scratch = scratch_database()
    run_log(run.id, f"rehearsal: copying the source's data into {scratch.database}")
    try:
        copy = _copy(run, source_database_url(run, account), scratch, say)
    finally:
        copy_forget(scratch)
        _revoke(client, rehearsal_ref(run))
    say(1.0, "done")
    outcome = _outcome(run, copy, source_settings)
    total = outcome["estimate"]["total_seconds"]
    run_log(run.id, f"rehearsal done: {copy.rows} rows verified; the real run: about {total} s")
    return outcome


def _copy(run: MigrationRun, source: MySQLURL, scratch: MySQLURL, say: Report) -> Any:
    def on_progress(event: ProgressEvent) -> None:
        say(event.fraction * 0.98, f"{event.rows:,} of {event.rows_total:,} rows")

    try:
        return copy_database(
            source,
            scratch,
            tables=run.tables,
            progress=on_progress,
            workers=settings.MIGRATION_COPY_WORKERS,
        )
    except CopyError as error:
        raise RehearsalFailed(str(error)) from error


def _outcome(run: MigrationRun, copy: Any, source_settings: dict[str, Any]) -> dict[str, Any]:
    basic, site_bound = node_services.split_settings(source_settings)
    plan = plan_build(run_facts(run))
    info = run.source_info
    refusal = licence_refusal(info)
    every_table = {table["name"] for table in info.get("data_tables", [])}
    copied = set(copy.tables)
    return {
        "tables": {
            name: {"rows": table.rows, "checksum": table.checksum}
            for name, table in sorted(copy.tables.items())
        },
        "tables_not_migrated": [
            {"name": name, "reason": "not chosen in the data selection"}
            for name in sorted(every_table - copied)
        ],
        "rows": copy.rows,
        "bytes": copy.bytes,
        "copy_seconds": round(copy.seconds, 1),
        "rows_per_second": round(copy.rows / copy.seconds) if copy.seconds else None,
        "views": copy.views,
        "triggers": copy.triggers,
        "routines": copy.routines,
        "refused": [item.as_dict() for item in copy.refused],
        "operations": [row.as_dict() for row in plan],
        "settings": {
            "migrated": sorted(source_settings if run.swap_configuration else basic),
            "not_migrated": []
            if run.swap_configuration
            else [
                {"group": group, "reason": "site-bound: only copied with Swap Configuration"}
                for group in sorted(site_bound)
            ],
        },
        "licence": {
            "guid": (info.get("licence") or {}).get("guid"),
            "migrated": run.migrate_licence,
            "reason": "Migrate License is on"
            if run.migrate_licence
            else (refusal or "Migrate License is off"),
        },
        "traffic_logs": {
            "files": info.get("traffic_log_files", 0),
            "bytes": info.get("traffic_log_bytes", 0),
            "migrated": run.copy_traffic_logs,
            "reason": "Copy User Traffic Logs is " + ("on" if run.copy_traffic_logs else "off"),
        },
        "estimate": _estimate(run, copy, plan),
    }


def _estimate(run: MigrationRun, copy: Any, plan: list[Any]) -> dict[str, Any]:
    """The real run's duration from the measured copy speed, and what each part is based on."""
    speed = copy.bytes / copy.seconds if copy.seconds else 0.0
    here = node_services.data_size_bytes()
    parts = {
        "data_copy_seconds": copy.seconds,
        "backup_seconds": here / speed if speed else 0.0,
        "traffic_logs_seconds": run.source_info.get("traffic_log_bytes", 0) / LOG_BYTES_PER_SECOND
        if run.copy_traffic_logs
        else 0.0,
        "reboot_seconds": REBOOT_SECONDS if run.swap_configuration else 0.0,
        "other_operations_seconds": STEP_SECONDS * sum(1 for row in plan if row.runs),
    }
    return {
        **{name: round(value, 1) for name, value in parts.items()},
        "total_seconds": round(sum(parts.values()), 1),
        "basis": "; ".join(
            reason
            for reason, used in (
                (f"data copy measured now ({copy.rows:,} rows in {copy.seconds:.1f} s)", True),
                (f"backup of this system's {here / 1e6:.1f} MB at the same speed", True),
                (
                    f"traffic logs at {LOG_BYTES_PER_SECOND / 1e6:.0f} MB/s",
                    run.copy_traffic_logs,
                ),
                (f"about {STEP_SECONDS:.0f} s per other operation", True),
                (f"about {REBOOT_SECONDS:.0f} s for the reboots", run.swap_configuration),
            )
            if used
        ),
    }


def _revoke(client: PeerClient, ref: str) -> None:
    try:
        client.revoke(ref)
        client.logout()
    except PeerError:
        pass  # the account expires on the source anyway


def rehearsal_start(run: MigrationRun) -> None:
    """Queue the rehearsal of a prepared run on the workers; its state lives on the run."""
    if run.status != RunStatus.DRAFT or not run.options_chosen:
        raise RehearsalFailed("Only a prepared migration, options chosen, can be rehearsed.")
    if run.rehearsal.get("status") == "running":
        raise RehearsalFailed("The rehearsal of this migration is already running.")
    _rehearsal_save(run.id, status="running", fraction=0.0, message="waiting for a worker")
    transaction.on_commit(lambda: _dispatch(run.id))


def _dispatch(run_id: int) -> None:
    from migrations_engine.tasks import rehearse_run

    rehearse_run.delay(run_id)


def rehearsal_execute(run_id: int) -> None:
    """Run a queued rehearsal and keep its progress and outcome on the run."""
    run = MigrationRun.objects.get(id=run_id)
    written = 0.0

    def on_progress(fraction: float, message: str) -> None:
        nonlocal written
        if time.monotonic() - written >= PROGRESS_INTERVAL:
            written = time.monotonic()
            _rehearsal_save(run_id, status="running", fraction=fraction, message=message)

    try:
        outcome = rehearse(run, on_progress)
    except (RehearsalFailed, SecretMissing) as error:
        _rehearsal_save(run_id, status="failed", fraction=0.0, error=str(error))
        return
    _rehearsal_save(run_id, status="done", fraction=1.0, outcome=outcome)


def _rehearsal_save(run_id: int, **state: Any) -> None:
    MigrationRun.objects.filter(id=run_id).update(rehearsal=state)
