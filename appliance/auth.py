"""How staff are authenticated: Django's model backend, which looks the user up on each request,
so that a change to a user (deactivated, no longer staff, new password) takes effect at once.

Guessing passwords: django-axes locks the login pages out (settings: LOGIN_FAILURE_LIMIT,
LOGIN_LOCKOUT) and `lockout_response` is the page it answers with. The peer API checks the Admin
User password with `admin_password_check`, past axes: it has a lockout of its own
(`appliance.peer_auth`), so its attempts are neither refused for want of a request nor counted
twice.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def admin_password_check(password: str) -> bool:
    """Whether this is the password of the Admin User (an active account)."""
    user = ModelBackend().authenticate(
        None, username=settings.APPLIANCE_ADMIN_USER, password=password
    )
    return user is not None


def duration_text(seconds: int) -> str:
    """A wait in words: "45 seconds", "1 minute", "15 minutes"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The page a login locked out by django-axes gets: what happened and when to try again.

    The wait starts again with every attempt made during it, so it is whole at each answer.
    """
    seconds = settings.LOGIN_LOCKOUT
    context = {
        "failure_limit": settings.LOGIN_FAILURE_LIMIT,
        "wait": duration_text(seconds),
        "until": timezone.now() + timedelta(seconds=seconds),
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
