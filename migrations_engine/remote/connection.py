"""Connect to a source over SSH with exactly the host key its peer API handed out.

The host key arrives through the pinned HTTPS channel of the peer API, so it is loaded as the
only known host key and any other key is refused (`RejectPolicy`). The connection goes to the
run's source address, never to a host the peer API's answer names. The check happens right after
the key exchange, before authentication: nothing is sent to a server that presents another key.
Only the run's own key authenticates: no password, no agent, no keys from the user's files.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import paramiko

from migrations_engine.remote.errors import (
    AuthenticationRefused,
    HostKeyMismatch,
    RemoteError,
    SourceUnreachable,
)
from migrations_engine.remote.keys import RunKey

# Large flow-control window and packets: the default 2 MiB window stalls bulk SFTP reads.
WINDOW_SIZE = 64 * 1024 * 1024
MAX_PACKET_SIZE = 256 * 1024
SSH_PORT = 22


@dataclass(frozen=True)
class SSHGrant:
    """Where and as whom to log in to a source, and the host key to pin (from the peer API)."""

    user: str
    host: str
    port: int
    host_key: str
    host_key_fingerprint: str
    key_fingerprint: str = ""
    expires_at: str = ""

    @classmethod
    def from_peer(cls, answer: dict[str, Any], *, host: str) -> SSHGrant:
        """Read the peer API's `credentials/ssh-key` answer for logging in at `host`, the run's
        source address (a host the answer names is not followed)."""
        return cls(
            user=str(answer["user"]),
            host=host,
            port=int(answer.get("port") or SSH_PORT),
            host_key=str(answer["host_key"]),
            host_key_fingerprint=str(answer.get("host_key_fingerprint", "")),
            key_fingerprint=str(answer.get("key_fingerprint", "")),
            expires_at=str(answer.get("expires_at", "")),
        )


def host_key_parse(line: str) -> paramiko.PKey:
    """A public key from an OpenSSH line ('type base64 [comment]'); RemoteError if unusable."""
    parts = line.split()
    if len(parts) < 2:
        raise RemoteError("The source did not tell its SSH host key; SSH cannot be trusted.")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except (binascii.Error, ValueError, paramiko.SSHException) as error:
        raise RemoteError(f"The source's SSH host key cannot be read ({error}).") from None


def known_host_name(host: str, port: int) -> str:
    """The name OpenSSH and paramiko file a host key under: host, or [host]:port."""
    return host if port == SSH_PORT else f"[{host}]:{port}"


def pinned_client(grant: SSHGrant) -> paramiko.SSHClient:
    """An SSH client that knows exactly one host key, the grant's, and rejects all others."""
    host_key = host_key_parse(grant.host_key)
    if grant.host_key_fingerprint and host_key.fingerprint != grant.host_key_fingerprint:
        raise RemoteError(
            "The source's SSH host key does not match the fingerprint it gave with it; "
            "SSH cannot be trusted."
        )
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    name = known_host_name(grant.host, grant.port)
    client.get_host_keys().add(name, host_key.get_name(), host_key)
    return client


def _transport(sock: Any, **options: Any) -> paramiko.Transport:
    return paramiko.Transport(
        sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE, **options
    )


def ssh_connect(grant: SSHGrant, key: RunKey, *, timeout: float = 15) -> paramiko.SSHClient:
    """Log in to the source with the run's key, its host key pinned; raise RemoteError if not."""
    client = pinned_client(grant)
    try:
        client.connect(
            grant.host,
            port=grant.port,
            username=grant.user,
            pkey=key.private,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            allow_agent=False,
            look_for_keys=False,
            transport_factory=_transport,
        )
    except paramiko.BadHostKeyException as error:
        client.close()
        raise HostKeyMismatch(
            grant.host, grant.port, error.expected_key.fingerprint, error.key.fingerprint
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        raise AuthenticationRefused(
            f"The source {grant.host}:{grant.port} refused this run's SSH key "
            f"({key.fingerprint}) for the user '{grant.user}': it was not authorised, has "
            "expired or was revoked. Running the step again asks the source for a new key."
        ) from None
    except (OSError, EOFError, paramiko.SSHException) as error:
        client.close()
        raise SourceUnreachable(
            f"No SSH connection to the source {grant.host}:{grant.port} ({error})."
        ) from None
    return client
