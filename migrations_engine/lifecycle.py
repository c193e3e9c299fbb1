"""The one owner of a run's state: its status, its active slot, `finished_at` and `closed_at`.

Every change is one conditional UPDATE from the statuses the run may come from, and, when a
worker makes it, checked against the fencing counter that worker holds. A change that finds the
run elsewhere (another worker took it, the administrator abandoned it) does nothing and says so,
so a worker that comes back late cannot undo what happened meanwhile. Giving a run up (abandon,
start-over) raises the counter, which fences out any worker still holding it.

Nothing else writes these fields; a draft's other fields are saved with `draft_save`.

A rehearsal (dry run) is a job of the same kind with its own row: its status, active slot,
fence, heartbeat, progress and outcome are written here too, the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from migrations_engine import notifications
from migrations_engine.models import (
    ACTIVE_STATUSES,
    REHEARSAL_ACTIVE_STATUSES,
    MigrationRun,
    Rehearsal,
    RehearsalStatus,
    RunStatus,
)

LIFECYCLE_FIELDS = frozenset({"status", "active", "finished_at", "closed_at", "fence"})
FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ABANDONED)


def run_transition(
    run_id: int,
    *,
    to: str | None,
    from_statuses: Iterable[str],
    fence: int | None = None,
    where: Q | None = None,
    raise_fence: bool = False,
    **fields: Any,
) -> bool:
    """Move the run to status `to` (None: keep it) if it is in one of `from_statuses` (and, when
    given, still at `fence` and matching `where`), writing `fields` too and raising the fence
    when asked; whether it moved."""
    return _transition(
        MigrationRun.objects.filter(id=run_id),
        to=to, from_statuses=from_statuses, fence=fence, where=where,
        raise_fence=raise_fence, fields=fields,
    )  # fmt: skip


def _transition(
    jobs: QuerySet[Any],
    *,
    to: str | None,
    from_statuses: Iterable[str],
    fence: int | None,
    where: Q | None,
    raise_fence: bool,
    fields: dict[str, Any],
) -> bool:
    """One conditional UPDATE of a job's row (a run's, a rehearsal's); whether it moved."""
    jobs = jobs.filter(status__in=list(from_statuses))
    if fence is not None:
        jobs = jobs.filter(fence=fence)
    if where is not None:
        jobs = jobs.filter(where)
    if to is not None:
        fields["status"] = to
    if raise_fence:
        fields["fence"] = F("fence") + 1
    return bool(jobs.update(**fields))


def _stale(before: datetime) -> Q:
    """Jobs whose holder has not beaten since `before` (or never did)."""
    return Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=before)


def run_queue(run_id: int) -> bool:
    """A draft is queued for the workers and takes this system's active slot (IntegrityError
    when another run holds it)."""
    now = timezone.now()
    return run_transition(
        run_id,
        to=RunStatus.QUEUED,
        from_statuses=[RunStatus.DRAFT],
        active=True,
        started_at=now,
        heartbeat_at=now,  # the sweeper waits this long before sending again
    )


def run_take(run_id: int, *, fence: int, worker: str) -> bool:
    """A worker takes a queued or running run over from the holder of `fence`, raising it."""
    return run_transition(
        run_id,
        to=RunStatus.RUNNING,
        from_statuses=ACTIVE_STATUSES,
        fence=fence,
        worker=worker,
        heartbeat_at=timezone.now(),
        raise_fence=True,
    )


def run_succeed(run_id: int, *, fence: int, report: dict[str, Any], finished_at: datetime) -> bool:
    """The worker holding `fence` completed the run: it leaves the active slot (and the
    administrators are told, once)."""
    moved = run_transition(
        run_id,
        to=RunStatus.SUCCEEDED,
        from_statuses=[RunStatus.RUNNING],
        fence=fence,
        report=report,
        active=None,
        current_operation="",
        finished_at=finished_at,
    )
    if moved:
        notifications.notify_completed(run_id)
    return moved


def run_fail(run_id: int, *, fence: int, error: str, fix: str) -> bool:
    """The worker holding `fence` stopped the run on an error: it leaves the active slot (and
    the administrators are told, once)."""
    moved = run_transition(
        run_id,
        to=RunStatus.FAILED,
        from_statuses=ACTIVE_STATUSES,
        fence=fence,
        error=error,
        fix=fix,
        active=None,
        finished_at=timezone.now(),
    )
    if moved:
        notifications.notify_failed(run_id, error=error, fix=fix)
    return moved


def run_requeue(run_id: int) -> bool:
    """A failed run goes back to the workers (IntegrityError when another run holds the slot)."""
    return run_transition(
        run_id,
        to=RunStatus.QUEUED,
        from_statuses=[RunStatus.FAILED],
        active=True,
        error="",
        fix="",
        finished_at=None,
        heartbeat_at=timezone.now(),
    )


