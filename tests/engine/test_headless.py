"""`migrate_from` on a two-node demo of its own: a whole run, a failure that is undone, and a
worker killed with SIGKILL during the data copy that the run survives."""

from __future__ import annotations

import base64
import gzip
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

from appliance import services
from devtools.mariadb import MariaDBServer
from migrations_engine import executor
from migrations_engine.accounts import account_digest, account_rows
from migrations_engine.context import Progress, RunContext
from migrations_engine.models import MigrationRun
from migrations_engine.operations import OPERATION_BY_NAME
from migrations_engine.peer_client import PeerClient, certificate_fingerprint
from migrations_engine.preflight import preflight
from migrations_engine.secrets import secret_put
from tests.demo_support import DemoUnderTest

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO = DemoUnderTest("enginetest", "127.0.0.22", "127.0.0.21", "14,15")
NAME, DEMO_DIR = DEMO.name, DEMO.directory
SOURCE, CURRENT = DEMO.source_address, DEMO.current_address

pytestmark = pytest.mark.slow


node_env = DEMO.node_env
manage = DEMO.manage
node_python = DEMO.python


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    with DEMO.running() as settings:
        yield settings


def peer(demo: dict[str, str]) -> PeerClient:
    return DEMO.peer()


seed_source = DEMO.seed_source


@pytest.fixture
def fresh(demo: dict[str, str]) -> dict[str, str]:
    """Both nodes as the demo made them: source in service, current unlicensed."""
    DEMO.reset()
    return demo


