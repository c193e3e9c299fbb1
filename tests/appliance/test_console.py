"""The staff console: only staff get in, and it shows the node's state."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)


def test_anonymous_visitors_are_sent_to_the_login(client: Client) -> None:
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_user_who_is_not_staff_is_not_let_in(client: Client) -> None:
    client.force_login(User.objects.create_user("bob", password="bob-password-1"))
    assert client.get("/console/").status_code == 302
    assert client.get("/wizard/").status_code == 302


def test_the_console_shows_identity_licence_settings_and_files(staff_client: Client) -> None:
    call_command(
        "seed_node",
        "--size",
        "small",
        "--host-name",
        "old-box",
        "--role",
        "ha_master",
        "--ha-peer",
        "127.0.0.9",
        stdout=open("/dev/null", "w"),
    )
    page = staff_client.get("/console/").text
    for expected in (
        "old-box",
        "HA Master",
        "Active",
        "Europe/Rome",
        "site-bound",
        "loadbalancing.mycompany.test",
        "4 files",
        "systemctl reboot",
        "data schema 0004_v3_2",
    ):
        assert expected in page, expected
