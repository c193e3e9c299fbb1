"""Copy a directory tree (the traffic logs) or single files (a certificate and key) from the source.

Only what the current system lacks is transferred. Same size and modification time counts as
identical; same size with another time is settled by comparing SHA-256 hashes. A file that grew
since an earlier copy (an active, append-only log) has its old part checked by hash (the first N
bytes on the source against the file here) and then only its new bytes are fetched; an
interrupted fetch continues inside its `.partial` file. Files here that the source no longer
has are listed (`not_on_source`), never deleted. A second pass over an unchanged tree transfers
nothing.

The bytes go through OpenSSH's client when the copy is given the run's `SSHSession` (line
speed, `openssh`), through SFTP on a bare paramiko connection; in both, batches of files are
hashed on the source while they are transferred and hashed here as they arrive
(`transfer.receive`); a file whose hashes differ is fetched once more from the start. An
optional bandwidth limit (bytes per second) holds the transfer at that rate, and the progress
ETA follows it.

The source's listing is not trusted (`listing.remote_tree` refuses names that are not plain file
names and bounds the walk), and neither are the folders here: a file whose path here leads out
of the target folder, through a symbolic link already on this side, is not copied either.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from appliance.progress import INTERVAL, RateLimit, Reporter
from migrations_engine.remote.connection import MAX_PACKET_SIZE, WINDOW_SIZE
from migrations_engine.remote.errors import (
    AuthenticationRefused,
    ConnectionLost,
    CopyFailed,
    HostKeyMismatch,
    RemoteError,
    TargetWriteError,
)
from migrations_engine.remote.hashing import (
    HashRequest,
    RemoteHashes,
    local_sha256,
    remote_sha256,
)
from migrations_engine.remote.listing import NotCopied, remote_file, remote_tree
from migrations_engine.remote.openssh import OpenSSHLink, openssh_link
from migrations_engine.remote.progress import ProgressMeter
from migrations_engine.remote.session import SSHSession
from migrations_engine.remote.streams import OpenSSHStream, SFTPStream
from migrations_engine.remote.transfer import (
    CONNECTION_ERRORS,
    FILE_MODE,
    PRIVATE_MODE,
    Fetch,
    FileNotCopied,
    RemoteFile,
    discard,
    fetch_plan,
    finish,
    local_error,
    partial_path,
    receive,
)

LEADS_OUTSIDE = "name leads outside the target directory (through a symbolic link on this system)"
LINK_LOOP = "its path on this system goes round a loop of symbolic links"


BATCH_FILES = 200
"""Files sent by one `ssh` command (and hashed by one command on the source)."""

BATCH_COMMAND_BYTES = 60_000
"""The longest shell command one batch sends (file names included)."""

HASHES_DIFFER = "its SHA-256 differs from the source's (did it change during the copy?)"


@dataclass
class CopyResult:
    """What a copy did, by path relative to the copied directory.

    `grown` are files of which only the new end was fetched (their old part checked by hash);
    `not_on_source` are files here that the source does not have (left in place); `sha256`
    gives the verified hash of each copied file; `bytes_transferred` counts what came over the
    network (a grown file's new end only).
    """

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_copied: list[NotCopied] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    not_on_source: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)
    bytes_transferred: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.not_copied


@dataclass
class _Copier:
    """One copy's connection, settings and result; fetches files batch by batch."""

    client: paramiko.SSHClient
    sftp: paramiko.SFTPClient
    link: OpenSSHLink | None
    result: CopyResult
    mode: int
    root: Path | None
    limit: RateLimit
    worker: Executor

    def is_identical(self, source: RemoteFile, target: Path) -> bool:
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
        remote = remote_sha256(self.client, source.path, source.size)
        if local_sha256(target).hexdigest() != remote:
            return False
        os.utime(target, (source.atime, source.mtime), follow_symlinks=False)
        return True

    def grown_fetch(self, source: RemoteFile, target: Path) -> Fetch | None:
        """A fetch of only the new end of a file that grew, if its old part here is the
        source's first bytes (checked by hash); the file becomes the partial file meanwhile."""
        try:
            local = target.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(local.st_mode) or not 0 < local.st_size < source.size:
            return None
        digest = local_sha256(target)
        remote = remote_sha256(self.client, source.path, local.st_size)
        if digest.hexdigest() != remote:
            return None
        temp = partial_path(target)
        temp.unlink(missing_ok=True)
        os.replace(target, temp)
        return Fetch(source, target, local.st_size, digest)

    def plan(self, source: RemoteFile, target: Path) -> Fetch | None:
        """What to fetch of one file: None if it is already here."""
        _folder_make(target, self.root)
        if self.is_identical(source, target):
            self.result.skipped.append(source.relative)
            return None
        grown = self.grown_fetch(source, target)
        if grown is not None:
            self.result.grown.append(source.relative)
            return grown
        return fetch_plan(source, target)

    def plans(self, files: list[tuple[RemoteFile, Path]]) -> list[Fetch]:
        """The fetches for the listed files; a file refused here is listed as not copied."""
        fetches = []
        for source, target in files:
            try:
                fetch = self.plan(source, target)
            except FileNotCopied as error:
                self.result.not_copied.append(NotCopied(source.relative, str(error)))
                continue
            except OSError as error:
                raise local_error(target, error) from None
            if fetch is not None:
                fetches.append(fetch)
        return fetches

    @contextmanager
    def stream(self, batch: list[Fetch], padded: bool) -> Iterator[OpenSSHStream | SFTPStream]:
        if self.link is None:
            opened: OpenSSHStream | SFTPStream = SFTPStream(self.sftp)
        else:
            opened = OpenSSHStream(self.link, batch, padded=padded)
        try:
            yield opened
        finally:
            opened.close()

    def batch(self, batch: list[Fetch], meter: ProgressMeter, padded: bool = False) -> list[Fetch]:
        """Fetch a batch while the source hashes it, then compare; returns the fetches whose
        hashes differ (their partial files removed)."""
        requests = [HashRequest(fetch.source.path, fetch.source.size) for fetch in batch]
        hashes = RemoteHashes(self.client, requests)
        received = 0
        try:
            with self.stream(batch, padded) as stream:
                for fetch in batch:
                    self.result.bytes_transferred += receive(
                        stream, fetch, meter, self.limit, self.worker
                    )
                    received += 1
        except TargetWriteError:
            discard(batch[received])  # this disk is full: what is complete is still kept
            self.settle_all(batch[:received], hashes, meter)
            raise
        finally:
            if received < len(batch):
                hashes.close()
        try:
            return self.settle_all(batch, hashes, meter)
        finally:
            hashes.close()

    def settle_all(
        self, batch: list[Fetch], hashes: RemoteHashes, meter: ProgressMeter
    ) -> list[Fetch]:
        """Settle the received files of a batch; returns those whose hashes differ."""
        return [
            fetch
            for index, fetch in enumerate(batch)
            if not self.settle(fetch, hashes, index, meter)
        ]

    def settle(self, fetch: Fetch, hashes: RemoteHashes, index: int, meter: ProgressMeter) -> bool:
        """Put a received file in place if its hashes are equal; False if they differ. A file
        the source could not hash is listed as not copied."""
        try:
            expected = hashes.digest(index)
        except RemoteError as error:
            if isinstance(error, CopyFailed):
                raise
            discard(fetch)
            self.result.not_copied.append(NotCopied(fetch.source.relative, str(error)))
            meter.file_done()
            return True
        if fetch.synced is not None:
            fetch.synced.result()  # every byte hashed and on disk: the worker keeps their order
        if fetch.digest.hexdigest() != expected:
            discard(fetch)
            return False
        finish(fetch, self.mode)
        self.result.copied.append(fetch.source.relative)
        self.result.sha256[fetch.source.relative] = expected
        meter.file_done()
        return True

    def run(self, fetches: list[Fetch], meter: ProgressMeter) -> None:
        """Fetch everything, oldest files first (the active log, which may change, comes last);
        a file whose hashes differ is fetched once more from the start, padded."""
        differ = []
        fetches = sorted(fetches, key=lambda fetch: fetch.source.mtime)
        for batch in batches(fetches):
            differ += self.batch(batch, meter)
        again = [fetch_plan(fetch.source, fetch.target) for fetch in differ]
        meter.bytes_total += sum(fetch.length for fetch in again)
        for batch in batches(again):
            for fetch in self.batch(batch, meter, padded=True):
                self.result.not_copied.append(NotCopied(fetch.source.relative, HASHES_DIFFER))
                meter.file_done()


def batches(fetches: list[Fetch]) -> Iterator[list[Fetch]]:
    """The fetches in groups small enough for one command each."""
    batch: list[Fetch] = []
    size = 0
    for fetch in fetches:
        cost = len(fetch.source.path) * 2 + 120
        if batch and (len(batch) >= BATCH_FILES or size + cost > BATCH_COMMAND_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(fetch)
        size += cost
    if batch:
        yield batch


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


def _stopped(client: paramiko.SSHClient, what: str, error: BaseException) -> CopyFailed:
    """The error that stops a whole copy, from a failure outside a single file's transfer."""
    if isinstance(error, CopyFailed):
        return error
    if isinstance(error, HostKeyMismatch | AuthenticationRefused):
        return CopyFailed(str(error))
    transport = client.get_transport()
    if isinstance(error, CONNECTION_ERRORS) or transport is None or not transport.is_active():
        return ConnectionLost(
            f"The SSH connection to the source broke while copying {what} ({error}). "
            "Run the copy again: it continues where it stopped."
        )
    return CopyFailed(f"{what} could not be copied from the source: {error}")


def _not_on_source(root: Path, files: list[RemoteFile]) -> list[str]:
    """Regular files under `root` here (partial files aside) that the source did not list.
    Symbolic links here are not followed."""
    listed = {source.relative for source in files}
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            relative = str(path.relative_to(root))
            is_partial = name.startswith(".") and name.endswith(".partial")
            if relative in listed or is_partial or path.is_symlink():
                continue
            if path.is_file():
                found.append(relative)
    return sorted(found)


Listing = Callable[[paramiko.SFTPClient], tuple[list[tuple[RemoteFile, Path]], list[NotCopied]]]


@contextmanager
def _bulk_link(source: paramiko.SSHClient | SSHSession) -> Iterator[OpenSSHLink | None]:
    """OpenSSH's client for a session (a changed host key stops its first connection after the
    key exchange, before anything is sent); none for a bare paramiko connection."""
    if not isinstance(source, SSHSession):
        yield None
        return
    with openssh_link(source.grant, source.key, timeout=source.timeout) as link:
        yield link


def _copy(
    source: paramiko.SSHClient | SSHSession,
    what: str,
    listing: Listing,
    *,
    progress: Reporter | None,
    interval: float,
    private: bool,
    root: Path | None = None,
    bwlimit: int | None = None,
) -> CopyResult:
    """List, compare and fetch; whatever stops the copy carries the result so far.

    With a `root`, no file is written anywhere its path here leads outside it, and the files
    here that the source does not have are listed.
    """
    client = source.client if isinstance(source, SSHSession) else source
    result = CopyResult()
    started = time.monotonic()
    sftp = sftp_open(client)
    try:
        files, others = listing(sftp)
        result.not_copied += others
        with _bulk_link(source) as link, ThreadPoolExecutor(1) as worker:
            copier = _Copier(
                client,
                sftp,
                link,
                result,
                PRIVATE_MODE if private else FILE_MODE,
                root,
                RateLimit(bwlimit),
                worker,
            )
            fetches = copier.plans(files)
            meter = ProgressMeter(
                progress,
                files_total=len(fetches),
                bytes_total=sum(fetch.length for fetch in fetches),
                interval=interval,
                rate_limit=bwlimit,
            )
            copier.run(fetches, meter)
            _fsync_directories({target.parent for _, target in files if target.parent.exists()})
            meter.finish()
        if root is not None:
            result.not_on_source = _not_on_source(root, [file for file, _ in files])
    except (HostKeyMismatch, AuthenticationRefused):
        raise
    except (*CONNECTION_ERRORS, OSError, RemoteError) as error:
        stopped = _stopped(client, what, error)
        stopped.result = result
        raise stopped from None
    finally:
        sftp.close()
        result.seconds = time.monotonic() - started
    return result


def copy_tree(
    source: paramiko.SSHClient | SSHSession,
    source_dir: str,
    target_dir: Path,
    *,
    progress: Reporter | None = None,
    progress_interval: float = INTERVAL,
    private: bool = False,
    bwlimit: int | None = None,
) -> CopyResult:
    """Copy every regular file under `source_dir` on the source into `target_dir`.

    `source` is the run's `SSHSession` (bytes through OpenSSH's client) or a paramiko
    connection (bytes over SFTP). `bwlimit` caps the transfer in bytes per second (None: no
    limit). Nothing is written outside `target_dir`: names from the source that are not plain
    file names, and paths that lead out through a symbolic link here, are listed as not copied.
    """

    def listing(
        sftp: paramiko.SFTPClient,
    ) -> tuple[list[tuple[RemoteFile, Path]], list[NotCopied]]:
        files, others = remote_tree(sftp, source_dir)
        pairs, refused = _targets(target_dir, files)
        return pairs, others + refused

    return _copy(
        source,
        f"the folder {source_dir}",
        listing,
        progress=progress,
        interval=progress_interval,
        private=private,
        root=target_dir,
        bwlimit=bwlimit,
    )


def copy_file(
    source: paramiko.SSHClient | SSHSession,
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
        remote = remote_file(source_path, target_path.name, attributes)
        if not stat.S_ISREG(attributes.st_mode or 0):
            return [], [NotCopied(remote.relative, "not a regular file")]
        return [(remote, target_path)], []

    return _copy(
        source,
        source_path,
        listing,
        progress=progress,
        interval=progress_interval,
        private=private,
    )