def run_give_up_stale(run_id: int, *, stale_before: datetime) -> bool:
    """A run no live worker holds (heartbeat older than `stale_before`) counts as failed; the
    fence is raised, so a worker that comes back late is turned away."""
    return run_transition(
        run_id,
        to=RunStatus.FAILED,
        from_statuses=ACTIVE_STATUSES,
        where=_stale(stale_before),
        active=None,
        raise_fence=True,
    )


def run_abandon_mark(run_id: int, *, fence: int) -> bool:
    """A failed or unstarted run is given up, once: the fence is raised past `fence`."""
    return run_transition(
        run_id,
        to=RunStatus.ABANDONED,
        from_statuses=[RunStatus.FAILED, RunStatus.DRAFT],
        fence=fence,
        active=None,
        finished_at=timezone.now(),
        raise_fence=True,
    )


def run_close_mark(run_id: int) -> bool:
    """The administrator is done with a finished run: a new one may begin."""
    return run_transition(
        run_id, to=None, from_statuses=FINISHED_STATUSES, closed_at=timezone.now()
    )


def rehearsal_transition(
    rehearsal_id: int,
    *,
    to: str | None,
    from_statuses: Iterable[str],
    fence: int | None = None,
    where: Q | None = None,
    raise_fence: bool = False,
    **fields: Any,
) -> bool:
    """Move the rehearsal to status `to` (None: keep it) as `run_transition` moves a run."""
    return _transition(
        Rehearsal.objects.filter(id=rehearsal_id),
        to=to, from_statuses=from_statuses, fence=fence, where=where,
        raise_fence=raise_fence, fields=fields,
    )  # fmt: skip


def rehearsal_queue(run_id: int) -> Rehearsal:
    """A new rehearsal of the run, queued; it takes this system's rehearsal slot (IntegrityError
    when another rehearsal holds it)."""
    now = timezone.now()
    return Rehearsal.objects.create(
        run_id=run_id, active=True, heartbeat_at=now, message="waiting for a worker"
    )


def rehearsal_take(rehearsal_id: int, *, fence: int, worker: str) -> bool:
    """A worker takes a queued rehearsal from `fence`, raising it (a second delivery finds it
    running and does nothing)."""
    now = timezone.now()
    return rehearsal_transition(
        rehearsal_id,
        to=RehearsalStatus.RUNNING,
        from_statuses=[RehearsalStatus.QUEUED],
        fence=fence,
        worker=worker,
        heartbeat_at=now,
        started_at=now,
        message="starting",
        raise_fence=True,
    )


def rehearsal_beat(rehearsal_id: int, *, fence: int, **progress: Any) -> bool:
    """The worker holding `fence` still runs the rehearsal (with its `progress`: fraction,
    message); False once it no longer holds it."""
    return rehearsal_transition(
        rehearsal_id,
        to=None,
        from_statuses=[RehearsalStatus.RUNNING],
        fence=fence,
        heartbeat_at=timezone.now(),
        **progress,
    )


def rehearsal_done(rehearsal_id: int, *, fence: int, outcome: dict[str, Any]) -> bool:
    """The worker holding `fence` completed the rehearsal: its outcome is kept."""
    return rehearsal_transition(
        rehearsal_id,
        to=RehearsalStatus.DONE,
        from_statuses=[RehearsalStatus.RUNNING],
        fence=fence,
        outcome=outcome,
        fraction=1.0,
        message="done",
        active=None,
        finished_at=timezone.now(),
    )


def rehearsal_fail(rehearsal_id: int, *, fence: int, error: str) -> bool:
    """The worker holding `fence` stopped the rehearsal on an error."""
    return rehearsal_transition(
        rehearsal_id,
        to=RehearsalStatus.FAILED,
        from_statuses=REHEARSAL_ACTIVE_STATUSES,
        fence=fence,
        error=error,
        active=None,
        finished_at=timezone.now(),
    )


def rehearsal_give_up_stale(rehearsal_id: int, *, stale_before: datetime, error: str) -> bool:
    """A running rehearsal no live worker holds (heartbeat older than `stale_before`) ends
    failed with `error`; the fence is raised, so a worker that comes back late is turned away."""
    return rehearsal_transition(
        rehearsal_id,
        to=RehearsalStatus.FAILED,
        from_statuses=[RehearsalStatus.RUNNING],
        where=_stale(stale_before),
        error=error,
        active=None,
        finished_at=timezone.now(),
        raise_fence=True,
    )


def draft_save(run: MigrationRun) -> None:
    """Save what a draft's preparation changed, never its lifecycle fields (a new draft is
    created whole)."""
    if run.pk is None:
        run.save()
        return
    fields = [
        field.name
        for field in MigrationRun._meta.concrete_fields
        if not field.primary_key and field.name not in LIFECYCLE_FIELDS
    ]
    run.save(update_fields=fields)
