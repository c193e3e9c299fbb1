"""The run's SSH key on a source logs in only from the address that asked for it, and the session
goes to the address the peer API was reached at, whatever host the answer names.

A private OpenSSH server on the tests' loopback address plays the source's SSH service.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from devtools.sshd import SSHServer
from migrations_engine.remote.commands import run_command
from migrations_engine.remote.connection import SSHGrant, ssh_connect
from migrations_engine.remote.errors import AuthenticationRefused
from migrations_engine.remote.keys import RunKey, key_pair_make
from migrations_engine.remote.session import ssh_session

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

Peer = Callable[..., Any]
HOST = os.environ.get("TEST_DATACOPY_SOURCE_HOST", "127.0.0.3")
PORT = 2227
ELSEWHERE = "192.0.2.10"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    server = SSHServer(directory=tmp_path_factory.mktemp("sshd"), host=HOST, port=PORT)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def source_ssh(settings: Any, sshd: SSHServer) -> SSHServer:
    """This node's SSH settings pointing at the private server."""
    settings.APPLIANCE_SSH_AUTHORIZED_KEYS = sshd.authorized_keys
    settings.APPLIANCE_SSH_HOST_KEY = sshd.host_public_key
    settings.APPLIANCE_SSH_HOST = sshd.host
    settings.APPLIANCE_SSH_PORT = sshd.port
    settings.APPLIANCE_SSH_USER = sshd.user
    return sshd


def authorise(client: Client, token: str, run: str, key: RunKey, address: str) -> dict[str, Any]:
    """Ask the peer API to authorise `key`, as a caller at `address`."""
    response = client.generic(
        "POST",
        "/api/peer/v1/credentials/ssh-key",
        data=json.dumps({"run": run, "public_key": key.public_line}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
        REMOTE_ADDR=address,
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def test_the_key_logs_in_only_from_the_address_that_asked_for_it(
    source_ssh: SSHServer, client: Client, peer_token: str, tmp_path: Path
) -> None:
    here = key_pair_make(comment="here", directory=tmp_path / "here")
    there = key_pair_make(comment="there", directory=tmp_path / "there")

    from_here = SSHGrant.from_peer(
        authorise(client, peer_token, "run-41", here, "127.0.0.1"), host=HOST
    )
    from_there = SSHGrant.from_peer(
        authorise(client, peer_token, "run-42", there, ELSEWHERE), host=HOST
    )

    lines = source_ssh.authorized_keys.read_text()
    assert 'from="127.0.0.1"' in lines and f'from="{ELSEWHERE}"' in lines
    with ssh_connect(from_here, here, timeout=5) as session:
        assert run_command(session, "id -un", 10).stdout == "root\n"
    with pytest.raises(AuthenticationRefused):
        ssh_connect(from_there, there, timeout=5)  # this machine is not at that address


def test_a_caller_without_an_address_gets_no_key(
    source_ssh: SSHServer, client: Client, peer_token: str, tmp_path: Path
) -> None:
    key = key_pair_make(comment="nowhere", directory=tmp_path / "keys")
    response = client.generic(
        "POST",
        "/api/peer/v1/credentials/ssh-key",
        data=json.dumps({"run": "run-43", "public_key": key.public_line}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {peer_token}"},
        REMOTE_ADDR="not-an-address",
    )
    assert response.status_code == 400
    assert key.public_line.split()[1] not in source_ssh.authorized_keys.read_text()


class Source:
    """The peer API through the test client, reached at the private server's address."""

    address = HOST

    def __init__(self, peer: Peer) -> None:
        self.peer = peer

    def ssh_key(self, run: str, public_key: str) -> dict[str, Any]:
        body = {"run": run, "public_key": public_key}
        return dict(self.peer("POST", "credentials/ssh-key", body).json())

    def revoke(self, run: str, kind: str | None = None) -> int:
        body = {"run": run} if kind is None else {"run": run, "kind": kind}
        return int(self.peer("POST", "credentials/revoke", body).json()["revoked"])


def test_the_session_goes_to_the_address_the_peer_api_answered_at(
    source_ssh: SSHServer, settings: Any, peer: Peer
) -> None:
    settings.APPLIANCE_SSH_HOST = "203.0.113.7"  # the answer names a host elsewhere

    with ssh_session(Source(peer), "run-44", timeout=5) as session:
        assert session.grant.host == HOST
        assert run_command(session.client, "id -un", 10).stdout == "root\n"
