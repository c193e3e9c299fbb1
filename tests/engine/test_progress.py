"""One progress protocol: at most one report per interval gets through, the last one always, so
an operation that is done shows where its job ended (its files, its rows)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from appliance.backup import backup_create
from appliance.progress import Report, Throttle
from migrations_engine.context import Progress
from migrations_engine.datacopy.progress import ProgressTracker
from migrations_engine.models import OperationState
from migrations_engine.operations.data_ops import COPY_SHARE, copy_reporter
from migrations_engine.remote.progress import ProgressMeter
from tests.engine.test_lifecycle import claimed_run

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def operation_progress() -> tuple[Progress, OperationState]:
    run, fence = claimed_run()
    state = run.operations.order_by("position").first()
    assert state is not None
    return Progress(state, fence), state


def test_the_throttle_lets_one_report_per_interval_through_and_always_the_final_one() -> None:
    clock = Clock()
    throttle = Throttle(0.5, clock=clock)
    passed = []
    for _ in range(16):  # 16 reports in 2 seconds
        passed.append(throttle.passes())
        clock.now += 0.125
    assert [index for index, through in enumerate(passed) if through] == [0, 4, 8, 12]
    assert throttle.passes(final=True)  # right after another one
    assert throttle.passes(final=True)
    assert not throttle.passes()  # the interval starts again at the final one


def test_a_copy_whose_last_file_ends_within_the_interval_ends_with_all_its_files() -> None:
    progress, state = operation_progress()
    meter = ProgressMeter(progress.report, files_total=30, bytes_total=30_000)
    for number in range(1, 31):
        meter.file_started(f"traffic-{number:02}.log.gz")
        meter.add(1000)
        if number == 29:
            time.sleep(0.6)  # so that "29 of 30 files" is written...
        meter.file_done()  # ...and file 30 ends within the interval after it
    meter.finish()  # as the SFTP copy does once every file is done
    state.refresh_from_db()
    figures = state.figures
    assert (figures["files"], figures["files_total"]) == (30, 30)
    assert figures["bytes"] == figures["bytes_total"] == 30_000
    assert state.fraction == 1.0
    assert state.message == "traffic-30.log.gz"


def test_the_data_copy_ends_with_its_totals_even_where_the_estimates_were_wrong() -> None:
    progress, state = operation_progress()
    tracker = ProgressTracker(copy_reporter(progress))
    tracker.add_table("event_log", rows_total=900, chunks_total=2, deferred=1)
    tracker.add_table("empty_but_estimated", rows_total=12, chunks_total=0)
    tracker.start()
    tracker.chunk_done("event_log", 500, 50_000)
    tracker.chunk_done("event_log", 520, 52_000)  # more rows than the estimate
    tracker.table_finished("event_log")
    tracker.set_phase("objects")
    tracker.set_phase("done")  # all within the interval of the table's end
    state.refresh_from_db()
    figures = state.figures
    assert figures["rows"] == figures["rows_total"] == 1020
    assert figures["tables_done"] == figures["tables_total"] == 2
    assert figures["bytes"] == 102_000
    assert state.fraction == pytest.approx(COPY_SHARE)


def test_the_data_copy_s_last_event_is_a_final_report_of_its_totals() -> None:
    events: list[Any] = []
    tracker = ProgressTracker(events.append, interval=60)
    tracker.add_table("a", rows_total=10, chunks_total=1)
    tracker.chunk_done("a", 7, 700)
    tracker.set_phase("done")
    report = events[-1].report()
    assert isinstance(report, Report) and report.final
    assert report.fraction == 1.0
    assert report.figures is not None
    assert report.figures["rows"] == report.figures["rows_total"] == 7


def test_a_backup_s_last_report_is_final_and_complete() -> None:
    reports: list[Report] = []
    backup_create("progress test", progress=reports.append)
    assert reports and reports[-1].final
    assert reports[-1].fraction == 1.0
    assert all(not report.final for report in reports[:-1])
