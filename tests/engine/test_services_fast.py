"""The business functions the wizard and the command line call, without a source: the cutover
and traffic-limit choices, the options a source allows, Cut over now, Close, Resume and Start
over, and the guards of the Source step. Nothing here reaches the network."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from appliance.backup import Backup
from appliance.models import Licence, LicenceState
from migrations_engine import executor, services
from migrations_engine.executor import RunRefused, run_resume, run_start_over
from migrations_engine.models import (
    CutoverMode,
    MigrationRun,
    OperationState,
    OperationStatus,
    RunStatus,
)
from migrations_engine.operations import OPERATION_BY_NAME
from migrations_engine.preflight import CERTIFICATE_CHECK
from migrations_engine.secrets import secret_put
from migrations_engine.services import (
    PreparationError,
    Timing,
    draft_fingerprint_confirm,
    draft_source_check,
    options_check,
    run_close,
    run_cutover_now,
    wizard_run,
)
from migrations_engine.source_info import SourceInfo
from tests.engine.runs import FULL_INFO

LATER = timezone.now() + timedelta(days=1)
HA_INFO: dict[str, Any] = FULL_INFO | {"server_role": "ha_master", "ha": {}}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything tries to reach a source or the workers."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a service test tried to reach the network")

    for name in ("preflight_reach", "preflight_login", "fetch_certificate"):
        monkeypatch.setattr(services, name, refuse)
    monkeypatch.setattr(executor, "_dispatch", refuse)
    monkeypatch.setattr(executor, "_revoke_quietly", lambda run: None)
    yield


def run_with(status: str, operations: list[tuple[str, str]], **fields: Any) -> MigrationRun:
    """A run in `status` with these operation rows (name, status), in order."""
    active = True if status in (RunStatus.QUEUED, RunStatus.RUNNING) else None
    run = MigrationRun.objects.create(
        source_address="192.0.2.10",
        source_info=FULL_INFO,
        status=status,
        active=active,
        **fields,
    )
    for position, (name, state) in enumerate(operations, start=1):
        OperationState.objects.create(
            run=run,
            position=position,
            name=name,
            label=OPERATION_BY_NAME[name].label,
            status=state,
        )
    return run


# When to cut over and how fast.


@pytest.mark.parametrize(
    ("timing", "refusal"),
    [
        (Timing("whenever"), "Unknown cutover choice 'whenever'."),
        (Timing(CutoverMode.AT), "Give the time of the cutover"),
        (Timing(CutoverMode.AT, datetime(2030, 1, 2, 3, 4)), "with its time zone"),
        (Timing(bandwidth_limit=0), "more than 0 MB/s"),
    ],
)
def test_choices_that_cannot_be_used_are_refused_with_the_reason(
    timing: Timing, refusal: str
) -> None:
    with pytest.raises(PreparationError, match=refusal):
        timing.check()


def test_usable_choices_pass() -> None:
    Timing().check()
    Timing(CutoverMode.AT, LATER, bandwidth_limit=1).check()
    Timing(CutoverMode.MANUAL).check()


def test_a_time_given_for_another_choice_than_at_a_time_is_not_kept() -> None:
    run = MigrationRun()
    Timing(CutoverMode.MANUAL, LATER, 5_000_000).apply(run)
    assert (run.cutover_mode, run.cutover_at, run.bandwidth_limit) == (
        CutoverMode.MANUAL,
        None,
        5_000_000,
    )
    Timing(CutoverMode.AT, LATER).apply(run)
    assert (run.cutover_at, run.bandwidth_limit) == (LATER, None)


# The options a source allows.

SOURCE = SourceInfo.stored(FULL_INFO)


@pytest.mark.django_db
def test_the_licence_cannot_move_to_a_system_that_has_one() -> None:
    options_check(SOURCE, migrate_licence=True, tables=None, accounts=None)
    Licence.objects.filter(id=1).update(guid="MINE", state=LicenceState.ACTIVE)
    with pytest.raises(
        PreparationError,
        match=r"Migrate License is not possible: This system already has a licence\.",
    ):
        options_check(SOURCE, migrate_licence=True, tables=None, accounts=None)


@pytest.mark.parametrize(
    ("tables", "accounts", "refusal"),
    [
        (["subscriber", "nope", "gone"], None, "The source has no table gone, nope."),
        ([], None, "Choose at least one table, or all data."),
        (["subscriber"], ["ann"], "Choose either tables or accounts, not both."),
        (None, [], "List at least one account"),
    ],
)
def test_a_data_selection_the_source_cannot_give_is_refused(
    tables: list[str] | None, accounts: list[str] | None, refusal: str
) -> None:
    with pytest.raises(PreparationError, match=refusal):
        options_check(SOURCE, migrate_licence=False, tables=tables, accounts=accounts)


def test_an_ha_source_cannot_be_migrated_account_by_account() -> None:
    options_check(SOURCE, migrate_licence=False, tables=None, accounts=["ann"])
    with pytest.raises(PreparationError, match="Only a standalone source"):
        options_check(
            SourceInfo.stored(HA_INFO), migrate_licence=False, tables=None, accounts=["ann"]
        )


# Cut over now.


@pytest.mark.django_db
def test_cut_over_now_is_recorded_once_for_a_run_that_waits() -> None:
    run = run_with(
        RunStatus.RUNNING,
        [("precopy_data", OperationStatus.SUCCEEDED), ("await_cutover", OperationStatus.RUNNING)],
    )
    run_cutover_now(run)
    run.refresh_from_db()
    first = run.cutover_requested_at
    assert first is not None
    run_cutover_now(run)  # a second administrator presses it too
    run.refresh_from_db()
    assert run.cutover_requested_at == first


@pytest.mark.django_db
def test_a_run_still_queued_may_be_asked_to_cut_over_as_soon_as_it_can() -> None:
    run = run_with(RunStatus.QUEUED, [("await_cutover", OperationStatus.PENDING)])
    run_cutover_now(run)
    run.refresh_from_db()
    assert run.cutover_requested_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "operations", "refusal"),
    [
        (RunStatus.FAILED, [("await_cutover", OperationStatus.FAILED)], "Only a run in progress"),
        (RunStatus.RUNNING, [("copy_data", OperationStatus.RUNNING)], "no cutover to wait for"),
        (RunStatus.RUNNING, [("await_cutover", OperationStatus.SUCCEEDED)], "or is past it"),
    ],
)
def test_cut_over_now_is_refused_where_there_is_nothing_to_wait_for(
    status: str, operations: list[tuple[str, str]], refusal: str
) -> None:
    run = run_with(status, operations)
    with pytest.raises(RunRefused, match=refusal):
        run_cutover_now(run)
    run.refresh_from_db()
    assert run.cutover_requested_at is None


# Close, Resume, Start over.


@pytest.mark.django_db
def test_a_run_in_progress_cannot_be_closed() -> None:
    run = run_with(RunStatus.RUNNING, [("copy_data", OperationStatus.RUNNING)])
    with pytest.raises(PreparationError, match="in progress cannot be closed"):
        run_close(run)
    run.refresh_from_db()
    assert (run.status, run.closed_at, run.active) == (RunStatus.RUNNING, None, True)


@pytest.mark.django_db
def test_closing_a_draft_gives_it_up_and_the_wizard_starts_afresh() -> None:
    run = run_with(RunStatus.DRAFT, [])
    assert wizard_run() == run
    run_close(run)
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED and run.closed_at is not None
    assert wizard_run() is None


@pytest.mark.django_db
def test_closing_a_completed_run_keeps_it_completed() -> None:
    run = run_with(RunStatus.SUCCEEDED, [("copy_data", OperationStatus.SUCCEEDED)])
    run_close(run)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.closed_at is not None


@pytest.mark.django_db
def test_the_wizard_is_on_the_run_in_progress_before_any_newer_draft() -> None:
    running = run_with(RunStatus.RUNNING, [])
    run_with(RunStatus.DRAFT, [])
    assert wizard_run() == running


@pytest.mark.django_db
def test_resume_sends_back_only_what_did_not_succeed() -> None:
    run = run_with(
        RunStatus.FAILED,
        [
            ("backup_current", OperationStatus.SUCCEEDED),
            ("copy_data", OperationStatus.FAILED),
            ("update_certificates", OperationStatus.UNDONE),
        ],
        error="the source went away",
    )
    run_resume(run, dispatch=False)
    run.refresh_from_db()
    assert (run.status, run.error, run.active) == (RunStatus.QUEUED, "", True)
    states = dict(run.operations.values_list("name", "status"))
    assert states == {
        "backup_current": OperationStatus.SUCCEEDED,
        "copy_data": OperationStatus.PENDING,
        "update_certificates": OperationStatus.PENDING,
    }


@pytest.mark.django_db
def test_only_a_failed_run_can_be_resumed() -> None:
    run = run_with(RunStatus.SUCCEEDED, [])
    with pytest.raises(RunRefused, match="Only a failed run"):
        run_resume(run, dispatch=False)


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """The backups brought back by Start over (backup id, licence kept)."""
    calls: list[tuple[str, bool]] = []

    def backup_get(backup_id: str) -> Backup:
        return Backup(backup_id, Path("/backups") / backup_id, {"parts": {}})

    def backup_restore(backup: Backup, *, keep_licence: bool = False) -> dict[str, Any]:
        calls.append((backup.id, keep_licence))
        return {}

    monkeypatch.setattr(executor, "backup_get", backup_get)
    monkeypatch.setattr(executor, "backup_restore", backup_restore)
    return calls


def failed_after_backup(licence: str | None) -> MigrationRun:
    operations: list[tuple[str, str]] = [("backup_current", OperationStatus.SUCCEEDED)]
    if licence is not None:
        operations.append(("migrate_licence", licence))
    run = run_with(RunStatus.FAILED, operations)
    run.operations.filter(name="backup_current").update(memory={"backup": "B-7"})
    return run


@pytest.mark.django_db
def test_start_over_brings_back_the_backup_and_closes_the_run(
    restored: list[tuple[str, bool]],
) -> None:
    run = failed_after_backup(licence=OperationStatus.PENDING)
    assert run_start_over(run) == "B-7"
    assert restored == [("B-7", False)]
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED and run.closed_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("licence", [OperationStatus.SUCCEEDED, OperationStatus.FAILED])
def test_start_over_keeps_a_licence_that_may_have_left_the_source(
    restored: list[tuple[str, bool]], licence: str
) -> None:
    run_start_over(failed_after_backup(licence=licence))
    assert restored == [("B-7", True)]


@pytest.mark.django_db
def test_start_over_before_any_backup_restores_nothing(restored: list[tuple[str, bool]]) -> None:
    run = run_with(RunStatus.FAILED, [("backup_current", OperationStatus.FAILED)])
    assert run_start_over(run) == ""
    assert restored == []
    run.refresh_from_db()
    assert run.closed_at is not None


@pytest.mark.django_db
def test_a_completed_run_cannot_be_started_over(restored: list[tuple[str, bool]]) -> None:
    run = failed_after_backup(licence=None)
    MigrationRun.objects.filter(id=run.id).update(status=RunStatus.SUCCEEDED)
    run.refresh_from_db()
    with pytest.raises(RunRefused, match="completed; there is nothing to start over"):
        run_start_over(run)
    assert restored == []


# The Source step's guards, before anything goes out.


@pytest.mark.django_db
def test_the_source_of_a_started_run_cannot_change() -> None:
    run = run_with(RunStatus.RUNNING, [])
    with pytest.raises(PreparationError, match="has started; its source cannot change"):
        draft_source_check(run, address="192.0.2.20", password="pw")


@pytest.mark.django_db
def test_a_new_source_needs_its_password() -> None:
    with pytest.raises(PreparationError, match="Enter the Admin User password"):
        draft_source_check(None, address="192.0.2.20", password="")
    assert not MigrationRun.objects.exists()


@pytest.mark.django_db
def test_the_password_kept_for_one_source_is_not_sent_to_another() -> None:
    run = run_with(RunStatus.DRAFT, [])
    secret_put(run, "admin_password", "kept")
    with pytest.raises(PreparationError, match="Enter the Admin User password"):
        draft_source_check(run, address="192.0.2.20", password="")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"status": RunStatus.RUNNING, "active": True}, "has started"),
        ({}, "has not presented a certificate yet"),
        (
            {
                "source_certificate": "PEM",
                "checks": [{"name": CERTIFICATE_CHECK, "ok": False, "detail": "", "fix": ""}],
            },
            "certificate changed",
        ),
        ({"source_certificate": "PEM"}, "Enter the Admin User password of the source system again"),
    ],
)
def test_the_fingerprint_cannot_be_confirmed_where_the_password_must_not_go_out(
    fields: dict[str, Any], refusal: str
) -> None:
    run = MigrationRun.objects.create(source_address="192.0.2.10", **fields)
    with pytest.raises(PreparationError, match=refusal):
        draft_fingerprint_confirm(run)
    run.refresh_from_db()
    assert not run.fingerprint_confirmed
