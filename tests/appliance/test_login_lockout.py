"""Guessing the staff password on the login pages: ten wrong passwords lock the address and the
account for a while, the lockout page says so and when to try again, and the peer API's own
lockout neither breaks nor is counted here."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.django_db(databases=["default", "data"])

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
LOCKED = "Too many failed logins"


def log_in(
    client: Client,
    username: str,
    password: str,
    *,
    path: str = LOGIN,
    address: str = "192.0.2.10",
    **extra: Any,
) -> Any:
    return client.post(
        path, {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def page(response: Any) -> str:
    return str(response.content.decode())


def test_the_tenth_wrong_password_is_refused_with_the_lockout_message(
    admin_user: User, client: Client
) -> None:
    for _ in range(9):
        response = log_in(client, "admin", "not the password")
        assert response.status_code == 200
        assert "did not match" in page(response)
    response = log_in(client, "admin", "not the password")
    assert response.status_code == 429
    assert LOCKED in page(response)
    assert "15 minutes" in page(response)
    assert "Try again after" in page(response)
    assert int(response["Retry-After"]) == 900


def test_a_locked_out_address_is_refused_even_the_right_password(
    admin_user: User, client: Client
) -> None:
    for _ in range(10):
        log_in(client, "admin", "not the password")
    response = log_in(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 429
    assert LOCKED in page(response)
    assert "_auth_user_id" not in client.session


def test_guessing_many_accounts_from_one_address_locks_the_address(
    admin_user: User, client: Client
) -> None:
    for number in range(10):
        log_in(client, f"someone{number}", "not the password")
    assert log_in(client, "admin", ADMIN_PASSWORD).status_code == 429
    other = Client()
    assert log_in(other, "admin", ADMIN_PASSWORD, address="192.0.2.99").status_code == 302


def test_guessing_one_account_from_many_addresses_locks_the_account(
    admin_user: User, client: Client
) -> None:
    for number in range(10):
        log_in(client, "admin", "not the password", address=f"198.51.100.{number + 1}")
    response = log_in(Client(), "admin", ADMIN_PASSWORD, address="203.0.113.50")
    assert response.status_code == 429
    assert LOCKED in page(response)


def test_the_admin_site_login_is_locked_out_too(admin_user: User, client: Client) -> None:
    for _ in range(9):
        assert log_in(client, "admin", "wrong", path=ADMIN_LOGIN).status_code == 200
    response = log_in(client, "admin", "wrong", path=ADMIN_LOGIN)
    assert response.status_code == 429
    assert LOCKED in page(response)


def test_a_right_password_before_the_limit_starts_the_count_again(
    admin_user: User, client: Client
) -> None:
    for _ in range(9):
        log_in(client, "admin", "not the password")
    assert log_in(client, "admin", ADMIN_PASSWORD).status_code == 302
    browser = Client()
    for _ in range(9):
        assert log_in(browser, "admin", "not the password").status_code == 200


def test_wrong_peer_api_passwords_do_not_lock_the_login_page(
    admin_user: User, client: Client
) -> None:
    for _ in range(6):
        client.post("/api/peer/v1/auth", {"password": "wrong"}, content_type="application/json")
    assert log_in(Client(), "admin", ADMIN_PASSWORD, address="127.0.0.1").status_code == 302


def test_behind_the_front_server_the_real_address_is_locked_out(
    admin_user: User, settings: Any
) -> None:
    settings.MIDDLEWARE = ["appliance.middleware.FrontServerMiddleware", *settings.MIDDLEWARE]
    client = Client()
    for number in range(10):
        log_in(client, f"someone{number}", "wrong", address="", HTTP_X_REAL_IP="203.0.113.7")
    refused = log_in(client, "admin", ADMIN_PASSWORD, address="", HTTP_X_REAL_IP="203.0.113.7")
    assert refused.status_code == 429
    other = log_in(Client(), "admin", ADMIN_PASSWORD, address="", HTTP_X_REAL_IP="203.0.113.8")
    assert other.status_code == 302
