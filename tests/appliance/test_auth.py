"""Staff authentication per request: a user who loses access loses it at once, whether the
change was saved in this process or elsewhere."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

WIZARD = "/wizard/welcome/"


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


def test_staff_deactivated_by_another_process_are_refused_at_once(
    staff_client: Client, admin_user: User
) -> None:
    assert staff_client.get(WIZARD).status_code == 200
    User.objects.filter(pk=admin_user.pk).update(is_active=False)  # no signal: as elsewhere
    assert staff_client.get(WIZARD).status_code == 302
