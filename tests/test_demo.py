"""`make demo` end to end: two nodes on loopback, the source's peer API, staff login on the target.

Runs the demo script beside any running demo (its own name, addresses, ports and Redis
databases), twice, because running it again must work too.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrations_engine.peer_client import CertificateMismatch, PeerClient, PeerError
from tests.demo_support import DemoUnderTest

ROOT = Path(__file__).resolve().parent.parent
DEMO = DemoUnderTest("demotest", "127.0.0.12", "127.0.0.11", "12,13")
NAME = DEMO.name
CURRENT_CERTIFICATE = ROOT / "var" / NAME / "current" / "certs" / "server.crt"
REQUIRED_KEYS = {
    "SOURCE_ADDRESS",
    "SOURCE_URL",
    "SOURCE_ADMIN_PASSWORD",
    "SOURCE_DATA_DB_URL",
    "SOURCE_TRAFFIC_LOG_DIR",
    "TARGET_URL",
    "TARGET_ADMIN_USER",
    "TARGET_ADMIN_PASSWORD",
    "TARGET_DATA_DB_URL",
    "TARGET_TRAFFIC_LOG_DIR",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    try:
        first = DEMO.start()
        assert first.returncode == 0, first.stdout + first.stderr
        second = DEMO.start()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "The two-node demo is running." in second.stdout
        values = DEMO.settings()
        values["stdout"] = second.stdout
        yield values
    finally:
        DEMO.stop()


def test_demo_writes_every_setting_scripts_need(demo: dict[str, str]) -> None:
    assert REQUIRED_KEYS <= set(demo)
    assert demo["SOURCE_URL"] == "https://127.0.0.12:8443"
    assert re.fullmatch(
        r"mysql://appliance:[^@]+@127\.0\.0\.12:3306/appliance_data", demo["SOURCE_DATA_DB_URL"]
    )
    assert Path(demo["SOURCE_TRAFFIC_LOG_DIR"]).is_dir()


def test_demo_prints_the_wizard_url_and_logins(demo: dict[str, str]) -> None:
    assert "https://127.0.0.11:8443/wizard/" in demo["stdout"]
    assert demo["TARGET_ADMIN_PASSWORD"] in demo["stdout"]


def source_client(demo: dict[str, str]) -> PeerClient:
    pem = Path(demo["SOURCE_CERTIFICATE"]).read_text()
    return PeerClient(demo["SOURCE_ADDRESS"], pem, port=8443)


def test_source_peer_api_answers_info_after_login(demo: dict[str, str]) -> None:
    client = source_client(demo)
    with pytest.raises(PeerError) as refused:
        client.info()
    assert refused.value.status == 401
    client.login(demo["SOURCE_ADMIN_PASSWORD"])
    info = client.info()
    assert (info["host_name"], info["ip_address"]) == ("appliance-old", "127.0.0.12")
    assert info["licence"]["state"] == "active"
    assert info["ssh_fingerprint"].startswith("SHA256:")


def trusting(certificate: Path | str) -> ssl.SSLContext:
    """A TLS context that trusts exactly this (self-signed) certificate."""
    context = ssl.create_default_context(cafile=str(certificate))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def staff_log_in(demo: dict[str, str], jar: http.cookiejar.CookieJar, next_path: str) -> Any:
    """Log in on the current system's login page as staff; the answer it leads to."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=trusting(CURRENT_CERTIFICATE)),
        urllib.request.HTTPCookieProcessor(jar),
    )
    login_url = demo["TARGET_URL"] + f"/accounts/login/?next={next_path}"
    page = opener.open(login_url).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token.group(1),
            "username": demo["TARGET_ADMIN_USER"],
            "password": demo["TARGET_ADMIN_PASSWORD"],
            "next": next_path,
        }
    ).encode()
    return opener.open(urllib.request.Request(login_url, form, headers={"Referer": login_url}))


def test_staff_can_log_in_to_the_current_system(demo: dict[str, str]) -> None:
    with staff_log_in(demo, http.cookiejar.CookieJar(), "/console/") as response:
        console = response.read().decode()
        assert response.url.endswith("/console/")
    assert "System console" in console
    assert "appliance-new" in console


def test_a_certificate_other_than_the_pinned_one_is_refused(demo: dict[str, str]) -> None:
    other = CURRENT_CERTIFICATE.read_text()
    client = PeerClient(demo["SOURCE_ADDRESS"], other, port=8443)
    with pytest.raises(CertificateMismatch, match="certificate other than the one you confirmed"):
        client.login(demo["SOURCE_ADMIN_PASSWORD"])


# The front server (nginx) of each node


def front_get(
    demo: dict[str, str], path: str, cookies: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, str]:
    """GET a path from the current system's front server without following redirects."""
    address = urllib.parse.urlsplit(demo["TARGET_URL"])
    connection = http.client.HTTPSConnection(
        str(address.hostname), address.port, context=trusting(CURRENT_CERTIFICATE), timeout=10
    )
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    connection.request("GET", path, headers={"Cookie": cookie, **(headers or {})})
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, response.headers, body


