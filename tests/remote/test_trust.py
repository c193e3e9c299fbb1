"""Trust: the run's key, the pinned host key, and revocation through the peer API."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.conf import settings

from appliance.models import IssuedCredential
from devtools.sshd import SSHServer
from migrations_engine.remote.commands import run_command
from migrations_engine.remote.connection import ssh_connect
from migrations_engine.remote.errors import AuthenticationRefused, HostKeyMismatch
from migrations_engine.remote.keys import key_pair_make
from migrations_engine.remote.session import ssh_session
from migrations_engine.remote.tree import copy_tree
from tests.remote.conftest import (
    TestPeer,
    authorise,
    grant_for,
    random_gzip,
    start_server,
)

django_db = pytest.mark.django_db(databases=["default", "data"], transaction=True)


def test_a_key_is_private_from_the_start_and_never_shown(tmp_path: Path) -> None:
    key = key_pair_make(comment="run-1", directory=tmp_path / "keys")
    assert key.path is not None
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert key.public_line.startswith("ssh-ed25519 ")
    assert key.public_line.endswith(" run-1")
    assert "PRIVATE" not in repr(key) and key.fingerprint in repr(key)
    key.forget()
    assert not key.path.exists()


def test_the_authorised_key_logs_in_with_the_host_key_pinned(
    sshd: SSHServer, tmp_path: Path
) -> None:
    key = key_pair_make()
    authorise(sshd, key)
    client = ssh_connect(grant_for(sshd), key, timeout=5)
    try:
        assert run_command(client, "echo hello", 10).stdout == "hello\n"
        host_keys = client.get_host_keys()
        assert list(host_keys.keys()) == [f"[{sshd.host}]:{sshd.port}"]
    finally:
        client.close()


def test_a_key_the_source_did_not_authorise_is_refused(sshd: SSHServer) -> None:
    with pytest.raises(AuthenticationRefused, match="refused this run's SSH key"):
        ssh_connect(grant_for(sshd), key_pair_make(), timeout=5)


def test_a_changed_host_key_stops_everything_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "sshd", 2223)
    try:
        key = key_pair_make()
        authorise(server, key)
        grant = grant_for(server)
        server.stop()
        server.host_key.unlink()
        server.host_public_key.unlink()
        server.start()
        source = tmp_path / "source"
        random_gzip(source / "traffic-1.log.gz", 10_000)
        target = tmp_path / "target"
        target.mkdir()
        log_before = server.log_file.read_text()
        with pytest.raises(HostKeyMismatch) as raised:
            client = ssh_connect(grant, key, timeout=5)
            copy_tree(client, str(source), target)
        message = str(raised.value)
        assert grant.host_key_fingerprint in message
        assert "Nothing was sent" in message
        assert list(target.iterdir()) == []
        new_lines = server.log_file.read_text()[len(log_before) :]
        assert "publickey" not in new_lines and "Accepted" not in new_lines
    finally:
        server.stop()


@django_db
def test_a_session_authorises_through_the_peer_api_and_revokes_at_the_end(
    source_peer: TestPeer, tmp_path: Path
) -> None:
    with ssh_session(source_peer, "run-21", key_directory=tmp_path / "keys") as session:
        assert session.key.path is not None
        assert stat.S_IMODE(session.key.path.stat().st_mode) == 0o600
        assert run_command(session.client, "id -un", 10).stdout == "root\n"
        key = session.key
        grant = session.grant
    assert grant.key_fingerprint == key.fingerprint
    assert IssuedCredential.objects.get(run_ref="run-21").revoked_at is not None
    assert key.path is not None and not key.path.exists()
    with pytest.raises(AuthenticationRefused):
        ssh_connect(grant, key, timeout=5)


@django_db
def test_the_key_is_revoked_also_when_the_work_fails(source_peer: TestPeer) -> None:
    with pytest.raises(RuntimeError, match="copy broke"):
        with ssh_session(source_peer, "run-22") as session:
            key, grant = session.key, session.grant
            raise RuntimeError("copy broke")
    assert IssuedCredential.objects.get(run_ref="run-22").revoked_at is not None
    authorized = Path(settings.APPLIANCE_SSH_AUTHORIZED_KEYS).read_text()
    assert key.public_line.split()[1] not in authorized
    with pytest.raises(AuthenticationRefused):
        ssh_connect(grant, key, timeout=5)
