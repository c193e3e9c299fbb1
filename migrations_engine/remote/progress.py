"""Progress of a copy as small events, throttled so that reporting stays cheap."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CopyProgress:
    """Where a copy stands: files and bytes done of the total, rate (bytes/s) and ETA."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate: float
    eta_seconds: float | None
    current: str = ""


ProgressCallback = Callable[[CopyProgress], None]


class ProgressMeter:
    """Counts bytes and files and calls back at most once per `interval` seconds."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        *,
        files_total: int,
        bytes_total: int,
        interval: float = 0.5,
    ) -> None:
        self.callback = callback
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.interval = interval
        self.files_done = 0
        self.bytes_done = 0
        self.current = ""
        self.started = time.monotonic()
        self.last_report = 0.0

    def add(self, count: int) -> None:
        """Count transferred bytes; report if the interval has passed."""
        self.bytes_done += count
        if self.callback is not None and time.monotonic() - self.last_report >= self.interval:
            self.report()

    def file_started(self, name: str) -> None:
        self.current = name

    def file_done(self) -> None:
        self.files_done += 1
        if self.callback is not None and time.monotonic() - self.last_report >= self.interval:
            self.report()

    def event(self) -> CopyProgress:
        """The current state as an event."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_done / elapsed
        left = max(self.bytes_total - self.bytes_done, 0)
        eta = left / rate if rate > 0 else None
        return CopyProgress(
            self.files_done,
            self.files_total,
            self.bytes_done,
            self.bytes_total,
            rate,
            eta,
            self.current,
        )

    def report(self) -> None:
        """Call back now, whatever the interval."""
        self.last_report = time.monotonic()
        if self.callback is not None:
            self.callback(self.event())
