"""Celery tasks: thin shells that take a run's id and call the executor.

Workers run with the threads pool: the data copy starts processes of its own, which the
prefork pool's daemonic children may not.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from migrations_engine import executor, rehearsal


@shared_task(acks_late=True, reject_on_worker_lost=True)
def execute_run(run_id: int) -> None:
    """Run or go on with migration run `run_id` (its secrets stay in the database)."""
    executor.run_execute(run_id, worker=execute_run.request.hostname or "worker")


@shared_task
def execute_rehearsal(rehearsal_id: int) -> None:
    """Run queued rehearsal (dry run) `rehearsal_id`."""
    rehearsal.rehearsal_execute(rehearsal_id, worker=execute_rehearsal.request.hostname or "worker")


@shared_task
def sweep_runs() -> None:
    """Pick up runs no live worker holds, end the rehearsals no live worker holds, and flag
    operations that stopped moving."""
    executor.runs_sweep()
    rehearsal.rehearsals_sweep()
    executor.operations_flag_stalled()


@worker_ready.connect
def resume_after_start(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts picks up the runs it (or a dead worker) held."""
    hostname = getattr(sender, "hostname", "") or ""
    executor.runs_sweep(worker=hostname)
    rehearsal.rehearsals_sweep(worker=hostname)
