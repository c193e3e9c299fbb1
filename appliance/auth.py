"""How staff are authenticated on each request: the model backend, with users kept briefly.

Every request of a logged-in browser asks the backend for its user. The wizard's Execution step
polls once a second from every open browser, and each of those lookups is a database query on
the server that is busy copying data. `RecentUsersBackend` keeps a user it has looked up for
`KEEP_SECONDS` in this process; a change to the user saved in this process (deactivated, no
longer staff, new password) forgets it at once, one saved elsewhere is seen within that time.
Logging out ends the session itself and takes effect at once everywhere.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models.signals import post_delete, post_save

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
