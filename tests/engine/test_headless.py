"""`migrate_from` on a two-node demo of its own: a whole run, a failure that is undone, and a
worker killed with SIGKILL during the data copy that the run survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from devtools.mariadb import MariaDBServer
from devtools.sshd import SSHServer
from migrations_engine.peer_client import PeerClient

ROOT = Path(__file__).resolve().parent.parent.parent
NAME = "enginetest"
DEMO_DIR = ROOT / "var" / NAME
SOURCE, CURRENT = "127.0.0.22", "127.0.0.21"
DEMO_ENV = {
    "DEMO_NAME": NAME,
    "DEMO_SOURCE_ADDRESS": SOURCE,
    "DEMO_CURRENT_ADDRESS": CURRENT,
    "DEMO_HTTPS_PORT": "8443",
    "DEMO_HTTP_PORT": "8080",
    "DEMO_SSH_PORT": "2222",
    "DEMO_REDIS_DBS": "14,15",
    "DEMO_SIZE": "small",
    "DEMO_NO_WAIT": "1",
}
DATA_TABLES = ("subscriber", "voucher", "accounting_session", "event_log")

pytestmark = pytest.mark.slow


def node_env(node: str) -> dict[str, str]:
    lines = (DEMO_DIR / node / "node.env").read_text().splitlines()
    return {**os.environ, **dict(line.split("=", 1) for line in lines)}


def manage(node: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> Any:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**node_env(node), **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def stop_demo() -> None:
    for pids in DEMO_DIR.glob("*/pids"):
        for pid in pids.read_text().split():
            try:
                os.killpg(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass
    SSHServer(DEMO_DIR / "source-ssh", SOURCE, 2222).stop()
    MariaDBServer(DEMO_DIR / "source-mysql", SOURCE, 3306, 2).stop()


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    try:
        started = subprocess.run(
            [sys.executable, "scripts/demo.py"],
            cwd=ROOT,
            env={**os.environ, **DEMO_ENV},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        lines = (ROOT / "var" / f"{NAME}.env").read_text().splitlines()
        yield dict(line.split("=", 1) for line in lines)
    finally:
        stop_demo()


def peer(demo: dict[str, str]) -> PeerClient:
    client = PeerClient(SOURCE, Path(demo["SOURCE_CERTIFICATE"]).read_text(), port=8443)
    client.login(demo["SOURCE_ADMIN_PASSWORD"])
    return client


@pytest.fixture
def fresh(demo: dict[str, str]) -> dict[str, str]:
    """Both nodes as the demo made them: source in service, current unlicensed."""
    peer(demo).maintenance(enabled=False)
    manage(
        "source",
        "seed_node",
        "--size",
        "small",
        "--host-name",
        "appliance-old",
        "--ip-address",
        SOURCE,
    )
    manage(
        "current",
        "seed_node",
        "--size",
        "small",
        "--host-name",
        "appliance-new",
        "--ip-address",
        CURRENT,
        "--no-licence",
    )
    return demo


def migrate(
    demo: dict[str, str],
    tmp_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    background: bool = False,
) -> Any:
    password_file = tmp_path / "password"
    password_file.write_text(demo["SOURCE_ADMIN_PASSWORD"])
    fingerprint = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", demo["SOURCE_CERTIFICATE"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    command = [
        sys.executable,
        "manage.py",
        "migrate_from",
        SOURCE,
        "--port",
        "8443",
        "--password-file",
        str(password_file),
        "--confirm-fingerprint",
        fingerprint,
        "--report",
        str(tmp_path / "report.json"),
        *extra,
    ]
    if background:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**node_env("current"), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**node_env("current"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def checksums(host: str, database: str) -> dict[str, Any]:
    with pymysql.connect(host=host, user="root", database=database) as connection:
        with connection.cursor() as cursor:
            cursor.execute(f"CHECKSUM TABLE {', '.join(DATA_TABLES)}")
            return {name.split(".")[1]: value for name, value in cursor.fetchall()}


def assert_data_identical(demo: dict[str, str]) -> None:
    source = checksums(SOURCE, "appliance_data")
    assert source == checksums("127.0.0.1", f"{NAME}_current_data")
    assert all(source.values())


def test_without_yes_only_the_plan_is_shown(fresh: dict[str, str], tmp_path: Path) -> None:
    result = migrate(fresh, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[runs   ] Copies data (the source is standalone)" in result.stdout
    assert "[skipped] Deactivates the replica" in result.stdout
    assert "Nothing was changed" in result.stdout
    assert peer(fresh).info()["maintenance"] is False


def test_a_wrong_fingerprint_stops_before_anything(fresh: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "password").write_text(fresh["SOURCE_ADMIN_PASSWORD"])
    result = manage(
        "current",
        "migrate_from",
        SOURCE,
        "--port",
        "8443",
        "--password-file",
        str(tmp_path / "password"),
        "--confirm-fingerprint",
        "AA:BB",
        "--yes",
        check=False,
    )
    assert result.returncode != 0
    assert "not the one confirmed" in result.stderr


def test_standalone_swap_off_completes_with_identical_data(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    result = migrate(fresh, tmp_path, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations! Migration was successfully completed" in result.stdout
    assert_data_identical(fresh)
    info = peer(fresh).info()
    assert info["maintenance"] is True
    assert info["migrated_to"] == "appliance-new.mycompany.test"
    report = (tmp_path / "report.json").read_text()
    assert '"accounting_session"' in report
    assert (tmp_path / "report.html").read_text().count("<tr>") > 10
    secret = fresh["SOURCE_ADMIN_PASSWORD"]
    logs = list((DEMO_DIR / "current" / "logs").glob("*")) + list(
        (DEMO_DIR / "current" / "logs").glob("migration-*.log")
    )
    for path in [*logs, tmp_path / "report.json", tmp_path / "report.html"]:
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in result.stdout + result.stderr


def test_a_failure_after_maintenance_leaves_the_source_in_service(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    before = peer(fresh).settings()["settings"]
    result = migrate(fresh, tmp_path, "--yes", "--here", env={"APPLIANCE_RESTART_COMMAND": "false"})
    assert result.returncode != 0
    assert "The migration failed: The command 'false' failed with exit status 1." in result.stderr
    assert "What to do:" in result.stderr
    client = peer(fresh)
    info = client.info()
    assert info["maintenance"] is False
    assert info["migrated_to"] == ""
    assert client.settings()["settings"] == before


def copy_state() -> tuple[float, int]:
    """(fraction, attempts) of the newest run's data copy on the current system."""
    with pymysql.connect(host="127.0.0.1", user="root", database=f"{NAME}_current_control") as db:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT fraction, attempts FROM migrations_engine_operationstate "
                "WHERE name = 'copy_data' ORDER BY id DESC LIMIT 1"
            )
            row = cursor.fetchone()
    return (float(row[0]), int(row[1])) if row else (0.0, 0)


