"""The migration wizard through the browser's eyes: who may see it, what each step shows and
refuses, which step a run allows, the polled progress partial, Resume and Abandon, the result
page with its report and Close, and the filters that write figures for people.

Runs are made as rows (or through the engine's services where no network is needed); nothing
here reaches a source: the network clients are replaced by a guard that fails the test.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, reverse
from django.urls.converters import IntConverter
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries, DjangoCaptureOnCommitCallbacks

from appliance.models import Licence, LicenceState, Node
from migrations_engine import peer_client, preflight, services, tasks
from migrations_engine.models import (
    MigrationRun,
    OperationState,
    OperationStatus,
    RunSecret,
    RunStatus,
)
from migrations_engine.operations import OPERATION_BY_NAME
from migrations_engine.secrets import secret_put
from migrations_engine.services import wizard_run
from migrations_engine.source_info import SourceInfo
from wizard import urls as wizard_urls
from wizard.templatetags.wizard_format import duration, figures, percent, size

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
POST_ONLY = {
    "close",
    "resume",
    "abandon",
    "start_over",
    "cutover",
    "source_confirm",
    "source_start_again",
}
"""Wizard URLs that only take POST (a GET is answered 405 before any login check)."""

PASSED_CHECKS = [
    {"name": "Port 443 (HTTPS: the source's peer API)", "ok": True, "detail": "open", "fix": ""},
    {"name": "Admin User password", "ok": True, "detail": "accepted by the source", "fix": ""},
]
FAILED_CHECKS = [
    PASSED_CHECKS[0],
    {
        "name": "Port 3306 (MySQL: the data copy)",
        "ok": False,
        "detail": "connection refused",
        "fix": "Open TCP port 3306 from this system to 192.0.2.10.",
    },
]
TABLES = [
    {"name": "accounts", "rows": 1200, "bytes": 2_500_000},
    {"name": "sessions", "rows": 90, "bytes": 40_000},
]
STANDALONE_INFO: dict[str, Any] = {
    "server_role": "standalone",
    "server_role_label": "Standalone",
    "host_name": "gw1",
    "domain_name": "mycompany.test",
    "ip_address": "192.0.2.10",
    "software_version": "5.2.0",
    "licence": {"guid": "LIC-0001", "state": "active", "has_active_maintenance": True},
    "data_size_bytes": 2_540_000,
    "data_tables": TABLES,
    "traffic_log_files": 3,
    "traffic_log_bytes": 1_500_000,
}
HA_INFO: dict[str, Any] = STANDALONE_INFO | {
    "server_role": "ha_master",
    "server_role_label": "HA Master",
    "ip_address": "10.0.0.2",
    "ha": {
        "replication_peer": "10.0.0.3",
        "round_robin_hosts": ["10.0.0.2", "10.0.0.3"],
        "load_balancing_domain": "loadbalancing.mycompany.test",
    },
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail the test if anything tries to reach a source (pre-flight or peer API)."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args))
        raise AssertionError("a wizard test tried to reach the network")

    monkeypatch.setattr(services, "preflight_reach", refuse)
    monkeypatch.setattr(services, "preflight_login", refuse)
    monkeypatch.setattr(services, "fetch_certificate", refuse)
    monkeypatch.setattr(peer_client.PeerClient, "request", refuse)
    monkeypatch.setattr(peer_client.PinnedHTTPSConnection, "connect", refuse)
    yield attempts
    assert attempts == [], "the test reached for the network"


class Response(Protocol):
    """What these tests read of a test client's response."""

    @property
    def content(self) -> bytes: ...


def page_text(response: Response) -> str:
    """The page's HTML with entities decoded, to look for what a reader sees."""
    return html.unescape(response.content.decode())


def input_tag(page: str, name: str, value: str | None = None) -> str:
    """The <input> with this name (and value), as rendered."""
    for tag in re.findall(r"<input\b[^>]*>", page):
        if f'name="{name}"' in tag and (value is None or f'value="{value}"' in tag):
            return str(tag)
    raise AssertionError(f"no input named {name!r} with value {value!r} on the page")


def is_checked(tag: str) -> bool:
    return re.search(r"\schecked\b", tag) is not None


def draft(**fields: Any) -> MigrationRun:
    """A run being prepared whose pre-flight checks passed (unless told otherwise)."""
    values: dict[str, Any] = {
        "source_address": "192.0.2.10",
        "source_fingerprint": "AB:CD:EF:01",
        "source_info": STANDALONE_INFO,
        "current_info": {"host_name": "newgw", "ip_address": "192.0.2.20"},
        "checks": PASSED_CHECKS,
        "checked_at": timezone.now(),
    }
    return MigrationRun.objects.create(**(values | fields))


