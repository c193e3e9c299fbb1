"""Maintenance mode: the node's pages say so, and the application cannot change business data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from appliance import services
from appliance.data.models import Subscriber
from appliance.routers import MaintenanceModeError

pytestmark = pytest.mark.django_db(databases=["default", "data"])


def new_subscriber() -> Subscriber:
    return Subscriber(
        username="alice",
        email="alice@example.test",
        password_hash="x" * 64,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_pages_show_the_maintenance_notice(client: Client) -> None:
    services.maintenance_set(enabled=True, reason="migration")
    response = client.get("/")
    assert response.status_code == 503
    assert "Under maintenance" in response.text
    assert "in maintenance mode" in response.text


def test_pages_are_normal_without_maintenance(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "Under maintenance" not in response.text


def test_staff_still_reach_the_console_and_see_a_banner(staff_client: Client) -> None:
    services.maintenance_set(enabled=True, reason="migration")
    response = staff_client.get("/console/")
    assert response.status_code == 200
    assert "This system is in maintenance mode: migration." in response.text


def test_the_peer_api_still_answers(client: Client, peer_token: str) -> None:
    services.maintenance_set(enabled=True)
    response = client.get("/api/peer/v1/info", headers={"Authorization": f"Bearer {peer_token}"})
    assert response.status_code == 200
    assert response.json()["maintenance"] is True


def test_an_app_write_to_the_data_database_is_refused() -> None:
    services.maintenance_set(enabled=True)
    with pytest.raises(MaintenanceModeError, match="maintenance mode"):
        new_subscriber().save()
    with pytest.raises(MaintenanceModeError):
        Subscriber.objects.all().delete()
    assert Subscriber.objects.count() == 0


def test_writes_work_again_after_maintenance() -> None:
    services.maintenance_set(enabled=True)
    services.maintenance_set(enabled=False)
    new_subscriber().save()
    assert Subscriber.objects.get().username == "alice"


def test_maintenance_does_not_block_the_control_database(admin_user: Any) -> None:
    services.maintenance_set(enabled=True)
    admin_user.first_name = "Ada"
    admin_user.save()


def test_console_switches_maintenance(staff_client: Client) -> None:
    response = staff_client.post("/console/maintenance", {"enabled": "1"}, follow=True)
    assert "Maintenance mode is now on." in response.text
    assert services.node_get().maintenance is True
    staff_client.post("/console/maintenance", {"enabled": "0"})
    assert services.node_get().maintenance is False