def staff_session(demo: dict[str, str]) -> str:
    """A staff session on the current system, as its login page gives one."""
    jar = http.cookiejar.CookieJar()
    staff_log_in(demo, jar, "/console/").close()
    return next(str(cookie.value) for cookie in jar if cookie.name == "sessionid")


def set_cookies(headers: http.client.HTTPMessage) -> dict[str, str]:
    return dict(
        header.split(";", 1)[0].split("=", 1) for header in headers.get_all("Set-Cookie") or []
    )


RUN_IN_PROGRESS = """
from datetime import timedelta
from django.utils import timezone
from migrations_engine.models import MigrationRun, OperationState
later = timezone.now() + timedelta(days=1)  # a live worker's heartbeat: nothing sends it again
run = MigrationRun.objects.create(
    status="running", active=True, started_at=timezone.now(), heartbeat_at=later,
    source_address="127.0.0.12", fingerprint_confirmed=True, options_chosen=True,
)
OperationState.objects.create(
    run=run, position=1, name="copy_data", label="Copies the data", status="running",
    fraction=0.37, started_at=timezone.now(), moved_at=later,
)
print(run.id)
"""


def run_update(run_id: int, code: str) -> None:
    DEMO.python(
        "current",
        "from migrations_engine.models import MigrationRun, OperationState\n"
        f"run_id = {run_id}\n{code}\nprint('ok')",
    )


def eventually(check: Any, seconds: float = 10) -> Any:
    """The first true answer of `check` within the time, else its last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_the_front_server_hands_out_published_progress_only_with_a_poll_pass(
    demo: dict[str, str],
) -> None:
    run_id = int(DEMO.python("current", RUN_IN_PROGRESS))
    published = f"/published/progress/{run_id}.html"
    try:
        file = ROOT / "var" / NAME / "current" / "published" / f"{run_id}.html"
        assert eventually(file.exists), "the publisher did not publish the run in progress"

        status, headers, _ = front_get(demo, published, {})
        assert status == 302  # no pass: Django answers, and sends a stranger to the login
        assert headers["Location"].startswith("/accounts/login/")
        forged = {"wizard_poll": "AAAAAAAAAAAAAAAAAAAAAA", "wizard_poll_expires": "9999999999"}
        assert front_get(demo, published, forged)[0] == 302

        session = {"sessionid": staff_session(demo)}
        status, headers, body = front_get(demo, f"/wizard/runs/{run_id}/progress/", session)
        assert status == 200
        assert f'hx-get="{published}"' in body
        poll_pass = set_cookies(headers)
        assert set(poll_pass) == {"wizard_poll", "wizard_poll_expires"}

        status, headers, body = front_get(demo, published, session | poll_pass)
        assert status == 200
        assert headers["Last-Modified"]  # the file, handed out by nginx
        assert headers["Cache-Control"] == "no-store"
        assert 'aria-valuenow="37"' in body
        assert "Set-Cookie" not in headers

        run_update(run_id, "OperationState.objects.filter(run_id=run_id).update(fraction=0.81)")
        assert eventually(
            lambda: 'aria-valuenow="81"' in front_get(demo, published, session | poll_pass)[2]
        )

        expired = {"wizard_poll": poll_pass["wizard_poll"], "wizard_poll_expires": "1000000000"}
        status, headers, body = front_get(demo, published, session | expired)
        assert status == 200 and "Last-Modified" not in headers  # Django, with a new pass
        assert set(set_cookies(headers)) == {"wizard_poll", "wizard_poll_expires"}
        assert 'aria-valuenow="81"' in body
    finally:
        run_update(
            run_id,
            "MigrationRun.objects.filter(id=run_id).update(status='succeeded', active=None)\n"
            "OperationState.objects.filter(run_id=run_id).update(status='succeeded', fraction=1)",
        )
    assert eventually(lambda: front_get(demo, published, session | poll_pass)[0] == 286)
    status, headers, body = front_get(demo, published, session | poll_pass)
    assert "Congratulations! Migration was successfully completed" in body
    assert "hx-trigger" not in body
    assert not file.exists()


def test_the_front_server_passes_on_the_real_client_address(demo: dict[str, str]) -> None:
    connection = http.client.HTTPSConnection(
        demo["SOURCE_ADDRESS"], 8443, context=trusting(demo["SOURCE_CERTIFICATE"]), timeout=10
    )
    claimed = {"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.9"}
    connection.request(
        "POST",
        "/api/peer/v1/auth",
        body=json.dumps({"password": "not the password"}),
        headers={"Content-Type": "application/json", **claimed},
    )
    assert connection.getresponse().status == 401
    connection.close()
    addresses = DEMO.python(
        "source",
        "from appliance.models import PeerAuthFailures\n"
        "print(sorted(PeerAuthFailures.objects.values_list('client_address', flat=True)))",
    )
    assert "203.0.113.9" not in addresses
    assert "'127." in addresses
