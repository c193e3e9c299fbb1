"""The rehearsal (dry run) of a prepared migration.

It copies the source's data into a scratch database on this system, verifies it (per chunk and
per table, as the real copy does), measures the speed, estimates how long the real run will
take, and lists what would be migrated and what would not, with the reason. The source is not
put in maintenance mode, neither system's configuration changes, and the scratch database is
removed at the end, whatever happens.

A rehearsal is a job like a run (the `Rehearsal` row): a worker claims it, keeps its heartbeat
while it runs, and every change of its state goes through `lifecycle`, checked against its
fence. An error of any kind ends it failed with the reason; the sweeper ends failed one whose
worker stopped, so a new rehearsal can start.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from appliance import services as node_services
from appliance.progress import Report, Reporter, Throttle
from config.env import MySQLURL
from migrations_engine import lifecycle
from migrations_engine.context import (
    Fenced,
    beats_kept,
    copier_database,
    run_log,
    source_database_url,
)
from migrations_engine.datacopy import CopyError, ProgressEvent, copy_database, copy_forget
from migrations_engine.executor import run_facts
from migrations_engine.models import (
    REHEARSAL_ACTIVE_STATUSES,
    MigrationRun,
    Rehearsal,
    RehearsalStatus,
    RunStatus,
)
from migrations_engine.online_copy import tables_verify
from migrations_engine.peer_client import PeerClient, PeerError
from migrations_engine.plan import plan_build
from migrations_engine.secrets import SecretMissing, secret_get
from migrations_engine.services import licence_refusal

logger = logging.getLogger(__name__)
SCRATCH_SUFFIX = "_rehearsal"
STEP_SECONDS = 3.0
"""What one operation without bulk work (settings, maintenance, certificates...) takes, about."""
REBOOT_SECONDS = 120.0
"""What rebooting both systems takes, about (a swap only)."""
LOG_BYTES_PER_SECOND = 25e6
"""Traffic log copy speed over SFTP, as measured on the reference machine."""

WORKER_STOPPED = (
    "The worker running the rehearsal stopped (killed or restarted). Nothing was changed on "
    "either system; rehearse again."
)


class RehearsalFailed(Exception):
    """The rehearsal could not be completed; the message says why and what to do."""


def rehearsal_ref(run: MigrationRun) -> str:
    """How the source knows the rehearsal's credentials (apart from the real run's)."""
    return f"{run.peer_ref}-rehearsal"


def scratch_database() -> MySQLURL:
    """The scratch database beside this system's data database (through the copier's account)."""
    return copier_database(settings.DATA_DB.database + SCRATCH_SUFFIX)


def rehearse(run: MigrationRun, report: Reporter | None = None) -> dict[str, Any]:
    """Rehearse the run's data copy and return what the real run would do and how long."""
    say: Reporter = report or (lambda _report: None)
    client = PeerClient(str(run.source_address), run.source_certificate, run.source_port)
    try:
        client.login(secret_get(run, "admin_password"))
        source_settings = client.settings()["settings"]
        account = client.database_account(rehearsal_ref(run))
    except PeerError as error:
        raise RehearsalFailed(f"The source refused the rehearsal: {error}") from error
    scratch = scratch_database()
    run_log(run.id, f"rehearsal: copying the source's data into {scratch.database}")
    source = source_database_url(run, account)
    given_up = False
    try:
        copy = _copy(run, source, scratch, say)
        verify_seconds = _verify_seconds(run, source, scratch)
        say(Report(0.99, message="verified", final=True))  # written now: Fenced if given up
    except Fenced:
        given_up = True  # a newer rehearsal may be copying into the scratch database now
        raise
    finally:
        if not given_up:
            copy_forget(scratch)
        _revoke(client, rehearsal_ref(run))
    say(Report(1.0, message="done", final=True))
    outcome = _outcome(run, copy, source_settings, verify_seconds)
    total = outcome["estimate"]["total_seconds"]
    run_log(run.id, f"rehearsal done: {copy.rows} rows verified; the real run: about {total} s")
    return outcome


def _copy(run: MigrationRun, source: MySQLURL, scratch: MySQLURL, say: Reporter) -> Any:
    def on_progress(event: ProgressEvent) -> None:
        rows = f"{event.rows:,} of {event.rows_total:,} rows"
        # the rehearsal's own "done" is its last word, not the copy's end
        say(replace(event.report().scaled(0.98), final=False, message=rows))

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