def migrate(
    demo: dict[str, str],
    tmp_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    background: bool = False,
    fingerprint: str = "",
    ports: str = "8080,8443,3306,2222",
) -> Any:
    """Run migrate_from as the current system (the real fingerprint unless one is given)."""
    password_file = tmp_path / "password"
    password_file.write_text(demo["SOURCE_ADMIN_PASSWORD"])
    fingerprint = (
        fingerprint
        or subprocess.run(
            [
                "openssl",
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-in",
                demo["SOURCE_CERTIFICATE"],
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    command = [
        sys.executable,
        "manage.py",
        "migrate_from",
        SOURCE,
        "--port",
        "8443",
        "--check-ports",
        ports,
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


def assert_data_identical(demo: dict[str, str]) -> None:
    source, current = DEMO.data_checksums()
    assert source == current
    assert all(source.values())


def test_without_yes_only_the_plan_is_shown(fresh: dict[str, str], tmp_path: Path) -> None:
    result = migrate(fresh, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[runs   ] Pre-copies data (the source stays in service)" in result.stdout
    assert "[runs   ] Copies data (the data was pre-copied while the source served" in (
        result.stdout
    )
    assert "[skipped] Deactivates the replica" in result.stdout
    assert "Nothing was changed" in result.stdout
    assert peer(fresh).info()["maintenance"] is False


def test_a_wrong_fingerprint_stops_before_anything(fresh: dict[str, str], tmp_path: Path) -> None:
    result = migrate(fresh, tmp_path, "--yes", fingerprint="AA:BB")
    assert result.returncode != 0
    assert "not the one you confirmed" in result.stdout
    assert "the password was not sent" in result.stdout
    assert "someone may be impersonating the source" in result.stderr


def test_a_closed_port_stops_before_anything_with_its_fix(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    result = migrate(fresh, tmp_path, "--yes", fingerprint="AA:BB", ports="8443,2223")
    assert result.returncode != 0
    assert "[FAILED] Port 2223 (TCP): connection refused" in result.stdout
    assert f"Open TCP port 2223 from this system to {SOURCE}" in result.stderr
    assert peer(fresh).info()["maintenance"] is False


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
    assert json.loads(report)["status"] == "succeeded"
    assert '"accounting_session"' in report
    assert (tmp_path / "report.html").read_text().count("<tr>") > 10
    secret = fresh["SOURCE_ADMIN_PASSWORD"]
    logs = list((DEMO_DIR / "current" / "logs").glob("*")) + list(
        (DEMO_DIR / "current" / "logs").glob("migration-*.log")
    )
    for path in [*logs, tmp_path / "report.json", tmp_path / "report.html"]:
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in result.stdout + result.stderr


def newest_run_id() -> int:
    with pymysql.connect(host="127.0.0.1", user="root", database=f"{NAME}_current_control") as db:
        with db.cursor() as cursor:
            cursor.execute("SELECT MAX(id) FROM migrations_engine_migrationrun")
            (newest,) = cursor.fetchone() or (0,)
            return int(newest or 0)


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
    # once the cause is fixed, the run resumes from where it failed and completes
    resumed = manage("current", "migration_run", "resume", str(newest_run_id()), "--here")
    assert "Completed" in resumed.stdout
    assert_data_identical(fresh)
    assert peer(fresh).info()["migrated_to"] == "appliance-new.mycompany.test"


def stop_worker() -> None:
    """Kill the current system's worker (and what it started) with SIGKILL."""
    try:
        os.killpg(DEMO.node("current").pids()["worker"], signal.SIGKILL)
    except ProcessLookupError:
        pass


def restart_worker(env: dict[str, str] | None = None) -> None:
    """Kill the current system's worker with SIGKILL and start a new one, as the demo starts
    it (with `env` added to its environment), recorded in the demo's pid files."""
    stop_worker()
    node = DEMO.node("current")
    node.env.update(env or {})
    node.pids_write(node.pids() | {"worker": node.spawn("worker").pid})


def test_ha_source_with_swap_and_every_option(fresh: dict[str, str], tmp_path: Path) -> None:
    seed_source("--role", "ha_master", "--ha-peer", "127.0.0.23")
    client = peer(fresh)
    source_before = client.info()
    source_settings = client.settings()["settings"]
    current_settings = node_python(
        "current",
        "import json; from appliance import services; "
        "print(json.dumps(services.settings_export()))",
    )
    result = migrate(fresh, tmp_path, "--yes", "--swap", "--migrate-licence", "--copy-logs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_data_identical(fresh)
    client = peer(fresh)
    after = client.info()
    # the systems swapped identities and site-bound settings
    assert after["host_name"] == "appliance-new"
    assert after["licence"]["state"] == "transferred"
    assert after["ha"]["round_robin_hosts"] == source_before["ha"]["round_robin_hosts"]
    assert after["replication_running"] is False
    assert client.settings()["settings"]["dns"] == json.loads(current_settings)["dns"]
    here = node_python(
        "current",
        "from appliance import services as s; n = s.node_get(); l = s.licence_get(); "
        "print(n.host_name, l.guid, l.state, s.tls_fingerprint())",
    ).split()
    assert here == [
        "appliance-old",
        source_before["licence"]["guid"],
        "active",
        source_before["tls_fingerprint"],
    ]
    ha_here = node_python(
        "current",
        "import json; from appliance import services; "
        "print(json.dumps(services.settings_export()['ha']))",
    )
    assert json.loads(ha_here) == source_settings["ha"]
    source_logs = sorted(p.name for p in Path(fresh["SOURCE_TRAFFIC_LOG_DIR"]).glob("*.gz"))
    target_logs = sorted(p.name for p in Path(fresh["TARGET_TRAFFIC_LOG_DIR"]).glob("*.gz"))
    assert source_logs and set(source_logs) <= set(target_logs)
    report = (tmp_path / "report.json").read_text()
    assert '"caught_up_at"' in report
    assert "Copies the syslog data" in report
    receipts = json.loads(report)["operations"][-2]["result"]["files"]
    first = Path(fresh["SOURCE_TRAFFIC_LOG_DIR"]) / receipts[0]["path"]
    assert receipts[0]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert len(receipts) == len(source_logs)
    with pymysql.connect(host="127.0.0.1", user="root") as db, db.cursor() as cursor:
        cursor.execute("SHOW ALL SLAVES STATUS")
        assert cursor.fetchall() == ()


def worker_alive() -> bool:
    """Whether the current system's worker process runs (a killed one may linger as a zombie)."""
    pid = DEMO.node("current").pids()["worker"]
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_the_current_systems_reboot_mid_run_does_not_reboot_it_twice(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    reboots = tmp_path / "reboots"
    # The "reboot" notes itself, then takes the worker down with it, as a real one would.
    reboot = {"APPLIANCE_REBOOT_COMMAND": f"sh -c 'echo reboot >> {reboots}; kill -9 $PPID'"}
    restart_worker(reboot)
    try:
        follower = migrate(fresh, tmp_path, "--yes", "--swap", background=True)
        deadline = time.monotonic() + 300
        while not (reboots.exists() and not worker_alive()):
            assert time.monotonic() < deadline, "the reboot step was not reached"
            time.sleep(0.2)
        restart_worker(reboot)  # the system is back
        output, _ = follower.communicate(timeout=600)
        assert follower.returncode == 0, output
        assert reboots.read_text() == "reboot\n"
        assert_data_identical(fresh)
        assert peer(fresh).info()["host_name"] == "appliance-new"
    finally:
        restart_worker()


@pytest.mark.django_db(databases=["default", "data"], transaction=True)
def test_a_crash_between_claim_and_release_ends_with_one_active_licence(
    fresh: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source_info = peer(fresh).info()
    run = MigrationRun.objects.create(
        source_address=SOURCE,
        source_port=8443,
        source_info=source_info,
        migrate_licence=True,
        source_certificate=Path(fresh["SOURCE_CERTIFICATE"]).read_text(),
    )
    secret_put(run, "admin_password", fresh["SOURCE_ADMIN_PASSWORD"])
    executor.run_plan(run)
    state = run.operations.get(name="migrate_licence")
    release = PeerClient.licence_release
    crashes: list[str] = []

    def crash_the_first_time(client: PeerClient, **arguments: str) -> None:
        if not crashes:
            crashes.append("crashed")
            raise ConnectionResetError("the current system went down here")
        release(client, **arguments)

    monkeypatch.setattr(PeerClient, "licence_release", crash_the_first_time)
    operation = OPERATION_BY_NAME["migrate_licence"]
    with pytest.raises(ConnectionResetError):
        operation.run(RunContext(run, state, run.fence), Progress(state, run.fence))
    assert services.licence_get().state == "active"
    assert peer(fresh).info()["licence"]["state"] == "active"  # the crash window
    operation.run(RunContext(run, state, run.fence), Progress(state, run.fence))  # the retry
    here = services.licence_get()
    assert (here.guid, here.state) == (source_info["licence"]["guid"], "active")
    assert peer(fresh).info()["licence"]["state"] == "transferred"


def test_a_lost_queue_does_not_lose_the_run_and_holds_no_secret(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    stop_worker()
    queue = redis.Redis(host="127.0.0.1", port=6379, db=14, decode_responses=True)  # the broker
    queue.flushdb()
    try:
        follower = migrate(fresh, tmp_path, "--yes", background=True)
        deadline = time.monotonic() + 60
        while not queue.llen("celery"):
            assert time.monotonic() < deadline, "nothing was queued"
            time.sleep(0.2)
        message = "".join(str(item) for item in queue.lrange("celery", 0, -1))
        assert fresh["SOURCE_ADMIN_PASSWORD"] not in message
        assert '"task": "migrations_engine.tasks.execute_run"' in message
        body = json.loads(base64.b64decode(json.loads(message)["body"]))
        assert body[0] == [newest_run_id()]  # the run's id is its only argument
        queue.flushdb()  # Redis restarted without its data: the message is gone
    finally:
        restart_worker({"MIGRATION_HEARTBEAT_STALE": "5"})  # the sweeper finds it sooner
    output, _ = follower.communicate(timeout=600)
    assert follower.returncode == 0, output
    assert_data_identical(fresh)


def test_preflight_finds_what_is_wrong_and_what_is_right(fresh: dict[str, str]) -> None:
    ports = [8080, 8443, 3306, 2222]
    pem = Path(fresh["SOURCE_CERTIFICATE"]).read_text()
    confirmed = certificate_fingerprint(pem)
    wrong = preflight(SOURCE, "not-the-password", fingerprint=confirmed, port=8443, ports=ports)
    assert [check.ok for check in wrong.checks] == [True] * 5 + [False]
    assert wrong.checks[-1].detail == "The Admin User password is wrong."
    impostor = preflight(SOURCE, "not-the-password", fingerprint="AB" * 32, port=8443, ports=ports)
    assert impostor.checks[-1].name == "Certificate as confirmed"
    assert "the password was not sent" in impostor.checks[-1].detail
    right = preflight(
        SOURCE, fresh["SOURCE_ADMIN_PASSWORD"], fingerprint=confirmed, port=8443, ports=ports
    )
    assert right.ok, right.checks
    assert right.fingerprint == confirmed
    assert right.source_info is not None
    assert right.source_info.host_name == "appliance-old"


CURRENT_STATE = """
import hashlib, json
from appliance import services as s
from appliance.backup import data_checksums
licence = s.licence_get()
print(json.dumps({
    "data": data_checksums(),
    "settings": s.settings_export(),
    "identity": s.identity_get(),
    "licence": [licence.guid, licence.holder, licence.state, str(licence.maintenance_until)],
    "certificates": [
        hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (s.certificate_path(), s.private_key_path())
    ],
}, sort_keys=True, default=str))
"""


def current_state() -> dict[str, Any]:
    """The current system's data checksums, settings, identity, licence and certificates."""
    state: dict[str, Any] = json.loads(node_python("current", CURRENT_STATE))
    return state


def test_restore_backup_after_a_failed_run_brings_back_exactly_the_state_before(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    with DEMO.current_data() as db:
        with db.cursor() as cursor:  # this system has data of its own, unlike the source's
            cursor.execute("DELETE FROM event_log ORDER BY id LIMIT 10")
        db.commit()
    before = current_state()
    source_data, _ = DEMO.data_checksums()
    assert {name: before["data"][name] for name in source_data} != source_data
    result = migrate(fresh, tmp_path, "--yes", "--here", env={"APPLIANCE_RESTART_COMMAND": "false"})
    assert result.returncode != 0
    assert_data_identical(fresh)  # the copy overwrote this system's data before the failure
    listed = manage("current", "list_backups").stdout
    assert f"before migration run {newest_run_id()} from {SOURCE}" in listed
    restored = manage("current", "restore_backup", "--latest")
    assert "tables verified" in restored.stdout
    assert current_state() == before


def test_start_over_restores_this_system_and_a_new_run_completes(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    before = current_state()
    failed = migrate(fresh, tmp_path, "--yes", "--here", env={"APPLIANCE_RESTART_COMMAND": "false"})
    assert failed.returncode != 0
    started_over = manage("current", "migration_run", "start-over", str(newest_run_id()))
    assert "This system is back to backup" in started_over.stdout
    assert "Abandoned" in started_over.stdout
    assert current_state() == before
    assert peer(fresh).info()["maintenance"] is False
    again = migrate(fresh, tmp_path, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_data_identical(fresh)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["backup"]["backup"] in manage("current", "list_backups").stdout


def source_state() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The source's info (without the server's size estimates), settings and data checksums."""
    client = DEMO.peer()
    info = {
        key: value
        for key, value in client.info().items()
        if key not in ("data_size_bytes", "data_tables")  # InnoDB estimates, not the data
    }
    return info, client.settings()["settings"], DEMO.data_checksums()[0]


def test_a_dry_run_changes_nothing_and_reports_what_the_real_run_then_copies(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    source_before = source_state()
    current_before = current_state()
    dry = migrate(fresh, tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Nothing was changed on either system." in dry.stdout
    assert "The real run would take about" in dry.stdout
    assert "expected service downtime:" in dry.stdout
    rehearsal = json.loads((tmp_path / "report.json").read_text())["rehearsal"]
    assert source_state() == source_before
    assert current_state() == current_before
    with pymysql.connect(host="127.0.0.1", user="root") as db, db.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE %s", [f"{NAME}_current_data_rehearsal"])
        assert cursor.fetchall() == ()
    assert "network" in {row["group"] for row in rehearsal["settings"]["not_migrated"]}
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = migrate(fresh, real_dir, "--yes")
    assert real.returncode == 0, real.stdout + real.stderr
    operations = json.loads((real_dir / "report.json").read_text())["operations"]
    copied = next(op for op in operations if op["name"] == "copy_data")["result"]["tables"]
    assert {name: (table["rows"], table["checksum"]) for name, table in copied.items()} == {
        name: (table["rows"], table["checksum"]) for name, table in rehearsal["tables"].items()
    }
    estimate = rehearsal["estimate"]
    assert estimate["online_seconds"] > 0  # the copy happens with the source in service
    assert 0 < estimate["verify_seconds"] <= estimate["downtime_seconds"]
    assert "verification of every table measured now" in estimate["downtime_basis"]
    assert rehearsal["tables"]["accounting_session"]["rows"] > 0


def log_lines(path: Path, accounts: set[str]) -> list[str]:
    with gzip.open(path, "rt") as lines:
        return [line for line in lines if line.split(" ")[1] in accounts]


def test_a_selective_run_of_three_accounts_moves_exactly_their_rows_and_log_lines(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    with DEMO.current_data() as db, db.cursor() as cursor:
        for table in ("accounting_session", "voucher", "subscriber"):
            cursor.execute(f"DELETE FROM {table}")  # this system's own accounts are others
        db.commit()
        cursor.execute("SELECT COUNT(*), SUM(CRC32(message)) FROM event_log")
        events_before = cursor.fetchone()
    source_logs = sorted(Path(fresh["SOURCE_TRAFFIC_LOG_DIR"]).glob("*.log.gz"))
    target_dir = Path(fresh["TARGET_TRAFFIC_LOG_DIR"])
    own_logs = {path.name: path.read_bytes() for path in target_dir.glob("*.log.gz")}
    in_logs: set[str] = set()
    for path in source_logs:
        with gzip.open(path, "rt") as lines:
            in_logs.update(line.split(" ")[1] for line in lines)
    with pymysql.connect(host=SOURCE, user="root", database="appliance_data") as db:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT s.username FROM subscriber s JOIN voucher v ON v.subscriber_id = s.id "
                "JOIN accounting_session a ON a.subscriber_id = s.id GROUP BY s.username"
            )
            owners = [name for (name,) in cursor.fetchall()]
    logged = [name for name in owners if name in in_logs] or owners
    chosen = [logged[0], owners[-1], owners[len(owners) // 2]]
    accounts_file = tmp_path / "user_list"
    accounts_file.write_text("\n".join([*chosen, "nobody-here", "# a comment", ""]))
    result = migrate(fresh, tmp_path, "--yes", "--copy-logs", "--accounts", str(accounts_file))
    assert result.returncode == 0, result.stdout + result.stderr
    with pymysql.connect(host=SOURCE, user="root", database="appliance_data") as source:
        with DEMO.current_data() as here:
            with source.cursor() as theirs, here.cursor() as ours:
                ours.execute("SELECT username FROM subscriber ORDER BY username")
                assert [name for (name,) in ours.fetchall()] == sorted(chosen)
                for name in chosen:
                    mine, original = account_rows(ours, name), account_rows(theirs, name)
                    assert mine is not None and original is not None
                    assert account_digest(mine) == account_digest(original)
                ours.execute("SELECT COUNT(*) FROM accounting_session")
                (sessions,) = ours.fetchone()
                ours.execute("SELECT COUNT(*), SUM(CRC32(message)) FROM event_log")
                assert ours.fetchone() == events_before
    expected_sessions = sum(
        len(rows["accounting_session"])
        for name in chosen
        if (rows := account_rows_at_source(name)) is not None
    )
    assert sessions == expected_sessions
    for name, content in own_logs.items():
        assert (target_dir / name).read_bytes() == content
    new_logs = sorted(set(p.name for p in target_dir.glob("*.log.gz")) - set(own_logs))
    expected = {
        path.name.replace(".log.gz", ".from-appliance-old.log.gz"): log_lines(path, set(chosen))
        for path in source_logs
    }
    assert new_logs == sorted(name for name, lines in expected.items() if lines)
    for name in new_logs:
        with gzip.open(target_dir / name, "rt") as copied:
            assert copied.readlines() == expected[name]
    report = json.loads((tmp_path / "report.json").read_text())
    accounts = next(op for op in report["operations"] if op["name"] == "copy_accounts")["result"]
    assert sorted(accounts["accounts_migrated"]) == sorted(chosen)
    assert accounts["accounts_not_migrated"] == [
        {"account": "nobody-here", "reason": "there is no such account on the source"}
    ]


def account_rows_at_source(name: str) -> Any:
    with pymysql.connect(host=SOURCE, user="root", database="appliance_data") as db:
        with db.cursor() as cursor:
            return account_rows(cursor, name)


class SourceUsers(threading.Thread):
    """The source's users while it serves: a row in event_log every 20 ms, until the source
    goes into maintenance (then the appliance refuses them)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.written = 0
        self.refused_at = 0.0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.serve()
            except pymysql.MySQLError:  # users come back when their connection drops
                time.sleep(0.1)

    def serve(self) -> None:
        with pymysql.connect(host=SOURCE, user="root", autocommit=True) as connection:
            with connection.cursor() as cursor:
                while not self.stopping.wait(0.02):
                    cursor.execute("SELECT maintenance FROM appliance_control.appliance_node")
                    if (cursor.fetchone() or [1])[0]:
                        self.refused_at = self.refused_at or time.monotonic()
                        continue
                    cursor.execute(
                        "INSERT INTO appliance_data.event_log (ts, source, message, payload) "
                        "VALUES (NOW(6), 'online-test', %s, '{}')",
                        [f"written while in service, number {self.written}"],
                    )
                    self.written += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def rows_written_online(host: str, database: str) -> int:
    with pymysql.connect(host=host, user="root", database=database) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM event_log WHERE source = 'online-test'")
            (count,) = cursor.fetchone() or (0,)
            return int(count)


def operation_state(name: str, after_run: int) -> tuple[str, int, str, dict[str, Any]]:
    """(status, attempts, message, figures) of an operation of the newest run."""
    with pymysql.connect(host="127.0.0.1", user="root", database=f"{NAME}_current_control") as db:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT status, attempts, message, figures FROM migrations_engine_operationstate "
                "WHERE name = %s AND run_id > %s ORDER BY id DESC LIMIT 1",
                [name, after_run],
            )
            row = cursor.fetchone()
    if not row:
        return ("", 0, "", {})
    return (str(row[0]), int(row[1]), str(row[2]), json.loads(row[3] or "{}"))


def wait_for(what: str, check: Any, follower: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert follower.poll() is None, follower.stdout.read() if follower.stdout else ""
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_the_source_serves_until_the_cutover_through_a_growing_lag_a_killed_worker_and_a_restart(
    fresh: dict[str, str], tmp_path: Path
) -> None:
    earlier = newest_run_id()
    fast_window = {"MIGRATION_LAG_WINDOW": "3", "MIGRATION_HEARTBEAT_STALE": "5"}
    restart_worker(fast_window)
    users = SourceUsers()
    users.start()
    follower = migrate(fresh, tmp_path, "--yes", "--copy-logs", "--cutover-manual", background=True)

    def waiting() -> tuple[str, int, str, dict[str, Any]]:
        return operation_state("await_cutover", earlier)

    wait_for("in sync", lambda: waiting()[3].get("in_sync"), follower)
    in_sync_writes = users.written
    time.sleep(2)  # in sync, the source still serving: the run waits for Cut over now
    assert peer(fresh).info()["maintenance"] is False
    assert users.written > in_sync_writes > 0
    # This system's table locked: the replica cannot apply what the source keeps writing.
    with pymysql.connect(host="127.0.0.1", user="root", database=f"{NAME}_current_data") as lock:
        with lock.cursor() as cursor:
            cursor.execute("LOCK TABLES event_log WRITE")
            wait_for("a warning", lambda: waiting()[3].get("falling_behind"), follower, 60)
            _, _, message, figures = waiting()
            assert message.startswith("The copy is not catching up: the source writes faster")
            assert "cut over now: the maintenance window would then last about" in message
            assert figures["transactions_behind"] > 0
    wait_for("in sync after the lock", lambda: waiting()[3].get("in_sync"), follower)

    restart_worker(fast_window)  # the worker killed during the catch-up
    wait_for("a second worker", lambda: waiting()[1] == 2, follower)
    written = users.written
    source_db = MariaDBServer(DEMO_DIR / "source-mysql", SOURCE, 3306, 2, tls=True)
    source_db.stop()  # the source's database restarted during the catch-up
    source_db.start()
    wait_for("writes after the restart", lambda: users.written > written + 20, follower)
    wait_for("in sync after the restart", lambda: waiting()[3].get("in_sync"), follower)
    assert waiting()[0] == "running"

    cutover = manage("current", "migration_run", "cutover", str(newest_run_id()))
    assert "The cutover begins" in cutover.stdout
    output, _ = follower.communicate(timeout=600)
    users.stop()
    assert follower.returncode == 0, output
    assert "Service downtime:" in output
    assert_data_identical(fresh)
    online = rows_written_online(SOURCE, "appliance_data")
    assert online > written
    assert rows_written_online("127.0.0.1", f"{NAME}_current_data") == online
    report = json.loads((tmp_path / "report.json").read_text())
    seconds = {op["name"]: op["seconds"] for op in report["operations"]}
    downtime = report["downtime"]["seconds"]
    assert downtime < report["seconds"] - seconds["precopy_data"] - seconds["await_cutover"]
    assert report["summary"]["tables"] >= 4
    assert report["summary"]["rows"] > online
    assert report["summary"]["files"] > 0
    copy = next(op for op in report["operations"] if op["name"] == "copy_data")
    assert copy["result"]["online"] is True
    assert all(table["equal"] for table in copy["result"]["tables"].values())
    # Every table was verified while the source served; only the one its users wrote since
    # (followed through the worker's restart) was checked again inside the window.
    assert copy["result"]["verified_in_window"] == ["event_log"]
    assert copy["result"]["tables"]["subscriber"]["verified"].startswith("while the source")
