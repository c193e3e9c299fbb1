"""A copy survives what happens to real copies: a killed copier, a source that goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from migrations_engine.datacopy import ProgressEvent, SourceUnavailableError, copy_database
from migrations_engine.datacopy.copier import attempts_per_chunk

from .conftest import PROJECT_ROOT, Scratch, query, target_connection

SMALL_CHUNK = 16 * 1024
WORKERS = 2


def copied_chunks(scratch: Scratch) -> int:
    with target_connection() as connection:
        try:
            rows = query(
                connection,
                "SELECT COUNT(*) FROM appliance_copy_state.copy_chunk WHERE target_database = %s",
                (scratch.name,),
            )
        except Exception:  # the state tables may not exist yet
            return 0
    return int(rows[0][0])


def test_a_killed_copy_resumes_and_redoes_at_most_the_chunks_in_flight(scratch: Scratch) -> None:
    scratch.make_dataset(0.01)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "manage.py"),
        "copy_data",
        scratch.source_server.url(scratch.name),
        f"mysql://root@127.0.0.1:3306/{scratch.name}",
        "--chunk-kb=16",
        f"--workers={WORKERS}",
    ]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while copied_chunks(scratch) < 10 and time.monotonic() < deadline:
        assert process.poll() is None, "the copy ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = copied_chunks(scratch)

    result = copy_database(scratch.source_url, scratch.target_url, resume=True, workers=WORKERS)

    scratch.assert_identical()
    assert result.resumed
    assert result.chunks_copied <= result.chunks_total - before
    assert result.rows == 2_000 + 15_000 + 3_000
    redone = [chunk for chunk, count in attempts_per_chunk(scratch.target_url).items() if count > 1]
    assert len(redone) <= WORKERS


def test_a_source_that_restarts_mid_copy_does_not_stop_the_copy(scratch: Scratch) -> None:
    scratch.make_dataset(0.01)
    outage = threading.Event()
    back_at: list[float] = []

    def watch(event: ProgressEvent) -> None:
        if event.chunks >= 10 and not outage.is_set():
            outage.set()

    def restart_source() -> None:
        outage.wait(60)
        scratch.source_server.stop()
        time.sleep(1.5)
        scratch.source_server.start()
        back_at.append(time.monotonic())

    restarter = threading.Thread(target=restart_source)
    restarter.start()
    try:
        result = copy_database(
            scratch.source_url,
            scratch.target_url,
            chunk_bytes=SMALL_CHUNK,
            progress=watch,
            source_wait=60,
        )
        finished_at = time.monotonic()
    finally:
        outage.set()
        restarter.join()

    scratch.assert_identical(auto_increment=False)  # a restart recomputes InnoDB's counters
    assert result.tables["accounting"].rows == 15_000
    assert back_at and back_at[0] < finished_at, "the copy ended before the source came back"


def test_a_source_gone_for_good_stops_with_advice_and_resumes_later(scratch: Scratch) -> None:
    scratch.make_dataset(0.01)

    def stop_source(event: ProgressEvent) -> None:
        if event.chunks >= 10 and scratch.source_server.answers():
            scratch.source_server.stop()

    with pytest.raises(SourceUnavailableError) as caught:
        copy_database(
            scratch.source_url,
            scratch.target_url,
            chunk_bytes=SMALL_CHUNK,
            progress=stop_source,
            source_wait=2,
        )
    message = str(caught.value)
    assert "did not come back" in message or "does not answer" in message
    assert "resume" in message
    kept = copied_chunks(scratch)
    assert kept >= 10

    scratch.source_server.start()
    result = copy_database(scratch.source_url, scratch.target_url, resume=True)

    scratch.assert_identical(auto_increment=False)
    assert result.chunks_copied <= result.chunks_total - kept
