"""OpenSSH's own client (`ssh`) for the bulk bytes of a copy, with the same trust as paramiko.

paramiko moves every packet through Python, which caps a copy at a third of what the machine
can do; OpenSSH's client runs at line speed. It is driven so that it trusts exactly what the
paramiko connection trusts: a known-hosts file holding only the host key the peer API handed
out (`StrictHostKeyChecking=yes`, host key algorithms of that key only), the run's own key
(`IdentitiesOnly=yes`, no agent, no password), no user or system configuration (`-F /dev/null`),
and `BatchMode=yes` so that it never asks anything. The key and the known-hosts file live in a
private folder (0700, files 0600) for as long as the link is open; the command line carries
only their paths, never a secret. A host key other than the pinned one stops the connection
after the key exchange, before the run's key is offered.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migrations_engine.remote.connection import SSHGrant, known_host_name
from migrations_engine.remote.errors import (
    AuthenticationRefused,
    ConnectionLost,
    HostKeyMismatch,
    RemoteError,
)
from migrations_engine.remote.keys import RunKey, private_key_write

CIPHERS = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr"
"""AES-GCM first: with AES instructions it costs the least CPU on both sides."""

HOST_KEY_ALGORITHMS = {"ssh-rsa": "rsa-sha2-512,rsa-sha2-256"}
"""Signature algorithms for a key type whose algorithm names differ from the type's name."""

HOST_KEY_CHANGED = re.compile(r"Host key verification failed|HOST IDENTIFICATION HAS CHANGED")
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/=]+")
AUTH_REFUSED = "Permission denied"


@dataclass(frozen=True)
class OpenSSHLink:
    """How to run a command on the source with OpenSSH's client, trusting only the grant."""

    grant: SSHGrant
    options: tuple[str, ...]

    def argv(self, command: str) -> list[str]:
        """The `ssh` command line that runs `command` (a shell command) on the source."""
        return [*self.options, "--", self.grant.host, command]

    def error(self, status: int, stderr: str) -> RemoteError:
        """What a failed `ssh` means, for the administrator."""
        if HOST_KEY_CHANGED.search(stderr):
            presented = FINGERPRINT.findall(stderr)
            return HostKeyMismatch(
                self.grant.host,
                self.grant.port,
                self.grant.host_key_fingerprint or "the pinned key",
                presented[-1] if presented else "another key",
            )
        if AUTH_REFUSED in stderr:
            return AuthenticationRefused(
                f"The source {self.grant.host}:{self.grant.port} refused this run's SSH key "
                f"for the user '{self.grant.user}' when the copy connected again."
            )
        detail = stderr.strip()[-300:] or f"exit {status}"
        return ConnectionLost(
            f"The SSH connection to the source {self.grant.host}:{self.grant.port} broke during "
            f"the copy ({detail}). Run the copy again: it continues where it stopped."
        )


def ssh_program() -> str:
    """The path of OpenSSH's client; RemoteError if it is not installed."""
    program = shutil.which("ssh")
    if program is None:
        raise RemoteError("OpenSSH's client (ssh) is not installed on this system.")
    return program


def host_key_algorithms(host_key: str) -> str:
    """The algorithms the pinned key signs with: the server must show this key, no other."""
    key_type = host_key.split()[0]
    return HOST_KEY_ALGORITHMS.get(key_type, key_type)


def ssh_options(grant: SSHGrant, key_file: Path, known_hosts: Path, timeout: float) -> list[str]:
    """OpenSSH's client options: pinned host key, the run's key only, nothing asked."""
    settings = {
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "HostKeyAlgorithms": host_key_algorithms(grant.host_key),
        "CheckHostIP": "no",
        "UpdateHostKeys": "no",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "PubkeyAuthentication": "yes",
        "ControlMaster": "no",
        "ControlPath": "none",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "ClearAllForwardings": "yes",
        "Compression": "no",
        "Ciphers": CIPHERS,
        "ConnectTimeout": str(round(timeout)),
        "ServerAliveInterval": "15",
        "ServerAliveCountMax": "4",
        "LogLevel": "ERROR",
    }
    options = [ssh_program(), "-F", "/dev/null", "-T", "-i", str(key_file)]
    options += ["-p", str(grant.port), "-l", grant.user]
    for name, value in settings.items():
        options += ["-o", f"{name}={value}"]
    return options


@contextmanager
def openssh_link(grant: SSHGrant, key: RunKey, *, timeout: float = 15) -> Iterator[OpenSSHLink]:
    """Write the key and the pinned host key into a private folder; remove it at the end."""
    if not key.pem:
        raise RemoteError("The run's SSH key cannot be handed to OpenSSH's client.")
    folder = Path(tempfile.mkdtemp(prefix="migration-ssh-"))  # mode 0700
    try:
        key_file = private_key_write(folder, key.fingerprint, key.pem)
        known_hosts = folder / "known_hosts"
        host_key = " ".join(grant.host_key.split()[:2])
        known_hosts.write_text(f"{known_host_name(grant.host, grant.port)} {host_key}\n")
        yield OpenSSHLink(grant, tuple(ssh_options(grant, key_file, known_hosts, timeout)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
