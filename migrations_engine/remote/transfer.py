"""Fetch one file from the source over SFTP: resumable, SHA-256 checked, renamed into place.

The data goes into `.<name>.partial` beside the target, created with mode 0600 so that even a key
is never readable by others while it is written. An interrupted fetch keeps that file and the
next one continues from its size. At the end the whole file's SHA-256 must equal the one
`sha256sum` computed on the source (it runs at the same time, over the same connection); only
then does the file get its final name, the source's modification time and a fixed mode: 0640,
or 0600 for a private file. The source's mode bits are never used. No symbolic link on this side
is followed: the partial file is opened with O_NOFOLLOW and the rename replaces a link in the
final name's place rather than writing through it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from migrations_engine.remote.errors import ConnectionLost, RemoteError, TargetWriteError
from migrations_engine.remote.hashing import (
    local_sha256,
    remote_sha256_finish,
    remote_sha256_start,
)
from migrations_engine.remote.progress import ProgressMeter

# Every OpenSSH sftp-server answers reads of 64 KiB in full (newer ones up to 255 KiB). A shorter
# answer leaves a hole in paramiko's prefetch and makes it fall back to one read at a time, so
# ask for no more than old sources give; paramiko's default is 32 KiB.
READ_REQUEST_SIZE = 64 * 1024
CONCURRENT_READS = 128
CHUNK_SIZE = 1024 * 1024
PRIVATE_MODE = 0o600
FILE_MODE = 0o640
"""The mode of every copied file that is not private (the traffic logs), whatever the source's."""
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
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


def partial_path(target: Path) -> Path:
    """Where a file is written until it is complete and verified."""
    return target.with_name(f".{target.name}.partial")


def _local_error(target: Path, error: OSError) -> TargetWriteError:
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
        raise _local_error(target, error) from None


def _open_partial(temp: Path, size: int, target: Path) -> tuple[int, int]:
    """Open (or create) the partial file privately; returns it and the offset to continue at."""
    try:
        if _partial_stale(temp, size):
            temp.unlink()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, PRIVATE_MODE)
        os.fchmod(fd, PRIVATE_MODE)
        return fd, os.fstat(fd).st_size
    except OSError as error:
        raise _local_error(target, error) from None


def _partial_stale(temp: Path, size: int) -> bool:
    """Whether a partial file is there but cannot be continued: longer than the file, or not a
    regular file (a symbolic link in its place is removed, never followed)."""
    try:
        info = temp.lstat()
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(info.st_mode) or info.st_size > size


def _receive(
    sftp: paramiko.SFTPClient,
    source: RemoteFile,
    fd: int,
    offset: int,
    target: Path,
    digest: Any,
    meter: ProgressMeter,
) -> int:
    """Append the source's bytes from `offset` on to `fd`; returns how many were transferred."""
    transferred = 0
    with sftp.open(source.path, "rb") as remote:
        remote.MAX_REQUEST_SIZE = READ_REQUEST_SIZE
        remote.seek(offset)
        remote.prefetch(source.size, max_concurrent_requests=CONCURRENT_READS)
        while True:
            data = remote.read(CHUNK_SIZE)
            if not data:
                break
            _write_all(fd, data, target)
            digest.update(data)
            transferred += len(data)
            meter.add(len(data))
    return transferred


def _finish(temp: Path, target: Path, source: RemoteFile, mode: int) -> None:
    """Give the verified file its mode and the source's times, then its final name."""
    try:
        fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, mode)
            os.utime(fd, (source.atime, source.mtime))
        finally:
            os.close(fd)
        os.replace(temp, target)
    except OSError as error:
        raise _local_error(target, error) from None


def _fetch_once(
    client: paramiko.SSHClient,
    sftp: paramiko.SFTPClient,
    source: RemoteFile,
    target: Path,
    meter: ProgressMeter,
) -> tuple[int, bool, bool]:
    """One attempt: (bytes transferred, resumed?, hashes equal?); the partial file stays."""
    temp = partial_path(target)
    fd, offset = _open_partial(temp, source.size, target)
    hashing = None
    try:
        digest = local_sha256(temp, length=offset)
        hashing = remote_sha256_start(client, source.path)
        transferred = _receive(sftp, source, fd, offset, target, digest, meter)
        try:
            os.fsync(fd)
        except OSError as error:
            raise _local_error(target, error) from None
        expected = remote_sha256_finish(hashing, source.path, source.size)
    except BaseException:
        if hashing is not None:
            hashing.close()
        raise
    finally:
        os.close(fd)
    return transferred, offset > 0, digest.hexdigest() == expected


def file_fetch(
    client: paramiko.SSHClient,
    sftp: paramiko.SFTPClient,
    source: RemoteFile,
    target: Path,
    meter: ProgressMeter,
    *,
    private: bool = False,
) -> int:
    """Copy one file into `target`; returns the bytes transferred over the network.

    Raises FileNotCopied for this file alone, ConnectionLost or TargetWriteError for all.
    """
    mode = PRIVATE_MODE if private else FILE_MODE
    temp = partial_path(target)
    meter.file_started(source.relative)
    total = 0
    try:
        transferred, resumed, equal = _fetch_once(client, sftp, source, target, meter)
        total += transferred
        if not equal and resumed:
            temp.unlink()
            transferred, resumed, equal = _fetch_once(client, sftp, source, target, meter)
            total += transferred
    except TargetWriteError:
        temp.unlink(missing_ok=True)
        raise
    except (*CONNECTION_ERRORS, OSError, RemoteError) as error:
        raise _remote_error(client, source, error) from None
    if not equal:
        temp.unlink(missing_ok=True)
        raise FileNotCopied(
            "its SHA-256 differs from the source's (did it change during the copy?)"
        )
    _finish(temp, target, source, mode)
    return total


def _remote_error(
    client: paramiko.SSHClient, source: RemoteFile, error: BaseException
) -> RemoteError:
    """A broken connection stops the copy; an error about this file only skips it."""
    transport = client.get_transport()
    if isinstance(error, CONNECTION_ERRORS) or transport is None or not transport.is_active():
        return ConnectionLost(
            f"The SSH connection to the source broke while copying {source.relative} ({error}). "
            "Run the copy again: it continues where it stopped."
        )
    if isinstance(error, RemoteError):
        return FileNotCopied(str(error))
    return FileNotCopied(f"the source could not read it ({error})")
