"""Real Chromium (Debian's, driven by Playwright) against a two-node demo of the tests' own.

Screenshots go to `test-artifacts/wizard/<test>/`, one per step, to be looked at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.demo_support import ROOT, DemoUnderTest

DEMO = DemoUnderTest("wizardtest", "127.0.0.32", "127.0.0.31", "8,9")
ARTIFACTS = ROOT / "test-artifacts" / "wizard"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver, for this module only: it runs an event loop in this thread, which
    Django refuses to work beside, so it must be gone before other tests use the database."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def demo() -> Iterator[dict[str, str]]:
    """One two-node demo for every browser test (each starts from `fresh`)."""
    with DEMO.running() as settings:
        yield settings


def reset_demo(demo_under_test: DemoUnderTest, settings: dict[str, str]) -> dict[str, str]:
    """Both nodes of the demo as it made them, and no migration open in the wizard."""
    demo_under_test.reset()
    demo_under_test.python(
        "current",
        "from django.utils import timezone; from migrations_engine.models import MigrationRun; "
        "print(MigrationRun.objects.update(closed_at=timezone.now()))",
    )
    return settings


@pytest.fixture
def fresh(demo: dict[str, str]) -> dict[str, str]:
    """Both nodes as the demo made them, and no migration open in the wizard."""
    return reset_demo(DEMO, demo)


@dataclass
class Screenshots:
    """Numbered full-page screenshots of one test."""

    directory: Path
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Page, name: str) -> Path:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Screenshots:
    directory = ARTIFACTS / re.sub(r"[^\w-]", "_", request.node.name)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return Screenshots(directory)


@dataclass
class Staff:
    """Opens logged-in browser windows on the current system's wizard."""

    browser: Browser
    demo: dict[str, str]
    contexts: list[BrowserContext] = field(default_factory=list)

    def window(self, path: str = "/wizard/") -> Page:
        """A new browser (own cookies) logged in as the Admin User, at `path`."""
        context = self.browser.new_context(
            ignore_https_errors=True, viewport={"width": 1200, "height": 900}
        )
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        page = context.new_page()
        page.goto(self.demo["TARGET_URL"] + path)
        page.get_by_label("User name").fill(self.demo["TARGET_ADMIN_USER"])
        page.get_by_label("Password").fill(self.demo["TARGET_ADMIN_PASSWORD"])
        page.get_by_role("button", name="Log in").click()
        return page

    def close_all(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def staff(browser: Browser, fresh: dict[str, str]) -> Iterator[Staff]:
    people = Staff(browser, fresh)
    yield people
    people.close_all()
