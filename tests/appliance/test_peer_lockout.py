"""Guessing the Admin User password through the peer API: every attempt counts, even parallel
ones; repeated lockouts last longer; and only the front server may say who the client is."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connections
from django.test import Client
from django.utils import timezone

from tests.conftest import ADMIN_PASSWORD

AUTH = "/api/peer/v1/auth"
GUESSES = 20
REAL_NOW = timezone.now


class SlowHasher(MD5PasswordHasher):
    """Checks a password as slowly as a real node's hasher does (the tests' MD5 is instant)."""

    def verify(self, password: str, encoded: str) -> bool:
        time.sleep(0.3)
        return super().verify(password, encoded)


def login(client: Client, password: str, **extra: Any) -> Any:
    return client.post(AUTH, {"password": password}, content_type="application/json", **extra)


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Set this node's clock `seconds` ahead of the real one."""
    monkeypatch.setattr(timezone, "now", lambda: REAL_NOW() + timedelta(seconds=seconds))


def lockout_seconds(client: Client, **extra: Any) -> int:
    """Guess until the lockout engages; the seconds it says to wait."""
    for _ in range(10):
        response = login(client, "not the password", **extra)
        if response.status_code == 429:
            assert int(response["Retry-After"]) == response.json()["retry_after"]
            return int(response["Retry-After"])
        assert response.status_code == 401
    raise AssertionError("no lockout after 10 wrong passwords")


@pytest.mark.django_db(databases=["default", "data"], transaction=True)
def test_parallel_wrong_passwords_each_count_and_the_lockout_engages(
    admin_user: Any, settings: Any
) -> None:
    settings.PASSWORD_HASHERS = [f"{__name__}.SlowHasher"]
    settings.PEER_AUTH_MAX_FAILURES = 5
    start = threading.Barrier(GUESSES)

    def guess(_: int) -> int:
        try:
            start.wait()
            return int(login(Client(), "not the password").status_code)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=GUESSES) as pool:
        statuses = Counter(pool.map(guess, range(GUESSES)))
    assert statuses == {401: 5, 429: GUESSES - 5}
    assert login(Client(), ADMIN_PASSWORD).status_code == 429


@pytest.mark.django_db(databases=["default", "data"])
def test_a_second_lockout_lasts_longer_than_the_first(
    admin_user: Any, client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PEER_AUTH_LOCKOUT = 300
    first = lockout_seconds(client)
    assert 295 <= first <= 300
    later(monkeypatch, 301)
    second = lockout_seconds(client)
    assert 595 <= second <= 600
    later(monkeypatch, 301 + 601)
    assert 1195 <= lockout_seconds(client) <= 1200


@pytest.mark.django_db(databases=["default", "data"])
def test_a_right_password_after_a_lockout_starts_the_backoff_again(
    admin_user: Any, client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PEER_AUTH_LOCKOUT = 300
    lockout_seconds(client)
    later(monkeypatch, 301)
    assert login(client, ADMIN_PASSWORD).status_code == 200
    assert 295 <= lockout_seconds(client) <= 300


@pytest.mark.django_db(databases=["default", "data"])
def test_the_lockout_stops_growing_at_its_limit(
    admin_user: Any, client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PEER_AUTH_LOCKOUT = 300
    settings.PEER_AUTH_LOCKOUT_MAX = 1000
    waited = 0
    for _ in range(4):
        seconds = lockout_seconds(client)
        waited += seconds + 1
        later(monkeypatch, waited)
    assert 995 <= seconds <= 1000


@pytest.mark.django_db(databases=["default", "data"])
def test_an_address_quiet_for_the_longest_lockout_starts_over(
    admin_user: Any, client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PEER_AUTH_LOCKOUT = 300
    settings.PEER_AUTH_LOCKOUT_MAX = 3600
    lockout_seconds(client)
    later(monkeypatch, 301 + 3600)
    assert 295 <= lockout_seconds(client) <= 300


@pytest.fixture
def behind_front_server(settings: Any) -> None:
    """This node runs behind its front server (APPLIANCE_FRONT_SERVER=1)."""
    settings.MIDDLEWARE = ["appliance.middleware.FrontServerMiddleware", *settings.MIDDLEWARE]


@pytest.mark.django_db(databases=["default", "data"])
def test_x_real_ip_from_anyone_but_the_front_server_is_ignored(
    admin_user: Any, behind_front_server: None
) -> None:
    client = Client()
    statuses = [
        login(
            client,
            "not the password",
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_REAL_IP=f"203.0.113.{number}",
        ).status_code
        for number in range(1, 7)
    ]
    assert statuses == [401] * 5 + [429]


@pytest.mark.django_db(databases=["default", "data"])
def test_x_real_ip_from_the_front_server_counts_per_real_address(
    admin_user: Any, behind_front_server: None
) -> None:
    client = Client()
    through_front = {"REMOTE_ADDR": ""}
    assert lockout_seconds(client, **through_front, HTTP_X_REAL_IP="203.0.113.1") > 0
    response = login(client, ADMIN_PASSWORD, **through_front, HTTP_X_REAL_IP="203.0.113.2")
    assert response.status_code == 200


@pytest.mark.django_db(databases=["default", "data"])
def test_a_request_whose_address_is_unknown_cannot_log_in(
    admin_user: Any, behind_front_server: None
) -> None:
    response = login(Client(), ADMIN_PASSWORD, REMOTE_ADDR="", HTTP_X_REAL_IP="somewhere")
    assert response.status_code == 400
    assert "address" in response.json()["error"]
    assert "token" not in response.json()


@pytest.mark.django_db(databases=["default", "data"])
def test_the_front_servers_https_claim_is_ignored_from_anyone_else(
    admin_user: Any, behind_front_server: None, settings: Any
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    direct = Client().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert direct.status_code == 301
    through_front = Client().get(
        "/accounts/login/",
        REMOTE_ADDR="",
        HTTP_X_REAL_IP="203.0.113.3",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert through_front.status_code == 200
