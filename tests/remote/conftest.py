"""Fixtures for the SSH tests: a real OpenSSH server on 127.0.0.5 and keys it accepts.

The session's server listens on 127.0.0.5:2222 and logs in as root with keys only. Keys are
authorised with the same authorized_keys line the peer API writes (`restrict`, an expiry), either
directly (`authorise`) or through the peer API itself in the Django tests (`source_node`).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paramiko
import pytest

from devtools.sshd import SSHServer
from migrations_engine.remote.connection import SSHGrant, host_key_parse, ssh_connect
from migrations_engine.remote.keys import RunKey, key_pair_make

HOST = os.environ.get("TEST_SSH_HOST", "127.0.0.5")
PORT = 2222


def authorise(server: SSHServer, key: RunKey, run: str = "test") -> None:
    """Authorise `key` on `server` with the line the peer API writes."""
    expiry = datetime.now(UTC) + timedelta(hours=1)
    key_part = " ".join(key.public_line.split()[:2])
    line = f'restrict,expiry-time="{expiry:%Y%m%d%H%M%S}Z" {key_part} migration-run-{run}\n'
    with server.authorized_keys.open("a") as handle:
        handle.write(line)


def grant_for(server: SSHServer) -> SSHGrant:
    """The grant the peer API would hand out for `server`."""
    host_key = " ".join(server.host_public_key.read_text().split()[:2])
    return SSHGrant(
        user=server.user,
        host=server.host,
        port=server.port,
        host_key=host_key,
        host_key_fingerprint=host_key_parse(host_key).fingerprint,
    )


def start_server(directory: Path, port: int) -> SSHServer:
    server = SSHServer(directory=directory, host=HOST, port=port, user="root")
    server.start()
    return server


def random_gzip(path: Path, size: int) -> Path:
    """A gzip file of about `size` bytes of random (incompressible) data, written quickly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        left = size
        while left > 0:
            chunk = min(left, 1 << 20)
            handle.write(os.urandom(chunk))
            left -= chunk
    return path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """The session's OpenSSH server on 127.0.0.5:2222."""
    server = start_server(tmp_path_factory.mktemp("sshd"), PORT)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def session_key(sshd: SSHServer) -> RunKey:
    """A key the session's server accepts."""
    key = key_pair_make(comment="tests")
    authorise(sshd, key)
    return key


@pytest.fixture
def connect(sshd: SSHServer, session_key: RunKey) -> Iterator[Callable[[], paramiko.SSHClient]]:
    """Open connections to the session's server; all are closed after the test."""
    clients: list[paramiko.SSHClient] = []

    def open_one() -> paramiko.SSHClient:
        client = ssh_connect(grant_for(sshd), session_key, timeout=5)
        clients.append(client)
        return client

    yield open_one
    for client in clients:
        client.close()


@pytest.fixture
def ssh_client(connect: Callable[[], paramiko.SSHClient]) -> paramiko.SSHClient:
    """A connection to the session's server."""
    return connect()


@pytest.fixture
def source_node(settings: Any, sshd: SSHServer) -> SSHServer:
    """Point this node's SSH settings at the session's server, as a source would be set up."""
    settings.APPLIANCE_SSH_AUTHORIZED_KEYS = sshd.authorized_keys
    settings.APPLIANCE_SSH_HOST_KEY = sshd.host_public_key
    settings.APPLIANCE_SSH_HOST = sshd.host
    settings.APPLIANCE_SSH_PORT = sshd.port
    settings.APPLIANCE_SSH_USER = sshd.user
    return sshd


class TestPeer:
    """The peer API through Django's test client, with what `ssh_session` needs."""

    __test__ = False
    address = HOST

    def __init__(self, call: Callable[..., Any]) -> None:
        self.call = call

    def ssh_key(self, run: str, public_key: str) -> dict[str, Any]:
        response = self.call("POST", "credentials/ssh-key", {"run": run, "public_key": public_key})
        assert response.status_code == 201, response.content
        return dict(response.json())

    def revoke(self, run: str, kind: str | None = None) -> int:
        body = {"run": run} if kind is None else {"run": run, "kind": kind}
        response = self.call("POST", "credentials/revoke", body)
        assert response.status_code == 200, response.content
        return int(response.json()["revoked"])


@pytest.fixture
def source_peer(source_node: SSHServer, peer: Callable[..., Any]) -> TestPeer:
    """The source's peer API, its SSH settings pointing at the session's server."""
    return TestPeer(peer)
