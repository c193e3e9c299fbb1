"""A migration run and its operations, as rows in the current system's control database.

The run's row is the single truth about a migration: the wizard's pages, the command line and the
workers all read and write it, so a closed browser or a restarted worker loses nothing.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from migrations_engine.preflight import CERTIFICATE_CHECK
from migrations_engine.source_info import SourceInfo


class RunStatus(models.TextChoices):
    """Where a run stands."""

    DRAFT = "draft", "Being prepared"
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Completed"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class CutoverMode(models.TextChoices):
    """When a run with an online pre-copy leaves it for the maintenance window (the cutover)."""

    CAUGHT_UP = "caught_up", "As soon as the copy has caught up with the source"
    AT = "at", "At a time I choose (a maintenance window)"
    MANUAL = "manual", "When I press Cut over now"


class MigrationRun(models.Model):
    """One migration from a source to this system: its source, options, plan, state and report."""

    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source_address = models.GenericIPAddressField(null=True, blank=True)
    source_port = models.PositiveIntegerField(default=443)
    source_certificate = models.TextField(blank=True, help_text="the pinned certificate (PEM)")
    source_fingerprint = models.CharField(max_length=100, blank=True)
    source_info = models.JSONField(default=dict, blank=True)
    current_info = models.JSONField(
        default=dict, blank=True, help_text="this system's identity when the run was prepared"
    )
    checks = models.JSONField(default=list, blank=True, help_text="the last pre-flight checks")
    checked_at = models.DateTimeField(null=True, blank=True)
    fingerprint_confirmed = models.BooleanField(default=False)
    options_chosen = models.BooleanField(default=False)

    swap_configuration = models.BooleanField(default=False)
    migrate_licence = models.BooleanField(default=False)
    copy_traffic_logs = models.BooleanField(default=False)
    tables = models.JSONField(null=True, blank=True, help_text="null: every table")
    accounts = models.JSONField(
        null=True, blank=True, help_text="selective migration: these accounts only (null: all)"
    )

    cutover_mode = models.CharField(
        max_length=10, choices=CutoverMode.choices, default=CutoverMode.CAUGHT_UP
    )
    cutover_at = models.DateTimeField(null=True, blank=True, help_text="with the 'at' mode")
    cutover_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="when someone asked to cut over now"
    )
    bandwidth_limit = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="the migration's traffic limit in bytes/s (null: none)"
    )

    plan = models.JSONField(default=list, blank=True)
    plan_version = models.PositiveIntegerField(default=0)

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.DRAFT)
    active = models.BooleanField(
        null=True, unique=True, editable=False, help_text="True while queued or running"
    )
    current_operation = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    fix = models.TextField(blank=True)

    fence = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=190, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    downtime_started_at = models.DateTimeField(
        null=True, blank=True, help_text="when the source went into maintenance (writes refused)"
    )
    credentials_revoked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when the source dropped what it issued to the run (cleared on Resume)",
    )
    downtime_ended_at = models.DateTimeField(
        null=True, blank=True, help_text="when this system served again with the migrated data"
    )

    log = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="when the administrator closed it (a new run may begin)"
    )

    def __str__(self) -> str:
        return f"run {self.pk} from {self.source_address or '?'} ({self.status})"

    @property
    def peer_ref(self) -> str:
        """How the source knows this run's credentials (database account, SSH key)."""
        return f"run-{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ABANDONED)

    @property
    def downtime_seconds(self) -> float | None:
        """How long the appliance's users could not be served (None until it is over)."""
        if self.downtime_started_at is None or self.downtime_ended_at is None:
            return None
        return (self.downtime_ended_at - self.downtime_started_at).total_seconds()

    @property
    def checks_passed(self) -> bool:
        return bool(self.checks) and all(check["ok"] for check in self.checks)

    @property
    def certificate_changed(self) -> bool:
        """Whether the source presented another certificate than the one confirmed."""
        return any(check["name"] == CERTIFICATE_CHECK and not check["ok"] for check in self.checks)

    @property
    def awaits_fingerprint(self) -> bool:
        """Whether the source answered with a certificate the administrator has yet to confirm."""
        return bool(self.source_certificate) and not self.fingerprint_confirmed

    @property
    def source(self) -> SourceInfo:
        """The source's info as typed facts, read from the stored form (`source_info`)."""
        return SourceInfo.stored(self.source_info or {})

    @property
    def source_is_ha(self) -> bool:
        return self.source.is_ha

    @property
    def source_name(self) -> str:
        """The source's fully qualified host name."""
        return self.source.fqdn


