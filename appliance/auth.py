"""How staff are authenticated on each request: the model backend, with users kept briefly.

Every request of a logged-in browser asks the backend for its user. The wizard's Execution step
polls once a second from every open browser, and each of those lookups is a database query on
the server that is busy copying data. `RecentUsersBackend` keeps a user it has looked up for
`KEEP_SECONDS` in this process; a change to the user saved in this process (deactivated, no
longer staff, new password) forgets it at once, one saved elsewhere is seen within that time.
Logging out ends the session itself and takes effect at once everywhere.

Guessing passwords: django-axes locks the login pages out (settings: LOGIN_FAILURE_LIMIT,
LOGIN_LOCKOUT) and `lockout_response` is the page it answers with. The peer API checks the Admin
User password with `admin_password_check`, past axes: it has a lockout of its own
(`appliance.peer_auth`), so its attempts are neither refused for want of a request nor counted
twice.
"""

from __future__ import annotations

import copy
import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from appliance.kept import KeptBriefly

if TYPE_CHECKING:
    from django.contrib.auth.models import User

KEEP_SECONDS = 2.0
RECENT_USERS: KeptBriefly[User] = KeptBriefly(KEEP_SECONDS)
"""Users looked up in the last `KEEP_SECONDS`, by primary key."""


class RecentUsersBackend(ModelBackend):
    """Django's model backend whose per-request user lookup is kept for a moment. Each request
    gets a copy of its own: it may change its user without changing another request's."""

    def get_user(self, user_id: Any) -> User | None:
        kept = RECENT_USERS.get(user_id)
        if kept is not None:
            return copy.copy(kept)
        user = super().get_user(user_id)
        if user is not None:
            RECENT_USERS.put(user.pk, copy.copy(user))
        return user


def _forget_user(sender: Any, instance: User, **kwargs: Any) -> None:
    RECENT_USERS.forget(instance.pk)


def connect_signals() -> None:
    """Forget a user as soon as it is saved or deleted in this process."""
    user_model = get_user_model()
    post_save.connect(_forget_user, sender=user_model, dispatch_uid="recent-users-save")
    post_delete.connect(_forget_user, sender=user_model, dispatch_uid="recent-users-delete")


def admin_password_check(password: str) -> bool:
    """Whether this is the password of the Admin User (an active account)."""
    user = RecentUsersBackend().authenticate(
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
