"""A hostile source for the tests: a real paramiko SSH server whose SFTP listings lie.

It serves a real folder under the name `ROOT`, but its listing of that folder adds names no
honest server gives (`../../escape.txt`, an absolute name, `a/b`, a NUL, an empty name, bytes
that are not UTF-8), a folder that contains itself, or as many made-up names as asked. Reading
one of the made-up names gives `PAYLOAD`, with the mode bits `PAYLOAD_MODE`. The copy's hashing
and sending commands over an exec channel (`r <path> OFFSET N | h`, `r <path> OFFSET N`, one line
per file, see `migrations_engine.remote.streams`) answer with the real hash and the real
bytes of what reading that path gives, as a real source would, for paramiko and OpenSSH's client.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shlex
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED

from migrations_engine.remote.connection import SSHGrant
from migrations_engine.remote.hashing import HASHER, READER
from migrations_engine.remote.keys import RunKey, key_pair_make

HOST = "127.0.0.6"
USER = "root"
ROOT = "/logs"
PAYLOAD = b"* * * * * root echo written by the source\n"
PAYLOAD_MODE = stat.S_IFREG | 0o4777
PAYLOAD_MTIME = 1_700_000_000


@dataclass
class HostileSource:
    """What the server serves: a real folder, made-up names and self-containing folders."""

    served: Path
    made_up: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)

    def is_loop(self, path: str) -> bool:
        """`ROOT/loop`, `ROOT/loop/loop`, ...: a folder that lists only itself."""
        parts = path.removeprefix(ROOT + "/").split("/")
        return path.startswith(ROOT + "/") and len(set(parts)) == 1 and parts[0] in self.loops

    def real(self, path: str) -> Path | None:
        """The real file or folder behind a path under `ROOT`, if there is one."""
        if path == ROOT:
            return self.served
        if not path.startswith(ROOT + "/"):
            return None
        relative = path.removeprefix(ROOT + "/")
        if ".." in relative.split("/"):
            return None
        real = self.served / relative
        return real if real.exists() else None

    def content(self, path: str) -> bytes | None:
        """What reading `path` gives: a real file's bytes, `PAYLOAD` for a made-up name."""
        if path in {posixpath.join(ROOT, name) for name in self.made_up}:
            return PAYLOAD
        real = self.real(path)
        return real.read_bytes() if real is not None and real.is_file() else None

    def listing(self, path: str) -> list[paramiko.SFTPAttributes] | None:
        """The entries of a folder as this server tells them."""
        if self.is_loop(path):
            return [folder_attributes(path.rsplit("/", 1)[1])]
        real = self.real(path)
        if real is None or not real.is_dir():
            return None
        entries = [
            paramiko.SFTPAttributes.from_stat(child.lstat(), child.name)
            for child in sorted(real.iterdir())
        ]
        if path == ROOT:
            entries += [payload_attributes(name) for name in self.made_up]
            entries += [folder_attributes(name) for name in self.loops]
        return entries

    def attributes(self, path: str) -> paramiko.SFTPAttributes | None:
        """What `stat` says about a path."""
        if self.is_loop(path):
            return folder_attributes(path.rsplit("/", 1)[1])
        if path in {posixpath.join(ROOT, name) for name in self.made_up}:
            return payload_attributes(posixpath.basename(path))
        real = self.real(path)
        return None if real is None else paramiko.SFTPAttributes.from_stat(real.stat())


def payload_attributes(name: str) -> paramiko.SFTPAttributes:
    """A made-up file; its name is sent as it is, even bytes that are not UTF-8 (`\udcff`)."""
    attributes: Any = paramiko.SFTPAttributes()
    attributes.filename = name.encode("utf-8", "surrogateescape")
    attributes.st_mode = PAYLOAD_MODE
    attributes.st_size = len(PAYLOAD)
    attributes.st_mtime = attributes.st_atime = PAYLOAD_MTIME
    attributes.st_uid = attributes.st_gid = 0
    return attributes


def folder_attributes(name: str) -> paramiko.SFTPAttributes:
    attributes = paramiko.SFTPAttributes()
    attributes.filename = name
    attributes.st_mode = stat.S_IFDIR | 0o755
    attributes.st_size = 4096
    attributes.st_mtime = attributes.st_atime = PAYLOAD_MTIME
    attributes.st_uid = attributes.st_gid = 0
    return attributes


