"""Errors of the SSH/SFTP work on a source; every message is meant for the administrator.

No message carries a secret: keys are named by their fingerprint only.
"""

from __future__ import annotations

from typing import Any


class RemoteError(Exception):
    """Something on the SSH side of a migration went wrong."""


class HostKeyMismatch(RemoteError):
    """The source presented an SSH host key other than the one its peer API handed out."""

    def __init__(self, host: str, port: int, expected: str, presented: str) -> None:
        super().__init__(
            f"The SSH server at {host}:{port} presented the host key {presented}, but the source "
            f"said its host key is {expected}. Nothing was sent to it. Stop here unless you know "
            "why the key changed (for example the source was reinstalled); otherwise another "
            "machine may be answering in its place."
        )
        self.host = host
        self.port = port
        self.expected = expected
        self.presented = presented


class AuthenticationRefused(RemoteError):
    """The source did not accept the run's key (not authorised, expired or revoked)."""


class SourceUnreachable(RemoteError):
    """The source did not answer on its SSH port."""


class CommandTimeout(RemoteError):
    """A remote command did not finish within its time limit; its channel was closed."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


class SourceDidNotReturn(RemoteError):
    """After a reboot command the source did not answer again within the limit."""


class CopyFailed(RemoteError):
    """A copy stopped before the end; `result` tells what was done until then."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class ConnectionLost(CopyFailed):
    """The SSH connection broke during a copy; running the copy again resumes it."""


class TargetWriteError(CopyFailed):
    """The current system could not write a file (for example its disk is full)."""
