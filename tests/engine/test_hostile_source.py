"""A whole migration from a hostile source, built from real parts: the demo's source node whose
MariaDB holds a trigger, a view and a routine written to reach into the current system's control
database (with DEFINER=root), plus an event; and, in place of its OpenSSH server, an SFTP server
with the source's own host key whose listing of the traffic logs holds `../` and absolute names.

After the run nothing outside the data database and the traffic-log directory changed on the
current system: the control database's tables (but those a migration writes by design: its run,
settings, identity, licence, sessions) keep their checksums, the file tree around the log
directory gains nothing else, and the report lists each refused object and file with its reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pymysql
import pytest

from config.env import parse_mysql_url, quote_name
from devtools.sshd import SSHServer
from migrations_engine.remote.keys import RunKey
from tests.demo_support import ROOT, DemoUnderTest
from tests.remote import hostile_source
from tests.remote.hostile_source import PAYLOAD, HostileServer, HostileSource

DEMO = DemoUnderTest("hostiletest", "127.0.0.42", "127.0.0.41", "6,7")
SOURCE = DEMO.source_address
ABSOLUTE = f"/tmp/hostile-{uuid.uuid4().hex[:8]}.txt"
WRITTEN_BY_DESIGN = (
    "migrations_engine_",
    "django_session",
    "appliance_setting",
    "appliance_node",
    "appliance_licence",
    "axes_",
)
"""Control-database tables a migration writes on purpose; every other one must not change."""
EXPECTED_CHURN = (
    "source/", "source-ssh/", "source-mysql", "current/logs/", "current/backups/", "current/certs/",
    "current/front/logs/",
)  # fmt: skip
"""Files under the demo's folder that change by design: the source's own, and the current
system's run logs, backup, new certificate and its front server's logs."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, str]]:
    with DEMO.running() as settings:
        yield settings


def connect(url: str, database: str | None = None) -> pymysql.connections.Connection:
    parts = parse_mysql_url(url)
    return pymysql.connect(
        host=parts.host, port=parts.port, user=parts.user, password=parts.password,
        database=database or parts.database, autocommit=True,
    )  # fmt: skip


def control_checksums(url: str) -> dict[str, Any]:
    """Every table of the current system's control database but those written by design."""
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        tables = [str(row[0]) for row in cursor.fetchall()]
        sums = {}
        for table in tables:
            if not table.startswith(WRITTEN_BY_DESIGN):
                cursor.execute(f"CHECKSUM TABLE {quote_name(table)}")
                sums[table] = cursor.fetchall()[0][1]
        return sums


def tree(directory: Path, skip: Path) -> dict[str, str]:
    """SHA-256 of every regular file under `directory`, but under `skip`."""
    found = {}
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink() and skip not in path.parents:
            try:
                found[str(path.relative_to(directory))] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
            except OSError:
                continue  # a socket or a file that went while we looked
    return found


def hostile_objects(source_url: str, control_database: str) -> None:
    """Definitions a compromised source could hold, all reaching into our control database."""
    control = quote_name(control_database)
    with connect(source_url) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {control}")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {control}.auth_user (id INT PRIMARY KEY, username TEXT)"
        )
        cursor.execute(
            "CREATE DEFINER=`root`@`localhost` TRIGGER hostile_trigger AFTER INSERT ON subscriber "
            f"FOR EACH ROW INSERT INTO {control}.auth_user (id, username) VALUES (999, 'intruder')"
        )
        cursor.execute(
            "CREATE DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW hostile_view AS "
            f"SELECT id, username FROM {control}.auth_user"
        )
        cursor.execute(
            "CREATE DEFINER=`root`@`localhost` PROCEDURE hostile_procedure() SQL SECURITY DEFINER "
            f"DELETE FROM {control}.auth_user"
        )
        cursor.execute(
            "CREATE DEFINER=`root`@`localhost` EVENT hostile_event ON SCHEDULE EVERY 1 MINUTE "
            f"DO DELETE FROM {control}.auth_user"
        )


