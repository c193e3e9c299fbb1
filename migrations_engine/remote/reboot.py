"""Reboot (or restart) the source with its configured command and wait until it is back.

The command comes from the source's info or the installation's configuration. After it, the old
connection usually drops; the source counts as back when a new SSH login (host key still pinned)
succeeds and, when given, a further check (such as the peer API answering) passes.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from migrations_engine.remote.commands import CommandResult, run_command
from migrations_engine.remote.errors import (
    CommandTimeout,
    RemoteError,
    SourceDidNotReturn,
    SourceUnreachable,
)

logger = logging.getLogger(__name__)


@dataclass
class RebootResult:
    """How the reboot went: the command's result, whether the link dropped, the new client."""

    command: CommandResult
    went_down: bool
    seconds: float
    client: paramiko.SSHClient


def _reboot_command_run(client: paramiko.SSHClient, command: str, timeout: float) -> CommandResult:
    """Run the reboot command; a connection that drops or a command that hangs is expected."""
    try:
        result = run_command(client, command, timeout)
    except CommandTimeout as error:
        return error.result  # type: ignore[no-any-return]
    if result.exit_status not in (0, None):
        raise RemoteError(
            f"The reboot command {command!r} failed on the source (exit {result.exit_status}): "
            f"{result.stderr.strip()[-500:]}"
        )
    return result


def _port_refuses(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return False
    except OSError:
        return True


def _wait_until_down(client: paramiko.SSHClient, settle: float) -> bool:
    """Wait up to `settle` s for the old connection to drop or the port to close; True if so."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        return True
    address = transport.getpeername()[:2]
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if not transport.is_active() or _port_refuses(address):
            return True
        time.sleep(0.2)
    return False


def _back(
    connect: Callable[[], paramiko.SSHClient], check: Callable[[], bool] | None
) -> paramiko.SSHClient | None:
    """A new connection if the source answers (and passes `check`), else None."""
    try:
        client = connect()
    except SourceUnreachable:
        return None
    try:
        if check is None or check():
            return client
    except Exception as error:
        logger.info("Source answers SSH but its check failed: %s", error)
    client.close()
    return None


def reboot_and_wait(
    client: paramiko.SSHClient,
    command: str,
    connect: Callable[[], paramiko.SSHClient],
    *,
    limit: float = 600,
    check: Callable[[], bool] | None = None,
    command_timeout: float = 30,
    settle: float = 10,
    poll: float = 2,
) -> RebootResult:
    """Run the reboot `command`, then wait up to `limit` seconds until the source is back."""
    started = time.monotonic()
    result = _reboot_command_run(client, command, command_timeout)
    went_down = _wait_until_down(client, settle)
    client.close()
    deadline = started + limit
    while time.monotonic() < deadline:
        new_client = _back(connect, check)
        if new_client is not None:
            seconds = time.monotonic() - started
            logger.info("Source back %.1f s after %r", seconds, command)
            return RebootResult(result, went_down, seconds, new_client)
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
    what = "on SSH" if check is None else "on SSH and to its check"
    raise SourceDidNotReturn(
        f"The source did not answer {what} within {limit:g} s after the command {command!r}. "
        "Look at it on its console; the run can be resumed once it is back."
    )