def _verify_seconds(run: MigrationRun, source: MySQLURL, scratch: MySQLURL) -> float:
    """How long the cutover's verification of every table on both servers takes: measured by
    doing it on the rehearsal's copy (RehearsalFailed if the copy does not match)."""
    started = time.monotonic()
    checks = tables_verify(source, scratch, run.tables)
    if differ := [check.name for check in checks if not check.equal]:
        raise RehearsalFailed(
            f"The rehearsal's copy differs from the source in {', '.join(differ)}."
        )
    return time.monotonic() - started


def _outcome(
    run: MigrationRun, copy: Any, source_settings: dict[str, Any], verify_seconds: float
) -> dict[str, Any]:
    basic, site_bound = node_services.split_settings(source_settings)
    plan = plan_build(run_facts(run))
    source = run.source
    refusal = licence_refusal(source)
    every_table = source.table_names
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
            "guid": source.licence.guid or None,
            "migrated": run.migrate_licence,
            "reason": "Migrate License is on"
            if run.migrate_licence
            else (refusal or "Migrate License is off"),
        },
        "traffic_logs": {
            "files": source.traffic_log_files,
            "bytes": source.traffic_log_bytes,
            "migrated": run.copy_traffic_logs,
            "reason": "Copy User Traffic Logs is " + ("on" if run.copy_traffic_logs else "off"),
        },
        "estimate": _estimate(run, copy, plan) | _window(run, copy, plan, verify_seconds),
    }