def restart_worker() -> None:
    """Kill the current system's worker with SIGKILL and start a new one under the same name."""
    pids_file = DEMO_DIR / "current" / "pids"
    pids = pids_file.read_text().split()
    os.killpg(int(pids[-1]), signal.SIGKILL)
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "config",
            "worker",
            "--hostname=current@%h",
            "--pool=threads",
            "--concurrency=4",
        ],
        cwd=ROOT,
        env=node_env("current"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    pids_file.write_text(" ".join([*pids[:-1], str(worker.pid)]))


def test_a_worker_killed_during_the_copy_does_not_stop_the_run(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    manage(
        "source",
        "seed_node",
        "--size",
        "demo",
        "--host-name",
        "appliance-old",
        "--ip-address",
        SOURCE,
    )
    follower = migrate(fresh, tmp_path, "--yes", background=True)
    deadline = time.monotonic() + 300
    while copy_state()[0] < 0.2:
        assert follower.poll() is None, follower.stdout.read() if follower.stdout else ""
        assert time.monotonic() < deadline, "the copy did not start"
        time.sleep(0.2)
    restart_worker()
    output, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, output
    assert_data_identical(fresh)
    fraction, attempts = copy_state()
    assert (fraction, attempts) == (1.0, 2)
    assert '"resumed": true' in (tmp_path / "report.json").read_text()
