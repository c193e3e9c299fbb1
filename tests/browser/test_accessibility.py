"""The wizard and the console for people who use a screen reader or only a keyboard: axe-core
on every step and console page (no serious or critical violation), the whole wizard walked with
the keyboard alone, and progress bars that announce a change in a short sentence instead of
repeating their table every second."""

from __future__ import annotations

import itertools
import os
import re
import signal
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DEMO, Staff

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BLOCKING = ("serious", "critical")
IMPACTS = ("critical", "serious", "moderate", "minor")
AXE = Axe()
MAX_KEY_PRESSES = 60
WAITING = "Waiting for a worker to take the migration."


def worker_signal(sig: signal.Signals) -> None:
    """Pause (SIGSTOP) or let go on (SIGCONT) the current system's Celery worker."""
    os.killpg(DEMO.node("current").pids()["worker"], sig)


def axe_violations(page: Page, name: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now; prints the counts by impact."""
    page.wait_for_load_state("load")
    violations: list[dict[str, Any]] = AXE.run(page).response["violations"]
    counts = Counter(str(violation["impact"]) for violation in violations)
    figures = ", ".join(f"{impact} {counts.get(impact, 0)}" for impact in IMPACTS)
    print(f"axe-core {name}: {figures}")
    for violation in violations:
        targets = [node["target"] for node in violation["nodes"]][:3]
        print(f"  {violation['impact']}: {violation['id']}: {violation['help']} {targets}")
    return violations


def blocking(violations: list[dict[str, Any]]) -> list[str]:
    return [
        f"{violation['impact']} {violation['id']}: {violation['help']}"
        for violation in violations
        if violation["impact"] in BLOCKING
    ]


def test_every_step_and_console_page_passes_axe_core(
    staff: Staff, browser: Browser, fresh: dict[str, str]
) -> None:
    pages: dict[str, list[str]] = {}
    anonymous = browser.new_context(ignore_https_errors=True)
    visitor = anonymous.new_page()
    visitor.goto(fresh["TARGET_URL"] + "/")
    pages["Home (not logged in)"] = blocking(axe_violations(visitor, "Home (not logged in)"))
    visitor.goto(fresh["TARGET_URL"] + "/accounts/login/")
    pages["Log in"] = blocking(axe_violations(visitor, "Log in"))
    anonymous.close()

    page = staff.window()
    expect(page.get_by_role("heading", name="Step 1: Welcome")).to_be_visible()
    pages["1 Welcome"] = blocking(axe_violations(page, "1 Welcome"))
    page.get_by_role("link", name="Next").click()
    pages["2 Source (empty)"] = blocking(axe_violations(page, "2 Source (empty)"))
    page.get_by_label("IP Address of the Source System").fill(DEMO.source_address)
    page.get_by_label("Admin User Password").fill(fresh["SOURCE_ADMIN_PASSWORD"])
    page.get_by_role("button", name="Check the source").click()
    page.get_by_label(re.compile("fingerprint above matches")).check()
    pages["2 Source (fingerprint)"] = blocking(axe_violations(page, "2 Source (fingerprint)"))
    page.get_by_role("button", name="Confirm and check the password").click()
    expect(page.get_by_text("Every check passed.")).to_be_visible()
    pages["2 Source (checked)"] = blocking(axe_violations(page, "2 Source (checked)"))
    page.get_by_role("link", name="Next").click()
    pages["3 Source Info"] = blocking(axe_violations(page, "3 Source Info"))
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_role("heading", name="Step 4: Options")).to_be_visible()
    pages["4 Options"] = blocking(axe_violations(page, "4 Options"))
    page.get_by_role("button", name="Next").click()
    pages["5 Confirmation"] = blocking(axe_violations(page, "5 Confirmation"))
    page.get_by_label(re.compile("host name to confirm")).fill("appliance-old")
    page.get_by_role("button", name="Execute").click()
    expect(page.get_by_role("heading", name="Step 6: Execution")).to_be_visible()
    pages["6 Execution (running)"] = blocking(axe_violations(page, "6 Execution (running)"))
    next_step = page.get_by_role("link", name="Next")
    expect(next_step).to_be_visible(timeout=240_000)
    pages["6 Execution (completed)"] = blocking(axe_violations(page, "6 Execution (completed)"))
    next_step.click()
    expect(page.get_by_role("heading", name="Step 7: Result")).to_be_visible()
    pages["7 Result"] = blocking(axe_violations(page, "7 Result"))

    page.goto(fresh["TARGET_URL"] + "/console/")
    pages["Console"] = blocking(axe_violations(page, "Console"))
    page.goto(fresh["TARGET_URL"] + "/")
    pages["Home (staff)"] = blocking(axe_violations(page, "Home (staff)"))

    assert {name: found for name, found in pages.items() if found} == {}


WATCH_ANNOUNCER = """
window.announced = [];
window.swaps = 0;
document.addEventListener("htmx:afterSettle", () => { window.swaps += 1; });
document.addEventListener("DOMContentLoaded", () => {
  const announcer = document.getElementById("announcer");
  if (!announcer) return;
  new MutationObserver(() => window.announced.push(announcer.textContent)).observe(
    announcer, {childList: true, characterData: true, subtree: true}
  );
});
"""
"""Records every text the wizard's live region takes, and how often the progress panel was
replaced, from the moment a page loads."""


@dataclass(frozen=True)
class Focused:
    """The element that has the keyboard focus: its tag, accessible name and focus ring."""

    tag: str
    name: str
    outline: str


FOCUSED = """() => {
  const element = document.activeElement;
  const label = element.labels && element.labels.length ? element.labels[0].innerText : "";
  const name = label || element.getAttribute("aria-label") || element.innerText || element.value;
  const style = getComputedStyle(element);
  const outline = style.outlineStyle + " " + style.outlineWidth;
  return {tag: element.tagName, name: (name || "").trim(), outline: outline};
}"""


def focused(page: Page) -> Focused:
    return Focused(**page.evaluate(FOCUSED))


def tab_to(page: Page, name: str | re.Pattern[str], *, backwards: bool = False) -> Focused:
    """Press Tab (Shift+Tab) until the element named `name` has the focus, which must show."""
    pattern = name if isinstance(name, re.Pattern) else re.compile(re.escape(name))
    seen = []
    for _ in range(MAX_KEY_PRESSES):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        now = focused(page)
        seen.append(now.name[:40])
        if pattern.search(now.name):
            assert not now.outline.startswith("none"), f"{now.name}: no visible focus"
            return now
    raise AssertionError(f"{name!r} cannot be reached with the keyboard; focus went to {seen}")


def go(page: Page, key: str) -> None:
    """Press `key` on the focused link or button and wait for the page it leads to."""
    with page.expect_navigation():
        page.keyboard.press(key)


def type_into(page: Page, name: str | re.Pattern[str], text: str) -> None:
    """Tab to the field named `name` and type `text` there."""
    assert tab_to(page, name).tag in ("INPUT", "TEXTAREA")
    page.keyboard.type(text)


def test_the_whole_wizard_with_the_keyboard_alone(staff: Staff, fresh: dict[str, str]) -> None:
    page = staff.window()
    expect(page.get_by_role("heading", name="Step 1: Welcome")).to_be_visible()
    page.context.add_init_script(WATCH_ANNOUNCER)
    page.reload(wait_until="load")
    page.keyboard.press("Tab")
    assert focused(page).name == "Skip to the content"
    page.keyboard.press("Enter")
    tab_to(page, "Next")
    go(page, "Enter")

    expect(page.get_by_role("heading", name="Step 2: Source")).to_be_visible()
    type_into(page, "IP Address of the Source System", DEMO.source_address)
    type_into(page, "Admin User Password", fresh["SOURCE_ADMIN_PASSWORD"])
    go(page, "Enter")
    tab_to(page, re.compile("fingerprint above matches"))
    page.keyboard.press("Space")
    expect(page.get_by_label(re.compile("fingerprint above matches"))).to_be_checked()
    tab_to(page, "Confirm and check the password")
    go(page, "Enter")
    expect(page.get_by_text("Every check passed.")).to_be_visible()
    tab_to(page, "Next")
    go(page, "Enter")

    expect(page.get_by_role("heading", name="Step 3: Source Info")).to_be_visible()
    tab_to(page, "Next")
    go(page, "Enter")

    expect(page.get_by_role("heading", name="Step 4: Options")).to_be_visible()
    tab_to(page, "Copy User Traffic Logs")
    page.keyboard.press("Space")
    expect(page.get_by_label("Copy User Traffic Logs")).to_be_checked()
    tab_to(page, "Swap Configuration", backwards=True)
    tab_to(page, "Copy User Traffic Logs")
    page.keyboard.press("Space")
    expect(page.get_by_label("Copy User Traffic Logs")).not_to_be_checked()
    tab_to(page, re.compile("^Next$"))
    go(page, "Enter")

    expect(page.get_by_role("heading", name="Step 5: Confirmation")).to_be_visible()
    type_into(page, re.compile("host name to confirm"), "appliance-old")
    tab_to(page, "Execute")
    worker_signal(signal.SIGSTOP)  # the run waits for a worker: the panel is polled, unchanged
    try:
        go(page, "Space")
        expect(page.get_by_role("heading", name="Step 6: Execution")).to_be_visible()
        page.wait_for_function("window.swaps >= 4")
        assert page.evaluate("window.announced") == [WAITING]
    finally:
        worker_signal(signal.SIGCONT)
    check_the_progress_announcements(page)
    tab_to(page, re.compile("^Next$"))
    go(page, "Enter")

    expect(page.get_by_role("heading", name="Step 7: Result")).to_be_visible()
    expect(page.get_by_text("Setup process was successful!")).to_be_visible()
    tab_to(page, "Download the migration report")
    tab_to(page, "Close")
    go(page, "Space")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def check_the_progress_announcements(page: Page) -> None:
    """The progress table is no live region; the polite one beside it says, in one short
    sentence, which operation runs, and changes only when that changes or the run ends."""
    panel = page.locator("#progress")
    assert (
        panel.evaluate("panel => panel.closest('[aria-live], [role=status], [role=alert]')") is None
    )
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(announcer).to_have_text("Migration completed.", timeout=240_000)
    announced: list[str] = page.evaluate("window.announced")
    swaps: int = page.evaluate("window.swaps")
    assert announced[0] == WAITING
    operations = page.locator("#progress tr.op").count()
    print(f"progress panel replaced {swaps} times; announced {len(announced)} times: {announced}")
    assert announced[-1] == "Migration completed."
    running = re.compile(rf"^Operation \d+ of {operations} running: \S")
    assert any(running.match(text) for text in announced)
    assert all(len(text) < 120 for text in announced)
    assert all(before != after for before, after in itertools.pairwise(announced))
    assert len(announced) <= operations + 2
