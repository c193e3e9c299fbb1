"""What the peer API tells and changes on a source, with a valid token."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pymysql
import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from appliance import services
from appliance.certificates import self_signed_certificate
from appliance.models import IssuedCredential, LicenceState
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

Peer = Callable[..., Any]
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkW1dBe3mzP3Q8v5Yg0j0KzJtG7u7f8p1bQ9m0xk2Lr run"


@pytest.fixture
def seeded(admin_user: Any) -> None:
    call_command(
        "seed_node",
        "--size",
        "small",
        "--host-name",
        "old-box",
        "--domain-name",
        "acme.test",
        "--ip-address",
        "127.0.0.2",
        stdout=open("/dev/null", "w"),
    )
    call_command("make_certificate", stdout=open("/dev/null", "w"))


def test_info_tells_the_seeded_identity_sizes_and_fingerprints(seeded: None, peer: Peer) -> None:
    info = peer("GET", "info").json()
    assert (info["host_name"], info["domain_name"], info["ip_address"]) == (
        "old-box",
        "acme.test",
        "127.0.0.2",
    )
    assert info["server_role_label"] == "Standalone"
    assert info["ha"] is None
    assert info["licence"]["state"] == "active"
    assert len(info["licence"]["guid"]) == 36
    assert info["licence"]["has_active_maintenance"] is True
    assert info["data_schema_version"] == "0004_v3_2"
    assert info["data_size_bytes"] > 0
    assert info["traffic_log_files"] == 4
    assert info["traffic_log_bytes"] > 0
    assert info["tls_fingerprint"] == services.tls_fingerprint()
    assert len(info["tls_fingerprint"].split(":")) == 32


def test_ha_node_tells_its_peer_and_round_robin_hosts(admin_user: Any, peer: Peer) -> None:
    call_command(
        "seed_node",
        "--no-data",
        "--role",
        "ha_master",
        "--ip-address",
        "10.0.0.1",
        "--ha-peer",
        "10.0.0.2",
        stdout=open("/dev/null", "w"),
    )
    info = peer("GET", "info").json()
    assert info["server_role_label"] == "HA Master"
    assert info["ha"]["round_robin_hosts"] == ["10.0.0.1", "10.0.0.2"]
    assert info["ha"]["load_balancing_domain"] == "loadbalancing.mycompany.test"


def test_settings_export_marks_the_site_bound_groups(seeded: None, peer: Peer) -> None:
    body = peer("GET", "settings").json()
    assert body["settings"]["time_zone"] == {"zone": "Europe/Rome"}
    assert body["settings"]["dns"]["servers"] == ["9.9.9.9", "1.1.1.1"]
    assert set(body["site_bound_groups"]) == {
        "network",
        "dns",
        "web_server",
        "ha",
        "remote_exchange",
        "ftp_backup",
    }


def test_maintenance_on_and_off(seeded: None, peer: Peer) -> None:
    assert peer("POST", "maintenance", {"enabled": True, "reason": "migration"}).json() == {
        "maintenance": True
    }
    assert services.node_get().maintenance_reason == "migration"
    assert peer("POST", "maintenance", {"enabled": False}).json() == {"maintenance": False}
    assert peer("POST", "maintenance", {"enabled": "yes"}).status_code == 400


def test_round_robin_hosts_removed_and_restored(admin_user: Any, peer: Peer) -> None:
    assert peer("POST", "ha/round-robin", {"hosts": []}).json() == {"round_robin_hosts": []}
    assert services.ha_settings()["round_robin_hosts"] == []
    peer("POST", "ha/round-robin", {"hosts": ["10.0.0.1", "10.0.0.2"]})
    assert services.ha_settings()["round_robin_hosts"] == ["10.0.0.1", "10.0.0.2"]


def test_replication_stop_and_start(admin_user: Any, peer: Peer) -> None:
    assert peer("POST", "ha/replication", {"running": False}).json()["replication_running"] is False
    assert services.node_get().replication_running is False
    assert peer("POST", "ha/replication", {"running": True}).json()["replication_running"] is True


def test_licence_release_is_idempotent_and_needs_the_right_guid(seeded: None, peer: Peer) -> None:
    guid = services.licence_get().guid
    wrong = peer("POST", "licence/release", {"guid": "0000", "transferred_to": "new-box"})
    assert wrong.status_code == 409
    assert services.licence_get().state == LicenceState.ACTIVE
    for _ in range(2):
        response = peer("POST", "licence/release", {"guid": guid, "transferred_to": "new-box"})
        assert response.json() == {"guid": guid, "state": "transferred"}
    assert services.licence_get().transferred_to == "new-box"


def test_configuration_replaces_groups_and_marks_migrated(seeded: None, peer: Peer) -> None:
    response = peer(
        "POST",
        "configuration",
        {"settings": {"dns": {"servers": ["10.9.9.9"]}}, "migrated_to": "new-box.acme.test"},
    )
    assert response.json()["settings"] == {"dns": {"servers": ["10.9.9.9"]}}
    exported = services.settings_export()
    assert exported["dns"] == {"servers": ["10.9.9.9"]}
    assert exported["time_zone"] == {"zone": "Europe/Rome"}
    assert services.node_get().migrated_to == "new-box.acme.test"
    assert peer("POST", "configuration", {"settings": {"dns": 5}}).status_code == 400


def test_configuration_gives_the_node_another_identity(seeded: None, peer: Peer) -> None:
    identity = {"host_name": "new-box", "domain_name": "acme.test", "ip_address": "10.1.1.1"}
    response = peer("POST", "configuration", {"identity": identity})
    assert response.json()["identity"] == identity
    assert services.node_get().fqdn == "new-box.acme.test"
    bad = peer("POST", "configuration", {"identity": identity | {"ip_address": "nope"}})
    assert bad.status_code == 400
    assert services.node_get().ip_address == "10.1.1.1"


@pytest.fixture
def database_certificate(settings: Any, tmp_path: Any) -> None:
    """This node's database server has a certificate to hand out (the grants need TLS)."""
    certificate = tmp_path / "database.crt"
    self_signed_certificate(
        cert_path=certificate, key_path=tmp_path / "database.key", common_name="db", addresses=[]
    )
    settings.APPLIANCE_DATA_DB_CERTIFICATE = str(certificate)


