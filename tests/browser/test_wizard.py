"""The wizard clicked through in real Chromium against the two-node demo: the whole way for a
standalone and for an HA source, a wrong password and its lockout, a closed port and Re-check,
the licence option refused, a second browser watching, a reload and a closed browser mid-run."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from devtools.sshd import SSHServer
from migrations_engine.peer_client import certificate_fingerprint
from tests.browser.conftest import DEMO, Screenshots, Staff
from tests.stranger import Stranger

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CONGRATULATIONS = "Congratulations! Migration was successfully completed"
SOURCE = DEMO.source_address
STRANGER = "127.0.0.34"
CURRENT_DIR = DEMO.directory / "current"
OPERATIONS = 10
"""A standalone source without options: backup, settings, the online pre-copy and its wait,
maintenance, the cutover's data, the source's configuration, certificates, restart, final."""


def check_source(page: Page, password: str, button: str = "Check the source") -> None:
    """Fill the Source step and run the checks."""
    page.get_by_label("IP Address of the Source System").fill(SOURCE)
    page.get_by_label("Admin User Password").fill(password)
    page.get_by_role("button", name=button).click()


def confirm_fingerprint(page: Page) -> None:
    """Tick that the certificate's fingerprint matches, and let the password go out."""
    page.get_by_label(re.compile("fingerprint above matches")).check()
    page.get_by_role("button", name="Confirm and check the password").click()


def prepare_until_options(page: Page, demo: dict[str, str]) -> None:
    """Welcome, Source (fingerprint confirmed, checks pass) and Source Info."""
    page.get_by_role("link", name="Next").click()
    check_source(page, demo["SOURCE_ADMIN_PASSWORD"])
    confirm_fingerprint(page)
    expect(page.get_by_text("Every check passed.")).to_be_visible()
    page.get_by_role("link", name="Next").click()
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_role("heading", name="Step 4: Options")).to_be_visible()


def process_signal(role: str, sig: signal.Signals) -> None:
    """Signal one of the current system's processes and its children (by role, as the demo
    names them): SIGSTOP pauses them, SIGCONT lets them go on."""
    os.killpg(DEMO.node("current").pids()[role], sig)


def worker_signal(sig: signal.Signals) -> None:
    process_signal("worker", sig)


def published_partial(request: Request) -> bool:
    return "/published/progress/" in request.url


def run_status() -> str:
    return DEMO.python(
        "current",
        "from migrations_engine.models import MigrationRun as M; "
        "print(M.objects.order_by('-id').values_list('status', flat=True).first())",
    )


def source_fingerprint(demo: dict[str, str]) -> str:
    return certificate_fingerprint(Path(demo["SOURCE_CERTIFICATE"]).read_text())


def test_standalone_migration_through_every_step(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    page = staff.window()
    expect(page).to_have_url(re.compile(r"/wizard/welcome/$"))
    expect(page.get_by_role("heading", name="Step 1: Welcome")).to_be_visible()
    expect(page.get_by_text("take a complete backup of this system")).to_be_visible()
    expect(page.locator("[aria-current=step]")).to_contain_text("Welcome")
    shot(page, "welcome")
    page.get_by_role("link", name="Next").click()

    check_source(page, fresh["SOURCE_ADMIN_PASSWORD"])
    expect(page.locator("code.fingerprint")).to_have_text(source_fingerprint(fresh))
    expect(page.locator("table.checks tr").filter(has_text="Admin User password")).to_contain_text(
        "not sent yet"
    )
    shot(page, "source-fingerprint")
    confirm = page.get_by_label(re.compile("fingerprint above matches"))
    page.get_by_role("button", name="Confirm and check the password").click()  # not ticked
    assert confirm.evaluate("box => box.validity.valueMissing")
    confirm_fingerprint(page)
    expect(page.get_by_text("Every check passed.")).to_be_visible()
    checks = page.locator("table.checks tbody tr")
    expect(checks).to_have_count(9)
    for port in ("8080", "8443", "3306", "2222"):
        expect(checks.filter(has_text=f"Port {port}")).to_contain_text("OK")
    shot(page, "source")
    page.get_by_role("link", name="Next").click()

    expect(page.get_by_text("The system is a standalone type")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("appliance-old")
    expect(page.locator("code.fingerprint")).to_have_text(source_fingerprint(fresh))
    shot(page, "source-info")
    page.get_by_role("link", name="Next").click()

    page.get_by_label("Copy User Traffic Logs").check()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("ol.plan")).to_contain_text("Copies the syslog data")
    page.get_by_role("link", name="Back").click()  # Back keeps what was entered
    expect(page.get_by_label("Copy User Traffic Logs")).to_be_checked()
    page.get_by_label("Copy User Traffic Logs").uncheck()
    expect(page.get_by_label("Migrate License")).to_be_enabled()
    shot(page, "options")
    page.get_by_role("button", name="Next").click()

    plan = page.locator("ol.plan li")
    expect(plan).to_have_count(OPERATIONS)
    expect(plan.first).to_contain_text("Backs up the current system")
    expect(page.get_by_text("irreversible and cannot be interrupted")).to_be_visible()
    shot(page, "confirmation")
    page.get_by_label(re.compile("host name to confirm")).fill("appliance-new")
    page.get_by_role("button", name="Execute").click()
    expect(page.get_by_role("alert")).to_contain_text("Type the source's host name")

    worker_signal(signal.SIGSTOP)  # the run waits: what follows happens mid-run
    try:
        page.get_by_label(re.compile("host name to confirm")).fill("APPLIANCE-OLD")
        page.get_by_role("button", name="Execute").click()
        expect(page).to_have_url(re.compile(r"/wizard/execution/$"))
        bars = page.get_by_role("progressbar")
        expect(bars).to_have_count(OPERATIONS)
        expect(bars.first).to_have_attribute("aria-valuemin", "0")
        expect(page.get_by_role("link", name="Next")).to_have_count(0)
        shot(page, "execution-waiting")
        watcher = staff.window()  # a second staff browser sees the same run
        expect(watcher).to_have_url(re.compile(r"/wizard/execution/$"))
        expect(watcher.get_by_role("progressbar")).to_have_count(OPERATIONS)
        with watcher.expect_request(published_partial) as polled:
            pass
        answer = polled.value.response()
        assert answer is not None and answer.headers.get("last-modified")  # the front's copy
        page.reload()
        expect(page).to_have_url(re.compile(r"/wizard/execution/$"))
        expect(page.get_by_role("progressbar")).to_have_count(OPERATIONS)
        staff.contexts[0].close()  # the first browser goes away mid-run
        staff.contexts.pop(0)
    finally:
        worker_signal(signal.SIGCONT)

    expect(
        watcher.get_by_text("Congratulations! Migration was successfully completed")
    ).to_be_visible(timeout=180_000)
    for index in range(OPERATIONS):
        expect(watcher.get_by_role("progressbar").nth(index)).to_have_attribute(
            "aria-valuenow", "100"
        )
    expect(watcher.locator("tr[data-operation=precopy_data]")).to_contain_text("rows")
    expect(watcher.locator("tr[data-operation=copy_data]")).to_contain_text("verified on both")
    shot(watcher, "execution-done")
    polls: list[str] = []
    watcher.on("request", lambda request: polls.append(request.url))
    watcher.wait_for_timeout(2500)
    assert not [url for url in polls if "/progress/" in url], "polling went on after the end"

    page = staff.window()  # back after it finished: straight to the Result
    expect(page).to_have_url(re.compile(r"/wizard/result/$"))
    expect(page.get_by_text("Setup process was successful!")).to_be_visible()
    shot(page, "result")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the migration report").click()
    report = Path(download.value.path()).read_text()
    assert "Migration report" in report and "succeeded" in report
    assert download.value.suggested_filename.endswith("-report.html")
    page.get_by_role("button", name="Close").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("button", name="Log in")).to_be_visible()

    source, current = DEMO.data_checksums()
    assert source == current and all(source.values())


class RebootActor(threading.Thread):
    """Does what a reboot of the current system does to its web processes (front server, Django,
    publisher, port-80 redirect): they stop, stay down a few seconds, and start again the same
    way (the worker is left running)."""

    def __init__(self, down_seconds: float = 6) -> None:
        super().__init__(daemon=True)
        self.down_seconds = down_seconds
        self.finished = threading.Event()
        self.reboots = 0

    def run(self) -> None:
        flag = CURRENT_DIR / "control" / "reboot"
        while not self.finished.is_set():
            if flag.exists():
                flag.unlink()
                self.reboot_web()
                self.reboots += 1
            time.sleep(0.2)

    def reboot_web(self) -> None:
        node = DEMO.node("current")
        pids = node.pids()
        web = [role for role in pids if role != "worker"]
        for role in web:
            os.killpg(pids[role], signal.SIGTERM)
        time.sleep(self.down_seconds)
        node.pids_write(pids | {role: node.spawn(role).pid for role in web})


def test_ha_source_with_every_option_through_the_reboot(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    DEMO.seed_source("--role", "ha_master", "--ha-peer", "127.0.0.33")
    balancing = DEMO.peer().info()["ha"]["load_balancing_domain"]
    page = staff.window()
    page.get_by_role("link", name="Next").click()
    check_source(page, fresh["SOURCE_ADMIN_PASSWORD"])
    confirm_fingerprint(page)
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_role("heading", name="The system is in high availability")).to_be_visible()
    advice = page.get_by_role("note")
    expect(advice).to_contain_text(
        "The domain appliance-old.mycompany.test points to the IP address 127.0.0.33 "
        f"and no longer to {SOURCE}."
    )
    expect(advice).to_contain_text(
        f"The IP address {SOURCE} is no longer defined for the domain {balancing}."
    )
    shot(page, "source-info-ha")
    page.get_by_role("link", name="Next").click()
    for option in ("Swap Configuration", "Migrate License", "Copy User Traffic Logs"):
        page.get_by_label(option).check()
    shot(page, "options-ha")
    page.get_by_role("button", name="Next").click()
    plan = page.locator("ol.plan")
    for label in (
        "Deactivates the replica",
        "Reboots the current and source system",
        "Copies data and activates replica",
        "Copies the syslog data",
        "Migrates the license",
    ):
        expect(plan).to_contain_text(label)
    expect(plan.locator("li").filter(has_text=re.compile(r"^Copies data \("))).to_have_count(0)
    shot(page, "confirmation-ha")

    actor = RebootActor()
    actor.start()
    try:
        page.get_by_label(re.compile("host name to confirm")).fill("appliance-old")
        page.get_by_role("button", name="Execute").click()
        lost = page.locator("#connection-lost")
        expect(lost).to_be_visible(timeout=120_000)  # this system is down: the page says so
        shot(page, "execution-rebooting")
        expect(lost).to_be_hidden(timeout=60_000)  # and picks up again when it is back
        expect(
            page.get_by_text("Congratulations! Migration was successfully completed")
        ).to_be_visible(timeout=300_000)
    finally:
        actor.finished.set()
        actor.join()
    assert actor.reboots == 1
    shot(page, "execution-ha-done")
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("Setup process was successful!")).to_be_visible()
    note = page.get_by_role("note")
    expect(note).to_contain_text(
        "The domain appliance-old.mycompany.test is resolved with the IP address "
        f"{DEMO.current_address}."
    )
    expect(note).to_contain_text(
        f"The domain {balancing} is also resolved with the IP address {DEMO.current_address}."
    )
    shot(page, "result-ha")
    source, current = DEMO.data_checksums()
    assert source == current and all(source.values())
    assert DEMO.peer().info()["licence"]["state"] == "transferred"