def started(status: RunStatus, operations: list[dict[str, Any]], **fields: Any) -> MigrationRun:
    """A run past its preparation, with these operation rows (by operation name, in order)."""
    active = True if status in (RunStatus.QUEUED, RunStatus.RUNNING) else None
    run = draft(
        fingerprint_confirmed=True,
        options_chosen=True,
        status=status,
        active=active,
        started_at=timezone.now(),
        **fields,
    )
    for position, operation in enumerate(operations, start=1):
        OperationState.objects.create(
            run=run,
            position=position,
            label=OPERATION_BY_NAME[operation["name"]].label,
            **operation,
        )
    return run


def failed_run() -> MigrationRun:
    """A run stopped on its data copy (an operation nothing has to undo)."""
    return started(
        RunStatus.FAILED,
        [
            {
                "name": "copy_data",
                "status": OperationStatus.FAILED,
                "fraction": 0.42,
                "attempts": 1,
                "error": "Table accounts is locked on the source.",
                "fix": "Unlock the table on the source, then Resume.",
            },
            {"name": "restart_services"},
        ],
        error="Table accounts is locked on the source.",
        fix="Unlock the table on the source, then Resume.",
        finished_at=timezone.now(),
    )


def wizard_urls_to_try() -> list[tuple[str, str]]:
    """Every wizard URL by name, its int arguments filled with 1."""
    found = []
    for pattern in wizard_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        converters = pattern.pattern.converters  # type: ignore[attr-defined]
        assert all(isinstance(conv, IntConverter) for conv in converters.values())
        kwargs = dict.fromkeys(converters, 1)
        found.append((str(pattern.name), reverse(f"wizard:{pattern.name}", kwargs=kwargs)))
    return found


WIZARD_URLS = wizard_urls_to_try()


# 1. Who may see the wizard


def test_the_url_walk_finds_every_step_and_action() -> None:
    names = {name for name, _ in WIZARD_URLS}
    assert {"start", "welcome", "source", "result", "progress", "report"} <= names
    assert names >= POST_ONLY


@pytest.mark.parametrize(("name", "url"), WIZARD_URLS, ids=[name for name, _ in WIZARD_URLS])
def test_an_anonymous_visitor_is_sent_to_the_login_page(name: str, url: str) -> None:
    client = Client()
    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN}?next=")
    response = client.get(url)
    if name in POST_ONLY:
        assert response.status_code == 405
    else:
        assert response.status_code == 302
        assert response["Location"] == f"{LOGIN}?next={url}"


@pytest.mark.parametrize(("name", "url"), WIZARD_URLS, ids=[name for name, _ in WIZARD_URLS])
def test_a_logged_in_user_who_is_not_staff_is_refused(name: str, url: str) -> None:
    clerk = User.objects.create_user("clerk", "clerk@example.test", "clerk-password")
    client = Client()
    client.force_login(clerk)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if method == "get" and name in POST_ONLY:
            assert response.status_code == 405
            continue
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(f"{LOGIN}?next=")


def test_a_user_who_is_not_staff_cannot_abandon_or_resume_a_run() -> None:
    run = failed_run()
    clerk = Client()
    clerk.force_login(User.objects.create_user("clerk", "clerk@example.test", "clerk-password"))
    for client in (clerk, Client()):
        for action in ("abandon", "resume"):
            client.post(f"/wizard/runs/{run.id}/{action}/", headers={"HX-Request": "true"})
        client.post("/wizard/close/")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.closed_at is None


def test_staff_get_the_welcome_page(staff_client: Client) -> None:
    response = staff_client.get("/wizard/welcome/")
    assert response.status_code == 200
    assert "Step 1: Welcome" in page_text(response)
    assert "All local data will be deleted and overwritten." in page_text(response)


# 2. Source: the address is checked before anything is contacted


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("not-an-ip", "'not-an-ip' is not an IPv4 or IPv6 address."),
        ("0.0.0.0", "0.0.0.0 and :: mean 'any address', not a system."),  # noqa: S104
        ("::", "0.0.0.0 and :: mean 'any address', not a system."),
        ("224.0.0.1", "A multicast address cannot be a source system."),
        ("169.254.169.254", "Link-local addresses (such as 169.254.169.254) are not allowed."),
        ("fe80::1", "Link-local addresses"),
        ("127.0.0.1", "A loopback address is this system itself, not a source."),
        ("::1", "A loopback address is this system itself, not a source."),
    ],
)
def test_the_source_step_refuses_an_address_that_cannot_be_a_source(
    staff_client: Client, settings: Any, address: str, reason: str
) -> None:
    settings.WIZARD_ALLOW_LOOPBACK = False
    response = staff_client.post("/wizard/source/", {"address": address, "password": "pw"})
    assert response.status_code == 200
    page = page_text(response)
    assert f'<p class="error" role="alert">{reason}' in page
    assert "Step 2: Source" in page
    assert not MigrationRun.objects.exists()


