"""SHA-256 of a file on the source (computed there) and of a local file.

On the source the hash is of the first N bytes of a file (`r path 0 N | H`, `READER`): the size the
copy fetches, so that a log that grows meanwhile still compares, and the old part of a grown
file can be checked. H is a shell function: `openssl dgst -sha256 -r` where the source has it
(it uses the CPU's SHA instructions, four times faster than coreutils), `sha256sum` otherwise.
A batch of files is hashed by one command, one line per file in order, while the same files
are transferred.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from migrations_engine.remote.commands import command_finish, command_start
from migrations_engine.remote.errors import RemoteError

DIGEST_PATTERN = re.compile(r"^\\?([0-9a-f]{64})\s")
OPENSSL_SHA256 = "openssl dgst -sha256 -r"
COREUTILS_SHA256 = "sha256sum"
READ_SIZE = 1024 * 1024


def remote_hash_timeout(size: int) -> float:
    """A generous limit for hashing `size` bytes on the source (20 MB/s at the least)."""
    return 60 + size / 20_000_000


HASHER = "h"
HASHER_DEFINITION = (
    f"{HASHER}() {{ if command -v openssl >/dev/null 2>&1; "
    f"then {OPENSSL_SHA256}; else {COREUTILS_SHA256}; fi; }}"
)
"""A shell function on the source: openssl's SHA-256 where there is openssl, else sha256sum."""

READER = "r"
READER_DEFINITION = (
    "if dd if=/dev/null of=/dev/null iflag=skip_bytes,count_bytes count=0 status=none "
    f'2>/dev/null; then {READER}() {{ dd if="$1" bs=1M iflag=skip_bytes,count_bytes '
    'skip="$2" count="$3" status=none; }; '
    f'else {READER}() {{ tail -c +"$(($2 + 1))" -- "$1" | head -c "$3"; }}; fi'
)
"""A shell function on the source, `r PATH OFFSET LENGTH`: prints at most LENGTH bytes of the
file from OFFSET on. GNU dd reads in 1 MiB blocks (`head -c` reads 8 KiB at a time, which
costs the source three times the CPU); elsewhere `tail | head`."""


def prefix_hash_command(path: str, length: int) -> str:
    """The shell command that prints the SHA-256 of the first `length` bytes of `path`."""
    return f"{READER} {shlex.quote(path)} 0 {int(length)} | {HASHER}"


@dataclass(frozen=True)
class HashRequest:
    """The SHA-256 of the first `length` bytes of a file on the source, asked for."""

    path: str
    length: int


class RemoteHashes:
    """Hashes of several files computed on the source by one command, read in order.

    The command starts at once and runs while the files are transferred; `next()` waits for
    the next file's line.
    """

    def __init__(self, client: paramiko.SSHClient, requests: list[HashRequest]) -> None:
        self.requests = requests
        self.command = "\n".join(
            [READER_DEFINITION, HASHER_DEFINITION]
            + [prefix_hash_command(item.path, item.length) for item in requests]
        )
        self.channel = command_start(client, self.command)
        self.timeout = remote_hash_timeout(sum(item.length for item in requests))
        self.lines: list[str] | None = None
        self.stderr = ""

    def finish(self) -> list[str]:
        """Every file's hex digest, in order; RemoteError if the command failed."""
        if self.lines is None:
            result = command_finish(self.channel, "hashing on the source", timeout=self.timeout)
            self.stderr = result.stderr.strip()[-300:]
            if not result.ok:
                detail = self.stderr or f"exit {result.exit_status}"
                raise RemoteError(f"The source could not hash its files: {detail}")
            self.lines = result.stdout.splitlines()
        return self.lines

    def digest(self, index: int) -> str:
        """The digest of request `index`; RemoteError if the source printed none for it."""
        lines = self.finish()
        match = DIGEST_PATTERN.match(lines[index] + " ") if index < len(lines) else None
        if match is None:
            detail = self.stderr or "no hash printed"
            raise RemoteError(f"The source could not hash {self.requests[index].path}: {detail}")
        return match.group(1)

    def close(self) -> None:
        self.channel.close()


def remote_sha256(client: paramiko.SSHClient, path: str, size: int) -> str:
    """SHA-256 of the first `size` bytes of a file on the source, as hex."""
    hashes = RemoteHashes(client, [HashRequest(path, size)])
    try:
        return hashes.digest(0)
    finally:
        hashes.close()


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
