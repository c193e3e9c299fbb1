"""SHA-256 of a file on the source (computed there by `sha256sum`) and of a local file."""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path
from typing import Any

import paramiko

from migrations_engine.remote.commands import command_finish, command_start
from migrations_engine.remote.errors import RemoteError

DIGEST_PATTERN = re.compile(r"^\\?([0-9a-f]{64})\s")
READ_SIZE = 1024 * 1024


def remote_hash_timeout(size: int) -> float:
    """A generous limit for hashing `size` bytes on the source (20 MB/s at the least)."""
    return 60 + size / 20_000_000


def remote_sha256_start(client: paramiko.SSHClient, path: str) -> paramiko.Channel:
    """Start `sha256sum` on the source; it runs while the file is being transferred."""
    return command_start(client, f"sha256sum -- {shlex.quote(path)}")


def remote_sha256_finish(channel: paramiko.Channel, path: str, size: int) -> str:
    """The hex digest `sha256sum` printed; RemoteError with its message if it failed."""
    command = f"sha256sum -- {shlex.quote(path)}"
    result = command_finish(channel, command, timeout=remote_hash_timeout(size))
    match = DIGEST_PATTERN.match(result.stdout)
    if not result.ok or match is None:
        detail = result.stderr.strip()[-300:] or f"exit {result.exit_status}"
        raise RemoteError(f"The source could not hash {path}: {detail}")
    return match.group(1)


def remote_sha256(client: paramiko.SSHClient, path: str, size: int = 0) -> str:
    """SHA-256 of a file on the source, as hex."""
    return remote_sha256_finish(remote_sha256_start(client, path), path, size)


def local_sha256(path: Path, *, length: int | None = None) -> Any:
    """A running SHA-256 of a local file (of its first `length` bytes when given)."""
    digest = hashlib.sha256()
    left = length
    with path.open("rb") as handle:
        while left is None or left > 0:
            chunk = handle.read(READ_SIZE if left is None else min(READ_SIZE, left))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest
