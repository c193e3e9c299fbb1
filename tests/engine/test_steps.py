"""The one list of steps: the pages' guard and the preparation services read the same facts."""

from __future__ import annotations

from typing import Any

import pytest

from migrations_engine.models import MigrationRun, RunStatus
from migrations_engine.services import PreparationError, draft_execute, draft_options_set
from migrations_engine.steps import STEPS, furthest_step, step_allowed, step_missing

pytestmark = pytest.mark.django_db

PASSED = [{"name": "Admin User password", "ok": True, "detail": "accepted", "fix": ""}]
OPTIONS: dict[str, Any] = {
    "swap_configuration": False, "migrate_licence": False, "copy_traffic_logs": False,
    "tables": None,
}  # fmt: skip


def draft(**fields: Any) -> MigrationRun:
    values: dict[str, Any] = {
        "source_address": "192.0.2.10",
        "source_info": {"server_role": "standalone", "host_name": "gw1", "data_tables": []},
    }
    return MigrationRun.objects.create(**(values | fields))


def test_the_steps_are_numbered_in_order_once() -> None:
    assert [step.number for step in STEPS] == list(range(1, 8))
    assert len({step.name for step in STEPS}) == 7


@pytest.mark.parametrize(
    ("fields", "furthest"),
    [
        ({}, "source"),
        ({"checks": PASSED}, "source"),  # the certificate is not confirmed
        ({"checks": PASSED, "fingerprint_confirmed": True}, "options"),
        ({"checks": PASSED, "fingerprint_confirmed": True, "options_chosen": True}, "confirmation"),
        ({"status": RunStatus.RUNNING}, "execution"),
        ({"status": RunStatus.SUCCEEDED}, "result"),
    ],
)
def test_the_furthest_step_follows_the_run(fields: dict[str, Any], furthest: str) -> None:
    assert furthest_step(draft(**fields)) == furthest


def test_the_services_refuse_a_step_the_run_has_not_reached_with_its_reason() -> None:
    run = draft(checks=PASSED)
    with pytest.raises(PreparationError, match="has not passed every check"):
        draft_options_set(run, **OPTIONS)
    assert not step_allowed(run, "options")
    run = draft(checks=PASSED, fingerprint_confirmed=True)
    with pytest.raises(PreparationError, match="Choose the options first"):
        draft_execute(run, typed_name="gw1")
    assert step_allowed(run, "options") and not step_allowed(run, "confirmation")


def test_a_started_run_cannot_be_prepared_again() -> None:
    run = draft(
        checks=PASSED, fingerprint_confirmed=True, options_chosen=True, status=RunStatus.FAILED
    )
    assert step_missing(run, "options") == (
        "This migration has started; its preparation cannot change."
    )
    with pytest.raises(PreparationError, match="has started"):
        draft_options_set(run, **OPTIONS)
