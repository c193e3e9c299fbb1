"""Run a command on the source over SSH, with a time limit and bounded output for the run's log.

A command that does not finish in time is sent SIGKILL (OpenSSH's `signal` channel request, which
reaches the command's process group) and its channel is closed; `CommandTimeout` says so.
Commands must never carry secrets: they are logged.
"""

from __future__ import annotations

import logging
import select
import time
from dataclasses import dataclass
from typing import Any

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from migrations_engine.remote.errors import CommandTimeout, RemoteError

logger = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class CommandResult:
    """What a remote command did: exit status (None if it ended without one) and its output."""

    command: str
    exit_status: int | None
    stdout: str
    stderr: str
    seconds: float
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def describe(self) -> str:
        """One line for the run's log."""
        status = "no exit status" if self.exit_status is None else f"exit {self.exit_status}"
        return f"{self.command!r}: {status} after {self.seconds:.1f} s"


class _Tail:
    """The last `limit` bytes of a stream, and whether anything was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.dropped = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def command_start(
    client: paramiko.SSHClient, command: str, timeout: float = 15
) -> paramiko.Channel:
    """Open a session channel and start `command` in it; read it with `command_finish`."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise RemoteError("The SSH connection to the source is closed.")
    try:
        channel = transport.open_session(timeout=timeout)
        channel.exec_command(command)
    except (paramiko.SSHException, OSError, EOFError) as error:
        raise RemoteError(f"Could not start {command!r} on the source ({error}).") from None
    return channel


def _drain(channel: paramiko.Channel, stdout: _Tail, stderr: _Tail) -> None:
    while channel.recv_ready():
        stdout.add(channel.recv(65536))
    while channel.recv_stderr_ready():
        stderr.add(channel.recv_stderr(65536))


def _signal_kill(channel: paramiko.Channel) -> None:
    """Ask sshd to kill the command's process group (RFC 4254 6.9); best effort."""
    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string("KILL")
    transport: Any = channel.get_transport()
    try:
        transport._send_user_message(message)  # paramiko has no public call for this
    except (paramiko.SSHException, OSError, EOFError, AttributeError):
        pass


def command_finish(
    channel: paramiko.Channel,
    command: str,
    *,
    timeout: float,
    started: float | None = None,
    output_limit: int = OUTPUT_LIMIT,
) -> CommandResult:
    """Collect a started command's output until it exits; stop it at the time limit."""
    started = time.monotonic() if started is None else started
    deadline = started + timeout
    stdout, stderr = _Tail(output_limit), _Tail(output_limit)
    while True:
        finished = channel.exit_status_ready() or channel.closed
        _drain(channel, stdout, stderr)
        if finished:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _signal_kill(channel)
            channel.close()
            result = _result(command, None, stdout, stderr, started)
            logger.warning("Remote command timed out: %s", result.describe())
            raise CommandTimeout(
                f"The command {command!r} on the source did not finish within {timeout:g} s; "
                "it was stopped and its channel closed.",
                result,
            )
        select.select([channel], [], [], min(remaining, POLL_SECONDS))
    status = channel.recv_exit_status() if channel.exit_status_ready() else -1
    channel.close()
    result = _result(command, None if status < 0 else status, stdout, stderr, started)
    logger.info("Remote command %s", result.describe())
    return result


def _result(
    command: str, status: int | None, stdout: _Tail, stderr: _Tail, started: float
) -> CommandResult:
    return CommandResult(
        command=command,
        exit_status=status,
        stdout=stdout.text(),
        stderr=stderr.text(),
        seconds=time.monotonic() - started,
        truncated=stdout.dropped or stderr.dropped,
    )


def run_command(
    client: paramiko.SSHClient, command: str, timeout: float, *, output_limit: int = OUTPUT_LIMIT
) -> CommandResult:
    """Run `command` on the source and return its exit status and (bounded) output."""
    started = time.monotonic()
    channel = command_start(client, command, timeout=timeout)
    return command_finish(
        channel, command, timeout=timeout, started=started, output_limit=output_limit
    )
