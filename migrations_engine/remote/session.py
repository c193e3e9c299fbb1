"""An SSH session for one run: key made, authorised by the source, used, and always revoked.

    with ssh_session(peer, run_ref) as session:
        copy_tree(session, "/var/log/traffic", target_dir)

The source authorises the run's public key through its peer API (for logins from this system's
address only) and answers with the host key to pin; the connection goes to the address the peer
API was reached at, whatever host the answer names. At the end (also when the work fails) the
key is revoked through the peer API and the private key file, if any, is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paramiko

from migrations_engine.remote.connection import SSHGrant, ssh_connect
from migrations_engine.remote.keys import RunKey, key_pair_make

logger = logging.getLogger(__name__)


class KeyAuthority(Protocol):
    """What the session needs of the source's peer API (`PeerClient` has it)."""

    address: str

    def ssh_key(self, run: str, public_key: str) -> dict[str, Any]: ...

    def revoke(self, run: str, kind: str | None = None) -> int: ...


@dataclass
class SSHSession:
    """The run's connection to the source, and what is needed to open another one."""

    grant: SSHGrant
    key: RunKey = field(repr=False)
    client: paramiko.SSHClient
    timeout: float = 15

    def connect(self) -> paramiko.SSHClient:
        """A new connection with the same grant and key (after a reboot, say)."""
        return ssh_connect(self.grant, self.key, timeout=self.timeout)


def _revoke_quietly(peer: KeyAuthority, run: str) -> None:
    """Revoke while another error is on its way; a failure here must not hide that error."""
    try:
        peer.revoke(run, kind="ssh_key")
    except Exception as error:
        logger.warning("Could not revoke the SSH key of run %s: %s", run, error)


@contextmanager
def ssh_key_granted(peer: KeyAuthority, run: str, key: RunKey) -> Iterator[SSHGrant]:
    """Have the source authorise `key` for `run`; revoke it when the block ends, however."""
    try:
        grant = SSHGrant.from_peer(peer.ssh_key(run, key.public_line), host=peer.address)
        logger.info("Source authorised SSH key %s for run %s", key.fingerprint, run)
        yield grant
    except BaseException:
        _revoke_quietly(peer, run)
        raise
    peer.revoke(run, kind="ssh_key")
    logger.info("SSH key %s of run %s revoked", key.fingerprint, run)


@contextmanager
def ssh_session(
    peer: KeyAuthority, run: str, *, key_directory: Path | None = None, timeout: float = 15
) -> Iterator[SSHSession]:
    """Make a key, have it authorised, connect with the host key pinned; clean up at the end."""
    key = key_pair_make(comment=f"migration-run-{run}", directory=key_directory)
    try:
        with ssh_key_granted(peer, run, key) as grant:
            client = ssh_connect(grant, key, timeout=timeout)
            try:
                yield SSHSession(grant, key, client, timeout)
            finally:
                client.close()
    finally:
        key.forget()
