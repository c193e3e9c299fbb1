"""Preparing a run: reach the source, check its certificate, log in, read its info, plan.

Used by the wizard and by `manage.py migrate_from`, so both prepare runs the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from appliance import services as node_services
from migrations_engine.executor import RunRefused, run_abandon, run_plan, run_start
from migrations_engine.lifecycle import draft_save, run_close_mark
from migrations_engine.models import CutoverMode, MigrationRun, RunStatus
from migrations_engine.peer_client import PeerClient, certificate_fingerprint, fetch_certificate
from migrations_engine.plan import licence_migration_refusal
from migrations_engine.preflight import (
    PASSWORD_CHECK,
    Check,
    certificate_changed,
    fingerprint_normalise,
    password_pending,
    preflight_login,
    preflight_reach,
    source_address_check,
)
from migrations_engine.secrets import SecretMissing, secret_forget, secret_get, secret_put
from migrations_engine.source_info import SourceInfo
from migrations_engine.steps import step_missing


class PreparationError(Exception):
    """The run cannot be prepared as asked; the message says why and what to do."""


MB = 1_000_000
"""A megabyte, as traffic limits are given (MB/s)."""


@dataclass(frozen=True)
class Timing:
    """When the cutover begins, and how fast the migration may move data."""

    cutover_mode: str = CutoverMode.CAUGHT_UP
    cutover_at: datetime | None = None
    bandwidth_limit: int | None = None
    """Bytes per second for the whole migration's traffic (None: no limit)."""

    def check(self) -> None:
        """PreparationError when these choices cannot be used."""
        if self.cutover_mode not in CutoverMode.values:
            raise PreparationError(f"Unknown cutover choice {self.cutover_mode!r}.")
        if self.cutover_mode == CutoverMode.AT:
            if self.cutover_at is None:
                raise PreparationError("Give the time of the cutover (the maintenance window).")
            if timezone.is_naive(self.cutover_at):
                raise PreparationError("Give the cutover time with its time zone.")
        if self.bandwidth_limit is not None and self.bandwidth_limit <= 0:
            raise PreparationError("The traffic limit must be more than 0 MB/s (blank for none).")

    def apply(self, run: MigrationRun) -> None:
        run.cutover_mode = self.cutover_mode
        run.cutover_at = self.cutover_at if self.cutover_mode == CutoverMode.AT else None
        run.bandwidth_limit = self.bandwidth_limit

    @classmethod
    def of(cls, run: MigrationRun) -> Timing:
        return cls(run.cutover_mode, run.cutover_at, run.bandwidth_limit)


def run_prepare(
    *,
    address: str,
    password: str,
    fingerprint: str,
    port: int = 443,
    swap_configuration: bool = False,
    migrate_licence: bool = False,
    copy_traffic_logs: bool = False,
    tables: list[str] | None = None,
    accounts: list[str] | None = None,
    timing: Timing | None = None,
    user: Any = None,
) -> MigrationRun:
    """A planned run for this source and these options, with the admin password kept encrypted."""
    pem = fetch_certificate(address, port)
    presented = certificate_fingerprint(pem)
    if fingerprint_normalise(presented) != fingerprint_normalise(fingerprint):
        raise PreparationError(
            f"The source's certificate has the fingerprint {presented}, not the one confirmed. "
            "Check that you are talking to the right system."
        )
    client = PeerClient(address, pem, port)
    client.login(password)
    info = client.source_info()
    client.logout()
    options_check(info, migrate_licence=migrate_licence, tables=tables, accounts=accounts)
    timing = timing or Timing()
    timing.check()
    run = MigrationRun(
        created_by=user if getattr(user, "pk", None) else None,
        source_address=address,
        source_port=port,
        source_certificate=pem,
        source_fingerprint=presented,
        source_info=info.as_dict(),
        swap_configuration=swap_configuration,
        migrate_licence=migrate_licence,
        copy_traffic_logs=copy_traffic_logs,
        tables=tables,
        accounts=accounts,
    )
    timing.apply(run)
    draft_save(run)
    secret_put(run, "admin_password", password)
    run_plan(run)
    return run


