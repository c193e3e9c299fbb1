"""List a folder tree on the source without trusting the names or the size of its answers.

A source's SFTP listing is only its word: a hostile or broken server can answer with names that
would land outside the target folder here (`../x`, `/etc/x`, `a/b`), names no file can have
(empty, with a NUL), a folder that contains itself, or an endless list. Such names are refused
and listed as not copied, with the reason; the walk goes no deeper than `MAX_DEPTH` folders and
stops after `MAX_ENTRIES` entries, saying so.
"""

from __future__ import annotations

import posixpath
import stat
from dataclasses import dataclass, field
from typing import Any

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from migrations_engine.remote.transfer import RemoteFile

MAX_DEPTH = 32
"""How many folders deep the walk goes; a folder deeper down is not listed."""

MAX_ENTRIES = 200_000
"""How many files and folders one walk reads in all before it stops."""

SPECIAL_NAMES = (".", "..")
"""The folder itself and its parent: in every listing, never copied."""

SPECIAL_RAW_NAMES = tuple(name.encode() for name in SPECIAL_NAMES)


@dataclass(frozen=True)
class NotCopied:
    """A file that was not copied, and why."""

    path: str
    reason: str


def name_refusal(name: str) -> str | None:
    """Why a name the source listed cannot be a file name in a folder here (None if it can)."""
    if not name:
        return "name is empty"
    if "\0" in name:
        return "name contains a NUL character"
    if name.startswith("/"):
        return "name is absolute (it starts with '/')"
    if "/" in name:
        return "name contains '/'"
    if name in SPECIAL_NAMES:
        return "name leads outside the target directory"
    return None


def name_shown(name: str) -> str:
    """A name as a report can show it: characters that do not print are escaped."""
    if not name:
        return '""'
    return "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode()
        for character in name
    )


def remote_file(path: str, relative: str, attributes: paramiko.SFTPAttributes) -> RemoteFile:
    """The file at `path` on the source, as its attributes describe it."""
    return RemoteFile(
        path=path,
        relative=relative,
        size=attributes.st_size or 0,
        mtime=attributes.st_mtime or 0,
        atime=attributes.st_atime or attributes.st_mtime or 0,
    )


def folder_read(
    sftp: paramiko.SFTPClient, path: str, limit: int
) -> tuple[list[tuple[bytes, paramiko.SFTPAttributes]], bool]:
    """Up to `limit` entries of a folder on the source (raw names), and whether it has more.

    paramiko's `listdir_attr` reads a folder to its end, however long the source makes it, and
    fails on a name that is not UTF-8; this reads the same SFTP answers and stops at the limit.
    """
    client: Any = sftp  # paramiko has no public call that stops a listing early
    attributes_type: Any = paramiko.SFTPAttributes
    kind, message = client._request(CMD_OPENDIR, client._adjust_cwd(path))
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    handle = message.get_binary()
    entries: list[tuple[bytes, paramiko.SFTPAttributes]] = []
    more = False
    while not more:
        try:
            kind, message = client._request(CMD_READDIR, handle)
        except EOFError:
            break
        if kind != CMD_NAME:
            raise paramiko.SFTPError("Expected name response")
        for _ in range(message.get_int()):
            raw = message.get_binary()
            message.get_binary()  # the `ls -l` line, not needed
            attributes = attributes_type._from_msg(message)
            if raw in SPECIAL_RAW_NAMES:
                continue
            if len(entries) >= limit:
                more = True
                break
            entries.append((raw, attributes))
    client._request(CMD_CLOSE, handle)
    return entries, more


def _joined(relative: str, name: str) -> str:
    """`relative/name`, or `name` in the root folder; a refused name is kept as it was listed."""
    return f"{relative}/{name}" if relative else name


def _decoded(raw: bytes) -> tuple[str, str | None]:
    """A raw name as text, and why it is refused (None if it is not)."""
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        return raw.decode(errors="backslashreplace"), "name is not valid UTF-8"
    return name, name_refusal(name)


@dataclass
class _Walk:
    """One walk of a folder tree on the source: what it found, and how much it may still read."""

    sftp: paramiko.SFTPClient
    root: str
    files: list[RemoteFile] = field(default_factory=list)
    others: list[NotCopied] = field(default_factory=list)
    read: int = 0
    stopped: bool = False

    def folder(self, relative: str, depth: int) -> None:
        """List the folder `relative` (under the root), and the folders in it."""
        if self.stopped:
            return
        directory = posixpath.join(self.root, relative) if relative else self.root
        entries, more = folder_read(self.sftp, directory, MAX_ENTRIES - self.read)
        self.read += len(entries)
        if more:
            self.stopped = True
            self.others.append(
                NotCopied(
                    relative or ".",
                    f"the source listed more than {MAX_ENTRIES} files and folders; the listing "
                    "stopped here and the rest was not copied",
                )
            )
        seen: set[str] = set()
        for raw, attributes in sorted(entries, key=lambda entry: entry[0]):
            self.entry(relative, raw, attributes, depth, seen)

    def entry(
        self,
        relative: str,
        raw: bytes,
        attributes: paramiko.SFTPAttributes,
        depth: int,
        seen: set[str],
    ) -> None:
        """One entry of a folder: a file to copy, a folder to list, or something refused."""
        name, refusal = _decoded(raw)
        if refusal is None and name in seen:
            refusal = "the source listed this name twice"
        seen.add(name)
        if refusal is not None:
            self.others.append(NotCopied(_joined(relative, name_shown(name)), refusal))
            return
        path = _joined(relative, name)
        mode = attributes.st_mode or 0
        if stat.S_ISDIR(mode) and depth >= MAX_DEPTH:
            self.others.append(
                NotCopied(
                    path,
                    f"the folder is more than {MAX_DEPTH} levels deep; "
                    "what is in it was not listed",
                )
            )
        elif stat.S_ISDIR(mode):
            self.folder(path, depth + 1)
        elif stat.S_ISREG(mode):
            self.files.append(remote_file(posixpath.join(self.root, path), path, attributes))
        else:
            self.others.append(NotCopied(path, "not a regular file (link, device or socket)"))


def remote_tree(sftp: paramiko.SFTPClient, root: str) -> tuple[list[RemoteFile], list[NotCopied]]:
    """Every regular file under `root` on the source whose name is safe, and what is not."""
    walk = _Walk(sftp, root)
    walk.folder("", 0)
    return walk.files, walk.others
