"""Logging in to the peer API: tokens, wrong passwords, lockout, refused without a token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from appliance.models import PeerToken
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db(databases=["default", "data"])


def login(client: Client, password: str) -> Any:
    return client.post("/api/peer/v1/auth", {"password": password}, content_type="application/json")


def peer_paths() -> list[str]:
    """Every URL of the peer API, read from the URL configuration."""
    resolver = get_resolver()
    peer = next(
        p
        for p in resolver.url_patterns
        if isinstance(p, URLResolver) and str(p.pattern) == "api/peer/v1/"
    )
    return [str(p.pattern) for p in peer.url_patterns if isinstance(p, URLPattern)]


def test_right_password_gives_a_token_that_opens_info(admin_user: Any, client: Client) -> None:
    response = login(client, ADMIN_PASSWORD)
    assert response.status_code == 200
    token = response.json()["token"]
    info = client.get("/api/peer/v1/info", headers={"Authorization": f"Bearer {token}"})
    assert info.status_code == 200
    assert info.json()["software_version"] == "3.2"


def test_wrong_password_is_401_with_a_clear_message_and_no_token(
    admin_user: Any, client: Client
) -> None:
    response = login(client, "not the password")
    assert response.status_code == 401
    assert response.json() == {"error": "The Admin User password is wrong."}
    assert "token" not in response.json()
    assert not PeerToken.objects.exists()


def test_sixth_wrong_password_in_a_row_is_429_with_the_wait(
    admin_user: Any, client: Client, settings: Any
) -> None:
    settings.PEER_AUTH_LOCKOUT = 300
    for _ in range(5):
        assert login(client, "wrong").status_code == 401
    response = login(client, "wrong")
    assert response.status_code == 429
    wait = int(response["Retry-After"])
    assert 290 <= wait <= 300
    assert f"locked for {wait} seconds" in response.json()["error"]
    assert response.json()["retry_after"] == wait


def test_lockout_refuses_even_the_right_password(admin_user: Any, client: Client) -> None:
    for _ in range(5):
        login(client, "wrong")
    assert login(client, ADMIN_PASSWORD).status_code == 429


def test_a_right_password_resets_the_count(admin_user: Any, client: Client) -> None:
    for _ in range(4):
        login(client, "wrong")
    assert login(client, ADMIN_PASSWORD).status_code == 200
    for _ in range(4):
        assert login(client, "wrong").status_code == 401


def test_wrong_passwords_are_slowed_down(admin_user: Any, client: Client, settings: Any) -> None:
    settings.PEER_AUTH_DELAY = 0.2
    started = timezone.now()
    login(client, "wrong")
    login(client, "wrong")
    assert (timezone.now() - started).total_seconds() >= 0.2 + 0.4


@pytest.mark.parametrize("path", [path for path in peer_paths() if path != "auth"])
@pytest.mark.parametrize("token", ["", "made-up", "expired"])
def test_every_endpoint_refuses_a_missing_or_bad_token(
    path: str, token: str, admin_user: Any, client: Client, peer_token: str
) -> None:
    if token == "expired":
        PeerToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        token = peer_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for method in ("GET", "POST"):
        response = client.generic(
            method, f"/api/peer/v1/{path}", b"{}", "application/json", headers=headers
        )
        assert response.status_code in (401, 405), (method, path, response.status_code)
        if response.status_code == 401:
            assert "token" in response.json()["error"]


def test_the_walk_covers_every_endpoint() -> None:
    assert len(peer_paths()) >= 11


def test_logout_ends_the_token(client: Client, peer_token: str) -> None:
    headers = {"Authorization": f"Bearer {peer_token}"}
    assert client.delete("/api/peer/v1/auth", headers=headers).status_code == 200
    assert client.get("/api/peer/v1/info", headers=headers).status_code == 401
