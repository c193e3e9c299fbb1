"""`make demo` end to end: two nodes on loopback, the source's peer API, staff login on the target.

Runs the demo script beside any running demo (its own name, addresses, ports and Redis
databases), twice, because running it again must work too.
"""

from __future__ import annotations

import http.cookiejar
import re
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrations_engine.peer_client import CertificateMismatch, PeerClient, PeerError
from tests.demo_support import DemoUnderTest

ROOT = Path(__file__).resolve().parent.parent
DEMO = DemoUnderTest("demotest", "127.0.0.12", "127.0.0.11", "12,13")
NAME = DEMO.name
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


def test_staff_can_log_in_to_the_current_system(demo: dict[str, str]) -> None:
    context = ssl.create_default_context(
        cafile=str(ROOT / "var" / NAME / "current" / "certs" / "server.crt")
    )
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )
    login_url = demo["TARGET_URL"] + "/accounts/login/?next=/console/"
    page = opener.open(login_url).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token.group(1),
            "username": demo["TARGET_ADMIN_USER"],
            "password": demo["TARGET_ADMIN_PASSWORD"],
            "next": "/console/",
        }
    ).encode()
    request = urllib.request.Request(login_url, form, headers={"Referer": login_url})
    with opener.open(request) as response:
        console = response.read().decode()
        assert response.url.endswith("/console/")
    assert "System console" in console
    assert "appliance-new" in console


def test_a_certificate_other_than_the_pinned_one_is_refused(demo: dict[str, str]) -> None:
    other = (ROOT / "var" / NAME / "current" / "certs" / "server.crt").read_text()
    client = PeerClient(demo["SOURCE_ADDRESS"], other, port=8443)
    with pytest.raises(CertificateMismatch, match="certificate other than the one you confirmed"):
        client.login(demo["SOURCE_ADMIN_PASSWORD"])