class _Handle(paramiko.SFTPHandle):
    """An open file: its bytes, read from memory."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.readfile = io.BytesIO(data)


class _SFTP(paramiko.SFTPServerInterface):
    """Read-only SFTP over a `HostileSource`."""

    def __init__(self, server: paramiko.ServerInterface, source: HostileSource) -> None:
        super().__init__(server)
        self.source = source

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        entries = self.source.listing(path)
        return SFTP_NO_SUCH_FILE if entries is None else entries

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        attributes = self.source.attributes(path)
        return SFTP_NO_SUCH_FILE if attributes is None else attributes

    lstat = stat

    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        if flags & (os.O_WRONLY | os.O_RDWR):
            return SFTP_PERMISSION_DENIED
        data = self.source.content(path)
        return SFTP_NO_SUCH_FILE if data is None else _Handle(data)

    def canonicalize(self, path: str) -> str:
        return path


class _Server(paramiko.ServerInterface):
    """Logs in one key as root; runs `sha256sum` on the served files and nothing else."""

    def __init__(self, client_key: paramiko.PKey | None, source: HostileSource) -> None:
        self.client_key = client_key
        self.source = source

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if self.client_key is None:  # the source lets any key in: it is the one lying here
            return AUTH_SUCCESSFUL
        if username == USER and key.get_base64() == self.client_key.get_base64():
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        """Answer from a thread of its own (a long answer waits for the client's window); the
        client closes the channel once it has the exit status."""
        threading.Thread(target=self.answer, args=(channel, command.decode()), daemon=True).start()
        return True

    def answer(self, channel: paramiko.Channel, command: str) -> None:
        """Run the copy's commands, one per line, on the served files."""
        status = 127
        try:
            for line in command.splitlines():
                if line.startswith((f"{HASHER}() ", "if dd ")):
                    continue  # the copy's shell functions: this server does their work itself
                status, printed = self.run(line)
                channel.sendall(printed)
            channel.send_exit_status(status)
            channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the client went away

    def run(self, command: str) -> tuple[int, bytes]:
        """What one of the copy's commands prints for a served path, with its exit status:
        `r P OFFSET N | h` (a hash), `r P OFFSET N` (bytes), and the latter padded with zeros
        (`{ r ...; head -c N /dev/zero; } | head -c N`)."""
        words = [word for word in shlex.split(command.replace(";", " ; ")) if word != "2>/dev/null"]
        padded = words[:1] == ["{"]
        if padded:
            words = words[1 : words.index(";")]
        if len(words) < 4 or words[0] != READER:
            return 127, b""
        data = self.source.content(words[1])
        if data is None:
            return 1, b""
        start, length = int(words[2]), int(words[3])
        part = data[start : start + length]
        if words[4:] == ["|", HASHER]:
            return 0, f"{hashlib.sha256(part).hexdigest()}  -\n".encode()
        return 0, part + bytes(length - len(part)) if padded else part


@dataclass
class HostileServer:
    """The server, listening on `host` (a free port unless told), and the key it lets in
    (any key when `any_key`)."""

    source: HostileSource
    host_key: RunKey = field(default_factory=key_pair_make)
    client_key: RunKey = field(default_factory=key_pair_make)
    port: int = 0
    host: str = HOST
    any_key: bool = False
    listener: socket.socket | None = None
    transports: list[paramiko.Transport] = field(default_factory=list)

    @property
    def grant(self) -> SSHGrant:
        """The grant a source's peer API would hand out for this server."""
        return SSHGrant(
            user=USER,
            host=HOST,
            port=self.port,
            host_key=self.host_key.public_line,
            host_key_fingerprint=self.host_key.fingerprint,
        )

    def start(self) -> None:
        self.listener = socket.create_server((self.host, self.port))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(self.host_key.private)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _SFTP, self.source)
            self.transports.append(transport)
            client_key = None if self.any_key else self.client_key.private
            try:
                transport.start_server(server=_Server(client_key, self.source))
            except (paramiko.SSHException, EOFError):
                continue  # a port check: it connected and went

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
        for transport in self.transports:
            transport.close()
        deadline = time.monotonic() + 5
        while any(t.is_alive() for t in self.transports) and time.monotonic() < deadline:
            time.sleep(0.05)
