"""A run's own SSH key pair: ed25519, made fresh for each run.

The private key stays in memory; when the caller gives a directory it is also written there in
OpenSSH format, readable by its owner only (created with mode 0600, never wider).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class RunKey:
    """A key pair for one run; `repr` never shows the private part."""

    private: paramiko.PKey
    public_line: str
    fingerprint: str
    path: Path | None = None
    pem: bytes = field(default=b"", repr=False)
    """The private key in OpenSSH format, for OpenSSH's own client (written to a private file)."""

    def __repr__(self) -> str:
        return f"RunKey({self.fingerprint}, path={self.path})"

    def forget(self) -> None:
        """Delete the private key file, if one was written."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def key_pair_make(*, comment: str = "", directory: Path | None = None) -> RunKey:
    """Make an ed25519 key pair; write the private key into `directory` (0600) when given."""
    secret = Ed25519PrivateKey.generate()
    pem = secret.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    private = paramiko.Ed25519Key(file_obj=io.StringIO(pem.decode()))
    public_line = f"{private.get_name()} {private.get_base64()}"
    if comment:
        public_line = f"{public_line} {comment}"
    path = private_key_write(directory, private.fingerprint, pem) if directory else None
    return RunKey(private, public_line, private.fingerprint, path, pem)


def private_key_write(directory: Path, fingerprint: str, pem: bytes) -> Path:
    """Write the key into a new file that is private from the moment it exists."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = "run-key-" + fingerprint.split(":", 1)[1].replace("/", "_").replace("+", "-")[:16]
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)
    return path
