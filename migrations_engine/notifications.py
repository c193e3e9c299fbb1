"""Email notifications of a run's outcome, for administrators who are not watching the page.

When a run completes, fails, stalls, or is in sync and waits for its cutover, the addresses in
`MIGRATION_NOTIFY_EMAILS` get one email (Django's email API, the `EMAIL_*` settings) saying so,
with the reason and the fix when it failed, a link to the run's page in the wizard, and the
run's report attached (HTML and JSON). Nothing is sent when no address is set.

The email goes out once the change of the run's state has been committed, and only by the one
worker whose change moved the run (`migrations_engine.lifecycle` calls these functions when a
transition took effect), so an outcome is told once. Sending never fails or holds up a run: the
SMTP connection has a timeout (`EMAIL_TIMEOUT`), and an error is logged, without the SMTP
password, and the run carries on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction

from migrations_engine.models import MigrationRun

logger = logging.getLogger(__name__)

COMPLETED = "completed"
FAILED = "failed"
STALLED = "stalled"
WAITING_FOR_CUTOVER = "in sync, waiting for its cutover"


@dataclass(frozen=True)
class Notice:
    """What one email tells: the run, its outcome, and what the administrator should know."""

    run_id: int
    outcome: str
    reason: str = ""
    fix: str = ""
    page: str = "execution"  # the wizard's step that shows this outcome


def notify_completed(run_id: int) -> None:
    """Tell the administrators that run `run_id` completed (after the change commits)."""
    _notify_on_commit(Notice(run_id, COMPLETED, page="result"))


def notify_failed(run_id: int, *, error: str, fix: str) -> None:
    """Tell the administrators that run `run_id` failed, why, and what to do."""
    _notify_on_commit(Notice(run_id, FAILED, reason=error, fix=fix))


def notify_stalled(run_id: int, *, operation: str, hint: str) -> None:
    """Tell the administrators that `operation` of run `run_id` has stopped moving."""
    reason = f"{operation}: no progress for a while."
    _notify_on_commit(Notice(run_id, STALLED, reason=reason, fix=hint))


def notify_waiting_for_cutover(run: MigrationRun) -> None:
    """Tell the administrators that `run` is in sync with its source and waits for its cutover."""
    fix = "Open the run's page and start the cutover when you are ready."
    _notify_on_commit(Notice(run.id, WAITING_FOR_CUTOVER, fix=fix))


def _notify_on_commit(notice: Notice) -> None:
    """Send the notice once the current transaction commits (at once outside one)."""
    if settings.MIGRATION_NOTIFY_EMAILS:
        transaction.on_commit(lambda: notice_send(notice))


def notice_send(notice: Notice) -> bool:
    """Send the notice's email now; whether it went out. Never raises: an error is logged
    (without the SMTP password) and the run carries on."""
    try:
        message = notice_message(notice)
        sent = message.send()
    except Exception as error:
        logger.warning(
            "run %s: the email saying it %s could not be sent to %s: %s",
            notice.run_id,
            notice.outcome,
            ", ".join(settings.MIGRATION_NOTIFY_EMAILS),
            _without_secret(f"{type(error).__name__}: {error}"),
        )
        return False
    logger.info("run %s: emailed that it %s", notice.run_id, notice.outcome)
    return bool(sent)


def _without_secret(text: str) -> str:
    """`text` with the SMTP password blanked out, should a server have echoed it."""
    password = settings.EMAIL_HOST_PASSWORD
    return text.replace(password, "********") if password else text


def notice_message(notice: Notice) -> EmailMessage:
    """The email for the notice, with the run's report attached (HTML and JSON)."""
    from migrations_engine.report import report_build, report_html

    run = MigrationRun.objects.get(id=notice.run_id)
    if not run.report:
        run.report = report_build(run)  # a run that did not complete has none stored
    message = EmailMessage(
        subject=notice_subject(run, notice),
        body=notice_body(run, notice),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(settings.MIGRATION_NOTIFY_EMAILS),
        connection=get_connection(timeout=settings.EMAIL_TIMEOUT),
    )
    name = f"migration-{run.id}-report"
    message.attach(f"{name}.html", report_html(run), "text/html")
    message.attach(
        f"{name}.json", json.dumps(run.report, indent=2, default=str), "application/json"
    )
    return message


def _source_name(run: MigrationRun) -> str:
    host = str(run.source_info.get("host_name") or "") if run.source_info else ""
    return f"{host} ({run.source_address})" if host else str(run.source_address)


def notice_subject(run: MigrationRun, notice: Notice) -> str:
    """One line: which run, from where, and its outcome."""
    return f"Migration run {run.id} from {_source_name(run)}: {notice.outcome}"


def notice_link(notice: Notice) -> str:
    """The address of the wizard's page that shows the run in this state."""
    return f"{settings.APPLIANCE_BASE_URL}/wizard/{notice.page}/"


def notice_body(run: MigrationRun, notice: Notice) -> str:
    """The email's text: the outcome, the reason and the fix when there are, the link."""
    lines = [f"The migration from {_source_name(run)} to this system {notice.outcome}.", ""]
    if notice.reason:
        lines += [f"Reason: {notice.reason}", ""]
    if notice.fix:
        lines += [f"What to do: {notice.fix}", ""]
    lines += [
        f"See the run: {notice_link(notice)}",
        "",
        "The run's report is attached.",
    ]
    return "\n".join(lines) + "\n"