def lying_ssh(host_key: Path, served: Path) -> HostileServer:
    """The source's SSH address answered by a server with the source's own host key (so the
    pinned key matches) that lets the run's key in and lies in its listing of the logs."""
    private = paramiko.Ed25519Key.from_private_key_file(str(host_key))
    key = RunKey(private, f"{private.get_name()} {private.get_base64()}", "")
    source = HostileSource(served, made_up=["../../escape.txt", ABSOLUTE, "a/b"])
    server = HostileServer(source, host_key=key, port=2222, host=SOURCE, any_key=True)
    server.start()
    return server


def migrate(demo: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    password_file = tmp_path / "password"
    password_file.write_text(demo["SOURCE_ADMIN_PASSWORD"])
    fingerprint = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
         demo["SOURCE_CERTIFICATE"]],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    command = [
        sys.executable, "manage.py", "migrate_from", SOURCE, "--port", "8443",
        "--check-ports", "8080,8443,3306,2222", "--password-file", str(password_file),
        "--confirm-fingerprint", fingerprint, "--report", str(tmp_path / "report.json"),
        "--copy-logs", "--yes", "--here",
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=ROOT, env=DEMO.node_env("current"), capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip


def test_a_hostile_source_changes_nothing_outside_the_data_and_the_logs(
    demo: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("paramiko"), "level", logging.CRITICAL)  # port checks
    DEMO.reset()
    current = DEMO.node_env("current")
    control_database = parse_mysql_url(current["CONTROL_DB_URL"]).database
    hostile_objects(demo["SOURCE_DATA_DB_URL"], control_database)
    logs_here = Path(demo["TARGET_TRAFFIC_LOG_DIR"])
    around = logs_here.parent.parent
    served = tmp_path / "served"
    served.mkdir()
    (served / "traffic-1.log.gz").write_bytes(b"honest line\n" * 100)
    logs_there = demo["SOURCE_TRAFFIC_LOG_DIR"]
    monkeypatch.setattr(hostile_source, "ROOT", logs_there)
    ssh = SSHServer(DEMO.directory / "source-ssh", SOURCE, 2222)
    control_before = control_checksums(current["CONTROL_DB_URL"])
    files_before = tree(around, logs_here)
    ssh.stop()
    lying = lying_ssh(ssh.host_key, served)
    try:
        result = migrate(demo, tmp_path)
    finally:
        lying.stop()
        ssh.start()
    assert result.returncode == 0, result.stdout + result.stderr

    with connect(current["DATA_DB_URL"]) as connection, connection.cursor() as cursor:
        try:  # fires the trigger, if it was made
            cursor.execute(
                "INSERT INTO subscriber (username, created_at) VALUES ('after-run', NOW())"
            )
        except pymysql.MySQLError:
            pass  # refused by the definer's missing rights is fine too
    assert control_checksums(current["CONTROL_DB_URL"]) == control_before
    files_after = tree(around, logs_here)
    new_or_changed = {
        name for name, digest in files_after.items() if files_before.get(name) != digest
    }
    unexpected = {name for name in new_or_changed if not name.startswith(EXPECTED_CHURN)}
    assert unexpected == set()
    assert not any(PAYLOAD in (around / name).read_bytes() for name in new_or_changed)
    assert not Path(ABSOLUTE).exists()
    assert (logs_here / "traffic-1.log.gz").read_bytes() == b"honest line\n" * 100

    report = json.loads((tmp_path / "report.json").read_text())
    text = json.dumps(report)
    for name in ("../../escape.txt", ABSOLUTE, "a/b"):
        assert json.dumps(name)[1:-1] in text, name
    refused = {item["name"]: item["reason"] for item in report["objects_not_copied"]}
    assert refused["hostile_event"].startswith("events are not copied")
    assert "refused it" in refused["hostile_view"]
    assert definers(current["DATA_DB_URL"]) == {
        "hostile_trigger": f"{DEMO.name}_definer@localhost",
        "hostile_procedure": f"{DEMO.name}_definer@localhost",
    }


def definers(url: str) -> dict[str, str]:
    """Who the copied triggers and routines run as on the current system."""
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() UNION SELECT ROUTINE_NAME, DEFINER "
            "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()"
        )
        return {str(name): str(definer) for name, definer in cursor.fetchall()}