def test_the_source_step_refuses_this_systems_own_address(staff_client: Client) -> None:
    node = Node.load()
    node.ip_address = "192.0.2.50"
    node.save()
    response = staff_client.post("/wizard/source/", {"address": "192.0.2.50", "password": "pw"})
    assert "That is this system's own address: name the old system." in page_text(response)
    assert not MigrationRun.objects.exists()


@pytest.mark.parametrize(
    "address", ["::ffff:169.254.169.254", "::ffff:127.0.0.1", "::ffff:0.0.0.0", "::ffff:224.0.0.1"]
)
def test_the_source_step_refuses_an_ipv4_mapped_address_it_would_refuse_as_ipv4(
    staff_client: Client, settings: Any, address: str
) -> None:
    settings.WIZARD_ALLOW_LOOPBACK = False
    response = staff_client.post("/wizard/source/", {"address": address, "password": ""})
    page = page_text(response)
    assert "Enter the Admin User password" not in page
    assert '<p class="error" role="alert">' in page


def test_the_source_step_asks_for_the_password_of_a_new_source(staff_client: Client) -> None:
    response = staff_client.post("/wizard/source/", {"address": "192.0.2.10", "password": ""})
    assert response.status_code == 200
    assert "Enter the Admin User password of the source system." in page_text(response)
    assert not MigrationRun.objects.exists()


def test_a_refused_address_leaves_the_prepared_draft_as_it_was(staff_client: Client) -> None:
    run = draft(fingerprint_confirmed=True)
    response = staff_client.post("/wizard/source/", {"address": "224.0.0.1", "password": "pw"})
    assert "A multicast address cannot be a source system." in page_text(response)
    run.refresh_from_db()
    assert run.source_address == "192.0.2.10"
    assert run.checks_passed
    assert run.fingerprint_confirmed
    assert MigrationRun.objects.count() == 1


def test_the_source_step_shows_the_failed_checks_and_what_to_do(staff_client: Client) -> None:
    draft(checks=FAILED_CHECKS)
    response = staff_client.get("/wizard/source/")
    page = page_text(response)
    assert 'value="192.0.2.10"' in page
    assert "Some checks failed: fix what is shown, then Re-check." in page
    assert "Open TCP port 3306 from this system to 192.0.2.10." in page
    assert ">Re-check</button>" in page
    assert 'href="/wizard/source-info/"' not in page


def test_each_source_field_is_described_by_its_help_for_screen_readers(
    staff_client: Client,
) -> None:
    draft()
    page = page_text(staff_client.get("/wizard/source/"))
    for name in ("address", "password"):
        described_by = re.search(rf'<input[^>]*id="id_{name}"[^>]*>', page)
        assert described_by is not None
        assert f'aria-describedby="id_{name}_helptext"' in described_by[0]
        assert f'id="id_{name}_helptext"' in page


