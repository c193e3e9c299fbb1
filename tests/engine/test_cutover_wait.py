"""How the run decides it is time to cut over, and how it tells a lag that shrinks from one that
does not: the pure parts of the online pre-copy, checked in milliseconds."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import pytest
from django.utils import timezone

from migrations_engine.models import CutoverMode
from migrations_engine.online_copy import (
    BinlogPosition,
    Lag,
    TableWatch,
    events_behind,
    replica_lag,
)
from migrations_engine.operations.precopy_ops import CutoverOrder, LagHistory, window_seconds

IN_SYNC = Lag(events=0, seconds=0, bytes=0, caught_up=True)
BEHIND = Lag(events=500, seconds=12, bytes=40_000, caught_up=False)


def test_transactions_behind_are_counted_per_replication_domain() -> None:
    assert events_behind("0-36-1500", "0-36-1400") == 100
    assert events_behind("0-36-1500,1-36-20", "0-36-1500,1-36-5") == 15
    assert events_behind("0-36-10", "") == 10
    assert events_behind("", "0-36-10") is None


def test_a_replica_is_caught_up_once_it_applied_the_sources_position() -> None:
    goal = BinlogPosition("binlog.000002", 900, "0-36-50")
    status = {"Relay_Master_Log_File": "binlog.000002", "Exec_Master_Log_Pos": 900}
    assert replica_lag(status, goal, replica_gtid="0-36-50").caught_up
    behind = replica_lag(
        status | {"Exec_Master_Log_Pos": 400, "Seconds_Behind_Master": 3},
        goal,
        replica_gtid="0-36-45",
    )
    assert (behind.caught_up, behind.events, behind.seconds, behind.bytes) == (False, 5, 3, 500)
    older_file = replica_lag(status | {"Relay_Master_Log_File": "binlog.000001"}, goal)
    assert not older_file.caught_up
    stopped = replica_lag(status | {"Last_SQL_Error": "Duplicate entry"}, goal)
    assert (stopped.caught_up, stopped.error) == (False, "Duplicate entry")
    assert replica_lag({}, goal).error == "this system has no replica of the source"


def history(points: list[tuple[float, int, int]], window: float = 60) -> LagHistory:
    return LagHistory(window, deque(points))


def test_a_lag_that_does_not_shrink_over_the_window_is_falling_behind() -> None:
    growing = history([(0, 100, 1000), (30, 150, 1500), (60, 200, 2000)])
    assert growing.falling_behind
    assert growing.apply_rate == pytest.approx(1000 / 60)
    shrinking = history([(0, 300, 1000), (30, 200, 1500), (60, 100, 2000)])
    assert not shrinking.falling_behind
    assert shrinking.shrink_rate == pytest.approx(200 / 60)
    young = history([(0, 100, 0), (10, 200, 10)])
    assert not young.falling_behind  # a minute has not passed yet
    in_sync = history([(0, 0, 1000), (60, 0, 2000)])
    assert not in_sync.falling_behind


def test_a_lag_sampled_less_often_than_the_window_still_spans_it() -> None:
    lags = LagHistory(3, deque())
    for behind in (10, 20, 30, 40):  # a sample every 1.6 s, a window of 3 s
        lags.samples = deque((when - 1.6, left, done) for when, left, done in lags.samples)
        lags.add(behind, 0)
    assert lags.samples[-1][0] - lags.samples[0][0] >= 3
    assert lags.falling_behind


def test_the_window_of_a_cutover_now_is_the_catch_up_and_the_verification() -> None:
    growing = history([(0, 100, 0), (60, 200, 600)])  # applies 10 transactions a second
    assert window_seconds(BEHIND, growing) == 50 + 10


@pytest.mark.parametrize(
    ("mode", "at", "requested", "lag", "due"),
    [
        (CutoverMode.CAUGHT_UP, None, False, IN_SYNC, True),
        (CutoverMode.CAUGHT_UP, None, False, BEHIND, False),
        (CutoverMode.CAUGHT_UP, None, False, None, True),  # nothing to wait for
        (CutoverMode.MANUAL, None, False, IN_SYNC, False),
        (CutoverMode.MANUAL, None, True, BEHIND, True),
        (CutoverMode.AT, timedelta(minutes=5), False, IN_SYNC, False),
        (CutoverMode.AT, timedelta(minutes=-1), False, BEHIND, True),
    ],
)
def test_the_cutover_is_due_as_the_administrator_chose(
    mode: str, at: timedelta | None, requested: bool, lag: Lag | None, due: bool
) -> None:
    order = CutoverOrder(mode, timezone.now() + at if at is not None else None, requested)
    assert order.due(lag) is due


def test_the_tables_written_after_the_verification_point_are_named_from_their_table_maps() -> None:
    watch = TableWatch(("binlog.000002", 900), "data")
    watch.note(("binlog.000002", 800), "table_id: 31 (data.voucher)")  # before the point
    watch.note(("binlog.000002", 950), "table_id: 32 (data.event_log)")
    watch.note(("binlog.000002", 990), "table_id: 33 (control.appliance_node)")
    watch.note(("binlog.000003", 120), "table_id: 34 (data.subscriber)")  # the next file

    assert watch.changed == {"event_log", "subscriber"}
