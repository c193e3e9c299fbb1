"""The progress partial of a run, and its copies published as files for the front web server.

Browsers watching a run poll its partial once a second. Where this node has a front web
server (nginx, see `front_config`), the partial of a run in progress is rendered twice a second
by `publish_progress` into `WIZARD_PUBLISH_DIR`, and the front server hands that file out
without Python. It does so only to a browser holding a poll pass: two cookies a staff user gets
from the Execution page and from every partial Django answers, signed with a key derived from
the node's secret key, valid for `POLL_PASS_SECONDS` and for progress partials only. Without a
valid pass, or once the run has ended (its file is gone), the front server passes the request to
Django's own partial view, which checks the login, renews the pass and stops polling with 286.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse

from migrations_engine.models import MigrationRun, RunStatus

PUBLISHED_PREFIX = "/published/progress/"
"""Where the front server answers with published partials (a run's is `<prefix><id>.html`)."""
POLL_PASS_COOKIE = "wizard_poll"  # noqa: S105 - a cookie's name
POLL_PASS_EXPIRES_COOKIE = "wizard_poll_expires"  # noqa: S105 - a cookie's name
POLL_PASS_SECONDS = 120
PUBLISH_EVERY_SECONDS = 0.5
IN_PROGRESS = (RunStatus.QUEUED, RunStatus.RUNNING)


def publishing() -> bool:
    """Whether this node's front server hands out published partials."""
    return bool(settings.WIZARD_PUBLISH_DIR)


def progress_poll_url(run_id: int) -> str:
    """The URL a browser polls for a run's progress: the published file where there is one."""
    if publishing():
        return f"{PUBLISHED_PREFIX}{run_id}.html"
    return reverse("wizard:progress", args=[run_id])


def progress_context(run: MigrationRun) -> dict[str, Any]:
    """What the progress partial shows."""
    operations = list(run.operations.order_by("position").defer("memory", "result"))
    return {
        "operations": operations,
        "failed_operation": next((op for op in operations if op.status == "failed"), None),
        "failed": run.status == RunStatus.FAILED,
        "succeeded": run.status == RunStatus.SUCCEEDED,
        "polling": run.status in IN_PROGRESS,
        "awaiting_cutover": run.status in IN_PROGRESS
        and run.cutover_requested_at is None
        and any(op.name == "await_cutover" and op.status == "running" for op in operations),
        "poll_url": progress_poll_url(run.id),
    }


def poll_pass_key() -> str:
    """The key that signs poll passes, derived from the node's secret key (the front server's
    configuration holds it; the secret key itself stays with Django)."""
    return hmac.new(
        settings.SECRET_KEY.encode(), b"wizard published progress", hashlib.sha256
    ).hexdigest()


def poll_pass_signature(expires: int) -> str:
    """The signature nginx's `secure_link_md5 "$secure_link_expires <key>"` expects."""
    digest = hashlib.md5(f"{expires} {poll_pass_key()}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def poll_pass_give(response: HttpResponse) -> HttpResponse:
    """Give a staff user's browser a fresh poll pass (where partials are published)."""
    if not publishing():
        return response
    expires = int(time.time()) + POLL_PASS_SECONDS
    for name, value in (
        (POLL_PASS_COOKIE, poll_pass_signature(expires)),
        (POLL_PASS_EXPIRES_COOKIE, str(expires)),
    ):
        response.set_cookie(
            name,
            value,
            max_age=POLL_PASS_SECONDS,
            path=PUBLISHED_PREFIX,
            secure=True,
            httponly=True,
            samesite="Strict",
        )
    return response


def poll_pass_take_back(response: HttpResponse) -> HttpResponse:
    """Remove the poll pass from the browser (it logs out)."""
    for name in (POLL_PASS_COOKIE, POLL_PASS_EXPIRES_COOKIE):
        response.delete_cookie(name, path=PUBLISHED_PREFIX, samesite="Strict")
    return response


def published_dir() -> Path:
    return Path(settings.WIZARD_PUBLISH_DIR)


def published_path(run_id: int) -> Path:
    """The file the front server answers with for a run's progress."""
    return published_dir() / f"{run_id}.html"


def publish_once() -> list[int]:
    """Render the partial of every run in progress to its file; remove the files of the others.

    Each file is written beside and renamed over the old one, so the front server never hands
    out half a partial. Returns the ids of the runs published.
    """
    directory = published_dir()
    directory.mkdir(parents=True, exist_ok=True)
    runs = MigrationRun.objects.filter(status__in=IN_PROGRESS).only("id", "status")
    published = []
    for run in runs:
        html = render_to_string("wizard/progress.html", {"run": run, **progress_context(run)})
        partial = directory / f".{run.id}.html.partial"
        partial.write_text(html)
        os.replace(partial, published_path(run.id))
        published.append(run.id)
    for path in directory.glob("*.html"):
        if not path.stem.isdigit() or int(path.stem) not in published:
            path.unlink(missing_ok=True)
    return published


def unpublish_all() -> None:
    """Remove every published partial: Django answers again (the publisher is stopping)."""
    for path in published_dir().glob("*.html"):
        path.unlink(missing_ok=True)