class RehearsalStatus(models.TextChoices):
    """Where a rehearsal stands."""

    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Running"
    DONE = "done", "Completed"
    FAILED = "failed", "Failed"


class Rehearsal(models.Model):
    """One rehearsal (dry run) of a prepared run: a job of its own, claimed by one worker.

    Like a run, its state changes only through `lifecycle` (each a conditional UPDATE checked
    against its fence), it keeps a heartbeat while it runs, and the sweeper ends it failed when
    its worker stopped. Only one rehearsal at a time on this system (they share the scratch
    database): `active` is True while it is queued or running. A run's last rehearsal is the one
    the wizard shows.
    """

    run = models.ForeignKey(MigrationRun, related_name="rehearsals", on_delete=models.CASCADE)
    status = models.CharField(
        max_length=10, choices=RehearsalStatus.choices, default=RehearsalStatus.QUEUED
    )
    active = models.BooleanField(
        null=True, unique=True, editable=False, help_text="True while queued or running"
    )
    fence = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=190, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    fraction = models.FloatField(default=0.0)
    message = models.CharField(max_length=300, blank=True)
    outcome = models.JSONField(
        default=dict, blank=True, help_text="what the real run would do and how long"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rehearsal {self.pk} of run {self.run_id} ({self.status})"

    @property
    def is_going(self) -> bool:
        """Whether it is queued or running (the page keeps polling)."""
        return self.status in REHEARSAL_ACTIVE_STATUSES


REHEARSAL_ACTIVE_STATUSES = (RehearsalStatus.QUEUED, RehearsalStatus.RUNNING)


class OperationStatus(models.TextChoices):
    """Where one operation of a run stands."""

    PENDING = "pending", "Waiting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    UNDONE = "undone", "Undone"


class OperationState(models.Model):
    """One operation of a run: its progress, figures, ETA, result and what undo needs."""

    run = models.ForeignKey(MigrationRun, related_name="operations", on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=40)
    label = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=OperationStatus.choices, default=OperationStatus.PENDING
    )
    fraction = models.FloatField(default=0.0)
    figures = models.JSONField(default=dict, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=300, blank=True)
    stalled = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    moved_at = models.DateTimeField(null=True, blank=True, help_text="last time progress moved")
    undone_at = models.DateTimeField(
        null=True, blank=True, help_text="when its work was undone (cleared when it runs again)"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    fix = models.TextField(blank=True)
    memory = models.JSONField(
        default=dict, blank=True, help_text="what the operation recorded to resume and undo"
    )
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar = ["run", "position"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["run", "name"], name="operation_once_per_run")
        ]

    def __str__(self) -> str:
        return f"{self.name} of run {self.run_id} ({self.status})"


class RunSecret(models.Model):
    """A secret a run needs for a while (admin password, issued credentials), encrypted.

    Encrypted with a key derived from the app's secret key, valid for a limited time, and
    deleted when the run ends.
    """

    run = models.ForeignKey(MigrationRun, related_name="secrets", on_delete=models.CASCADE)
    name = models.CharField(max_length=40)
    token = models.TextField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["run", "name"], name="secret_once_per_run")
        ]

    def __str__(self) -> str:
        return f"{self.name} of run {self.run_id}"
