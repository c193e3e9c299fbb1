"""The run's database account on a source: over TLS only, with the certificate to pin, reading
only (replicating only when asked), and taken back when revoked or expired, by a periodic task.

The node's data database here is a private MariaDB server offering TLS with its own certificate,
as a source's is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pymysql
import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from appliance import services
from appliance.certificates import self_signed_certificate
from appliance.models import IssuedCredential
from appliance.tasks import revoke_expired_credentials
from config.celery import app
from devtools.mariadb import MariaDBServer
from migrations_engine.context import source_database_url
from migrations_engine.datacopy.sql import SourceDatabase, source_connection
from migrations_engine.models import MigrationRun

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

Peer = Callable[..., Any]
HOST = os.environ.get("TEST_DATACOPY_SOURCE_HOST", "127.0.0.3")
PORT = 3316
DATABASE = "node_data"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkW1dBe3mzP3Q8v5Yg0j0KzJtG7u7f8p1bQ9m0xk2Lr run"
SCHEMA = (
    f"CREATE DATABASE {DATABASE}",
    f"CREATE TABLE {DATABASE}.readings (id INT PRIMARY KEY, value INT)",
    f"INSERT INTO {DATABASE}.readings VALUES (1, 10), (2, 20)",
    f"CREATE VIEW {DATABASE}.big_readings AS SELECT id FROM {DATABASE}.readings WHERE value > 15",
    f"CREATE TRIGGER {DATABASE}.doubled BEFORE INSERT ON {DATABASE}.readings "
    "FOR EACH ROW SET NEW.value = NEW.value * 2",
    f"CREATE PROCEDURE {DATABASE}.add_reading() INSERT INTO {DATABASE}.readings VALUES (99, 1)",
)


@pytest.fixture(scope="module")
def database_server() -> Iterator[MariaDBServer]:
    """A private MariaDB server offering TLS, with a small data database."""
    base = Path(tempfile.mkdtemp(prefix="credentials-db-"))
    server = MariaDBServer(base / "mariadb", HOST, PORT, server_id=16, tls=True)
    server.start()
    with server.connect() as connection, connection.cursor() as cursor:
        for statement in SCHEMA:
            cursor.execute(statement)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def node_database(database_server: MariaDBServer, settings: Any) -> Iterator[MariaDBServer]:
    """This node's data database on that server, its certificate configured."""
    settings.APPLIANCE_DATA_DB_CERTIFICATE = str(database_server.certificate_file)
    settings.APPLIANCE_DATA_DB_PUBLIC_PORT = PORT
    connection = connections["data"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST=HOST, PORT=str(PORT), NAME=DATABASE, USER="root")
    connection.settings_dict["PASSWORD"] = ""
    try:
        yield database_server
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def issue(peer: Peer, run: str, **body: Any) -> dict[str, Any]:
    response = peer("POST", "credentials/database", {"run": run, **body})
    assert response.status_code == 201, response.content
    return dict(response.json())


def pinned(account: dict[str, Any]) -> SourceDatabase:
    """Where the current system reads with this account: the run's address, the certificate."""
    return source_database_url(MigrationRun(source_address=HOST), account)


def plain_login(account: dict[str, Any]) -> None:
    pymysql.connect(
        host=HOST,
        port=PORT,
        user=account["user"],
        password=account["password"],
        ssl_disabled=True,
    ).close()


def row(cursor: Any) -> tuple[Any, ...]:
    """The next row of a query that has one."""
    found = cursor.fetchone()
    assert found is not None
    return tuple(found)


