"""The bytes of a batch of files from the source, one after the other: through OpenSSH's client
(line speed) or, on a bare paramiko connection, through SFTP reads.

With OpenSSH, one `ssh` process runs one shell command on the source for the whole batch; for
each file it prints the bytes asked for (from the offset, at most that many: `hashing.READER`).
A file that became shorter meanwhile (deleted, truncated) shifts the files after it in the stream;
nothing wrong is kept, since every file's hash is compared, and the files whose hashes differ
are fetched again with `padded` commands, which print exactly the length asked for (zeros
after a short file), so that one short file cannot shift another. The padding costs a copy of
every byte on the source, so the first pass goes without it. File names are quoted for the
shell (`shlex.quote`); they were checked by the listing beforehand.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from typing import IO

import paramiko

from migrations_engine.remote.hashing import READER, READER_DEFINITION
from migrations_engine.remote.openssh import OpenSSHLink
from migrations_engine.remote.transfer import Fetch

CHUNK_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Every OpenSSH sftp-server answers reads of 64 KiB in full (newer ones up to 255 KiB). A shorter
# answer leaves a hole in paramiko's prefetch and makes it fall back to one read at a time, so
# ask for no more than old sources give; paramiko's default is 32 KiB.
READ_REQUEST_SIZE = 64 * 1024
CONCURRENT_READS = 128
EXIT_WAIT = 10
"""Seconds `ssh` gets to exit after the last byte of its batch."""


def send_command(fetch: Fetch, *, padded: bool = False) -> str:
    """The shell command that prints `fetch.length` bytes of the file from its offset (fewer if
    the file is shorter, unless `padded`: then exactly that many)."""
    path, length = shlex.quote(fetch.source.path), int(fetch.length)
    read = f"{READER} {path} {int(fetch.offset)} {length} 2>/dev/null"
    if not padded:
        return read
    return f"{{ {read}; head -c {length} /dev/zero; }} | head -c {length}"


class OpenSSHStream:
    """One `ssh` process sending a batch of files; read in order with `chunks`."""

    def __init__(self, link: OpenSSHLink, fetches: list[Fetch], *, padded: bool = False) -> None:
        self.link = link
        command = "\n".join(
            [READER_DEFINITION]
            + [send_command(fetch, padded=padded) for fetch in fetches if fetch.length > 0]
        )
        self.errors: IO[bytes] = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            link.argv(command or "true"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.errors,
        )
        assert self.process.stdout is not None
        self.out = self.process.stdout.fileno()
        self.expected = sum(fetch.length for fetch in fetches)
        self.consumed = 0
        try:
            fcntl.fcntl(self.out, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # a smaller pipe only costs more reads

    def chunks(self, fetch: Fetch) -> Iterator[bytes]:
        left = fetch.length
        while left > 0:
            data = os.read(self.out, min(CHUNK_SIZE, left))
            if not data:
                self._ended()
                yield bytes(left)  # the stream ended early: a file became shorter
                return
            left -= len(data)
            self.consumed += len(data)
            yield data

    def _ended(self) -> None:
        """The stream ended: fine if `ssh` exited 0, else the error it means."""
        status = self.process.wait()
        if status != 0:
            self.errors.seek(0)
            stderr = self.errors.read()[-2000:].decode(errors="replace")
            raise self.link.error(status, stderr)

    def close(self) -> None:
        """Wait for the process to end once everything was read; stop it at once if the copy
        stopped early (or if it does not end)."""
        if self.consumed >= self.expected:
            try:
                self.process.wait(timeout=EXIT_WAIT)
            except subprocess.TimeoutExpired:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.errors.close()


class SFTPStream:
    """The same bytes read over SFTP, for a bare paramiko connection (slower)."""

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self.sftp = sftp

    def chunks(self, fetch: Fetch) -> Iterator[bytes]:
        left = fetch.length
        if left <= 0:
            return
        with self.sftp.open(fetch.source.path, "rb") as remote:
            remote.MAX_REQUEST_SIZE = READ_REQUEST_SIZE
            remote.seek(fetch.offset)
            remote.prefetch(fetch.source.size, max_concurrent_requests=CONCURRENT_READS)
            while left > 0:
                data = remote.read(min(CHUNK_SIZE, left))
                if not data:
                    break
                left -= len(data)
                yield data
        if left > 0:
            yield bytes(left)  # the file became shorter: its hash will say so

    def close(self) -> None:
        pass
