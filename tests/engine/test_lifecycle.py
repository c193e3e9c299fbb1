"""A run's lifecycle: each change of its state is checked against the fence, giving a run up
fences its worker out, a long operation keeps its heartbeat, and a reboot is never asked twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from migrations_engine import executor
from migrations_engine.context import Fenced, Progress, RunContext, heartbeat
from migrations_engine.models import MigrationRun, OperationStatus, RunStatus
from migrations_engine.operations import OPERATION_BY_NAME, remote_ops
from migrations_engine.operations.remote_ops import RebootSystems
from migrations_engine.remote.errors import SourceDidNotReturn
from tests.engine import runs
from wizard.views import _abandon_and_close

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

no_dispatch = pytest.fixture(autouse=True)(runs.no_dispatch)
new_run = runs.new_run


def claimed_run(**fields: Any) -> tuple[MigrationRun, int]:
    run = new_run(**fields)
    executor.run_start(run)
    claim = executor.run_claim(run.id, "worker-a")
    assert claim is not None
    return claim


def make_stale(run: MigrationRun) -> None:
    MigrationRun.objects.filter(id=run.id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )


def test_a_late_worker_cannot_complete_a_run_abandoned_meanwhile() -> None:
    run, fence = claimed_run()
    executor._run_fail(run, fence, "the source went away", "Resume.")
    run.refresh_from_db()
    executor.run_abandon(run)
    with suppress(Fenced):
        executor._run_succeed(run, fence)
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED
    assert run.active is None


def test_abandon_fences_out_the_worker_that_held_the_run() -> None:
    run, fence = claimed_run()
    executor._run_fail(run, fence, "boom", "Resume.")
    run.refresh_from_db()
    executor.run_abandon(run)
    with pytest.raises(Fenced):
        heartbeat(run.id, fence)


def test_start_over_of_a_stale_run_fences_out_its_old_worker() -> None:
    run, fence = claimed_run()
    make_stale(run)
    run.refresh_from_db()
    executor.run_start_over(run)
    with pytest.raises(Fenced):
        heartbeat(run.id, fence)
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED
    assert run.active is None
    assert run.closed_at is not None


def test_start_over_refuses_a_run_whose_worker_is_alive() -> None:
    run, fence = claimed_run()
    with pytest.raises(executor.RunRefused, match="running"):
        executor.run_start_over(run)
    heartbeat(run.id, fence)


def undo_and_revoke_recorded(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The certificate update's undo and the source's peer calls, recorded instead of run."""
    undone: list[str] = []
    revoked: list[str] = []
    operation = OPERATION_BY_NAME["update_certificates"]
    monkeypatch.setattr(type(operation), "undo", lambda self, context: undone.append(self.name))

    def peer_call(self: RunContext, method: str, *args: Any, **kwargs: Any) -> int:
        revoked.append(method)
        return 1

    monkeypatch.setattr(RunContext, "peer_call", peer_call)
    return undone, revoked


def test_abandon_and_close_undoes_and_revokes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    run, fence = claimed_run()
    executor._run_fail(run, fence, "boom", "Resume.")
    run.operations.filter(name="update_certificates").update(status=OperationStatus.SUCCEEDED)
    undone, revoked = undo_and_revoke_recorded(monkeypatch)
    run.refresh_from_db()
    _abandon_and_close(run)
    assert undone == ["update_certificates"]
    assert revoked == ["revoke"]
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED
    assert run.closed_at is not None


def test_a_failed_run_then_abandoned_is_undone_and_revoked_once_in_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, fence = claimed_run()
    run.operations.filter(name="update_certificates").update(status=OperationStatus.RUNNING)
    undone, revoked = undo_and_revoke_recorded(monkeypatch)
    executor._run_fail(run, fence, "boom", "Resume.")
    run.refresh_from_db()
    executor.run_abandon(run)

    assert undone == ["update_certificates"]
    assert revoked == ["revoke"]
    state = run.operations.get(name="update_certificates")
    assert state.status == OperationStatus.FAILED  # the page still says which one failed
    assert state.undone_at is not None


def test_what_could_not_be_undone_or_revoked_on_failure_is_tried_again_on_abandon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, fence = claimed_run()
    run.operations.filter(name="update_certificates").update(status=OperationStatus.RUNNING)
    calls: list[str] = []
    source_answers = False
    operation = OPERATION_BY_NAME["update_certificates"]

    def undo(self: Any, context: RunContext) -> None:
        calls.append("undo")
        if not source_answers:
            raise OSError("the source does not answer")

    def peer_call(self: RunContext, method: str, *args: Any, **kwargs: Any) -> int:
        calls.append(method)
        if not source_answers:
            raise OSError("the source does not answer")
        return 1

    monkeypatch.setattr(type(operation), "undo", undo)
    monkeypatch.setattr(RunContext, "peer_call", peer_call)
    executor._run_fail(run, fence, "boom", "Resume.")
    source_answers = True
    run.refresh_from_db()
    executor.run_abandon(run)

    assert calls == ["undo", "revoke", "undo", "revoke"]
    run.refresh_from_db()
    assert run.credentials_revoked_at is not None
    assert "could not revoke the run's credentials now" in run.log