def refusal(connection: pymysql.connections.Connection, statement: str) -> int:
    """The error number the statement fails with (0 if it works)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            cursor.fetchall()
    except pymysql.MySQLError as error:
        return int(error.args[0])
    return 0


def test_the_account_logs_in_only_over_tls_to_the_server_it_names_the_certificate_of(
    node_database: MariaDBServer, peer: Peer
) -> None:
    account = issue(peer, "run-31")

    assert account["tls_certificate"] == node_database.certificate_pem()
    assert account["tls_fingerprint"] == services.tls_fingerprint(node_database.certificate_file)
    assert account["replication"] is False
    with pytest.raises(pymysql.err.OperationalError) as refused:
        plain_login(account)
    assert refused.value.args[0] == 1045  # REQUIRE SSL: no login in clear text
    with source_connection(pinned(account)) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        assert row(cursor)[1]
        cursor.execute("SELECT SUM(value) FROM readings")
        assert cursor.fetchone() == (30,)


def test_the_account_reads_definitions_but_cannot_write_run_routines_or_replicate(
    node_database: MariaDBServer, peer: Peer
) -> None:
    account = issue(peer, "run-32")

    with source_connection(pinned(account)) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW CREATE VIEW big_readings")
        assert "value" in row(cursor)[1]
        cursor.execute("SHOW CREATE TRIGGER doubled")
        assert "NEW.value * 2" in row(cursor)[2]
        cursor.execute("SHOW CREATE PROCEDURE add_reading")
        assert "INSERT INTO" in row(cursor)[2]  # the body, not NULL
        assert refusal(connection, "DELETE FROM readings") == 1142
        assert refusal(connection, "INSERT INTO readings VALUES (3, 3)") == 1142
        assert refusal(connection, "CALL add_reading()") == 1370  # no EXECUTE
        assert refusal(connection, "LOCK TABLES readings READ") == 1044
        assert refusal(connection, "SHOW MASTER STATUS") == 1227  # no BINLOG MONITOR
        cursor.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cursor.fetchall())
    assert "REPLICATION" not in grants
    assert "REQUIRE SSL" in grants


def test_only_a_replicating_run_gets_the_rights_to_replicate(
    node_database: MariaDBServer, peer: Peer
) -> None:
    account = issue(peer, "run-33", replication=True)

    assert account["replication"] is True
    with source_connection(pinned(account)) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW MASTER STATUS")
        assert row(cursor)[0].startswith("binlog.")
        cursor.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cursor.fetchall())
    assert "REPLICATION SLAVE" in grants
    wrong = peer("POST", "credentials/database", {"run": "run-33", "replication": "yes"})
    assert wrong.status_code == 400
    assert "'replication' must be true or false" in wrong.json()["error"]


def test_without_a_database_certificate_no_account_is_issued(
    peer: Peer, settings: Any, tmp_path: Path
) -> None:
    settings.APPLIANCE_DATA_DB_CERTIFICATE = ""
    response = peer("POST", "credentials/database", {"run": "run-34"})
    assert response.status_code == 409
    assert "APPLIANCE_DATA_DB_CERTIFICATE" in response.json()["error"]
    not_a_certificate = tmp_path / "db.crt"
    not_a_certificate.write_text("hello")
    settings.APPLIANCE_DATA_DB_CERTIFICATE = str(not_a_certificate)
    response = peer("POST", "credentials/database", {"run": "run-34"})
    assert response.status_code == 409
    assert "cannot be read as a PEM certificate" in response.json()["error"]
    assert not IssuedCredential.objects.exists()


def test_info_tells_the_database_servers_fingerprint(
    peer: Peer, settings: Any, tmp_path: Path
) -> None:
    settings.APPLIANCE_DATA_DB_CERTIFICATE = ""
    assert peer("GET", "info").json()["database_tls_fingerprint"] == ""
    certificate = tmp_path / "db.crt"
    fingerprint = self_signed_certificate(
        cert_path=certificate, key_path=tmp_path / "db.key", common_name="db", addresses=[]
    )
    settings.APPLIANCE_DATA_DB_CERTIFICATE = str(certificate)
    info = peer("GET", "info").json()
    assert info["database_tls_fingerprint"] == fingerprint
    assert info["database_tls_fingerprint"] != info["tls_fingerprint"]


def test_revoking_the_account_ends_its_open_sessions(
    node_database: MariaDBServer, peer: Peer
) -> None:
    account = issue(peer, "run-35", replication=True)
    connection = source_connection(pinned(account))

    assert peer("POST", "credentials/revoke", {"run": "run-35"}).json() == {"revoked": 1}

    assert refusal(connection, "SELECT 1") in (1927, 2006, 2013)  # the session was ended
    with pytest.raises(pymysql.err.OperationalError):
        source_connection(pinned(account))


def test_expired_credentials_are_taken_back_by_the_periodic_task(
    node_database: MariaDBServer, peer: Peer
) -> None:
    host_key = Path(settings.APPLIANCE_SSH_HOST_KEY)
    host_key.parent.mkdir(parents=True, exist_ok=True)
    host_key.write_text(PUBLIC_KEY.replace("run", "root@old-box") + "\n")
    expiring, fresh = issue(peer, "run-36"), issue(peer, "run-37")
    grant = peer("POST", "credentials/ssh-key", {"run": "run-36", "public_key": PUBLIC_KEY})
    assert grant.status_code == 201
    IssuedCredential.objects.filter(run_ref="run-36").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert revoke_expired_credentials.apply().get() == 2

    with pytest.raises(pymysql.err.OperationalError):
        source_connection(pinned(expiring))
    source_connection(pinned(fresh)).close()
    assert PUBLIC_KEY.split()[1] not in Path(settings.APPLIANCE_SSH_AUTHORIZED_KEYS).read_text()
    assert set(
        IssuedCredential.objects.filter(revoked_at__isnull=False).values_list("run_ref", flat=True)
    ) == {"run-36"}


def test_the_beat_schedule_runs_tasks_the_workers_know() -> None:
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "appliance.tasks.revoke_expired_credentials" in scheduled
    assert scheduled <= set(app.tasks)
