"""Copy a directory tree (the traffic logs) or single files (a certificate and key) from the source.

Only files the current system lacks or that differ are transferred: same size and modification
time counts as identical; same size with another time is settled by comparing SHA-256 hashes.
Each file goes through `transfer.file_fetch` (temporary name, hash check, rename). The result
lists what was copied, what was skipped as identical and what was not copied, with the reason.

The source's listing is not trusted (`listing.remote_tree` refuses names that are not plain file
names and bounds the walk), and neither are the folders here: a file whose path here leads out
of the target folder, through a symbolic link already on this side, is not copied either.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from appliance.progress import INTERVAL, Reporter
from migrations_engine.remote.connection import MAX_PACKET_SIZE, WINDOW_SIZE
from migrations_engine.remote.errors import ConnectionLost, CopyFailed, RemoteError
from migrations_engine.remote.hashing import local_sha256, remote_sha256
from migrations_engine.remote.listing import NotCopied, remote_file, remote_tree
from migrations_engine.remote.progress import ProgressMeter
from migrations_engine.remote.transfer import (
    CONNECTION_ERRORS,
    FileNotCopied,
    RemoteFile,
    file_fetch,
    partial_path,
)

LEADS_OUTSIDE = "name leads outside the target directory (through a symbolic link on this system)"
LINK_LOOP = "its path on this system goes round a loop of symbolic links"


@dataclass
class CopyResult:
    """What a copy did, by path relative to the copied directory."""

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_copied: list[NotCopied] = field(default_factory=list)
    bytes_transferred: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.not_copied


def sftp_open(client: paramiko.SSHClient) -> paramiko.SFTPClient:
    """An SFTP session with a large window, for bulk reads."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise RemoteError("The SSH connection to the source is closed.")
    sftp = paramiko.SFTPClient.from_transport(
        transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
    )
    if sftp is None:
        raise RemoteError("The source refused to open an SFTP session.")
    return sftp


def local_refusal(root: Path, target: Path) -> str | None:
    """Why `target` cannot be written by a copy into `root` (None if it can): its path here,
    symbolic links on this side followed, must stay inside `root`."""
    try:
        inside = target.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a loop of symbolic links
        return LINK_LOOP
    return None if inside else LEADS_OUTSIDE


def _targets(
    root: Path, files: list[RemoteFile]
) -> tuple[list[tuple[RemoteFile, Path]], list[NotCopied]]:
    """Each file with its path under `root`, and the files whose path here leads outside."""
    pairs: list[tuple[RemoteFile, Path]] = []
    refused: list[NotCopied] = []
    for source in files:
        target = root / source.relative
        refusal = local_refusal(root, target)
        if refusal is None:
            pairs.append((source, target))
        else:
            refused.append(NotCopied(source.relative, refusal))
    return pairs, refused


def is_identical(client: paramiko.SSHClient, source: RemoteFile, target: Path) -> bool:
    """Same size and time, or same size and same SHA-256 (then the time is set right).

    Only a regular file can be identical: a symbolic link in its place is not followed.
    """
    try:
        local = target.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(local.st_mode) or local.st_size != source.size:
        return False
    if int(local.st_mtime) == source.mtime:
        return True
    if local_sha256(target).hexdigest() != remote_sha256(client, source.path, source.size):
        return False
    os.utime(target, (source.atime, source.mtime), follow_symlinks=False)
    return True


def _partial_size(target: Path) -> int:
    try:
        return partial_path(target).lstat().st_size
    except FileNotFoundError:
        return 0


def _stays_inside(target: Path, root: Path | None) -> None:
    """FileNotCopied if `target` leads outside `root` here (no check without a root)."""
    refusal = None if root is None else local_refusal(root, target)
    if refusal is not None:
        raise FileNotCopied(refusal)


