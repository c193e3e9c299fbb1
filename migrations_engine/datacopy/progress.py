"""Progress of a copy as small events, throttled so that persisting them stays cheap.

Totals start as the source server's estimates and become exact as tables complete; the rate is
measured over the copy so far and the ETA comes from it. An event's `report()` is the common
`Report` (see `appliance.progress`); the copy's last event (phase `done`) is final, and its
figures are the copy's totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.progress import INTERVAL, Figures, Report, Throttle

DEFAULT_INTERVAL = INTERVAL
"""Seconds between two events, except for the ones that mark a table's or the copy's end."""


@dataclass(frozen=True)
class ProgressEvent:
    """Where the copy stands, for one table and overall."""

    phase: str
    table: str
    table_rows: int
    table_rows_total: int
    table_done: bool
    rows: int
    rows_total: int
    bytes: int
    chunks: int
    chunks_total: int
    tables_done: int
    tables_total: int
    rows_per_second: float
    bytes_per_second: float
    eta_seconds: float | None

    work: float = 0.0
    work_total: float = 0.0

    @property
    def fraction(self) -> float:
        """How much of the copy is done, from 0 to 1 (rows copied and indexes built)."""
        if self.phase == "done" or self.work_total <= 0:
            return 1.0
        return min(1.0, self.work / self.work_total)

    @property
    def final(self) -> bool:
        """The copy's last event: it must get through."""
        return self.phase == "done"

    def report(self) -> Report:
        """This event as the common progress report."""
        figures: Figures = {
            "rows": self.rows,
            "rows_total": self.rows_total,
            "bytes": self.bytes,
            "tables_done": self.tables_done,
            "tables_total": self.tables_total,
            "rows_per_second": round(self.rows_per_second),
        }
        return Report(
            self.fraction,
            figures=figures,
            message=f"table {self.table}" if self.table else self.phase,
            eta_seconds=self.eta_seconds,
            final=self.final,
        )


ProgressCallback = Callable[[ProgressEvent], None]


INDEX_COST = 0.03
"""What building one index (or foreign key) after the load adds, as a share of copying the
table's rows. Small, because a table's indexes are built on one worker while the others go on
copying; chosen by measuring the ETA against the real finish on the demo's bench-size data
(`scripts/measure_eta.py`: within 15 % at 25, 50 and 75 % of the copy)."""


@dataclass
class _TableCount:
    rows: int = 0
    rows_total: int = 0
    chunks: int = 0
    chunks_total: int = 0
    deferred: int = 0
    finished: bool = False

    @property
    def work_total(self) -> float:
        """Rows to copy plus the index building after them, in rows' worth of time."""
        return max(self.rows_total, self.rows) * (1 + INDEX_COST * self.deferred)

    @property
    def work(self) -> float:
        return self.work_total if self.finished else float(self.rows)


@dataclass
class ProgressTracker:
    """Adds up finished chunks and calls the callback at most every `interval` seconds."""

    callback: ProgressCallback | None
    interval: float = DEFAULT_INTERVAL
    tables: dict[str, _TableCount] = field(default_factory=dict)
    rows: int = 0
    bytes: int = 0
    chunks: int = 0
    tables_done: int = 0
    phase: str = "copying"
    _started: float = field(default_factory=time.monotonic)
    _copied_rows: int = 0
    _copied_bytes: int = 0
    _throttle: Throttle = field(init=False)

    def __post_init__(self) -> None:
        self._throttle = Throttle(self.interval)

    def start(self) -> None:
        """The copying starts now: the rate (and so the ETA) is measured from here."""
        self._started = time.monotonic()

    def add_table(self, name: str, rows_total: int, chunks_total: int, deferred: int = 0) -> None:
        """Announce a table: its estimated rows, its chunks, the indexes built after the load."""
        self.tables[name] = _TableCount(
            rows_total=rows_total, chunks_total=chunks_total, deferred=deferred
        )

    def chunk_done(self, table: str, rows: int, size: int, *, copied_now: bool = True) -> None:
        """Count a chunk; `copied_now` is False for chunks an earlier run already copied."""
        count = self.tables[table]
        count.rows += rows
        count.chunks += 1
        self.rows += rows
        self.bytes += size
        self.chunks += 1
        if copied_now:
            self._copied_rows += rows
            self._copied_bytes += size
        table_done = count.chunks == count.chunks_total
        if table_done:
            count.rows_total = count.rows
        self._send(table, force=table_done)

    def table_finished(self, table: str) -> None:
        """A table has its indexes and counters: it is complete."""
        self.tables_done += 1
        if table in self.tables:
            self.tables[table].finished = True
        self._send(table, force=True)

    def set_phase(self, phase: str) -> None:
        """Enter a new phase (copying, finishing, objects, done) and say so at once."""
        self.phase = phase
        if phase == "done":
            self._settle()
        self._send("", force=True)

    def _settle(self) -> None:
        """The copy is over: every table is complete and the totals are what was copied."""
        for count in self.tables.values():
            count.rows_total = count.rows
            count.finished = True
        self.tables_done = len(self.tables)

    def _send(self, table: str, *, force: bool) -> None:
        if self.callback is None or not self._throttle.passes(final=force):
            return
        self.callback(self.event(table))

    def event(self, table: str, now: float | None = None) -> ProgressEvent:
        """The event describing the copy right now."""
        elapsed = max(1e-6, (now or time.monotonic()) - self._started)
        rows_rate = self._copied_rows / elapsed
        rows_total = sum(count.rows_total for count in self.tables.values())
        rows_total = max(rows_total, self.rows)
        work = sum(count.work for count in self.tables.values())
        work_total = sum(count.work_total for count in self.tables.values())
        count = self.tables.get(table, _TableCount())
        eta = (work_total - work) / rows_rate if rows_rate > 0 else None
        if self.phase == "done":
            eta = 0.0
        return ProgressEvent(
            phase=self.phase,
            table=table,
            table_rows=count.rows,
            table_rows_total=max(count.rows_total, count.rows),
            table_done=count.chunks_total > 0 and count.chunks == count.chunks_total,
            rows=self.rows,
            rows_total=rows_total,
            bytes=self.bytes,
            chunks=self.chunks,
            chunks_total=sum(count.chunks_total for count in self.tables.values()),
            tables_done=self.tables_done,
            tables_total=len(self.tables),
            rows_per_second=rows_rate,
            bytes_per_second=self._copied_bytes / elapsed,
            eta_seconds=eta,
            work=work,
            work_total=work_total,
        )
