"""Keeping a run's secrets encrypted in the control database, for a limited time.

The key is derived from the app's secret key; a token older than its time limit no longer
decrypts. Nothing here logs or returns a secret except `secret_get` to its caller.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.utils import timezone

from migrations_engine.models import MigrationRun, RunSecret

DEFAULT_LIFETIME = timedelta(hours=12)
LONGEST_LIFETIME_SECONDS = 24 * 3600
"""No token decrypts after this long, whatever its row says."""


class SecretMissing(Exception):
    """The secret is gone (expired or the run ended); the administrator must enter it again."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"migration-run-secrets:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def secret_put(
    run: MigrationRun, name: str, value: str, lifetime: timedelta = DEFAULT_LIFETIME
) -> None:
    """Store (or replace) a run's secret."""
    token = _fernet().encrypt(value.encode()).decode()
    RunSecret.objects.update_or_create(
        run=run, name=name, defaults={"token": token, "expires_at": timezone.now() + lifetime}
    )


def secret_get(run: MigrationRun, name: str) -> str:
    """A run's secret in clear; SecretMissing if it expired or was never stored."""
    row = RunSecret.objects.filter(run=run, name=name, expires_at__gt=timezone.now()).first()
    if row is None:
        raise SecretMissing(f"The {name.replace('_', ' ')} of this run is no longer known.")
    try:
        return _fernet().decrypt(row.token.encode(), ttl=LONGEST_LIFETIME_SECONDS).decode()
    except InvalidToken:
        raise SecretMissing(
            f"The {name.replace('_', ' ')} of this run can no longer be read."
        ) from None


def secret_forget(run: MigrationRun, name: str) -> None:
    """Delete one of a run's secrets (it was wrong, or is no longer needed)."""
    RunSecret.objects.filter(run=run, name=name).delete()


def secrets_forget(run: MigrationRun) -> None:
    """Delete every secret of a run (at its end, whatever the outcome)."""
    RunSecret.objects.filter(run=run).delete()


def secrets_forget_expired() -> int:
    """Delete expired secrets of all runs."""
    deleted, _ = RunSecret.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
