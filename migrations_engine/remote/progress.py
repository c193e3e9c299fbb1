"""Progress of a file copy as `Report`s (see `appliance.progress`), throttled so that reporting
stays cheap; the copy's last report is final and always gets through.

A report's figures are `files`, `files_total`, `bytes`, `bytes_total` and `bytes_per_second`;
its message is the file being copied. Under a bandwidth limit the time left is reckoned at
the limited rate (at most), from the first report on.
"""

from __future__ import annotations

import time

from appliance.progress import INTERVAL, Figures, Report, Reporter, Throttle


class ProgressMeter:
    """Counts bytes and files and reports at most once per `interval` seconds, and at the end."""

    def __init__(
        self,
        callback: Reporter | None,
        *,
        files_total: int,
        bytes_total: int,
        interval: float = INTERVAL,
        rate_limit: int | None = None,
    ) -> None:
        self.callback = callback
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.throttle = Throttle(interval)
        self.rate_limit = rate_limit
        self.files_done = 0
        self.bytes_done = 0
        self.current = ""
        self.started = time.monotonic()

    def add(self, count: int) -> None:
        """Count transferred bytes; report if the interval has passed."""
        self.bytes_done += count
        self._send(final=False)

    def file_started(self, name: str) -> None:
        self.current = name

    def file_done(self) -> None:
        self.files_done += 1
        self._send(final=False)

    def finish(self) -> None:
        """The copy is over: report where it ended, whatever the interval."""
        self._send(final=True)

    def event(self, *, final: bool = False) -> Report:
        """The current state as a report."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_done / elapsed
        left = max(self.bytes_total - self.bytes_done, 0)
        expected = min(rate, self.rate_limit) if self.rate_limit and rate > 0 else rate
        expected = expected or self.rate_limit or 0
        eta = left / expected if expected > 0 else None
        fraction = self.bytes_done / self.bytes_total if self.bytes_total else 1.0
        figures: Figures = {
            "files": self.files_done,
            "files_total": self.files_total,
            "bytes": self.bytes_done,
            "bytes_total": self.bytes_total,
            "bytes_per_second": round(rate),
        }
        return Report(
            min(1.0, fraction),
            figures=figures,
            message=self.current,
            eta_seconds=0.0 if final else eta,
            final=final,
        )

    def _send(self, *, final: bool) -> None:
        if self.callback is not None and self.throttle.passes(final=final):
            self.callback(self.event(final=final))