# The same preparation in steps, as the wizard takes it: each step writes to the run's row, so
# any staff browser sees the same run and a closed browser loses nothing.


def wizard_run() -> MigrationRun | None:
    """The run the wizard is on: the one in progress, else the newest one not closed."""
    active = MigrationRun.objects.filter(active=True).first()
    if active is not None:
        return active
    return (
        MigrationRun.objects.filter(closed_at__isnull=True)
        .exclude(status=RunStatus.ABANDONED)
        .order_by("-id")
        .first()
    )


def draft_source_check(
    run: MigrationRun | None, *, address: str, password: str, user_id: int | None = None
) -> MigrationRun:
    """Check the source named on the Source step and keep what was found in the (new) draft.

    The password is kept encrypted for the run, and sent to the source only once its
    certificate's fingerprint is confirmed (`draft_fingerprint_confirm`), through a client
    pinned to that certificate. A certificate other than the confirmed one stops the checks
    before the password goes out. AddressRefused when the address cannot be a source;
    PreparationError when no password is known.
    """
    address = source_address_check(address)
    if run is not None and run.status != RunStatus.DRAFT:
        raise PreparationError("This migration has started; its source cannot change.")
    if not password and run is not None and run.source_address == address:
        password = _known_password(run)
    if not password:
        raise PreparationError("Enter the Admin User password of the source system.")
    reached = preflight_reach(
        address,
        port=settings.MIGRATION_SOURCE_HTTPS_PORT,
        ports=settings.MIGRATION_SOURCE_PORTS,
    )
    if run is None:
        run = MigrationRun(created_by_id=user_id)
    if run.source_address != address:
        run.fingerprint_confirmed = False
        run.options_chosen = False
    run.source_address = address
    run.source_port = settings.MIGRATION_SOURCE_HTTPS_PORT
    run.current_info = _current_info()
    if run.fingerprint_confirmed and reached.reached:
        if reached.fingerprint != run.source_fingerprint:
            changed = certificate_changed(reached.fingerprint, run.source_fingerprint)
            return _checks_keep(run, [*reached.checks, changed], password)
        login_checks, info = preflight_login(
            address, run.source_certificate, password, port=run.source_port
        )
        return _checks_keep(run, [*reached.checks, *login_checks], password, info)
    run.fingerprint_confirmed = False
    run.source_certificate = reached.certificate
    run.source_fingerprint = reached.fingerprint
    run.source_info = {}
    return _checks_keep(run, [*reached.checks, password_pending()], password)


def draft_fingerprint_confirm(run: MigrationRun) -> MigrationRun:
    """The administrator compared the certificate's fingerprint and it matches: now the
    password goes to the source, through a client pinned to that certificate."""
    if run.status != RunStatus.DRAFT:
        raise PreparationError("This migration has started; its preparation cannot change.")
    if not run.source_certificate:
        raise PreparationError("The source has not presented a certificate yet: Re-check.")
    if run.certificate_changed:
        raise PreparationError("The source's certificate changed: start again.")
    password = _known_password(run)
    if not password:
        raise PreparationError("Enter the Admin User password of the source system again.")
    run.fingerprint_confirmed = True
    reached = [Check(**check) for check in run.checks if check["name"] != PASSWORD_CHECK]
    login_checks, info = preflight_login(
        str(run.source_address), run.source_certificate, password, port=run.source_port
    )
    return _checks_keep(run, [*reached, *login_checks], password, info)


def _checks_keep(
    run: MigrationRun,
    checks: list[Check],
    password: str,
    info: SourceInfo | None = None,
) -> MigrationRun:
    """Save the checks (and the source's info when the login gave it) in the draft; the
    password is kept unless the source refused it."""
    run.checks = [asdict(check) for check in checks]
    run.checked_at = timezone.now()
    if info is not None:
        run.source_info = info.as_dict()
    draft_save(run)
    if any(check.name == PASSWORD_CHECK and check.refused_password for check in checks):
        secret_forget(run, "admin_password")
    else:
        secret_put(run, "admin_password", password)
    return run


def _known_password(run: MigrationRun) -> str:
    try:
        return secret_get(run, "admin_password")
    except SecretMissing:
        return ""


