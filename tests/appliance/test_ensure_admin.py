"""`manage.py ensure_admin` refuses a weak Admin User password with the validators' reasons."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def ensure_admin(monkeypatch: pytest.MonkeyPatch, password: str) -> str:
    monkeypatch.setenv("ADMIN_PASSWORD", password)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password1", "This password is too common."),
        ("admin1234", "The password is too similar to the username."),
        ("Xy7!", "This password is too short. It must contain at least 8 characters."),
        ("", "This password is too short. It must contain at least 8 characters."),
    ],
)
def test_a_weak_password_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, password: str, reason: str
) -> None:
    with pytest.raises(CommandError) as refused:
        ensure_admin(monkeypatch, password)
    assert reason in str(refused.value)
    assert "ADMIN_PASSWORD" in str(refused.value)
    assert not User.objects.filter(username="admin").exists()


def test_a_weak_password_leaves_an_existing_admin_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ensure_admin(monkeypatch, "correct horse battery staple")
    with pytest.raises(CommandError, match="too common"):
        ensure_admin(monkeypatch, "password1")
    admin = User.objects.get(username="admin")
    assert admin.check_password("correct horse battery staple")


def test_a_strong_password_creates_the_admin_user(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "created staff user admin" in ensure_admin(monkeypatch, "correct horse battery staple")
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert admin.check_password("correct horse battery staple")
