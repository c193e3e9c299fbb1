"""A demo stops what an earlier one left, even one killed outright, and names a port held by a
server it did not start instead of using it."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from subprocess import Popen

import pytest

from devtools.processes import ProcessBook, Recorded, alive, listener, process_info
from tests.demo_support import DemoUnderTest

DEMO = DemoUnderTest("setuptest", "127.0.0.82", "127.0.0.81", "0,1")

pytestmark = pytest.mark.slow


@pytest.fixture
def demo() -> Iterator[DemoUnderTest]:
    try:
        yield DEMO
    finally:
        DEMO.stop()


def wait_for_banner(process: Popen[str], timeout: float = 240) -> str:
    """The demo's output up to the line saying it runs."""
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if "The two-node demo is running." in line or time.monotonic() > deadline:
            break
    output = "".join(lines)
    assert "The two-node demo is running." in output, output
    return output


def own_command() -> str:
    info = process_info(os.getpid())
    assert info is not None
    return info.command


def running(book: ProcessBook) -> list[Recorded]:
    return [entry for entry in book.recorded() if book.is_running(entry)]


def group_members(entries: list[Recorded]) -> set[int]:
    book = DEMO.book()
    return {pid for entry in entries for pid in book.members(entry)}


def test_after_a_kill_9_the_next_demo_stops_every_process_of_the_first(
    demo: DemoUnderTest,
) -> None:
    first = demo.start_waiting()
    wait_for_banner(first)
    left = running(demo.book())
    roles = {entry.label for entry in left}
    assert {"source-mysql", "source-ssh", "current-worker", "source-front", "demo"} <= roles
    leftovers = group_members(left) - {first.pid}
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert all(alive(pid) for pid in leftovers)  # killed outright, it stopped nothing

    second = demo.start()

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Stopped source-mysql" in second.stdout
    assert not [pid for pid in leftovers if alive(pid)]
    for address, port in (
        (DEMO.source_address, 8443),
        (DEMO.source_address, 2222),
        (DEMO.source_address, 3306),
        (DEMO.current_address, 8443),
    ):
        holder = listener(address, port)
        assert holder is not None and holder.process is not None, (address, port)
        assert holder.process.pid not in leftovers


def test_a_port_held_by_another_server_is_named_and_nothing_starts(demo: DemoUnderTest) -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((DEMO.current_address, 8443))
        server.listen()

        result = demo.start()

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"{DEMO.current_address}:8443 is already in use by pid {os.getpid()}: "
        f"{own_command()}, which this demo did not start: stop it, "
        "or set DEMO_HTTPS_PORT to another port."
    )
    assert listener(DEMO.source_address, 3306) is None
    assert running(demo.book()) == []
