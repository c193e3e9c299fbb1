"""Logging in to the peer API: the admin password buys a short-lived bearer token.

Every attempt from an address is counted before its password is checked, so parallel guesses
each count: at most PEER_AUTH_MAX_FAILURES of them are checked before the address is locked out.
Wrong passwords are slowed down; each lockout in a row lasts twice the one before (up to
PEER_AUTH_LOCKOUT_MAX), and a right password starts the address over. Tokens are random; only
their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from appliance.auth import admin_password_check
from appliance.models import PeerAuthFailures, PeerToken

MAX_DOUBLINGS = 32
"""Past this many lockouts in a row the wait stops doubling (it is at its limit long before)."""


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
    wait, attempts = _attempt_count(client_address)
    if wait:
        return LoginResult(error=_lockout_message(wait), retry_after=wait)
    if not admin_password_check(password):
        time.sleep(min(settings.PEER_AUTH_DELAY * attempts, 5.0))
        return LoginResult(error="The Admin User password is wrong.")
    PeerAuthFailures.objects.filter(client_address=client_address).update(
        failures=0, lockouts=0, locked_until=None
    )
    return _token_issue(client_address)


def _attempt_count(client_address: str) -> tuple[int, int]:
    """Count an attempt from the address before its password is checked.

    Returns the seconds it must wait instead (0: check it) and how many attempts in a row this
    is. The attempt that reaches PEER_AUTH_MAX_FAILURES is still checked; it locks the address.
    """
    PeerAuthFailures.objects.bulk_create(
        [PeerAuthFailures(client_address=client_address)], ignore_conflicts=True
    )
    with transaction.atomic():
        record = PeerAuthFailures.objects.select_for_update().get(client_address=client_address)
        now = timezone.now()
        if record.locked_until and record.locked_until > now:
            return _seconds_left(record.locked_until), record.failures
        if record.locked_until and now - record.locked_until > _longest_lockout():
            record.lockouts = 0
        record.failures += 1
        attempts = record.failures
        if record.failures >= settings.PEER_AUTH_MAX_FAILURES:
            record.lockouts += 1
            record.locked_until = now + _lockout_length(record.lockouts)
            record.failures = 0
        record.save()
    return 0, attempts


def _lockout_length(lockouts: int) -> timedelta:
    """The first lockout lasts PEER_AUTH_LOCKOUT; each one after it twice as long as the last."""
    doublings = min(lockouts - 1, MAX_DOUBLINGS)
    seconds = settings.PEER_AUTH_LOCKOUT * 2**doublings
    return min(timedelta(seconds=seconds), _longest_lockout())


def _longest_lockout() -> timedelta:
    return timedelta(seconds=settings.PEER_AUTH_LOCKOUT_MAX)


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
