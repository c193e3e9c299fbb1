"""How a long job says how far it is: one report shape and one throttle for every job.

A job (a copy, a backup, a rehearsal) hands `Report`s to a `Reporter`. Reports come often; a
`Throttle` lets at most one through per interval, except a report marked `final` (the job's or a
step's last word), which always gets through so that what is shown at the end is the end. A
`RateLimit` holds a job that moves bytes (the data copy, the traffic logs) to a rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

INTERVAL = 0.5
"""Seconds between two reports that get through, except the final ones."""

Figures = dict[str, int | float]
"""Counts that go with a report, by name: `files`, `files_total`, `rows`, `bytes`..."""


@dataclass(frozen=True)
class Report:
    """Where a job stands: its share done (0..1), counts, what it is doing, the time left."""

    fraction: float
    figures: Figures | None = None
    message: str | None = None
    eta_seconds: float | None = None
    final: bool = False
    """The last report of a job or a step: no throttle drops it."""

    def scaled(self, share: float, start: float = 0.0) -> Report:
        """This report as part of a larger job, where it takes `share` of the bar from `start`."""
        return replace(self, fraction=start + self.fraction * share)


Reporter = Callable[[Report], None]


@dataclass
class Throttle:
    """Lets a report through at most once every `interval` seconds; a final one always."""

    interval: float = INTERVAL
    clock: Callable[[], float] = time.monotonic
    passed_at: float | None = field(default=None, init=False)

    def passes(self, *, final: bool = False) -> bool:
        """Whether a report made now goes through (and if so, the interval starts again)."""
        now = self.clock()
        if not final and self.passed_at is not None and now - self.passed_at < self.interval:
            return False
        self.passed_at = now
        return True


class RateLimit:
    """Keeps a transfer at or under `bytes_per_second` (None: no limit) by waiting between
    chunks; the sender is slowed down by the connection's flow control."""

    def __init__(self, bytes_per_second: int | None) -> None:
        self.bytes_per_second = bytes_per_second
        self.started: float | None = None
        self.spent = 0

    def spend(self, count: int) -> None:
        """Count `count` bytes received; wait until the limit allows them. The clock starts
        with the first bytes, so that the time spent comparing files earns no burst."""
        if not self.bytes_per_second:
            return
        if self.started is None:
            self.started = time.monotonic()
        self.spent += count
        due = self.started + self.spent / self.bytes_per_second
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
