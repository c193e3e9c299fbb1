"""Runs a migration's operations in order, resumably, one run at a time on this system.

A worker claims a run by raising its fencing counter; every progress write and every memory
write checks the counter, so a task delivered twice (or a worker that comes back after it was
given up for dead) stops before it does anything, and an irreversible step never runs twice.
A run whose heartbeat went stale (killed worker, Redis restart, reboot) is picked up again by
`runs_sweep`, called when a worker starts and periodically.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from appliance.backup import backup_get, backup_restore
from migrations_engine import lifecycle, notifications
from migrations_engine.context import Fenced, Progress, RunContext, heartbeat_kept, run_log
from migrations_engine.handoffs import RunHandoffs
from migrations_engine.models import (
    ACTIVE_STATUSES,
    CutoverMode,
    MigrationRun,
    OperationState,
    OperationStatus,
    RunStatus,
)
from migrations_engine.online_copy import online_refusal
from migrations_engine.operations import OPERATION_BY_NAME
from migrations_engine.operations.base import OperationFailed
from migrations_engine.peer_client import PeerError
from migrations_engine.plan import PlanFacts, plan_build
from migrations_engine.secrets import secrets_forget

logger = logging.getLogger(__name__)
PLAN_VERSION = 1


class RunRefused(Exception):
    """The run cannot start or change as asked; the message says why."""


def run_facts(run: MigrationRun) -> PlanFacts:
    """The facts that decide a run's plan."""
    return PlanFacts(
        source_is_ha=run.source_is_ha,
        swap_configuration=run.swap_configuration,
        migrate_licence=run.migrate_licence,
        copy_traffic_logs=run.copy_traffic_logs,
        tables=tuple(run.tables) if run.tables is not None else None,
        accounts=tuple(run.accounts) if run.accounts is not None else None,
        binlog_refusal=online_refusal(run.source.data_binlog),
        cutover_waits=run.cutover_mode != CutoverMode.CAUGHT_UP,
    )


@transaction.atomic
def run_plan(run: MigrationRun) -> list[dict[str, Any]]:
    """Work out the run's plan from its source and options, and make its operation rows."""
    if run.status != RunStatus.DRAFT:
        raise RunRefused("The plan of a run that has started cannot change.")
    rows = plan_build(run_facts(run))
    run.plan = [row.as_dict() for row in rows]
    run.plan_version = PLAN_VERSION
    run.save(update_fields=["plan", "plan_version"])
    run.operations.all().delete()
    running = [row for row in rows if row.runs]
    OperationState.objects.bulk_create(
        OperationState(run=run, position=index, name=row.name, label=row.label)
        for index, row in enumerate(running, start=1)
    )
    return run.plan


def run_start(run: MigrationRun, *, dispatch: bool = True) -> None:
    """Queue a planned run for the workers (`dispatch=False`: the caller runs it itself);
    refused while another migration is queued or running on this system."""
    if not run.plan:
        run_plan(run)
    try:
        with transaction.atomic():
            updated = lifecycle.run_queue(run.id)
    except IntegrityError:
        other = MigrationRun.objects.filter(active=True).first()
        raise RunRefused(
            f"Another migration (run {other.id if other else '?'}) is already in progress on "
            "this system. Wait for it to end, or abandon it, before starting a new one."
        ) from None
    if not updated:
        raise RunRefused("This run has already been started.")
    run.refresh_from_db()
    run_log(run.id, "run queued")
    if dispatch:
        _dispatch(run.id)


def _dispatch(run_id: int) -> None:
    from migrations_engine.tasks import execute_run

    transaction.on_commit(lambda: execute_run.delay(run_id))


def run_claim(run_id: int, worker: str) -> tuple[MigrationRun, int] | None:
    """Take the run for this worker unless another live worker holds it; returns the fence."""
    stale_before = timezone.now() - timedelta(seconds=settings.MIGRATION_HEARTBEAT_STALE)
    with transaction.atomic():
        run = MigrationRun.objects.select_for_update().filter(id=run_id).first()
        if run is None or run.status not in ACTIVE_STATUSES:
            return None
        held = (
            run.status == RunStatus.RUNNING and run.heartbeat_at and run.heartbeat_at > stale_before
        )
        if held or not lifecycle.run_take(run.id, fence=run.fence, worker=worker):
            return None
    run.refresh_from_db()
    run_log(run.id, f"run taken by worker {worker} (fence {run.fence})")
    return run, run.fence


