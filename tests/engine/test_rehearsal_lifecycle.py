"""A rehearsal's lifecycle: it is claimed like a run, an error of any kind ends it failed with the
reason, the sweeper ends one whose worker stopped so that a new one can start, and a worker that
comes back late cannot overwrite what happened meanwhile. Only the data copy is replaced."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from appliance.progress import Report
from migrations_engine import rehearsal, tasks
from migrations_engine.context import Fenced
from migrations_engine.models import MigrationRun, Rehearsal, RehearsalStatus
from migrations_engine.rehearsal import (
    WORKER_STOPPED,
    RehearsalFailed,
    rehearsal_claim,
    rehearsal_execute,
    rehearsal_start,
)
from migrations_engine.secrets import secret_put
from tests.engine import runs

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

OUTCOME = {"rows": 3, "tables": {}, "estimate": {"total_seconds": 1.0}}


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rehearsals sent to the workers, recorded instead of sent."""
    sent: list[int] = []
    monkeypatch.setattr(rehearsal, "_dispatch", sent.append)
    runs.no_dispatch(monkeypatch)
    return sent


def prepared() -> MigrationRun:
    return runs.new_run(options_chosen=True)


def copy_replaced(monkeypatch: pytest.MonkeyPatch, copy: Any) -> None:
    """The rehearsal's data copy (and what it reports) is `copy(run, report)`."""
    monkeypatch.setattr(rehearsal, "rehearse", copy)


def make_stale(rehearsal_id: int) -> None:
    """As a SIGKILLed worker leaves it: running, its heartbeat no longer beating."""
    Rehearsal.objects.filter(id=rehearsal_id).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )


def test_an_unexpected_error_ends_the_rehearsal_failed_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def copy(run: MigrationRun, report: Any) -> dict[str, Any]:
        report(Report(0.5, message="half way"))
        raise RuntimeError("the scratch disk is full")

    copy_replaced(monkeypatch, copy)
    run = prepared()
    started = rehearsal_start(run)
    rehearsal_execute(started.id, worker="worker-a")
    started.refresh_from_db()
    assert started.status == RehearsalStatus.FAILED
    assert "the scratch disk is full" in started.error
    assert started.active is None and started.finished_at is not None
    rehearsal_start(run)  # a new one may start


def test_a_rehearsal_completes_with_its_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    copy_replaced(monkeypatch, lambda run, report: OUTCOME)
    run = prepared()
    started = rehearsal_start(run)
    rehearsal_execute(started.id, worker="worker-a")
    rehearsal_execute(started.id, worker="worker-b")  # delivered twice: nothing happens
    started.refresh_from_db()
    assert (started.status, started.outcome, started.worker) == ("done", OUTCOME, "worker-a")
    assert started.fraction == 1.0 and started.active is None


def test_a_killed_workers_rehearsal_is_ended_by_the_sweeper_and_a_new_one_can_start() -> None:
    run = prepared()
    started = rehearsal_start(run)
    with pytest.raises(RehearsalFailed, match="already running"):
        rehearsal_start(run)
    assert rehearsal_claim(started.id, "worker-a") is not None
    tasks.sweep_runs()  # the heartbeat is fresh: the worker is alive
    started.refresh_from_db()
    assert started.status == RehearsalStatus.RUNNING

    make_stale(started.id)  # the worker was SIGKILLed mid-copy
    tasks.sweep_runs()
    started.refresh_from_db()
    assert started.status == RehearsalStatus.FAILED
    assert started.error == WORKER_STOPPED
    assert started.active is None
    again = rehearsal_start(run)
    assert again.status == RehearsalStatus.QUEUED and again.id != started.id


def test_a_restarted_worker_ends_the_rehearsal_it_held() -> None:
    run = prepared()
    started = rehearsal_start(run)
    assert rehearsal_claim(started.id, "worker-a") is not None
    tasks.resume_after_start(sender=type("Sender", (), {"hostname": "worker-a"})())
    started.refresh_from_db()
    assert (started.status, started.error) == (RehearsalStatus.FAILED, WORKER_STOPPED)


