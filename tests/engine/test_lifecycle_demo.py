"""The run's lifecycle on a two-node demo of its own: a source reboot that outlasts the stale
heartbeat limit, a worker killed during the data copy followed by a Redis restart, and a
rehearsal whose worker is killed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import redis

from devtools.sshd import SSHServer
from migrations_engine.peer_client import certificate_fingerprint
from tests.demo_support import DemoUnderTest

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO = DemoUnderTest("lifecycletest", "127.0.0.52", "127.0.0.51", "4,5")
SOURCE = DEMO.source_address
CURRENT_BROKER_DB = int(DEMO.redis_dbs.split(",")[0])
STALE = "30"  # MIGRATION_HEARTBEAT_STALE of the current system's worker, in seconds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    with DEMO.running() as settings:
        yield settings


def migrate(
    demo: dict[str, str], tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start migrate_from as the current system (it follows the run until it ends)."""
    password_file = tmp_path / "password"
    password_file.write_text(demo["SOURCE_ADMIN_PASSWORD"])
    fingerprint = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", demo["SOURCE_CERTIFICATE"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "migrate_from",
            SOURCE,
            "--port",
            "8443",
            "--check-ports",
            "8080,8443,3306,2222",
            "--password-file",
            str(password_file),
            "--confirm-fingerprint",
            fingerprint,
            "--report",
            str(tmp_path / "report.json"),
            "--yes",
            *extra,
        ],
        cwd=ROOT,
        env={**DEMO.node_env("current"), "MIGRATION_HEARTBEAT_STALE": STALE, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def alive(pid: int) -> bool:
    """Whether a process runs (a killed one may linger as a zombie until reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def stop_group(pid: int, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
    """Send `sig` to a process group and wait until its leader has ended."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.1)


def kill_current_worker() -> None:
    """SIGKILL the current system's worker with every process it started."""
    stop_group(DEMO.node("current").pids()["worker"], signal.SIGKILL)


def start_current_worker() -> None:
    """Start the current system's worker again, by hand, as the demo starts it."""
    node = DEMO.node("current")
    node.env["MIGRATION_HEARTBEAT_STALE"] = STALE
    node.env["MIGRATION_REBOOT_SETTLE"] = "15"  # the source's reboot takes it down here
    node.pids_write(node.pids() | {"worker": node.spawn("worker").pid})


@pytest.fixture
def fresh(demo: dict[str, str]) -> Iterator[dict[str, str]]:
    """The current system's worker started with the stale limit (each test resets the nodes)."""
    kill_current_worker()
    start_current_worker()
    yield demo
    if not alive(DEMO.node("current").pids()["worker"]):
        start_current_worker()


def finished(follower: subprocess.Popen[str], timeout: float = 600) -> str:
    """migrate_from's output once it has ended (and it must have succeeded)."""
    output, _ = follower.communicate(timeout=timeout)
    assert follower.returncode == 0, output
    assert "Congratulations! Migration was successfully completed" in output
    return output


def assert_data_identical() -> None:
    source, current = DEMO.data_checksums()
    assert source == current
    assert all(source.values())


def control_value(query: str) -> Any:
    """One value from the current system's control database."""
    with pymysql.connect(
        host="127.0.0.1", user="root", database=f"{DEMO.name}_current_control"
    ) as db:
        with db.cursor() as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
    return row[0] if row else None


def newest_run_id() -> int:
    return int(control_value("SELECT COALESCE(MAX(id), 0) FROM migrations_engine_migrationrun"))


class SourceReboot(threading.Thread):
    """Does what a reboot of the source does: once its reboot command has run (the demo's
    command only leaves a flag), every process of the source node and its SSH server stop,
    stay down `down_seconds`, and start again; counts the reboots asked for."""

    def __init__(self, down_seconds: float) -> None:
        super().__init__(daemon=True)
        self.down_seconds = down_seconds
        self.finished = threading.Event()
        self.reboots = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        flag = DEMO.directory / "source" / "control" / "reboot"
        try:
            while not self.finished.is_set():
                if flag.exists():
                    flag.unlink()
                    self.reboots += 1
                    self.reboot()
                time.sleep(0.2)
        except BaseException as error:  # wait_until_up exits: the test reports it
            self.failure = error

    def reboot(self) -> None:
        back_at = time.monotonic() + self.down_seconds
        node = DEMO.node("source")
        ssh = SSHServer(DEMO.directory / "source-ssh", SOURCE, 2222)
        pids = node.pids()
        for pid in pids.values():
            stop_group(pid)
        ssh.stop()
        time.sleep(max(0.0, back_at - time.monotonic()))
        ssh.start()
        node.pids_write({role: node.spawn(role).pid for role in pids})
        node.wait_until_up()


def test_a_source_reboot_longer_than_the_stale_limit_reboots_it_once_and_completes(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    DEMO.reset("--role", "ha_master", "--ha-peer", "127.0.0.53")
    run_id = newest_run_id() + 1
    actor = SourceReboot(down_seconds=60)
    actor.start()
    try:
        follower = migrate(fresh, tmp_path, "--swap")
        output = finished(follower, timeout=900)
    finally:
        actor.finished.set()
        actor.join(timeout=120)
    assert actor.failure is None, actor.failure
    assert actor.reboots == 1, output
    assert_data_identical()
    assert DEMO.peer().info()["host_name"] == "appliance-new"  # the systems swapped
    report = json.loads((tmp_path / "report.json").read_text())
    reboot = next(op for op in report["operations"] if op["name"] == "reboot_systems")
    assert reboot["result"]["source_seconds"] >= 55  # it really was down a minute
    log = str(control_value(f"SELECT log FROM migrations_engine_migrationrun WHERE id = {run_id}"))
    assert "picked up again" not in log  # its heartbeat went on while the source was down


def files_sha256(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_a_worker_killed_during_the_copy_then_a_redis_restart_does_not_stop_the_run(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    DEMO.reset("--size", "demo")  # a copy that lasts long enough to be interrupted
    earlier = newest_run_id()
    follower = migrate(fresh, tmp_path, "--copy-logs")
    deadline = time.monotonic() + 300
    while (
        control_value(
            "SELECT current_operation FROM migrations_engine_migrationrun "
            f"WHERE id > {earlier} ORDER BY id DESC LIMIT 1"
        )
        != "precopy_data"
    ):
        assert follower.poll() is None, follower.stdout.read() if follower.stdout else ""
        assert time.monotonic() < deadline, "the data copy did not start"
        time.sleep(0.2)
    time.sleep(1)
    kill_current_worker()
    start_current_worker()
    time.sleep(5)
    # The machine's Redis is shared with other demos and must not be restarted: a restart
    # without persistence is simulated by emptying the current system's broker database.
    redis.Redis(host="127.0.0.1", port=6379, db=CURRENT_BROKER_DB).flushdb()
    finished(follower)
    assert_data_identical()
    source_logs = files_sha256(Path(fresh["SOURCE_TRAFFIC_LOG_DIR"]))
    target_logs = files_sha256(Path(fresh["TARGET_TRAFFIC_LOG_DIR"]))
    assert source_logs
    assert {name: target_logs.get(name) for name in source_logs} == source_logs
    attempts = control_value(
        "SELECT attempts FROM migrations_engine_operationstate "
        f"WHERE name = 'precopy_data' AND run_id > {earlier} ORDER BY id DESC LIMIT 1"
    )
    assert attempts == 2  # the copy was interrupted and went on
    assert '"resumed": true' in (tmp_path / "report.json").read_text()  # from its checkpoints


REHEARSAL_START = """
import os
from migrations_engine.models import MigrationRun
from migrations_engine.rehearsal import rehearsal_start
from migrations_engine.services import run_prepare
run_id = int(os.environ.get("LIFECYCLE_RUN", "0"))
if run_id:
    run = MigrationRun.objects.get(id=run_id)
else:
    run = run_prepare(
        address=os.environ["LIFECYCLE_SOURCE"],
        port=8443,
        password=os.environ["LIFECYCLE_PASSWORD"],
        fingerprint=os.environ["LIFECYCLE_FINGERPRINT"],
    )
print(run.id, rehearsal_start(run).id)
"""


def rehearsal_start(demo: dict[str, str], run_id: int = 0) -> tuple[int, int]:
    """Start a rehearsal on the current system's workers (of a new run unless one is given)."""
    pem = Path(demo["SOURCE_CERTIFICATE"]).read_text()
    output = DEMO.manage(
        "current",
        "shell",
        "--no-imports",
        "-c",
        REHEARSAL_START,
        env={
            "LIFECYCLE_RUN": str(run_id),
            "LIFECYCLE_SOURCE": SOURCE,
            "LIFECYCLE_PASSWORD": demo["SOURCE_ADMIN_PASSWORD"],
            "LIFECYCLE_FINGERPRINT": certificate_fingerprint(pem),
        },
    ).stdout
    run, rehearsal = output.strip().splitlines()[-1].split()
    return int(run), int(rehearsal)


def rehearsal_state(rehearsal_id: int) -> tuple[str, float, str]:
    with pymysql.connect(
        host="127.0.0.1", user="root", database=f"{DEMO.name}_current_control"
    ) as db:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT status, fraction, error FROM migrations_engine_rehearsal WHERE id = %s",
                [rehearsal_id],
            )
            row = cursor.fetchone()
    assert row is not None, rehearsal_id
    status, fraction, error = row
    return str(status), float(fraction), str(error)


def rehearsal_wait(rehearsal_id: int, statuses: set[str], timeout: float) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while (state := rehearsal_state(rehearsal_id))[0] not in statuses:
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    return state[0], state[2]


def test_a_rehearsal_whose_worker_is_killed_ends_failed_and_a_new_one_completes(
    fresh: dict[str, str],
) -> None:
    DEMO.reset("--size", "demo")  # a rehearsal that lasts long enough to be interrupted
    source_before, current_before = DEMO.data_checksums()
    run_id, first = rehearsal_start(fresh)
    deadline = time.monotonic() + 120
    while True:  # until its data copy is under way
        status, fraction, _ = state = rehearsal_state(first)
        if status == "running" and fraction >= 0.05:
            break
        assert status in ("queued", "running"), state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    kill_current_worker()
    start_current_worker()
    status, error = rehearsal_wait(first, {"failed", "done"}, timeout=int(STALE) + 15 + 30)
    assert status == "failed"
    assert "The worker running the rehearsal stopped" in error
    assert "rehearse again" in error
    _, second = rehearsal_start(fresh, run_id)
    status, error = rehearsal_wait(second, {"failed", "done"}, timeout=300)
    assert (status, error) == ("done", "")
    assert DEMO.data_checksums() == (source_before, current_before)  # nothing was changed
    with pymysql.connect(host="127.0.0.1", user="root") as db, db.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE %s", [f"{DEMO.name}_current_data_rehearsal"])
        assert cursor.fetchall() == ()  # nor left behind
