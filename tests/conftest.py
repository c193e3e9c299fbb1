"""Fixtures shared by the whole suite: a node's settings for tests, the Admin User, peer tokens."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from devtools import system

ADMIN_PASSWORD = "correct horse battery staple"


def pytest_sessionstart(session: pytest.Session) -> None:
    """The suite first installs (as root) or names what it needs from the system."""
    problem = system.set_up_for_tests()
    if problem:
        pytest.exit(problem, returncode=1)


@pytest.fixture(autouse=True)
def node_settings(settings: Any, tmp_path: Path) -> Any:
    """Plain HTTP for the test client, no login delay, and the node's files in a temporary dir."""
    settings.SECURE_SSL_REDIRECT = False
    settings.PEER_AUTH_DELAY = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.APPLIANCE_VAR_DIR = tmp_path / "node"
    settings.APPLIANCE_TRAFFIC_LOG_DIR = tmp_path / "node" / "traffic-logs"
    settings.APPLIANCE_CERT_DIR = tmp_path / "node" / "certs"
    settings.APPLIANCE_SSH_AUTHORIZED_KEYS = tmp_path / "node" / "ssh" / "authorized_keys"
    settings.APPLIANCE_SSH_HOST_KEY = tmp_path / "node" / "ssh" / "ssh_host_ed25519_key.pub"
    return settings


@pytest.fixture
def admin_user(db: None) -> User:
    """The node's Admin User, whose password the peer API checks."""
    return User.objects.create_superuser("admin", "admin@example.test", ADMIN_PASSWORD)


@pytest.fixture
def staff_client(admin_user: User) -> Client:
    """A browser session logged in as staff."""
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def peer_token(admin_user: User, client: Client) -> str:
    """A fresh peer-API token for this node."""
    response = client.post(
        "/api/peer/v1/auth", {"password": ADMIN_PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


@pytest.fixture
def peer(client: Client, peer_token: str) -> Callable[..., Any]:
    """Call a peer-API endpoint with the token: peer("GET", "info") or peer("POST", path, body)."""

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return client.generic(
            method,
            f"/api/peer/v1/{path}",
            data=b"" if body is None else json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {peer_token}"},
        )

    return call


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs as the target folder."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)