def test_a_queued_rehearsal_no_worker_took_is_sent_again(sent: list[int]) -> None:
    started = rehearsal_start(prepared())
    make_stale(started.id)
    tasks.sweep_runs()
    started.refresh_from_db()
    assert started.status == RehearsalStatus.QUEUED
    assert sent == [started.id, started.id]  # when queued, then again by the sweeper


def test_a_late_worker_cannot_overwrite_a_rehearsal_ended_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = prepared()
    started = rehearsal_start(run)
    newer: list[Rehearsal] = []

    def copy(run: MigrationRun, report: Any) -> dict[str, Any]:
        make_stale(started.id)  # the worker hangs; the sweeper gives it up, a new one starts
        tasks.sweep_runs()
        newer.append(rehearsal_start(run))
        return OUTCOME  # the worker comes back late with its outcome

    copy_replaced(monkeypatch, copy)
    rehearsal_execute(started.id, worker="worker-a")
    started.refresh_from_db()
    assert (started.status, started.error, started.outcome) == ("failed", WORKER_STOPPED, {})
    newer[0].refresh_from_db()
    assert (newer[0].status, newer[0].outcome) == (RehearsalStatus.QUEUED, {})


def test_a_late_worker_is_fenced_out_of_progress_and_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def copy(run: MigrationRun, report: Any) -> dict[str, Any]:
        make_stale(current.id)
        tasks.sweep_runs()
        report(Report(0.9, message="late progress"))  # stops the late worker here
        raise AssertionError("the copy went on after the rehearsal was given up")

    copy_replaced(monkeypatch, copy)
    current = rehearsal_start(prepared())
    rehearsal_execute(current.id, worker="worker-a")
    current.refresh_from_db()
    assert (current.status, current.error) == (RehearsalStatus.FAILED, WORKER_STOPPED)
    assert current.message != "late progress"


def test_the_page_stops_polling_a_given_up_rehearsal_and_shows_why(staff_client: Client) -> None:
    run = prepared()
    started = rehearsal_start(run)
    assert rehearsal_claim(started.id, "worker-a") is not None
    url = f"/wizard/runs/{run.id}/rehearsal/"
    assert staff_client.get(url).status_code == 200  # running: polled again
    make_stale(started.id)
    tasks.sweep_runs()
    response = staff_client.get(url)
    assert response.status_code == 286
    assert "The rehearsal failed" in response.content.decode()
    assert "killed or restarted" in response.content.decode()


class SourcePeer:
    """The source's peer API as the rehearsal uses it, answering at once."""

    def __init__(self, *args: Any) -> None:
        self.revoked: list[str] = []

    def login(self, password: str) -> None:
        pass

    def settings(self) -> dict[str, Any]:
        return {"settings": {}}

    def database_account(self, ref: str) -> dict[str, Any]:
        return {}

    def revoke(self, ref: str) -> int:
        return 1

    def logout(self) -> None:
        pass


@pytest.mark.parametrize("given_up", [False, True])
def test_a_rehearsal_given_up_meanwhile_leaves_the_scratch_database_to_the_newer_one(
    monkeypatch: pytest.MonkeyPatch, given_up: bool
) -> None:
    dropped: list[str] = []
    monkeypatch.setattr(rehearsal, "PeerClient", SourcePeer)
    monkeypatch.setattr(rehearsal, "source_database_url", lambda run, account: None)
    monkeypatch.setattr(rehearsal, "_copy", lambda *args: SimpleNamespace(rows=3))
    monkeypatch.setattr(rehearsal, "_verify_seconds", lambda *args: 0.1)
    monkeypatch.setattr(rehearsal, "_outcome", lambda *args: OUTCOME)
    monkeypatch.setattr(rehearsal, "copy_forget", lambda scratch: dropped.append(scratch.database))

    def report(update: Report) -> None:
        if given_up and update.final:
            raise Fenced("rehearsal 1 was given up")

    run = prepared()
    secret_put(run, "admin_password", "x")
    if given_up:
        with pytest.raises(Fenced):
            rehearsal.rehearse(run, report)
        assert dropped == []
    else:
        assert rehearsal.rehearse(run, report) == OUTCOME
        assert dropped == [rehearsal.scratch_database().database]
