"""Business data of an appliance that authenticates users and keeps their traffic logs.

Every model here is stored in the data database, which a migration copies and overwrites.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

SCHEMA_VERSIONS = {
    "0001_v2_0": "2.0",
    "0002_v2_1": "2.1",
    "0003_v3_0": "3.0",
    "0004_v3_2": "3.2",
}
"""Which software version each migration of the data schema belongs to, oldest first."""


class Subscriber(models.Model):
    """An end user who logs in through the appliance (an account)."""

    username = models.CharField(max_length=64, unique=True)
    full_name = models.CharField(max_length=128, blank=True)
    email = models.CharField(max_length=190)
    password_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    last_login = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    quota_mb = models.DecimalField(max_digits=12, decimal_places=2, default=0)

    class Meta:
        db_table = "subscriber"

    def __str__(self) -> str:
        return self.username


class Voucher(models.Model):
    """A prepaid access code, possibly already redeemed by a subscriber."""

    code = models.CharField(max_length=20, unique=True)
    subscriber = models.ForeignKey(Subscriber, null=True, blank=True, on_delete=models.SET_NULL)
    minutes = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "voucher"

    def __str__(self) -> str:
        return self.code


class AccountingSession(models.Model):
    """One connection of a subscriber: when, from where, how much traffic."""

    class TerminateCause(models.TextChoices):
        USER = "user", "User request"
        IDLE = "idle", "Idle timeout"
        TIMEOUT = "timeout", "Session timeout"
        ADMIN = "admin", "Admin reset"
        LOST = "lost", "Lost carrier"

    id = models.BigAutoField(primary_key=True)
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE)
    session_id = models.CharField(max_length=64)
    nas_ip = models.GenericIPAddressField()
    mac = models.CharField(max_length=17, blank=True)
    started_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    bytes_in = models.PositiveBigIntegerField(default=0)
    bytes_out = models.PositiveBigIntegerField(default=0)
    terminate_cause = models.CharField(  # noqa: DJ001 - NULL: the session never ended
        max_length=8, choices=TerminateCause.choices, null=True, blank=True
    )

    class Meta:
        db_table = "accounting_session"

    def __str__(self) -> str:
        return self.session_id


class EventLog(models.Model):
    """Something that happened on the appliance (logins, admin actions, RADIUS events)."""

    id = models.BigAutoField(primary_key=True)
    ts = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=32)
    message = models.CharField(max_length=255)
    payload = models.JSONField(default=dict)

    class Meta:
        db_table = "event_log"
        indexes: ClassVar = [models.Index(fields=["source", "ts"], name="event_source_ts")]

    def __str__(self) -> str:
        return f"{self.ts} {self.source}: {self.message}"