def test_a_wrong_password_is_refused_then_locked_out(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    page = staff.window("/wizard/source/")
    try:
        check_source(page, "not the password")
        confirm_fingerprint(page)
        row = page.locator("table.checks tr").filter(has_text="Admin User password")
        expect(row).to_contain_text("Failed")
        expect(row).to_contain_text("password is wrong")
        expect(page.get_by_role("link", name="Next")).to_have_count(0)
        shot(page, "wrong-password")
        for _ in range(5):
            check_source(page, "still not the password", button="Re-check")
            expect(page.locator("table.checks")).to_be_visible()
        expect(row).to_contain_text("locked")
        expect(row).to_contain_text(re.compile(r"Wait \d+ seconds"))
        shot(page, "locked-out")
    finally:
        DEMO.python(
            "source",
            "from appliance.models import PeerAuthFailures; "
            "print(PeerAuthFailures.objects.all().delete())",
        )


def test_a_stranger_with_an_unconfirmed_certificate_never_receives_the_password(
    staff: Staff, shot: Screenshots, fresh: dict[str, str], tmp_path: Path
) -> None:
    stranger = Stranger(tmp_path, STRANGER, 8443, [8080, 3306, 2222])
    secret = "typed-into-the-source-step-7Q"
    try:
        page = staff.window("/wizard/")
        page.get_by_role("link", name="Next").click()
        page.get_by_label("IP Address of the Source System").fill(STRANGER)
        page.get_by_label("Admin User Password").fill(secret)
        page.get_by_role("button", name="Check the source").click()
        expect(page.locator("code.fingerprint")).to_have_text(stranger.fingerprint)
        expect(page.get_by_role("link", name="Next")).to_have_count(0)
        page.get_by_label("Admin User Password").fill("")
        page.get_by_role("button", name="Re-check").click()
        expect(page.locator("code.fingerprint")).to_have_text(stranger.fingerprint)
        shot(page, "stranger-unconfirmed")
        assert stranger.connections >= 8  # both checks reached every port and the TLS server
        assert secret.encode() not in stranger.received
    finally:
        stranger.stop()


def test_a_closed_port_is_reported_with_its_fix_and_re_check_passes_once_open(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    ssh = SSHServer(DEMO.directory / "source-ssh", SOURCE, 2222)
    ssh.stop()
    try:
        page = staff.window("/wizard/source/")
        started = time.monotonic()
        check_source(page, fresh["SOURCE_ADMIN_PASSWORD"])
        confirm_fingerprint(page)
        row = page.locator("table.checks tr").filter(has_text="Port 2222")
        expect(row).to_contain_text("connection refused")
        expect(row).to_contain_text(f"Open TCP port 2222 from this system to {SOURCE}")
        assert time.monotonic() - started < 10
        expect(page.get_by_role("link", name="Next")).to_have_count(0)
        shot(page, "closed-port")
    finally:
        ssh.start()
    page.get_by_label("Admin User Password").fill("")  # the password entered before is kept
    page.get_by_role("button", name="Re-check").click()
    expect(page.get_by_text("Every check passed.")).to_be_visible()
    expect(page.get_by_role("link", name="Next")).to_be_visible()


def test_migrate_license_is_disabled_with_the_reason_when_this_system_has_one(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    DEMO.seed_current()  # with a licence
    page = staff.window()
    prepare_until_options(page, fresh)
    expect(page.get_by_label("Migrate License")).to_be_disabled()
    expect(page.locator("#licence_help")).to_have_text(
        "Not available: This system already has a licence."
    )
    shot(page, "licence-disabled")


def test_a_rehearsal_from_options_reports_and_changes_nothing(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    before = DEMO.data_checksums()
    page = staff.window()
    prepare_until_options(page, fresh)
    page.get_by_role("button", name="Rehearse (dry run)").click()
    expect(page).to_have_url(re.compile(r"/wizard/rehearsal/$"))
    expect(page.locator("strong").filter(has_text="Rehearsal completed")).to_be_visible(
        timeout=120_000
    )
    expect(page.locator("table.rehearsal-tables")).to_contain_text("accounting_session")
    expect(page.locator("ul.not-migrated")).to_contain_text("site-bound")
    expect(page.get_by_text("The real migration should take about")).to_be_visible()
    shot(page, "rehearsal")
    assert DEMO.data_checksums() == before
    assert DEMO.peer().info()["maintenance"] is False
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_role("heading", name="Step 5: Confirmation")).to_be_visible()


def test_a_failure_says_why_and_start_over_brings_this_system_back(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    with DEMO.current_data() as db, db.cursor() as cursor:  # this system's data is its own
        cursor.execute("DELETE FROM event_log ORDER BY id LIMIT 10")
        db.commit()
    _, current_before = DEMO.data_checksums()
    page = staff.window()
    prepare_until_options(page, fresh)
    page.get_by_label("Copy User Traffic Logs").check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label(re.compile("host name to confirm")).fill("appliance-old")
    ssh = SSHServer(DEMO.directory / "source-ssh", SOURCE, 2222)
    ssh.stop()  # the logs cannot be copied: the run fails after the data's pre-copy
    try:
        page.get_by_role("button", name="Execute").click()
        failure = page.get_by_role("alert")
        expect(failure).to_contain_text("Pre-copies the traffic logs failed", timeout=180_000)
        expect(failure).to_contain_text("What to do:")
        for action in ("Resume", "Abandon", "Start over"):
            expect(page.get_by_role("button", name=action)).to_be_visible()
        shot(page, "execution-failed")
        page.on("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Start over").click()
        expect(page).to_have_url(re.compile(r"/wizard/welcome/$"), timeout=60_000)
    finally:
        ssh.start()
    assert DEMO.data_checksums()[1] == current_before
    assert DEMO.peer().info()["maintenance"] is False


def test_cut_over_now_once_in_sync_and_the_downtime_on_the_result(
    staff: Staff, shot: Screenshots, fresh: dict[str, str]
) -> None:
    page = staff.window()
    prepare_until_options(page, fresh)
    page.get_by_label("When I press Cut over now").check()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("ol.plan")).to_contain_text("Keeps the copy in sync until the cutover")
    page.get_by_label(re.compile("host name to confirm")).fill("appliance-old")
    page.get_by_role("button", name="Execute").click()

    waiting = page.get_by_role("row").filter(has_text="Keeps the copy in sync")
    expect(waiting).to_contain_text("in sync with the source", timeout=180_000)
    expect(waiting).to_contain_text("waiting for Cut over now")
    expect(page.get_by_role("row").filter(has_text="Places the source under")).to_contain_text(
        "Waiting"
    )
    shot(page, "execution-in-sync")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cut over now").click()
    expect(page.get_by_text(CONGRATULATIONS)).to_be_visible(timeout=180_000)
    expect(page.get_by_text(re.compile(r"Service downtime: \d+\.\d s"))).to_be_visible()
    shot(page, "execution-cut-over")
    page.get_by_role("link", name="Next").click()
    summary = page.locator("table.summary")
    expect(summary.get_by_role("row").filter(has_text="Service downtime")).to_contain_text(" s")
    expect(summary).to_contain_text("verified on both systems")
    shot(page, "result-downtime")