def run_execute(run_id: int, worker: str) -> None:
    """Run (or go on with) every operation of the run that has not succeeded yet."""
    claim = run_claim(run_id, worker)
    if claim is None:
        return
    run, fence = claim
    try:
        for state in run.operations.order_by("position"):
            if state.status == OperationStatus.SUCCEEDED:
                continue
            _operation_execute(run, state, fence)
        _run_succeed(run, fence)
    except Fenced:
        logger.info("run %s: another worker holds it now; this one stops", run_id)
    except OperationFailed as failure:
        _run_fail(run, fence, str(failure), failure.fix)
    except PeerError as failure:
        _run_fail(run, fence, str(failure), failure.fix)
    except Exception as failure:
        logger.exception("run %s failed", run_id)
        _run_fail(run, fence, f"Unexpected error: {failure}", "See the run's log, then Resume.")


def _operation_execute(run: MigrationRun, state: OperationState, fence: int) -> None:
    operation = OPERATION_BY_NAME[state.name]
    MigrationRun.objects.filter(id=run.id, fence=fence).update(current_operation=state.name)
    OperationState.objects.filter(id=state.id).update(
        status=OperationStatus.RUNNING,
        started_at=state.started_at or timezone.now(),
        moved_at=timezone.now(),
        attempts=state.attempts + 1,
        error="",
        fix="",
    )
    state.refresh_from_db()
    run_log(run.id, f"{state.label}: started" + (" again" if state.attempts > 1 else ""))
    context = RunContext(run, state, fence)
    with heartbeat_kept(run.id, fence, context.fenced):
        result = operation.run(context, Progress(state, fence, fenced=context.fenced))
    OperationState.objects.filter(id=state.id).update(
        status=OperationStatus.SUCCEEDED,
        fraction=1.0,
        eta_seconds=0,
        result=result,
        finished_at=timezone.now(),
        message="",
    )
    run_log(run.id, f"{state.label}: done")


def _run_succeed(run: MigrationRun, fence: int) -> None:
    from migrations_engine.report import report_build

    run.refresh_from_db()
    # The report describes the run as it is once completed (status and end time).
    run.status, run.finished_at = RunStatus.SUCCEEDED, timezone.now()
    report = report_build(run)
    if not lifecycle.run_succeed(run.id, fence=fence, report=report, finished_at=run.finished_at):
        raise Fenced(f"run {run.id} was taken over or given up before it could complete")
    run.refresh_from_db()
    secrets_forget(run)
    run_log(run.id, "Migration was successfully completed")


def _run_fail(run: MigrationRun, fence: int, error: str, fix: str) -> None:
    """Stop the run: record why, undo what must not stay, revoke what the source handed out."""
    if not MigrationRun.objects.filter(id=run.id, fence=fence).exists():
        logger.info("run %s: given up or taken over meanwhile; its failure is not recorded", run.id)
        return
    failed = run.operations.filter(status=OperationStatus.RUNNING).first()
    if failed is not None:
        OperationState.objects.filter(id=failed.id).update(
            status=OperationStatus.FAILED, error=error, fix=fix, eta_seconds=None
        )
        run_log(run.id, f"{failed.label}: FAILED: {error}")
    with heartbeat_kept(run.id, fence, threading.Event()):  # still its run while it undoes
        _undo(run, fence, include_failed=True)
        _revoke_quietly(run)
    if not lifecycle.run_fail(run.id, fence=fence, error=error, fix=fix):
        logger.info("run %s: given up or taken over while it was undone", run.id)
        return
    run_log(run.id, f"run failed: {error} | what to do: {fix}")


def _undo(run: MigrationRun, fence: int, *, include_failed: bool) -> None:
    """Undo, newest first, the reversible operations that did (part of) their work and were
    not undone since (a failed run is undone when it fails; abandoning it later undoes only
    what could not be undone then)."""
    statuses = [OperationStatus.SUCCEEDED]
    if include_failed:
        statuses.append(OperationStatus.FAILED)
    states = run.operations.filter(status__in=statuses, undone_at=None).order_by("-position")
    for state in states:
        operation = OPERATION_BY_NAME[state.name]
        if not operation.reversible:
            continue  # its work stays (the data copy, the licence): a resume does not redo it
        context = RunContext(run, state, fence)
        try:
            operation.undo(context)
        except Exception as error:
            run_log(run.id, f"{state.label}: could not be undone: {error}")
            continue
        undone: dict[str, Any] = {"undone_at": timezone.now()}
        if state.status == OperationStatus.SUCCEEDED:
            undone |= {"status": OperationStatus.UNDONE, "fraction": 0.0}
        OperationState.objects.filter(id=state.id).update(**undone)


def _revoke_quietly(run: MigrationRun) -> None:
    """Have the source drop what it issued to the run, unless it did since the run last ran;
    it expires them anyway if unreachable."""
    state = run.operations.order_by("position").first()
    revoked = MigrationRun.objects.filter(id=run.id, credentials_revoked_at__isnull=False)
    if state is None or revoked.exists():
        return
    try:
        count = RunContext(run, state, run.fence).peer_call("revoke", run.peer_ref)
        run_log(run.id, f"revoked {count} credential(s) on the source")
        MigrationRun.objects.filter(id=run.id).update(credentials_revoked_at=timezone.now())
    except Exception as error:
        run_log(run.id, f"could not revoke the run's credentials now ({error}); they expire")
    run.secrets.filter(name="database_account").delete()


