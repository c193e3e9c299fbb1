"""Progress of long work: a bar per step (rich) on a terminal, plain lines otherwise.

with TerminalProgress() as progress:
    with progress.step("Seeding the source", total=rows) as step:
        step.advance(1000)
    progress.print("a line between the bars")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


@dataclass
class Step:
    """One step of the work; `advance` and `set` move its bar (nothing to do on plain output)."""

    bars: Progress | None
    task: TaskID | None
    done: float = 0

    def advance(self, amount: float = 1) -> None:
        self.set(self.done + amount)

    def set(self, completed: float, total: float | None = None) -> None:
        self.done = completed
        if self.bars is not None and self.task is not None:
            if total is not None:
                self.bars.update(self.task, total=total)
            self.bars.update(self.task, completed=completed)


@dataclass
class TerminalProgress:
    """Bars on a terminal (`live`, by default when stdout is one), plain lines otherwise."""

    live: bool = field(default_factory=lambda: sys.stdout.isatty())
    console: Console | None = None
    bars: Progress | None = None

    def __enter__(self) -> TerminalProgress:
        if self.live:
            self.bars = Progress(
                SpinnerColumn(finished_text="[green]done"),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=self.console or Console(),
            )
            self.bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None

    def print(self, text: str) -> None:
        """A line of output above the bars (or just a line)."""
        if self.bars is not None:
            self.bars.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)

    @contextmanager
    def step(self, description: str, total: float | None = None) -> Iterator[Step]:
        """A step with a bar of `total` units (a moving bar without one); marked done at the end."""
        began = time.monotonic()
        if self.bars is None:
            print(f"{description} ...", flush=True)
            yield Step(None, None)
            print(f"{description}: done in {time.monotonic() - began:.1f} s", flush=True)
            return
        task = self.bars.add_task(description, total=total)
        step = Step(self.bars, task)
        yield step
        finished = next(each for each in self.bars.tasks if each.id == task)
        final = finished.total if finished.total is not None else max(step.done, 1)
        self.bars.update(task, total=final, completed=final)
