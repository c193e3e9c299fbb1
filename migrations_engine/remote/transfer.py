"""Receive files from the source: resumable, SHA-256 checked while the bytes arrive, renamed
into place.

The data goes into `.<name>.partial` beside the target, created with mode 0600 so that even a key
is never readable by others while it is written. An interrupted fetch keeps that file and the
next one continues from its size. The SHA-256 of the bytes is computed as they arrive (after the
part already here) and must equal the one computed on the source for the same number of bytes
(it runs at the same time); only then does the file get its final name, the source's
modification time and a fixed mode: 0640, or 0600 for a private file. The source's mode bits are
never used. No symbolic link on this side is followed: the partial file is opened with
O_NOFOLLOW and the rename replaces a link in the final name's place rather than writing through
it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paramiko

from appliance.progress import RateLimit
from migrations_engine.remote.errors import RemoteError, TargetWriteError
from migrations_engine.remote.hashing import local_sha256
from migrations_engine.remote.progress import ProgressMeter

PRIVATE_MODE = 0o600
FILE_MODE = 0o640
"""The mode of every copied file that is not private (the traffic logs), whatever the source's."""
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
HASH_QUEUE = 16
"""Chunks received but not hashed yet, at most (each up to 1 MiB)."""
CONNECTION_ERRORS = (paramiko.SSHException, EOFError, TimeoutError, ConnectionError)


@dataclass(frozen=True)
class RemoteFile:
    """A regular file on the source, with what is needed to copy and compare it."""

    path: str
    relative: str
    size: int
    mtime: int
    atime: int


class FileNotCopied(RemoteError):
    """This one file could not be copied; the others can go on."""


@dataclass
class Fetch:
    """One file to receive: the source's bytes from `offset` to its listed size go after the
    `offset` bytes already in the partial file, whose SHA-256 so far is `digest`."""

    source: RemoteFile
    target: Path
    offset: int
    digest: Any
    synced: Future[None] | None = None
    """The flush of the received bytes to disk, running while the next file arrives."""

    @property
    def length(self) -> int:
        return self.source.size - self.offset


class ByteStream(Protocol):
    """The bytes of a batch of fetches, one after the other, each exactly `length` long."""

    def chunks(self, fetch: Fetch) -> Iterator[bytes]: ...


def partial_path(target: Path) -> Path:
    """Where a file is written until it is complete and verified."""
    return target.with_name(f".{target.name}.partial")


def local_error(target: Path, error: OSError) -> TargetWriteError:
    """A failure to write here, as the administrator reads it."""
    if error.errno in DISK_FULL:
        return TargetWriteError(
            f"The disk of the current system is full: {target} could not be written "
            f"({error.strerror}). Free some space and run the copy again."
        )
    return TargetWriteError(f"{target} could not be written on the current system ({error}).")


def _write_all(fd: int, data: bytes, target: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as error:
        raise local_error(target, error) from None


def partial_size(target: Path, size: int) -> int:
    """How many bytes of a file are already in its partial file (0 if none or unusable:
    longer than the file, or not a regular file; such a partial is removed, never followed)."""
    temp = partial_path(target)
    try:
        info = temp.lstat()
    except FileNotFoundError:
        return 0
    if stat.S_ISREG(info.st_mode) and info.st_size <= size:
        return info.st_size
    temp.unlink()
    return 0


def fetch_plan(source: RemoteFile, target: Path) -> Fetch:
    """A fetch that continues the partial file, if there is one, hashing what it holds."""
    try:
        offset = partial_size(target, source.size)
        digest = local_sha256(partial_path(target), length=offset) if offset else None
    except OSError as error:
        raise local_error(target, error) from None
    return Fetch(source, target, offset, digest or hashlib.sha256())


def _open_partial(fetch: Fetch) -> int:
    """Open the partial file privately, for appending after the bytes it already holds."""
    temp = partial_path(fetch.target)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, PRIVATE_MODE)
        os.fchmod(fd, PRIVATE_MODE)
        if os.fstat(fd).st_size != fetch.offset:
            os.close(fd)
            raise FileNotCopied("its partial file changed on this system during the copy")
        return fd
    except OSError as error:
        raise local_error(fetch.target, error) from None


def receive(
    stream: ByteStream, fetch: Fetch, meter: ProgressMeter, limit: RateLimit, worker: Executor
) -> int:
    """Append the fetch's bytes to its partial file; returns how many. `worker` (one thread)
    hashes them meanwhile, in order, then flushes the file to disk while the next one arrives
    (`fetch.synced`)."""
    meter.file_started(fetch.source.relative)
    fd = _open_partial(fetch)
    received = 0
    hashing: deque[Future[None]] = deque()
    try:
        for chunk in stream.chunks(fetch):
            _write_all(fd, chunk, fetch.target)
            hashing.append(worker.submit(fetch.digest.update, chunk))
            if len(hashing) > HASH_QUEUE:
                hashing.popleft().result()
            received += len(chunk)
            meter.add(len(chunk))
            limit.spend(len(chunk))
    except BaseException:
        for pending in hashing:
            pending.cancel()
        wait(hashing)
        os.close(fd)
        raise
    fetch.synced = worker.submit(_sync_close, fd, fetch.target)
    return received


def _sync_close(fd: int, target: Path) -> None:
    try:
        os.fsync(fd)
    except OSError as error:
        raise local_error(target, error) from None
    finally:
        os.close(fd)


def finish(fetch: Fetch, mode: int) -> None:
    """Give the verified file its mode and the source's times, then its final name (once
    its bytes are on disk)."""
    if fetch.synced is not None:
        fetch.synced.result()
    temp = partial_path(fetch.target)
    try:
        fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, mode)
            os.utime(fd, (fetch.source.atime, fetch.source.mtime))
        finally:
            os.close(fd)
        os.replace(temp, fetch.target)
    except OSError as error:
        raise local_error(fetch.target, error) from None


def discard(fetch: Fetch) -> None:
    """Remove a partial file whose hash did not match: the next attempt starts afresh."""
    if fetch.synced is not None:
        fetch.synced.exception()  # wait: its descriptor is closed once this is done
    partial_path(fetch.target).unlink(missing_ok=True)
