"""Logging in to the peer API: the admin password buys a short-lived bearer token.

Failed attempts from an address are slowed down, and after too many in a row the address is
locked out for a while. Tokens are random; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone

from appliance.models import PeerAuthFailures, PeerToken


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a login: a token, or why not and how long to wait."""

    token: str = ""
    expires_at: datetime | None = None
    error: str = ""
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.token)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _seconds_left(until: datetime) -> int:
    return max(1, math.ceil((until - timezone.now()).total_seconds()))


def _lockout_message(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return (
        "Too many wrong passwords from this address. Logins are locked for "
        f"{seconds} seconds (about {minutes} minute{'s' if minutes != 1 else ''}); "
        "try again after that with the Admin User password of this system."
    )


def peer_login(*, password: str, client_address: str) -> LoginResult:
    """Check the Admin User password; return a token, or the reason and any wait."""
    record, _ = PeerAuthFailures.objects.get_or_create(client_address=client_address)
    if record.locked_until and record.locked_until > timezone.now():
        seconds = _seconds_left(record.locked_until)
        return LoginResult(error=_lockout_message(seconds), retry_after=seconds)
    user = authenticate(username=settings.APPLIANCE_ADMIN_USER, password=password)
    if user is None or not user.is_active:
        return _login_failed(client_address)
    PeerAuthFailures.objects.filter(client_address=client_address).update(
        failures=0, locked_until=None
    )
    return _token_issue(client_address)


def _login_failed(client_address: str) -> LoginResult:
    with transaction.atomic():
        record = PeerAuthFailures.objects.select_for_update().get(client_address=client_address)
        record.failures += 1
        if record.failures >= settings.PEER_AUTH_MAX_FAILURES:
            record.locked_until = timezone.now() + timedelta(seconds=settings.PEER_AUTH_LOCKOUT)
            record.failures = 0
        record.save()
    time.sleep(min(settings.PEER_AUTH_DELAY * max(record.failures, 1), 5.0))
    return LoginResult(error="The Admin User password is wrong.")


def _token_issue(client_address: str) -> LoginResult:
    token = secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(seconds=settings.PEER_TOKEN_TTL)
    PeerToken.objects.filter(expires_at__lt=timezone.now()).delete()
    PeerToken.objects.create(
        digest=_digest(token), client_address=client_address, expires_at=expires_at
    )
    return LoginResult(token=token, expires_at=expires_at)


def peer_token_valid(token: str) -> bool:
    """Whether a bearer token was issued here and has not expired or been revoked."""
    if not token:
        return False
    return PeerToken.objects.filter(digest=_digest(token), expires_at__gt=timezone.now()).exists()


def peer_token_revoke(token: str) -> None:
    """End a token before it expires (logout)."""
    PeerToken.objects.filter(digest=_digest(token)).delete()
