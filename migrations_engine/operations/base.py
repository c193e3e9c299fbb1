"""What every operation of Execution is: a name, a label, a weight, `applies`, `run` and `undo`.

Operations are plain classes listed in order in `migrations_engine.operations.OPERATIONS`; the
executor walks that list. Each `run` must be safe to call again after a crash (idempotent): it
records in `context.memory` what it has done so far and what `undo` needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from migrations_engine.plan import PlanFacts
from migrations_engine.remote.errors import RemoteError

if TYPE_CHECKING:
    from migrations_engine.context import Progress, RunContext


class OperationFailed(Exception):
    """An operation cannot complete; `fix` tells the administrator what to do about it."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


class Operation:
    """One operation of Execution."""

    name: ClassVar[str]
    label: ClassVar[str]
    weight: ClassVar[int] = 1
    reversible: ClassVar[bool] = False
    """Whether `undo` takes the work back; a failed run undoes only these, and redoes them."""
    stall_hint: ClassVar[str] = "The operation is waiting for the source or this system."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        """Whether this operation runs for these facts, and why (or why not)."""
        return True, "always"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        """Do the work; return what the report should say about it."""
        raise NotImplementedError

    def undo(self, context: RunContext) -> None:
        """Take back what `run` did, as far as it got (nothing to take back by default)."""


def remote_failure(error: RemoteError) -> OperationFailed:
    return OperationFailed(
        str(error),
        "Check that the source's SSH port (22 unless it says otherwise) is open from this "
        "system and its SSH service runs, then Resume.",
    )