def test_a_blocking_operation_keeps_its_heartbeat_so_the_sweeper_leaves_it(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MIGRATION_HEARTBEAT_STALE = 5
    run, fence = claimed_run()
    state = run.operations.order_by("position").first()
    assert state is not None
    swept: list[list[int]] = []

    def blocking_run(self: Any, context: RunContext, progress: Progress) -> dict[str, Any]:
        time.sleep(7)
        swept.append(executor.runs_sweep())
        return {}

    monkeypatch.setattr(type(OPERATION_BY_NAME[state.name]), "run", blocking_run)
    executor._operation_execute(run, state, fence)
    assert swept == [[]]
    heartbeat(run.id, fence)


def test_the_heartbeat_timer_notices_a_take_over_and_stops_the_operation(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MIGRATION_HEARTBEAT_STALE = 1
    run, fence = claimed_run()
    state = run.operations.order_by("position").first()
    assert state is not None
    seen: list[bool] = []

    def taken_over_run(self: Any, context: RunContext, progress: Progress) -> dict[str, Any]:
        progress.update(0.1, force=True)
        MigrationRun.objects.filter(id=run.id).update(fence=fence + 1)
        time.sleep(1)
        seen.append(context.fenced.is_set())
        progress.update(0.2)  # within the throttle: only the timer's finding stops it
        return {}

    monkeypatch.setattr(type(OPERATION_BY_NAME[state.name]), "run", taken_over_run)
    with pytest.raises(Fenced):
        executor._operation_execute(run, state, fence)
    assert seen == [True]


@pytest.fixture
def reboot_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The reboot commands sent to the source; this system's reboot and waits do nothing."""
    sent: list[str] = []

    @contextmanager
    def session(peer: Any, ref: str) -> Iterator[Any]:
        yield SimpleNamespace(client=None, connect=None)

    def reboot_and_wait(client: Any, command: str, connect: Any, **kwargs: Any) -> Any:
        sent.append(command)
        return SimpleNamespace(seconds=1.0, client=SimpleNamespace(close=lambda: None))

    monkeypatch.setattr(remote_ops, "ssh_session", session)
    monkeypatch.setattr(remote_ops, "reboot_and_wait", reboot_and_wait)
    monkeypatch.setattr(RunContext, "peer", lambda self: None)
    monkeypatch.setattr(RebootSystems, "_source_answers", staticmethod(lambda context: True))
    monkeypatch.setattr(remote_ops, "run_local_command", lambda command, context: "")
    monkeypatch.setattr(remote_ops, "wait_until_web_down", lambda context: True)
    monkeypatch.setattr(remote_ops, "wait_until_web_answers", lambda context, progress: 0.0)
    return sent


def reboot_context(memory: dict[str, Any]) -> tuple[RunContext, Progress]:
    run, fence = claimed_run(swap_configuration=True)
    state = run.operations.get(name="reboot_systems")
    state.memory = memory
    state.save()
    return RunContext(run, state, fence), Progress(state, fence)


def test_a_resumed_reboot_that_was_asked_for_waits_instead_of_rebooting_again(
    reboot_commands: list[str],
) -> None:
    context, progress = reboot_context({"source_reboot_started_at": timezone.now().isoformat()})
    RebootSystems().run(context, progress)
    assert reboot_commands == []
    context.state.refresh_from_db()
    assert context.state.memory["source_rebooted"] is True


def test_the_reboot_is_recorded_as_started_before_the_command_goes(
    reboot_commands: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, progress = reboot_context({})
    recorded: list[Any] = []

    def reboot_and_wait(client: Any, command: str, connect: Any, **kwargs: Any) -> Any:
        state = context.state.__class__.objects.get(id=context.state.id)
        recorded.append(state.memory.get("source_reboot_started_at"))
        raise SourceDidNotReturn("not back")

    monkeypatch.setattr(remote_ops, "reboot_and_wait", reboot_and_wait)
    with pytest.raises(Exception, match="not back"):
        RebootSystems().run(context, progress)
    assert recorded and recorded[0]
    context.state.refresh_from_db()
    assert context.state.memory["source_reboot_started_at"]
    assert "source_rebooted" not in context.state.memory