class FakeSource:
    """A source as the pre-flight checks see it: the certificate it presents, and every
    password sent to it with the certificate the client was pinned to."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.certificate = "PEM-ONE"
        self.fingerprint = "AA:11"
        self.received: list[tuple[str, str]] = []
        monkeypatch.setattr(services, "preflight_reach", self.reach)
        monkeypatch.setattr(services, "preflight_login", self.login)

    def reach(self, address: str, **_: Any) -> preflight.Preflight:
        checks = [preflight.Check("TLS handshake", True, f"certificate SHA-256 {self.fingerprint}")]
        return preflight.Preflight(checks, self.certificate, self.fingerprint)

    def login(
        self, address: str, certificate: str, password: str, **_: Any
    ) -> tuple[list[preflight.Check], SourceInfo]:
        self.received.append((certificate, password))
        checks = [preflight.Check("Admin User password", True, "accepted")]
        return checks, SourceInfo.stored(STANDALONE_INFO)


@pytest.fixture
def fake_source(monkeypatch: pytest.MonkeyPatch) -> FakeSource:
    return FakeSource(monkeypatch)


def test_the_password_goes_out_only_after_the_fingerprint_is_confirmed(
    staff_client: Client, fake_source: FakeSource
) -> None:
    staff_client.post("/wizard/source/", {"address": "192.0.2.10", "password": "s3cret"})
    assert fake_source.received == []
    page = page_text(staff_client.get("/wizard/source/"))
    assert "Confirm the source's certificate" in page
    assert "AA:11" in page
    assert "not sent yet" in page
    assert "The source answered: confirm its certificate above to go on." in page
    assert "Some checks failed" not in page
    assert staff_client.get("/wizard/source-info/")["Location"] == "/wizard/source/"

    response = staff_client.post("/wizard/source/confirm/", {})
    assert "Confirm that the fingerprint matches before the password is sent." in page_text(
        response
    )
    assert fake_source.received == []

    response = staff_client.post("/wizard/source/confirm/", {"fingerprint_matches": "on"})
    assert response["Location"] == "/wizard/source/"
    assert fake_source.received == [("PEM-ONE", "s3cret")]
    run = MigrationRun.objects.get()
    assert run.fingerprint_confirmed and run.checks_passed
    assert run.source_info["host_name"] == "gw1"
    assert 'href="/wizard/source-info/"' in page_text(staff_client.get("/wizard/source/"))


def test_a_recheck_sends_the_password_through_the_confirmed_certificate_only(
    staff_client: Client, fake_source: FakeSource
) -> None:
    staff_client.post("/wizard/source/", {"address": "192.0.2.10", "password": "s3cret"})
    staff_client.post("/wizard/source/confirm/", {"fingerprint_matches": "on"})
    staff_client.post("/wizard/source/", {"address": "192.0.2.10", "password": ""})
    assert fake_source.received == [("PEM-ONE", "s3cret"), ("PEM-ONE", "s3cret")]


def test_a_certificate_changed_after_confirmation_stops_before_the_password(
    staff_client: Client, fake_source: FakeSource
) -> None:
    staff_client.post("/wizard/source/", {"address": "192.0.2.10", "password": "s3cret"})
    staff_client.post("/wizard/source/confirm/", {"fingerprint_matches": "on"})
    fake_source.certificate, fake_source.fingerprint = "PEM-IMPOSTOR", "BB:22"
    staff_client.post("/wizard/source/", {"address": "192.0.2.10", "password": "s3cret"})
    assert fake_source.received == [("PEM-ONE", "s3cret")]
    page = page_text(staff_client.get("/wizard/source/"))
    assert "Warning: the source's certificate has changed" in page
    assert "BB:22" in page
    run = MigrationRun.objects.get()
    assert not run.checks_passed
    assert run.source_fingerprint == "AA:11"
    for step in ("source-info", "options", "confirmation"):
        assert staff_client.get(f"/wizard/{step}/")["Location"] == "/wizard/source/"
    response = staff_client.post("/wizard/source/confirm/", {"fingerprint_matches": "on"})
    assert "Warning: the source's certificate has changed" in page_text(response)
    assert fake_source.received == [("PEM-ONE", "s3cret")]

    staff_client.post("/wizard/source/start-again/")
    assert wizard_run() is None
    staff_client.post("/wizard/source/", {"address": "192.0.2.10", "password": "s3cret"})
    assert "BB:22" in page_text(staff_client.get("/wizard/source/"))
    assert fake_source.received == [("PEM-ONE", "s3cret")]


# 3. Which step a run allows


@pytest.mark.parametrize("step", ["options", "confirmation", "execution", "result", "source-info"])
def test_without_a_run_the_later_steps_send_back_to_source(staff_client: Client, step: str) -> None:
    response = staff_client.get(f"/wizard/{step}/")
    assert response.status_code == 302
    assert response["Location"] == "/wizard/source/"


def test_without_a_run_the_wizard_opens_on_welcome(staff_client: Client) -> None:
    response = staff_client.get("/wizard/")
    assert response["Location"] == "/wizard/welcome/"
    assert staff_client.get("/wizard/source/").status_code == 200


def test_an_unconfirmed_fingerprint_keeps_the_wizard_on_source(staff_client: Client) -> None:
    draft()
    for step in ("source-info", "options", "confirmation", "execution", "result"):
        response = staff_client.get(f"/wizard/{step}/")
        assert response["Location"] == "/wizard/source/", step
    assert staff_client.get("/wizard/")["Location"] == "/wizard/source/"
    assert staff_client.get("/wizard/source/").status_code == 200


def test_failed_checks_keep_the_wizard_on_source(staff_client: Client) -> None:
    draft(checks=FAILED_CHECKS, fingerprint_confirmed=True, options_chosen=True)
    assert staff_client.get("/wizard/source-info/")["Location"] == "/wizard/source/"
    assert staff_client.get("/wizard/confirmation/")["Location"] == "/wizard/source/"


def test_a_running_run_only_shows_execution(staff_client: Client) -> None:
    started(RunStatus.RUNNING, [{"name": "copy_data", "status": OperationStatus.RUNNING}])
    for step in ("welcome", "source", "source-info", "options", "confirmation", "result"):
        response = staff_client.get(f"/wizard/{step}/")
        assert response.status_code == 302
        assert response["Location"] == "/wizard/execution/", step
    assert staff_client.get("/wizard/")["Location"] == "/wizard/execution/"
    assert staff_client.get("/wizard/execution/").status_code == 200


def test_a_succeeded_run_shows_result_and_execution_only(staff_client: Client) -> None:
    started(RunStatus.SUCCEEDED, [{"name": "copy_data", "status": OperationStatus.SUCCEEDED}])
    assert staff_client.get("/wizard/")["Location"] == "/wizard/result/"
    assert staff_client.get("/wizard/options/")["Location"] == "/wizard/result/"
    assert staff_client.get("/wizard/execution/").status_code == 200
    assert staff_client.get("/wizard/result/").status_code == 200


# 4. Source Info


def test_source_info_of_an_ha_master_gives_the_dns_advice_with_real_names(
    staff_client: Client,
) -> None:
    draft(source_info=HA_INFO, fingerprint_confirmed=True)
    response = staff_client.get("/wizard/source-info/")
    assert response.status_code == 200
    page = page_text(response)
    assert "The system is in high availability" in page
    assert "The system is a standalone type." not in page
    assert (
        "The domain gw1.mycompany.test points to the IP address 10.0.0.3 "
        "and no longer to 10.0.0.2." in page
    )
    assert (
        "The IP address 10.0.0.2 is no longer defined for the domain "
        "loadbalancing.mycompany.test." in page
    )
    assert "HA Master" in page
    assert "AB:CD:EF:01" in page


def test_source_info_of_a_standalone_source_says_so(staff_client: Client) -> None:
    draft(fingerprint_confirmed=True)
    page = page_text(staff_client.get("/wizard/source-info/"))
    assert "The system is a standalone type." in page
    assert "high availability" not in page
    assert "LIC-0001" in page
    assert "2.5 MB in 2 tables" in page
    assert "3 files, 1.5 MB" in page


def test_source_info_shows_the_confirmed_fingerprint_and_leads_to_options(
    staff_client: Client,
) -> None:
    draft(fingerprint_confirmed=True)
    page = page_text(staff_client.get("/wizard/source-info/"))
    assert "Certificate fingerprint (SHA-256), confirmed" in page
    assert 'href="/wizard/options/"' in page
    assert staff_client.get("/wizard/options/").status_code == 200


# 5. Options


def test_migrate_license_is_disabled_when_this_system_has_a_licence(staff_client: Client) -> None:
    licence = Licence.load()
    licence.guid, licence.state = "LIC-HERE", LicenceState.ACTIVE
    licence.save()
    run = draft(fingerprint_confirmed=True)
    page = page_text(staff_client.get("/wizard/options/"))
    tag = input_tag(page, "migrate_licence")
    assert re.search(r"\sdisabled\b", tag)
    assert "Not available: This system already has a licence." in page

    response = staff_client.post("/wizard/options/", {"migrate_licence": "on", "scope": "all"})
    assert response["Location"] == "/wizard/confirmation/"
    run.refresh_from_db()
    assert run.migrate_licence is False
    assert "migrate_licence" not in {op.name for op in run.operations.all()}


def test_migrate_license_is_offered_when_the_licence_can_move(staff_client: Client) -> None:
    run = draft(fingerprint_confirmed=True)
    page = page_text(staff_client.get("/wizard/options/"))
    assert not re.search(r"\sdisabled\b", input_tag(page, "migrate_licence"))
    assert "Moves the licence LIC-0001 here and invalidates it on the source." in page
    staff_client.post("/wizard/options/", {"migrate_licence": "on", "scope": "all"})
    run.refresh_from_db()
    assert run.migrate_licence is True
    assert "migrate_licence" in {op.name for op in run.operations.all()}


def test_chosen_tables_are_kept_and_the_plan_is_built(staff_client: Client) -> None:
    run = draft(fingerprint_confirmed=True)
    response = staff_client.post(
        "/wizard/options/",
        {"copy_traffic_logs": "on", "scope": "chosen", "tables": ["accounts"]},
    )
    assert response.status_code == 302
    assert response["Location"] == "/wizard/confirmation/"
    run.refresh_from_db()
    assert run.tables == ["accounts"]
    assert run.options_chosen
    assert run.copy_traffic_logs and not run.swap_configuration
    assert run.plan
    names = [op.name for op in run.operations.order_by("position")]
    assert "copy_data" in names
    assert "copy_syslog" in names
    assert names == [row["name"] for row in run.plan if row["runs"]]


def test_chosen_scope_without_a_table_is_refused(staff_client: Client) -> None:
    run = draft(fingerprint_confirmed=True)
    response = staff_client.post("/wizard/options/", {"scope": "chosen"})
    assert response.status_code == 200
    assert "Choose at least one table, or all data." in page_text(response)
    run.refresh_from_db()
    assert not run.options_chosen
    assert not run.plan
    assert not run.operations.exists()


def test_back_to_options_shows_what_was_entered(staff_client: Client) -> None:
    draft(fingerprint_confirmed=True)
    staff_client.post(
        "/wizard/options/",
        {"swap_configuration": "on", "scope": "chosen", "tables": ["sessions"]},
    )
    page = page_text(staff_client.get("/wizard/options/"))
    assert is_checked(input_tag(page, "swap_configuration"))
    assert not is_checked(input_tag(page, "copy_traffic_logs"))
    assert is_checked(input_tag(page, "scope", "chosen"))
    assert not is_checked(input_tag(page, "scope", "all"))
    assert is_checked(input_tag(page, "tables", "sessions"))
    assert not is_checked(input_tag(page, "tables", "accounts"))


# 6. Confirmation


def planned_draft() -> MigrationRun:
    """A draft ready to start: checks passed, fingerprint confirmed, options chosen, planned."""
    run = draft(fingerprint_confirmed=True)
    services.draft_options_set(
        run, swap_configuration=False, migrate_licence=False, copy_traffic_logs=False, tables=None
    )
    return run


def test_confirmation_lists_the_operations_that_will_run(staff_client: Client) -> None:
    run = planned_draft()
    page = page_text(staff_client.get("/wizard/confirmation/"))
    assert "gw1.mycompany.test" in page
    for operation in run.operations.all():
        assert operation.label in page
    assert "The procedure is irreversible" in page


def test_a_wrong_host_name_does_not_start_the_run(staff_client: Client) -> None:
    run = planned_draft()
    secret_put(run, "admin_password", "x")
    response = staff_client.post("/wizard/confirmation/", {"host_name": "gw2"})
    assert response.status_code == 200
    assert "Type the source's host name (gw1) to confirm." in page_text(response)
    run.refresh_from_db()
    assert run.status == RunStatus.DRAFT
    assert run.active is None


def sent_tasks(callbacks: list[Any]) -> list[tuple[str, int]]:
    """Run what waited for the commit and return the tasks it sent, by name, with their run."""
    sent: list[tuple[str, int]] = []
    with pytest.MonkeyPatch.context() as patch:
        for task in (tasks.execute_run, tasks.execute_rehearsal):
            name = task.name.rsplit(".", 1)[-1]
            patch.setattr(task, "delay", lambda run_id, name=name: sent.append((name, run_id)))
        for callback in callbacks:
            callback()
    return sent


@pytest.mark.parametrize("typed", ["GW1", " gw1 ", "Gw1.MyCompany.TEST"])
def test_the_right_host_name_starts_the_run(
    staff_client: Client,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    typed: str,
) -> None:
    run = planned_draft()
    secret_put(run, "admin_password", "x")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post("/wizard/confirmation/", {"host_name": typed})
    assert response.status_code == 302
    assert response["Location"] == "/wizard/execution/"
    assert sent_tasks(callbacks) == [("execute_run", run.id)]  # once the transaction commits
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.active is True
    assert run.started_at is not None
    page = page_text(staff_client.get("/wizard/execution/"))
    assert "Waiting for a worker to take the migration" in page
    assert 'hx-trigger="every 1s"' in page


def test_without_the_stored_password_the_run_does_not_start(staff_client: Client) -> None:
    run = planned_draft()
    response = staff_client.post("/wizard/confirmation/", {"host_name": "gw1"})
    assert response.status_code == 200
    page = page_text(response)
    assert "The source's Admin User password is no longer known here" in page
    assert "go back to Source and enter it again." in page
    run.refresh_from_db()
    assert run.status == RunStatus.DRAFT


# 7. The progress partial


def test_progress_of_a_running_run_keeps_polling(
    staff_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    run = started(
        RunStatus.RUNNING,
        [
            {"name": "copy_settings", "status": OperationStatus.SUCCEEDED, "fraction": 1.0},
            {
                "name": "copy_data",
                "status": OperationStatus.RUNNING,
                "fraction": 0.42,
                "eta_seconds": 200,
                "figures": {"rows": 4200, "rows_total": 10000},
            },
        ],
    )
    with django_assert_max_num_queries(6):
        response = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert response.status_code == 200
    page = page_text(response)
    assert 'role="progressbar"' in page
    assert 'aria-valuenow="42"' in page
    assert 'aria-valuenow="100"' in page
    assert 'hx-trigger="every 1s"' in page
    assert f'hx-get="/wizard/runs/{run.id}/progress/"' in page
    assert "about 3 min 20 s left" in page
    assert "4,200 of 10,000 rows" in page
    assert "Running. Do not power off this system or the source." in page


def test_every_poller_of_a_run_in_progress_sees_its_progress_as_it_is_now(
    staff_client: Client,
) -> None:
    run = started(
        RunStatus.RUNNING,
        [{"name": "copy_data", "status": OperationStatus.RUNNING, "fraction": 0.3}],
    )
    watcher = Client()
    watcher.force_login(User.objects.create_user("watcher", password="x", is_staff=True))
    first = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert 'aria-valuenow="30"' in page_text(first)
    assert 'aria-valuenow="30"' in page_text(watcher.get(f"/wizard/runs/{run.id}/progress/"))
    OperationState.objects.filter(run=run).update(fraction=0.6)
    for browser in (staff_client, watcher):
        assert 'aria-valuenow="60"' in page_text(browser.get(f"/wizard/runs/{run.id}/progress/"))


def test_progress_of_a_succeeded_run_stops_polling_and_leads_to_the_result(
    staff_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    run = started(
        RunStatus.SUCCEEDED,
        [{"name": "copy_data", "status": OperationStatus.SUCCEEDED, "fraction": 1.0}],
    )
    with django_assert_max_num_queries(6):
        response = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert response.status_code == 286
    page = page_text(response)
    assert "hx-trigger" not in page
    assert "Congratulations! Migration was successfully completed" in page
    assert re.search(r'<a class="button primary" href="/wizard/result/">Next</a>', page)


def test_progress_of_a_failed_run_says_why_and_offers_resume_and_abandon(
    staff_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    run = failed_run()
    with django_assert_max_num_queries(6):
        response = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert response.status_code == 286
    page = page_text(response)
    assert "hx-trigger" not in page
    assert "Copies data failed" in page
    assert "Table accounts is locked on the source." in page
    assert "Unlock the table on the source, then Resume." in page
    assert f'action="/wizard/runs/{run.id}/resume/"' in page
    assert ">Resume</button>" in page
    assert f'action="/wizard/runs/{run.id}/abandon/"' in page
    assert ">Abandon</button>" in page
    assert 'aria-valuenow="42"' in page


def test_progress_of_a_run_that_no_longer_exists_stops_polling(staff_client: Client) -> None:
    response = staff_client.get("/wizard/runs/999999/progress/")
    assert response.status_code == 286
    assert "This migration no longer exists." in page_text(response)


def test_the_execution_page_shows_the_failure_too(staff_client: Client) -> None:
    failed_run()
    page = page_text(staff_client.get("/wizard/execution/"))
    assert "Step 6: Execution" in page
    assert "The migration stopped." in page
    assert "Unlock the table on the source, then Resume." in page


# 8. Resume and Abandon


def test_resume_from_htmx_queues_the_run_and_polls_again(
    staff_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    run = failed_run()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(
            f"/wizard/runs/{run.id}/resume/", headers={"HX-Request": "true"}
        )
    assert response.status_code == 200
    page = page_text(response)
    assert 'hx-trigger="every 1s"' in page
    assert "Waiting for a worker to take the migration" in page
    assert ">Resume</button>" not in page
    assert sent_tasks(callbacks) == [("execute_run", run.id)]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.active is True
    assert run.error == ""
    assert run.operations.get(name="copy_data").status == OperationStatus.PENDING


def test_resume_is_refused_while_another_run_is_in_progress(staff_client: Client) -> None:
    run = failed_run()
    started(RunStatus.RUNNING, [{"name": "copy_data", "status": OperationStatus.RUNNING}])
    response = staff_client.post(f"/wizard/runs/{run.id}/resume/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Another migration is in progress on this system." in page_text(response)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_abandon_gives_the_run_up_and_the_wizard_starts_again(
    staff_client: Client, no_network: list[str]
) -> None:
    run = failed_run()
    secret_put(run, "admin_password", "x")
    response = staff_client.post(f"/wizard/runs/{run.id}/abandon/")
    # It tried to log in to the source to revoke the run's credentials; unreachable, it goes on.
    assert len(no_network) == 1 and "'auth'" in no_network[0]
    no_network.clear()
    assert response.status_code == 302
    assert response["Location"] == "/wizard/"
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED
    assert run.closed_at is not None
    assert run.active is None
    assert not RunSecret.objects.filter(run=run).exists()
    assert wizard_run() is None
    assert staff_client.get("/wizard/")["Location"] == "/wizard/welcome/"


def test_abandon_from_htmx_closes_the_run(staff_client: Client) -> None:
    run = failed_run()
    staff_client.post(f"/wizard/runs/{run.id}/abandon/", headers={"HX-Request": "true"})
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED
    assert run.closed_at is not None
    assert staff_client.get("/wizard/")["Location"] == "/wizard/welcome/"


def test_abandon_from_htmx_sends_the_browser_back_to_the_wizard(staff_client: Client) -> None:
    run = failed_run()
    response = staff_client.post(f"/wizard/runs/{run.id}/abandon/", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/wizard/"


def test_progress_of_an_abandoned_run_does_not_say_it_is_running(staff_client: Client) -> None:
    run = failed_run()
    staff_client.post(f"/wizard/runs/{run.id}/abandon/")
    response = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert response.status_code == 286
    assert "Running. Do not power off" not in page_text(response)


# 9. Result, report, Close


def succeeded_run(**fields: Any) -> MigrationRun:
    return started(
        RunStatus.SUCCEEDED,
        [{"name": "copy_data", "status": OperationStatus.SUCCEEDED, "fraction": 1.0}],
        finished_at=timezone.now(),
        **fields,
    )


def test_the_result_page_reports_success_and_the_dns_to_revert(staff_client: Client) -> None:
    run = succeeded_run(source_info=HA_INFO, report={"run": 0, "status": "succeeded"})
    response = staff_client.get("/wizard/result/")
    assert response.status_code == 200
    page = page_text(response)
    assert "Setup process was successful!" in page
    assert "The domain gw1.mycompany.test is resolved with the IP address 192.0.2.20." in page
    assert (
        "The domain loadbalancing.mycompany.test is also resolved with the IP address "
        "192.0.2.20." in page
    )
    assert f'href="/wizard/runs/{run.id}/report.html"' in page
    assert 'action="/wizard/close/"' in page


def test_the_report_downloads_as_an_html_attachment(staff_client: Client) -> None:
    run = succeeded_run()
    run.report = {
        "run": run.id,
        "status": "succeeded",
        "source": {"address": "192.0.2.10", "host_name": "gw1", "domain_name": "mycompany.test"},
        "operations": [{"label": "Copies data", "status": "succeeded", "attempts": 1}],
        "licence": {"guid": "", "state": "none"},
    }
    run.save()
    response = staff_client.get(f"/wizard/runs/{run.id}/report.html")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert (
        response["Content-Disposition"] == f'attachment; filename="migration-{run.id}-report.html"'
    )
    page = page_text(response)
    assert f"Migration report, run {run.id}" in page
    assert "From gw1.mycompany.test (192.0.2.10" in page


def test_a_run_without_a_report_has_nothing_to_download(staff_client: Client) -> None:
    run = started(RunStatus.RUNNING, [{"name": "copy_data", "status": OperationStatus.RUNNING}])
    response = staff_client.get(f"/wizard/runs/{run.id}/report.html")
    assert response.status_code == 404
    assert "This migration has no report yet." in page_text(response)


def test_close_logs_out_and_ends_the_wizards_run(staff_client: Client) -> None:
    run = succeeded_run(report={"run": 1, "status": "succeeded"})
    response = staff_client.post("/wizard/close/")
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    run.refresh_from_db()
    assert run.closed_at is not None
    assert run.status == RunStatus.SUCCEEDED
    assert wizard_run() is None
    assert staff_client.get("/wizard/")["Location"] == f"{LOGIN}?next=/wizard/"


def test_close_is_refused_while_the_run_is_in_progress(staff_client: Client) -> None:
    run = started(RunStatus.RUNNING, [{"name": "copy_data", "status": OperationStatus.RUNNING}])
    response = staff_client.post("/wizard/close/")
    assert response["Location"] == "/wizard/execution/"
    run.refresh_from_db()
    assert run.closed_at is None
    assert staff_client.get("/wizard/execution/").status_code == 200


def test_close_on_a_draft_gives_it_up(staff_client: Client) -> None:
    run = draft()
    secret_put(run, "admin_password", "x")
    staff_client.post("/wizard/close/")
    run.refresh_from_db()
    assert run.status == RunStatus.ABANDONED
    assert run.closed_at is not None
    assert not RunSecret.objects.filter(run=run).exists()


# 10. Figures for people


def test_sizes_are_written_with_a_unit() -> None:
    assert size(0) == "0 B"
    assert size(None) == "0 B"
    assert size(999) == "999 B"
    assert size(1500) == "1.5 kB"
    assert size(2_500_000) == "2.5 MB"
    assert size(3.2e9) == "3.2 GB"
    assert size(5e12) == "5000.0 GB"


def test_a_size_just_below_the_next_unit_is_written_in_that_unit() -> None:
    assert size(999_999) == "1.0 MB"


def test_durations_are_written_in_seconds_minutes_and_hours() -> None:
    assert duration(None) == ""
    assert duration(45) == "45 s"
    assert duration(44.6) == "45 s"
    assert duration(200) == "3 min 20 s"
    assert duration(3900) == "1 h 5 min"


def test_figures_join_rows_tables_files_and_bytes() -> None:
    assert figures(None) == ""
    assert (
        figures({"rows": 4200, "rows_total": 10000, "tables_done": 3, "tables_total": 12})
        == "4,200 of 10,000 rows · 3 of 12 tables"
    )
    assert (
        figures({"files": 2, "files_total": 5, "bytes": 1_500_000, "bytes_total": 3_000_000})
        == "2 of 5 files · 1.5 MB of 3.0 MB"
    )
    assert figures({"rows_total": 10, "rows_per_second": 1500}) == "0 of 10 rows · 1,500 rows/s"
    assert figures({"bytes_total": 1000, "bytes_per_second": 250_000}) == (
        "0 B of 1.0 kB · 250.0 kB/s"
    )


def test_percent_is_a_whole_number_between_0_and_100() -> None:
    assert percent(0.42) == 42
    assert percent(0.999) == 99
    assert percent(1.0) == 100
    assert percent(1.5) == 100
    assert percent(-0.1) == 0
    assert percent(None) == 0


def test_percent_of_an_exact_fraction_is_not_one_less() -> None:
    assert [percent(value) for value in (0.29, 0.57, 0.58)] == [29, 57, 58]
