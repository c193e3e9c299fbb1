"""The seven steps, and which of them a run lets the administrator see.

A run's row says how far its preparation went; a step further than that sends the browser
back to the furthest step reached, and a started run only shows Execution and Result.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrations_engine.models import MigrationRun, RunStatus


@dataclass(frozen=True)
class Step:
    """One step of the wizard: its number, URL name and title."""

    number: int
    name: str
    title: str


STEPS = [
    Step(1, "welcome", "Welcome"),
    Step(2, "source", "Source"),
    Step(3, "source_info", "Source Info"),
    Step(4, "options", "Options"),
    Step(5, "confirmation", "Confirmation"),
    Step(6, "execution", "Execution"),
    Step(7, "result", "Result"),
]
STEP_BY_NAME = {step.name: step for step in STEPS}
PREPARATION = {"welcome", "source", "source_info", "options", "confirmation"}


def furthest_step(run: MigrationRun | None) -> str:
    """The furthest step this run may show."""
    if run is None:
        return "source"
    if run.status == RunStatus.SUCCEEDED:
        return "result"
    if run.status != RunStatus.DRAFT:
        return "execution"
    if not run.checks_passed or not run.fingerprint_confirmed:
        return "source"
    if not run.options_chosen:
        return "options"
    return "confirmation"


def step_allowed(run: MigrationRun | None, name: str) -> bool:
    """Whether the step can be shown for this run (else show its furthest step)."""
    furthest = furthest_step(run)
    if run is not None and run.status != RunStatus.DRAFT:
        return name == furthest or (name == "execution" and furthest == "result")
    return STEP_BY_NAME[name].number <= STEP_BY_NAME[furthest].number
