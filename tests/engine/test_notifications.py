"""Email notifications of a run's outcome, received by a real SMTP server (aiosmtpd) that each
test starts on a free port: what the administrators read, and that mail trouble never harms a
run."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.core.exceptions import ImproperlyConfigured

from config.env import base_url, env_emails
from migrations_engine import executor, notifications
from migrations_engine.models import MigrationRun, RunStatus
from tests.engine import runs

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

no_dispatch = pytest.fixture(autouse=True)(runs.no_dispatch)
ADMINS = ["ops@example.test", "night-shift@example.test"]
BASE_URL = "https://appliance.example.test:8443"
SMTP_PASSWORD = "smtp-secret-do-not-log"


@dataclass
class Mailbox:
    """What the test's SMTP server received, and how it answers."""

    refuse: bool = False
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            return "554 5.7.1 Message refused"
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox(settings: Any) -> Iterator[Mailbox]:
    """A real SMTP server on 127.0.0.1, and this node's settings pointing at it."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    mail_settings(settings, controller.port)
    yield box
    controller.stop()


def mail_settings(settings: Any, port: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "", ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "appliance@example.test"
    settings.MIGRATION_NOTIFY_EMAILS = ADMINS
    settings.APPLIANCE_BASE_URL = BASE_URL


def claimed_run() -> tuple[MigrationRun, int]:
    run = runs.new_run()
    executor.run_start(run)
    claim = executor.run_claim(run.id, "worker-a")
    assert claim is not None
    return claim


def complete(run: MigrationRun, fence: int) -> MigrationRun:
    executor._run_succeed(run, fence)
    run.refresh_from_db()
    return run


def fail(run: MigrationRun, fence: int) -> MigrationRun:
    executor._run_fail(
        run, fence, "The source stopped answering on port 3306.", "Start it, then Resume."
    )
    run.refresh_from_db()
    return run


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def attachments(message: EmailMessage) -> dict[str, str]:
    """The attached files' names and text."""
    files = {}
    for part in message.iter_attachments():
        content = part.get_content()
        files[str(part.get_filename())] = (
            content.decode() if isinstance(content, bytes) else str(content)
        )
    return files


def test_a_completed_run_is_emailed_with_the_link_and_the_report(mailbox: Mailbox) -> None:
    run = complete(*claimed_run())
    assert run.status == RunStatus.SUCCEEDED
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert sorted(mailbox.recipients[0]) == sorted(ADMINS)
    assert message["Subject"] == f"Migration run {run.id} from old (127.0.0.2): completed"
    assert f"See the run: {BASE_URL}/wizard/result/" in body(message)
    files = attachments(message)
    report = json.loads(files[f"migration-{run.id}-report.json"])
    assert report["run"] == run.id and report["status"] == RunStatus.SUCCEEDED
    assert "<html" in files[f"migration-{run.id}-report.html"].lower()


def test_a_failed_run_is_emailed_with_the_reason_and_the_fix(mailbox: Mailbox) -> None:
    run = fail(*claimed_run())
    assert run.status == RunStatus.FAILED
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["Subject"] == f"Migration run {run.id} from old (127.0.0.2): failed"
    text = body(message)
    assert "Reason: The source stopped answering on port 3306." in text
    assert "What to do: Start it, then Resume." in text
    assert f"See the run: {BASE_URL}/wizard/execution/" in text
    report = json.loads(attachments(message)[f"migration-{run.id}-report.json"])
    assert report["run"] == run.id and report["status"] == RunStatus.FAILED


def test_an_outcome_reached_twice_is_emailed_once(mailbox: Mailbox) -> None:
    run, fence = claimed_run()
    fail(run, fence)
    fail(run, fence)  # a second path to the same end (a late worker, the sweeper)
    assert len(mailbox.messages) == 1


def test_a_run_waiting_for_its_cutover_and_a_stall_are_emailed(mailbox: Mailbox) -> None:
    run, _ = claimed_run()
    notifications.notify_waiting_for_cutover(run)
    notifications.notify_stalled(run.id, operation="Copies the data", hint="Check the source.")
    subjects = [str(message["Subject"]) for message in mailbox.messages]
    assert subjects == [
        f"Migration run {run.id} from old (127.0.0.2): in sync, waiting for its cutover",
        f"Migration run {run.id} from old (127.0.0.2): stalled",
    ]
    assert "Reason: Copies the data: no progress for a while." in body(mailbox.messages[1])


def test_nothing_is_sent_when_no_address_is_set(mailbox: Mailbox, settings: Any) -> None:
    settings.MIGRATION_NOTIFY_EMAILS = []
    run = complete(*claimed_run())
    assert run.status == RunStatus.SUCCEEDED
    time.sleep(0.2)
    assert mailbox.messages == []


def test_a_refusing_smtp_server_does_not_fail_the_run(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox.refuse = True
    with caplog.at_level(logging.WARNING, logger="migrations_engine.notifications"):
        run = complete(*claimed_run())
    assert run.status == RunStatus.SUCCEEDED
    assert "could not be sent" in caplog.text and "Message refused" in caplog.text


def test_a_smtp_server_that_is_down_does_not_fail_or_hold_up_the_run(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mail_settings(settings, free_port())  # nothing listens there
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "mailer", SMTP_PASSWORD
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        run = fail(*claimed_run())
    assert time.monotonic() - started < 5
    assert run.status == RunStatus.FAILED
    assert "could not be sent" in caplog.text
    assert SMTP_PASSWORD not in caplog.text


def test_a_wrong_smtp_login_is_logged_without_the_password(
    mailbox: Mailbox, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "mailer", SMTP_PASSWORD
    with caplog.at_level(logging.INFO):
        run = complete(*claimed_run())
    assert run.status == RunStatus.SUCCEEDED
    assert mailbox.messages == []
    assert "could not be sent" in caplog.text
    assert SMTP_PASSWORD not in caplog.text


def test_the_addresses_are_read_from_the_environment_and_a_bad_one_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIGRATION_NOTIFY_EMAILS", "ops@example.test, night-shift@example.test")
    assert env_emails("MIGRATION_NOTIFY_EMAILS") == ADMINS
    monkeypatch.setenv("MIGRATION_NOTIFY_EMAILS", "ops@example.test, not an address")
    with pytest.raises(ImproperlyConfigured, match="'not an address' is not an email address"):
        env_emails("MIGRATION_NOTIFY_EMAILS")
    monkeypatch.delenv("MIGRATION_NOTIFY_EMAILS")
    assert env_emails("MIGRATION_NOTIFY_EMAILS") == []
    assert base_url("fd00::7", 443) == "https://[fd00::7]"
    assert base_url("127.0.0.1", 8443) == "https://127.0.0.1:8443"