def _estimate(run: MigrationRun, copy: Any, plan: list[Any]) -> dict[str, Any]:
    """The real run's duration from the measured copy speed, and what each part is based on."""
    speed = copy.bytes / copy.seconds if copy.seconds else 0.0
    here = node_services.data_size_bytes()
    parts = {
        "data_copy_seconds": copy.seconds,
        "backup_seconds": here / speed if speed else 0.0,
        "traffic_logs_seconds": run.source.traffic_log_bytes / LOG_BYTES_PER_SECOND
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


WINDOW_FROM, WINDOW_TO = "source_maintenance", "restart_services"
"""The operations from the first to the last of which the source's users are refused."""


def _window(run: MigrationRun, copy: Any, plan: list[Any], verify_seconds: float) -> dict[str, Any]:
    """The expected time online (the source serving) and the expected downtime (from
    maintenance until this system serves), from the measured copy and verification."""
    names = [row.name for row in plan if row.runs]
    online = "precopy_data" in names
    inside = names[names.index(WINDOW_FROM) : names.index(WINDOW_TO) + 1]
    logs = run.source.traffic_log_bytes / LOG_BYTES_PER_SECOND if run.copy_traffic_logs else 0.0
    data = verify_seconds if online else copy.seconds
    downtime = (
        data
        + (REBOOT_SECONDS if run.swap_configuration else 0.0)
        + STEP_SECONDS * (len(inside) - 1)
    )
    online_logs = logs if "precopy_syslog" in names else 0.0
    return {
        "online_seconds": round(
            (copy.seconds + verify_seconds if online else 0.0) + online_logs, 1
        ),
        "downtime_seconds": round(downtime, 1),
        "verify_seconds": round(verify_seconds, 3),
        "downtime_basis": (
            f"at most: the verification of every table measured now ({verify_seconds:.2f} s; "
            "done once while the source serves, then inside the window only for the tables "
            "written since), the source's last changes and the restart"
            if online
            else "the whole data copy happens inside the maintenance window"
        ),
    }


def _revoke(client: PeerClient, ref: str) -> None:
    try:
        client.revoke(ref)
        client.logout()
    except PeerError:
        pass  # the account expires on the source anyway


def rehearsal_start(run: MigrationRun, *, dispatch: bool = True) -> Rehearsal:
    """Queue a rehearsal of a prepared run on the workers (`dispatch=False`: the caller runs it
    itself with `rehearsal_execute`); refused while a rehearsal is queued or running here."""
    if run.status != RunStatus.DRAFT or not run.plan:
        raise RehearsalFailed("Only a prepared migration, options chosen, can be rehearsed.")
    try:
        with transaction.atomic():
            rehearsal = lifecycle.rehearsal_queue(run.id)
    except IntegrityError:
        other = Rehearsal.objects.filter(active=True).first()
        mine = other is not None and other.run_id == run.id
        raise RehearsalFailed(
            "The rehearsal of this migration is already running."
            if mine
            else "Another rehearsal is running on this system; wait for it to end."
        ) from None
    run_log(run.id, f"rehearsal {rehearsal.id} queued")
    if dispatch:
        transaction.on_commit(lambda: _dispatch(rehearsal.id))
    return rehearsal


def _dispatch(rehearsal_id: int) -> None:
    from migrations_engine.tasks import execute_rehearsal

    execute_rehearsal.delay(rehearsal_id)


def rehearsal_last(run: MigrationRun) -> Rehearsal | None:
    """The run's latest rehearsal, the one the wizard shows (None before the first)."""
    return run.rehearsals.order_by("-id").first()


def rehearsal_claim(rehearsal_id: int, worker: str) -> tuple[Rehearsal, int] | None:
    """Take a queued rehearsal for this worker; its fence, or None if it is no longer queued
    (taken by another worker, or ended)."""
    rehearsal = Rehearsal.objects.filter(id=rehearsal_id).first()
    if rehearsal is None or rehearsal.status != RehearsalStatus.QUEUED:
        return None
    if not lifecycle.rehearsal_take(rehearsal.id, fence=rehearsal.fence, worker=worker):
        return None
    rehearsal.refresh_from_db()
    run_log(rehearsal.run_id, f"rehearsal taken by worker {worker} (fence {rehearsal.fence})")
    return rehearsal, rehearsal.fence


def rehearsal_execute(rehearsal_id: int, worker: str, report: Reporter | None = None) -> None:
    """Run a queued rehearsal, keeping its heartbeat, progress and then outcome (or why it
    failed) on its row; whatever goes wrong ends it failed with the reason. `report` is told
    the progress too."""
    claim = rehearsal_claim(rehearsal_id, worker)
    if claim is None:
        return
    rehearsal, fence = claim
    run = rehearsal.run
    fenced = threading.Event()
    try:
        with _heartbeat_kept(rehearsal.id, fence, fenced):
            outcome = rehearse(run, _progress_writer(rehearsal.id, fence, fenced, report))
    except Fenced:
        logger.info("rehearsal %s: given up meanwhile; this worker stops", rehearsal.id)
        return
    except (RehearsalFailed, SecretMissing) as error:
        _fail(rehearsal, fence, str(error))
        return
    except Exception as error:
        logger.exception("rehearsal %s failed", rehearsal.id)
        _fail(rehearsal, fence, f"Unexpected error: {error}")
        return
    if not lifecycle.rehearsal_done(rehearsal.id, fence=fence, outcome=outcome):
        logger.info("rehearsal %s: given up meanwhile; its outcome is not kept", rehearsal.id)


def _fail(rehearsal: Rehearsal, fence: int, error: str) -> None:
    if lifecycle.rehearsal_fail(rehearsal.id, fence=fence, error=error):
        run_log(rehearsal.run_id, f"rehearsal failed: {error}")


def _progress_writer(
    rehearsal_id: int, fence: int, fenced: threading.Event, report: Reporter | None
) -> Reporter:
    """Writes the rehearsal's progress through the one throttle (and tells `report`); raises
    Fenced once the rehearsal was given up (so the copy stops)."""
    throttle = Throttle()

    def on_progress(update: Report) -> None:
        if fenced.is_set():
            raise Fenced(f"rehearsal {rehearsal_id} was given up")
        if report is not None:
            report(update)
        if not throttle.passes(final=update.final):
            return
        progress = {
            "fraction": max(0.0, min(1.0, update.fraction)),
            "message": (update.message or "")[:300],
        }
        if not lifecycle.rehearsal_beat(rehearsal_id, fence=fence, **progress):
            raise Fenced(f"rehearsal {rehearsal_id} was given up")

    return on_progress


def _heartbeat_kept(
    rehearsal_id: int, fence: int, fenced: threading.Event
) -> AbstractContextManager[None]:
    """Keep the rehearsal's heartbeat fresh while the block runs."""
    return beats_kept(
        f"rehearsal {rehearsal_id}",
        lambda: lifecycle.rehearsal_beat(rehearsal_id, fence=fence),
        fenced,
    )


def rehearsals_sweep(*, worker: str = "") -> list[int]:
    """End failed the running rehearsals no live worker holds (stale heartbeat, or held by
    `worker`, which has just started), and send again the queued ones no worker took up."""
    stale_before = timezone.now() - timedelta(seconds=settings.MIGRATION_HEARTBEAT_STALE)
    if worker:  # a worker that has just started holds nothing: what it held is orphaned
        Rehearsal.objects.filter(status=RehearsalStatus.RUNNING, worker=worker).update(
            heartbeat_at=None
        )
    orphaned = Rehearsal.objects.filter(status__in=REHEARSAL_ACTIVE_STATUSES).filter(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_before)
    )
    ended = []
    for rehearsal in orphaned:
        if rehearsal.status == RehearsalStatus.QUEUED:
            _dispatch(rehearsal.id)
        elif lifecycle.rehearsal_give_up_stale(
            rehearsal.id, stale_before=stale_before, error=WORKER_STOPPED
        ):
            run_log(rehearsal.run_id, f"rehearsal failed: {WORKER_STOPPED}")
            ended.append(rehearsal.id)
    return ended