def _folder_make(target: Path, root: Path | None) -> None:
    """Make the folder `target` goes into, checking before and after that the target's path
    stays inside `root`: a link may have appeared here since the listing."""
    _stays_inside(target, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    _stays_inside(target, root)


def _fsync_directories(directories: set[Path]) -> None:
    for directory in directories:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _copy_listed(
    client: paramiko.SSHClient,
    sftp: paramiko.SFTPClient,
    files: list[tuple[RemoteFile, Path]],
    result: CopyResult,
    *,
    progress: Reporter | None,
    interval: float,
    private: bool,
    root: Path | None,
) -> None:
    """Skip the identical files, fetch the others; fills `result`."""
    todo = []
    for source, target in files:
        if is_identical(client, source, target):
            result.skipped.append(source.relative)
        else:
            todo.append((source, target))
    meter = ProgressMeter(
        progress,
        files_total=len(todo),
        bytes_total=sum(source.size - _partial_size(target) for source, target in todo),
        interval=interval,
    )
    touched: set[Path] = set()
    for source, target in todo:
        try:
            _folder_make(target, root)
            result.bytes_transferred += file_fetch(
                client, sftp, source, target, meter, private=private
            )
            result.copied.append(source.relative)
            touched.add(target.parent)
        except FileNotCopied as error:
            result.not_copied.append(NotCopied(source.relative, str(error)))
        meter.file_done()
    _fsync_directories(touched)
    meter.finish()


def _stopped(client: paramiko.SSHClient, what: str, error: BaseException) -> CopyFailed:
    """The error that stops a whole copy, from a failure outside a single file's transfer."""
    if isinstance(error, CopyFailed):
        return error
    transport = client.get_transport()
    if isinstance(error, CONNECTION_ERRORS) or transport is None or not transport.is_active():
        return ConnectionLost(
            f"The SSH connection to the source broke while copying {what} ({error}). "
            "Run the copy again: it continues where it stopped."
        )
    return CopyFailed(f"{what} could not be copied from the source: {error}")


def _copy(
    client: paramiko.SSHClient,
    what: str,
    listing: Callable[[paramiko.SFTPClient], tuple[list[tuple[RemoteFile, Path]], list[NotCopied]]],
    *,
    progress: Reporter | None,
    interval: float,
    private: bool,
    root: Path | None = None,
) -> CopyResult:
    """List, compare and fetch; whatever stops the copy carries the result so far.

    With a `root`, no file is written anywhere its path here leads outside it.
    """
    result = CopyResult()
    started = time.monotonic()
    sftp = sftp_open(client)
    try:
        files, others = listing(sftp)
        result.not_copied += others
        _copy_listed(
            client,
            sftp,
            files,
            result,
            progress=progress,
            interval=interval,
            private=private,
            root=root,
        )
    except (*CONNECTION_ERRORS, OSError, RemoteError) as error:
        stopped = _stopped(client, what, error)
        stopped.result = result
        raise stopped from None
    finally:
        sftp.close()
        result.seconds = time.monotonic() - started
    return result


def copy_tree(
    client: paramiko.SSHClient,
    source_dir: str,
    target_dir: Path,
    *,
    progress: Reporter | None = None,
    progress_interval: float = INTERVAL,
    private: bool = False,
) -> CopyResult:
    """Copy every regular file under `source_dir` on the source into `target_dir`.

    Nothing is written outside `target_dir`: names from the source that are not plain file
    names, and paths that lead out through a symbolic link here, are listed as not copied.
    """

    def listing(
        sftp: paramiko.SFTPClient,
    ) -> tuple[list[tuple[RemoteFile, Path]], list[NotCopied]]:
        files, others = remote_tree(sftp, source_dir)
        pairs, refused = _targets(target_dir, files)
        return pairs, others + refused

    return _copy(
        client,
        f"the folder {source_dir}",
        listing,
        progress=progress,
        interval=progress_interval,
        private=private,
        root=target_dir,
    )


def copy_file(
    client: paramiko.SSHClient,
    source_path: str,
    target_path: Path,
    *,
    private: bool = False,
    progress: Reporter | None = None,
    progress_interval: float = INTERVAL,
) -> CopyResult:
    """Copy one file; `private` keeps it 0600 (a key), also while it is written."""

    def listing(
        sftp: paramiko.SFTPClient,
    ) -> tuple[list[tuple[RemoteFile, Path]], list[NotCopied]]:
        attributes = sftp.stat(source_path)
        source = remote_file(source_path, target_path.name, attributes)
        if not stat.S_ISREG(attributes.st_mode or 0):
            return [], [NotCopied(source.relative, "not a regular file")]
        return [(source, target_path)], []

    return _copy(
        client,
        source_path,
        listing,
        progress=progress,
        interval=progress_interval,
        private=private,
    )