def _current_info() -> dict[str, Any]:
    node = node_services.node_get()
    return {
        "host_name": node.host_name,
        "domain_name": node.domain_name,
        "ip_address": node.ip_address,
        "licence_state": node_services.licence_get().state,
    }


def licence_refusal(source: SourceInfo) -> str:
    """Why this source's licence cannot move to this system ('' when it can)."""
    return licence_migration_refusal(
        target_licence_state=node_services.licence_get().state, source=source
    )


def draft_options_set(
    run: MigrationRun,
    *,
    swap_configuration: bool,
    migrate_licence: bool,
    copy_traffic_logs: bool,
    tables: list[str] | None,
    accounts: list[str] | None = None,
    timing: Timing | None = None,
) -> None:
    """Keep the chosen options and plan the run for them."""
    _require_step(run, "options")
    options_check(run.source, migrate_licence=migrate_licence, tables=tables, accounts=accounts)
    timing = timing or Timing()
    timing.check()
    timing.apply(run)
    run.swap_configuration = swap_configuration
    run.migrate_licence = migrate_licence
    run.copy_traffic_logs = copy_traffic_logs
    run.tables = tables
    run.accounts = accounts
    run.options_chosen = True
    draft_save(run)
    run_plan(run)


def options_check(
    source: SourceInfo,
    *,
    migrate_licence: bool,
    tables: list[str] | None,
    accounts: list[str] | None,
) -> None:
    """PreparationError when these options cannot be used with this source."""
    if migrate_licence and (refusal := licence_refusal(source)):
        raise PreparationError(f"Migrate License is not possible: {refusal}")
    if tables is not None:
        unknown = sorted(set(tables) - source.table_names)
        if unknown:
            raise PreparationError(f"The source has no table {', '.join(unknown)}.")
        if not tables:
            raise PreparationError("Choose at least one table, or all data.")
    if accounts is not None:
        if tables is not None:
            raise PreparationError("Choose either tables or accounts, not both.")
        if not accounts:
            raise PreparationError("List at least one account, one user name per line.")
        if source.is_ha:
            raise PreparationError(
                "Only a standalone source can be migrated account by account: a source in "
                "high availability is replicated whole."
            )


def draft_execute(run: MigrationRun, *, typed_name: str) -> None:
    """Start the run once the administrator typed the source's host name to confirm."""
    _require_step(run, "confirmation")
    typed = typed_name.strip().lower()
    source = run.source
    names = {source.host_name.lower(), source.fqdn.lower()}
    if not typed or typed not in names:
        raise PreparationError(f"Type the source's host name ({source.host_name}) to confirm.")
    if not _known_password(run):
        raise PreparationError(
            "The source's Admin User password is no longer known here: go back to Source "
            "and enter it again."
        )
    try:
        run_start(run)
    except RunRefused as error:
        raise PreparationError(str(error)) from None


def _require_step(run: MigrationRun, name: str) -> None:
    """PreparationError unless the run in preparation has reached this step."""
    if missing := step_missing(run, name):
        raise PreparationError(missing)


def run_cutover_now(run: MigrationRun) -> None:
    """Ask a run that keeps its copy in sync to cut over now (RunRefused when it is not
    running or already past its cutover)."""
    if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise RunRefused("Only a run in progress can cut over.")
    if not run.operations.filter(name="await_cutover").exclude(status="succeeded").exists():
        raise RunRefused("This run has no cutover to wait for, or is past it.")
    MigrationRun.objects.filter(id=run.id, cutover_requested_at=None).update(
        cutover_requested_at=timezone.now()
    )


def run_close(run: MigrationRun) -> None:
    """The administrator is done with this run (a finished one, or a draft given up)."""
    if run.status in (RunStatus.DRAFT, RunStatus.FAILED):
        try:
            run_abandon(run)
        except RunRefused as error:
            raise PreparationError(str(error)) from None
    elif not run.is_finished:
        raise PreparationError("A migration in progress cannot be closed.")
    if not run_close_mark(run.id):
        raise PreparationError("A migration in progress cannot be closed.")
