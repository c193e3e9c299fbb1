"""Published progress partials: the poll pass Django gives staff, the publisher's files, and the
front server's configuration (checked by nginx itself). The front server answering with them is
tested against the demo's real nginx in tests/test_demo.py."""

from __future__ import annotations

import base64
import hashlib
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from migrations_engine.models import OperationStatus, RunStatus
from tests.wizard.test_steps import page_text, started
from wizard import progress

pytestmark = pytest.mark.django_db

COPYING = [{"name": "copy_data", "status": OperationStatus.RUNNING, "fraction": 0.42}]


@pytest.fixture
def published(settings: Any, tmp_path: Path) -> Path:
    """This node publishes its partials (as behind the demo's front server)."""
    settings.WIZARD_PUBLISH_DIR = str(tmp_path / "published")
    return Path(settings.WIZARD_PUBLISH_DIR)


def nginx_secure_link(expires: int, key: str) -> str:
    """What nginx computes for `secure_link_md5 "$secure_link_expires <key>"`."""
    digest = hashlib.md5(f"{expires} {key}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_staff_polling_django_get_a_poll_pass_and_the_published_url(
    staff_client: Client, published: Path
) -> None:
    run = started(RunStatus.RUNNING, COPYING)
    response = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    page = page_text(response)
    assert f'hx-get="/published/progress/{run.id}.html"' in page
    signature = response.cookies[progress.POLL_PASS_COOKIE]
    expires = int(response.cookies[progress.POLL_PASS_EXPIRES_COOKIE].value)
    assert time.time() + 60 < expires <= time.time() + progress.POLL_PASS_SECONDS + 1
    assert signature.value == nginx_secure_link(expires, progress.poll_pass_key())
    for cookie in (signature, response.cookies[progress.POLL_PASS_EXPIRES_COOKIE]):
        assert cookie["secure"] and cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/published/progress/"


@pytest.mark.parametrize("leave", ["/accounts/logout/", "/wizard/close/"])
def test_logging_out_takes_the_poll_pass_back(
    staff_client: Client, published: Path, leave: str
) -> None:
    run = started(RunStatus.SUCCEEDED, [{"name": "copy_data", "status": "succeeded"}])
    staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert staff_client.cookies[progress.POLL_PASS_COOKIE].value
    response = staff_client.post(leave)
    assert response.status_code == 302
    for name in (progress.POLL_PASS_COOKIE, progress.POLL_PASS_EXPIRES_COOKIE):
        assert response.cookies[name].value == ""
        assert response.cookies[name]["path"] == "/published/progress/"
        assert response.cookies[name]["max-age"] == 0


def test_no_poll_pass_without_a_staff_login(client: Client, published: Path) -> None:
    run = started(RunStatus.RUNNING, COPYING)
    response = client.get(f"/wizard/runs/{run.id}/progress/")
    assert response.status_code == 302
    assert progress.POLL_PASS_COOKIE not in response.cookies


def test_without_publishing_browsers_poll_django_and_get_no_pass(staff_client: Client) -> None:
    run = started(RunStatus.RUNNING, COPYING)
    response = staff_client.get(f"/wizard/runs/{run.id}/progress/")
    assert f'hx-get="/wizard/runs/{run.id}/progress/"' in page_text(response)
    assert progress.POLL_PASS_COOKIE not in response.cookies


def test_the_pass_key_is_not_the_secret_key_and_follows_it(settings: Any) -> None:
    settings.SECRET_KEY = "one secret key for this test, long enough to be one"
    first = progress.poll_pass_key()
    settings.SECRET_KEY = "another secret key for this test, long enough too"
    assert progress.poll_pass_key() != first
    assert settings.SECRET_KEY not in progress.poll_pass_key()


def test_the_publisher_writes_runs_in_progress_and_removes_the_others(published: Path) -> None:
    running = started(RunStatus.RUNNING, COPYING)
    ended = started(RunStatus.SUCCEEDED, [{"name": "copy_data", "status": "succeeded"}])
    published.mkdir(parents=True)
    (published / f"{ended.id}.html").write_text("left over from when it was running")

    assert progress.publish_once() == [running.id]
    page = (published / f"{running.id}.html").read_text()
    assert 'aria-valuenow="42"' in page
    assert f'hx-get="/published/progress/{running.id}.html"' in page
    assert "csrfmiddlewaretoken" not in page
    assert not (published / f"{ended.id}.html").exists()

    running.operations.update(fraction=0.75)
    progress.publish_once()
    assert 'aria-valuenow="75"' in (published / f"{running.id}.html").read_text()

    type(running).objects.filter(id=running.id).update(status=RunStatus.FAILED, active=None)
    assert progress.publish_once() == []
    assert list(published.iterdir()) == []


def test_publish_progress_refuses_without_a_directory() -> None:
    with pytest.raises(CommandError, match="WIZARD_PUBLISH_DIR"):
        call_command("publish_progress", "--once")


def front_config(tmp_path: Path) -> Path:
    output = tmp_path / "front" / "nginx.conf"
    call_command(
        "front_config",
        "--listen=127.0.0.1:8443",
        f"--upstream={tmp_path / 'web.sock'}",
        f"--prefix={output.parent}",
        f"--output={output}",
    )
    return output


def test_front_config_is_valid_for_nginx_and_readable_by_its_owner_only(
    published: Path, tmp_path: Path
) -> None:
    call_command("make_certificate")
    output = front_config(tmp_path)
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    text = output.read_text()
    assert f'secure_link_md5 "$secure_link_expires {progress.poll_pass_key()}";' in text
    assert f"alias {published}/$run.html;" in text
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run(
        [nginx, "-t", "-c", str(output)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def test_front_config_refuses_without_a_publish_directory(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="WIZARD_PUBLISH_DIR"):
        front_config(tmp_path)
