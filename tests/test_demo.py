"""`make demo` end to end: two nodes on loopback, the source's peer API, staff login on the target.

Runs the demo script beside any running demo (its own name, addresses, ports and Redis
databases), twice, because running it again must work too.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.mariadb import MariaDBServer
from devtools.sshd import SSHServer
from migrations_engine.peer_client import CertificateMismatch, PeerClient, PeerError

ROOT = Path(__file__).resolve().parent.parent
NAME = "demotest"
DEMO_ENV = {
    "DEMO_NAME": NAME,
    "DEMO_SOURCE_ADDRESS": "127.0.0.12",
    "DEMO_CURRENT_ADDRESS": "127.0.0.11",
    "DEMO_HTTPS_PORT": "8443",
    "DEMO_HTTP_PORT": "8080",
    "DEMO_SSH_PORT": "2222",
    "DEMO_REDIS_DBS": "12,13",
    "DEMO_SIZE": "small",
    "DEMO_NO_WAIT": "1",
}
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


def run_demo() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=ROOT,
        env={**os.environ, **DEMO_ENV},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def stop_demo() -> None:
    demo_dir = ROOT / "var" / NAME
    for pids in demo_dir.glob("*/pids"):
        for pid in pids.read_text().split():
            try:
                os.killpg(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass
    SSHServer(demo_dir / "source-ssh", "127.0.0.12", 2222).stop()
    MariaDBServer(demo_dir / "source-mysql", "127.0.0.12", 3306, 2).stop()


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    try:
        first = run_demo()
        assert first.returncode == 0, first.stdout + first.stderr
        second = run_demo()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "The two-node demo is running." in second.stdout
        env_file = ROOT / "var" / f"{NAME}.env"
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        values["stdout"] = second.stdout
        yield values
    finally:
        stop_demo()


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
