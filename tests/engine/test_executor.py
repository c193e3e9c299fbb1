"""The executor's guarantees that need only the control database: one run at a time, fencing,
secrets kept encrypted and forgotten, stale runs picked up again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from migrations_engine import executor
from migrations_engine.context import Fenced, heartbeat
from migrations_engine.models import MigrationRun, RunSecret, RunStatus
from migrations_engine.secrets import SecretMissing, secret_get, secret_put, secrets_forget
from tests.engine import runs

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

no_dispatch = pytest.fixture(autouse=True)(runs.no_dispatch)
new_run = runs.new_run


def test_a_second_run_is_refused_while_one_is_in_progress(no_dispatch: list[int]) -> None:
    first, second = new_run(), new_run()
    executor.run_start(first)
    with pytest.raises(executor.RunRefused, match=f"Another migration \\(run {first.id}\\)"):
        executor.run_start(second)
    assert no_dispatch == [first.id]
    second.refresh_from_db()
    assert second.status == RunStatus.DRAFT


def test_the_next_run_may_start_once_the_first_ended(no_dispatch: list[int]) -> None:
    first, second = new_run(), new_run()
    executor.run_start(first)
    executor.run_abandon(_fail(first))
    executor.run_start(second)
    assert no_dispatch == [first.id, second.id]


def _fail(run: MigrationRun) -> MigrationRun:
    MigrationRun.objects.filter(id=run.id).update(status=RunStatus.FAILED, active=None)
    run.refresh_from_db()
    return run


def test_a_task_delivered_twice_is_turned_away_while_the_first_holds_the_run() -> None:
    run = new_run()
    executor.run_start(run)
    first = executor.run_claim(run.id, "worker-a")
    assert first is not None
    assert executor.run_claim(run.id, "worker-b") is None
    assert executor.run_claim(run.id, "worker-a") is None


def test_a_stale_run_is_taken_over_and_the_old_holder_is_fenced_out() -> None:
    run = new_run()
    executor.run_start(run)
    claim = executor.run_claim(run.id, "worker-a")
    assert claim is not None
    _, old_fence = claim
    MigrationRun.objects.filter(id=run.id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    taken = executor.run_claim(run.id, "worker-b")
    assert taken is not None
    assert taken[1] == old_fence + 1
    with pytest.raises(Fenced):
        heartbeat(run.id, old_fence)
    heartbeat(run.id, taken[1])


def test_the_sweeper_sends_again_runs_nobody_holds(no_dispatch: list[int]) -> None:
    run = new_run()
    executor.run_start(run)
    executor.run_claim(run.id, "worker-a")
    no_dispatch.clear()
    assert executor.runs_sweep() == []
    assert executor.runs_sweep(worker="worker-a") == [run.id]
    MigrationRun.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert executor.runs_sweep() == [run.id]


def test_the_admin_password_is_stored_encrypted_and_forgotten() -> None:
    run = new_run()
    secret_put(run, "admin_password", "s3cret-Passw0rd")
    assert secret_get(run, "admin_password") == "s3cret-Passw0rd"
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM migrations_engine_runsecret")
        (token,) = cursor.fetchone()
    assert "s3cret" not in token
    secrets_forget(run)
    assert not RunSecret.objects.exists()
    with pytest.raises(SecretMissing):
        secret_get(run, "admin_password")


def test_an_expired_secret_cannot_be_read() -> None:
    run = new_run()
    secret_put(run, "admin_password", "pw", lifetime=timedelta(seconds=-1))
    with pytest.raises(SecretMissing, match="no longer known"):
        secret_get(run, "admin_password")


def test_the_plan_is_stored_with_one_row_per_operation_that_runs() -> None:
    run = new_run(copy_traffic_logs=True)
    runs = [row["name"] for row in run.plan if row["runs"]]
    assert list(run.operations.values_list("name", flat=True)) == runs
    assert "copy_syslog" in runs
    assert "copy_data_and_replica" not in runs


def test_an_operation_that_stops_moving_is_flagged_stalled_with_its_likely_cause(
    settings: Any,
) -> None:
    run = new_run()
    state = run.operations.get(name="copy_data")
    state.status = "running"
    state.moved_at = timezone.now() - timedelta(seconds=settings.MIGRATION_STALL_SECONDS + 5)
    state.save()
    assert executor.operations_flag_stalled() == 1
    state.refresh_from_db()
    assert state.stalled
    assert "source's database does not answer" in state.message
    assert "no progress for a while" in MigrationRun.objects.get(id=run.id).log
