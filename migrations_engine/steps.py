"""The wizard's seven steps, and which of them a run has reached: the one list that the pages,
their guard and the preparation services all read.

A run's row says how far its preparation went; a step the run has not reached is refused (the
pages send the browser to the furthest step reached; the services raise the step's reason), and
a started run only shows Execution and Result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from migrations_engine.models import MigrationRun, RunStatus


def _started(run: MigrationRun) -> bool:
    return run.status != RunStatus.DRAFT


def _checked(run: MigrationRun) -> bool:
    return run.checks_passed and run.fingerprint_confirmed


@dataclass(frozen=True)
class Step:
    """One step: its number, URL name and title, whether a run has reached it, and why not."""

    number: int
    name: str
    title: str
    reached: Callable[[MigrationRun], bool]
    missing: str = ""
    """What the run lacks to reach this step, said to the administrator."""

    @property
    def preparation(self) -> bool:
        """Whether the step prepares a run (it shows only before the run starts)."""
        return self.number <= CONFIRMATION


CONFIRMATION = 5
NOT_CHECKED = (
    "The source has not passed every check yet (certificate confirmed, password accepted)."
)
STEPS = [
    Step(1, "welcome", "Welcome", lambda run: True),
    Step(2, "source", "Source", lambda run: True),
    Step(3, "source_info", "Source Info", _checked, NOT_CHECKED),
    Step(4, "options", "Options", _checked, NOT_CHECKED),
    Step(5, "confirmation", "Confirmation", lambda run: _checked(run) and run.options_chosen,
         "Choose the options first."),
    Step(6, "execution", "Execution", _started, "This migration has not started."),
    Step(7, "result", "Result", lambda run: run.status == RunStatus.SUCCEEDED,
         "This migration has not completed."),
]  # fmt: skip
STEP_BY_NAME = {step.name: step for step in STEPS}


def furthest_step(run: MigrationRun | None) -> str:
    """The furthest step this run may show."""
    if run is None:
        return "source"
    if _started(run):
        return "result" if STEP_BY_NAME["result"].reached(run) else "execution"
    reached = [step for step in STEPS if step.preparation and step.reached(run)]
    furthest = reached[-1]
    # Source Info has nothing to choose: a run that reached it goes on to Options.
    return "options" if furthest.name == "source_info" else furthest.name


def step_allowed(run: MigrationRun | None, name: str) -> bool:
    """Whether the step can be shown for this run (else show its furthest step)."""
    furthest = furthest_step(run)
    if run is not None and _started(run):
        return name == furthest or (name == "execution" and furthest == "result")
    return STEP_BY_NAME[name].number <= STEP_BY_NAME[furthest].number


def step_missing(run: MigrationRun, name: str) -> str:
    """Why a run in preparation cannot act on this step yet ('' when it can)."""
    if _started(run):
        return "This migration has started; its preparation cannot change."
    for step in STEPS[: STEP_BY_NAME[name].number]:
        if not step.reached(run):
            return step.missing
    return ""