def run_resume(run: MigrationRun, *, dispatch: bool = True) -> None:
    """Go on with a failed run after its cause was fixed (on the workers, unless not `dispatch`)."""
    if run.status != RunStatus.FAILED:
        raise RunRefused("Only a failed run can be resumed.")
    try:
        with transaction.atomic():
            if not lifecycle.run_requeue(run.id):
                raise RunRefused("Only a failed run can be resumed.")
            run.operations.exclude(status=OperationStatus.SUCCEEDED).update(
                status=OperationStatus.PENDING, stalled=False, undone_at=None
            )
            MigrationRun.objects.filter(id=run.id).update(credentials_revoked_at=None)
    except IntegrityError:
        raise RunRefused("Another migration is in progress on this system.") from None
    run_log(run.id, "run resumed")
    if dispatch:
        _dispatch(run.id)


def run_abandon(run: MigrationRun) -> None:
    """Give a failed run up, once: raise its fence (a worker still holding it is turned away),
    undo what can be undone and forget its secrets. `run` is refreshed."""
    if run.status not in (RunStatus.FAILED, RunStatus.DRAFT):
        raise RunRefused("Only a failed or unstarted run can be abandoned.")
    was = run.status
    if not lifecycle.run_abandon_mark(run.id, fence=run.fence):
        run.refresh_from_db()
        raise RunRefused("This run changed meanwhile (resumed or given up already); look again.")
    run.refresh_from_db()
    if was == RunStatus.FAILED:
        _undo(run, run.fence, include_failed=True)
        _revoke_quietly(run)
    secrets_forget(run)
    run_log(run.id, "run abandoned")


def runs_sweep(*, worker: str = "") -> list[int]:
    """Send again the runs that no live worker holds (stale heartbeat, or held by `worker`)."""
    stale_before = timezone.now() - timedelta(seconds=settings.MIGRATION_HEARTBEAT_STALE)
    if worker:  # a worker that has just started holds nothing: what it held is orphaned
        MigrationRun.objects.filter(status__in=ACTIVE_STATUSES, worker=worker).update(
            heartbeat_at=None
        )
    orphaned = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_before)
    run_ids = list(
        MigrationRun.objects.filter(status__in=ACTIVE_STATUSES)
        .filter(orphaned)
        .values_list("id", flat=True)
    )
    for run_id in run_ids:
        run_log(run_id, "picked up again: no live worker held it")
        _dispatch(run_id)
    return run_ids


def operations_flag_stalled() -> int:
    """Mark running operations whose progress has not moved for too long as stalled."""
    still_since = timezone.now() - timedelta(seconds=settings.MIGRATION_STALL_SECONDS)
    stalled = OperationState.objects.filter(
        status=OperationStatus.RUNNING, stalled=False, moved_at__lt=still_since
    )
    count = 0
    for state in stalled:
        hint = OPERATION_BY_NAME[state.name].stall_hint
        flagged = OperationState.objects.filter(id=state.id, stalled=False).update(
            stalled=True, message=hint[:300]
        )
        if not flagged:
            continue
        run_log(state.run_id, f"{state.label}: no progress for a while. {hint}")
        notifications.notify_stalled(state.run_id, operation=state.label, hint=hint)
        count += 1
    return count


def run_start_over(run: MigrationRun) -> str:
    """Start over from scratch after a failed or half-done run: give the run up (undoing what
    can be undone, on the source too), bring this system back to the backup taken before the
    run, and close it so that a new run can begin. Returns the backup restored ('' if none)."""
    stale_before = timezone.now() - timedelta(seconds=settings.MIGRATION_HEARTBEAT_STALE)
    if run.status in ACTIVE_STATUSES:
        if not lifecycle.run_give_up_stale(run.id, stale_before=stale_before):
            raise RunRefused("This migration is running; wait until it ends or fails.")
        run.refresh_from_db()
    if run.status == RunStatus.SUCCEEDED:
        raise RunRefused("This migration completed; there is nothing to start over.")
    if run.status in (RunStatus.FAILED, RunStatus.DRAFT):
        run_abandon(run)
    states = {state.name: state for state in run.operations.all()}
    backup_id = RunHandoffs.from_memories(
        {name: state.memory for name, state in states.items()}
    ).backup
    if backup_id:
        licence = states.get("migrate_licence")
        licence_moved = licence is not None and licence.status != OperationStatus.PENDING
        backup_restore(backup_get(backup_id), keep_licence=licence_moved)
        run_log(run.id, f"this system is back to backup {backup_id}")
    lifecycle.run_close_mark(run.id)
    run_log(run.id, "started over: a new migration can begin")
    return backup_id
