"""What a node holds about itself, in its control database.

Identity, licence, grouped system settings (HA configuration included), maintenance mode, and
the short-lived credentials the peer API hands out to a migrating peer. Business data lives in
the separate data database (`appliance.data`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.utils import timezone

SITE_BOUND_GROUPS = frozenset(
    {"network", "dns", "web_server", "ha", "remote_exchange", "ftp_backup"}
)
"""Setting groups tied to the machine's place in the network: never copied without a swap."""


class SingletonModel(models.Model):
    """A table with exactly one row (primary key 1) that `load()` creates on first use."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.id = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> Any:
        obj, _ = cls._default_manager.get_or_create(id=1)
        return obj


class ServerRole(models.TextChoices):
    """How the node takes part in high availability."""

    STANDALONE = "standalone", "Standalone"
    HA_MASTER = "ha_master", "HA Master"
    HA_SLAVE = "ha_slave", "HA Slave"


class Node(SingletonModel):
    """This node's identity and operating state (maintenance, replication, migrated)."""

    host_name = models.CharField(max_length=63, default="appliance")
    domain_name = models.CharField(max_length=190, default="localdomain")
    ip_address = models.GenericIPAddressField(default="127.0.0.1")
    server_role = models.CharField(
        max_length=16, choices=ServerRole.choices, default=ServerRole.STANDALONE
    )
    maintenance = models.BooleanField(default=False)
    maintenance_reason = models.CharField(max_length=200, blank=True)
    maintenance_since = models.DateTimeField(null=True, blank=True)
    replication_running = models.BooleanField(default=False)
    migrated_at = models.DateTimeField(null=True, blank=True)
    migrated_to = models.CharField(max_length=190, blank=True)

    def __str__(self) -> str:
        return self.fqdn

    @property
    def fqdn(self) -> str:
        return f"{self.host_name}.{self.domain_name}" if self.domain_name else self.host_name

    @property
    def is_ha(self) -> bool:
        return self.server_role != ServerRole.STANDALONE


class LicenceState(models.TextChoices):
    """Whether the node holds a licence that works."""

    ACTIVE = "active", "Active"
    NONE = "none", "None"
    TRANSFERRED = "transferred", "Transferred"


class Licence(SingletonModel):
    """The node's licence: who holds it and until when maintenance is covered."""

    guid = models.CharField(max_length=36, blank=True)
    holder = models.CharField(max_length=190, blank=True)
    maintenance_until = models.DateField(null=True, blank=True)
    state = models.CharField(max_length=12, choices=LicenceState.choices, default=LicenceState.NONE)
    transferred_to = models.CharField(max_length=190, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.guid or 'no licence'} ({self.state})"

    @property
    def has_active_maintenance(self) -> bool:
        return (
            self.state == LicenceState.ACTIVE
            and self.maintenance_until is not None
            and self.maintenance_until >= timezone.localdate()
        )


class Setting(models.Model):
    """One system setting: a JSON value under a group and key (e.g. dns / servers)."""

    group = models.CharField(max_length=40)
    key = models.CharField(max_length=80)
    value = models.JSONField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["group", "key"], name="setting_group_key_unique")
        ]
        ordering: ClassVar = ["group", "key"]

    def __str__(self) -> str:
        return f"{self.group}.{self.key}"

    @property
    def is_site_bound(self) -> bool:
        return self.group in SITE_BOUND_GROUPS


class PeerToken(models.Model):
    """A short-lived bearer token of the peer API; only its SHA-256 is stored."""

    digest = models.CharField(max_length=64, unique=True)
    client_address = models.GenericIPAddressField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"token for {self.client_address} until {self.expires_at:%H:%M:%S}"


class PeerAuthFailures(models.Model):
    """Peer-API logins from one address since its last success or lockout (each counted before
    its password is checked), its lockouts in a row, and until when the current one lasts."""

    client_address = models.GenericIPAddressField(unique=True)
    failures = models.PositiveIntegerField(default=0)
    lockouts = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.client_address}: {self.failures} failures"


class IssuedCredential(models.Model):
    """A database account or SSH key authorisation handed to a migrating peer for one run."""

    class Kind(models.TextChoices):
        DATABASE = "database", "Database account"
        SSH_KEY = "ssh_key", "SSH key authorisation"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    run_ref = models.CharField(max_length=64)
    name = models.CharField(max_length=190, help_text="account name or key fingerprint")
    client_address = models.GenericIPAddressField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["kind", "name"], name="credential_kind_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name} for run {self.run_ref}"
