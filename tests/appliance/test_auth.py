"""Staff authentication per request: a polling browser costs the database nothing, and a
user who loses access loses it at once (changed here) or within moments (changed elsewhere)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from appliance import auth
from migrations_engine.models import MigrationRun, OperationState, OperationStatus, RunStatus

pytestmark = pytest.mark.django_db

WIZARD = "/wizard/welcome/"


def running_run() -> MigrationRun:
    """A run whose data copy is under way."""
    run = MigrationRun.objects.create(source_address="192.0.2.10", status=RunStatus.RUNNING)
    OperationState.objects.create(
        run=run, name="copy_data", position=1, status=OperationStatus.RUNNING, fraction=0.5
    )
    return run


def test_a_polling_browser_costs_the_database_nothing(
    staff_client: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    run = running_run()
    assert staff_client.get(f"/wizard/runs/{run.id}/progress/").status_code == 200
    with django_assert_num_queries(0):
        response = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert response.status_code == 200
    assert 'aria-valuenow="50"' in response.content.decode()


def test_staff_who_lose_access_here_are_refused_at_once(
    staff_client: Client, admin_user: User
) -> None:
    assert staff_client.get(WIZARD).status_code == 200
    admin_user.is_staff = False
    admin_user.save()
    response = staff_client.get(WIZARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_new_password_set_here_ends_other_sessions_at_once(
    staff_client: Client, admin_user: User
) -> None:
    assert staff_client.get(WIZARD).status_code == 200
    admin_user.set_password("a different password altogether")
    admin_user.save()
    assert staff_client.get(WIZARD).status_code == 302


def test_staff_deactivated_by_another_process_are_refused_within_moments(
    staff_client: Client, admin_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth.RECENT_USERS, "seconds", 0.3)
    assert staff_client.get(WIZARD).status_code == 200
    User.objects.filter(pk=admin_user.pk).update(is_active=False)  # no signal: as elsewhere
    time.sleep(0.4)
    assert staff_client.get(WIZARD).status_code == 302


def test_each_request_gets_its_own_copy_of_a_kept_user(admin_user: User) -> None:
    backend = auth.RecentUsersBackend()
    first = backend.get_user(admin_user.pk)
    assert first is not None
    first.first_name = "changed by one request"
    second = backend.get_user(admin_user.pk)
    assert second is not None and second.first_name != "changed by one request"
