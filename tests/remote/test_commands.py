"""Remote commands with time limits, and waiting for the source after a reboot."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from devtools.sshd import SSHServer
from migrations_engine.remote.commands import run_command
from migrations_engine.remote.connection import ssh_connect
from migrations_engine.remote.errors import CommandTimeout, RemoteError, SourceDidNotReturn
from migrations_engine.remote.keys import RunKey
from migrations_engine.remote.reboot import reboot_and_wait
from tests.remote.conftest import authorise, grant_for, start_server


def test_exit_status_and_both_outputs_are_returned(ssh_client: paramiko.SSHClient) -> None:
    result = run_command(ssh_client, "echo out; echo err >&2; exit 3", 10)
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok and not result.truncated
    assert "exit 3" in result.describe()


def test_output_is_bounded(ssh_client: paramiko.SSHClient) -> None:
    result = run_command(ssh_client, "head -c 300000 /dev/zero | tr '\\0' x", 10, output_limit=1000)
    assert result.ok and result.truncated
    assert result.stdout == "x" * 1000


def test_a_command_that_hangs_is_stopped_by_its_timeout(ssh_client: paramiko.SSHClient) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish within 1 s") as raised:
        run_command(ssh_client, "echo $$; exec sleep 60", 1)
    assert time.monotonic() - started < 3
    # sshd refuses the kill signal for root logins (no privilege separation after login), so
    # on this server the command may outlive its channel: end it here, by its id.
    pid = int(raised.value.result.stdout)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    assert run_command(ssh_client, "true", 5).ok


@pytest.fixture
def rebootable(tmp_path: Path, session_key: RunKey) -> Iterator[SSHServer]:
    """A server of its own (127.0.0.5:2224) that the 'reboot' commands stop and start."""
    server = start_server(tmp_path / "sshd", 2224)
    authorise(server, session_key)
    yield server
    server.stop()


def restart_command(server: SSHServer, down_for: float) -> str:
    """A stand-in for a reboot: stop the server, and start it again after `down_for` s."""
    start = (
        f"sleep {down_for}; /usr/sbin/sshd -f {server.directory}/sshd_config -E {server.log_file}"
    )
    inner = f"sleep 0.3; kill $(cat {server.pid_file}); {start}"
    return f"setsid sh -c '{inner}' >/dev/null 2>&1 </dev/null &"


def test_reboot_waits_until_the_source_answers_again(
    rebootable: SSHServer, session_key: RunKey
) -> None:
    grant = grant_for(rebootable)
    client = ssh_connect(grant, session_key, timeout=5)
    checks: list[float] = []

    def connect() -> paramiko.SSHClient:
        return ssh_connect(grant, session_key, timeout=2)

    def check() -> bool:
        checks.append(time.monotonic())
        return len(checks) > 1

    result = reboot_and_wait(
        client, restart_command(rebootable, 1.5), connect, limit=20, check=check, settle=3, poll=0.3
    )
    try:
        assert result.command.ok and result.went_down
        assert result.seconds > 1.5
        assert len(checks) == 2
        assert run_command(result.client, "echo back", 5).stdout == "back\n"
    finally:
        result.client.close()


def test_reboot_reports_a_source_that_does_not_come_back(
    rebootable: SSHServer, session_key: RunKey
) -> None:
    grant = grant_for(rebootable)
    client = ssh_connect(grant, session_key, timeout=5)
    started = time.monotonic()
    with pytest.raises(SourceDidNotReturn, match="did not answer on SSH within 3 s"):
        reboot_and_wait(
            client,
            restart_command(rebootable, 60).replace("sleep 60;", "exit;"),
            lambda: ssh_connect(grant, session_key, timeout=1),
            limit=3,
            settle=2,
            poll=0.3,
        )
    assert time.monotonic() - started < 6


def test_a_failing_reboot_command_is_reported(ssh_client: paramiko.SSHClient) -> None:
    with pytest.raises(RemoteError, match="exit 1"):
        reboot_and_wait(ssh_client, "echo no permission >&2; exit 1", lambda: ssh_client)