def test_database_account_needs_tls_and_is_revoked(
    seeded: None, peer: Peer, database_certificate: None
) -> None:
    """Reading and the refused writes are tested over TLS in test_credentials_tls."""
    account = peer("POST", "credentials/database", {"run": "run-17"}).json()
    assert account["database"] == settings.DATABASES["data"]["NAME"]
    with pytest.raises(pymysql.err.OperationalError) as clear_text:
        pymysql.connect(
            host=account["host"],
            port=account["port"],
            user=account["user"],
            password=account["password"],
            database=account["database"],
            ssl_disabled=True,
        )
    assert clear_text.value.args[0] == 1045  # REQUIRE SSL: no login in clear text
    assert peer("POST", "credentials/revoke", {"run": "run-17"}).json() == {"revoked": 1}
    with pytest.raises(pymysql.err.OperationalError) as gone:
        pymysql.connect(
            host=account["host"],
            port=account["port"],
            user=account["user"],
            password=account["password"],
        )
    assert gone.value.args[0] in (1045, 1698)  # access denied (1698: no such account)
    assert IssuedCredential.objects.get().revoked_at is not None


def test_ssh_key_is_authorised_restricted_and_revoked(seeded: None, peer: Peer) -> None:
    host_key = settings.APPLIANCE_SSH_HOST_KEY
    host_key.parent.mkdir(parents=True, exist_ok=True)
    host_key.write_text(PUBLIC_KEY.replace("run", "root@old-box") + "\n")
    grant = peer("POST", "credentials/ssh-key", {"run": "run-17", "public_key": PUBLIC_KEY})
    assert grant.status_code == 201
    body = grant.json()
    assert body["host_key_fingerprint"].startswith("SHA256:")
    assert body["host_key"] == " ".join(PUBLIC_KEY.split()[:2])
    keys_file = settings.APPLIANCE_SSH_AUTHORIZED_KEYS
    line = keys_file.read_text().strip()
    assert line.startswith('restrict,expiry-time="')
    assert " ".join(PUBLIC_KEY.split()[:2]) in line
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    peer("POST", "credentials/revoke", {"run": "run-17", "kind": "ssh_key"})
    assert keys_file.read_text() == ""


def test_expired_credentials_are_revoked_at_the_next_login(
    seeded: None, peer: Peer, client: Any, database_certificate: None
) -> None:
    account = peer("POST", "credentials/database", {"run": "run-18"}).json()
    IssuedCredential.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    client.post("/api/peer/v1/auth", {"password": ADMIN_PASSWORD}, content_type="application/json")
    assert IssuedCredential.objects.get().revoked_at is not None
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host=account["host"],
            port=account["port"],
            user=account["user"],
            password=account["password"],
        )


def test_a_key_that_is_not_a_public_key_is_refused(seeded: None, peer: Peer) -> None:
    response = peer("POST", "credentials/ssh-key", {"run": "r1", "public_key": "rm -rf /"})
    assert response.status_code == 400
    assert "OpenSSH public key" in response.json()["error"]


def test_bad_json_is_a_clear_400(peer: Peer, client: Any, peer_token: str) -> None:
    response = client.post(
        "/api/peer/v1/maintenance",
        b"{not json",
        "application/json",
        headers={"Authorization": f"Bearer {peer_token}"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "The request body is not valid JSON."}
