"""The HA replica reads the source's binary log over TLS, from the server whose certificate the
source's peer API handed out, and never logs in to a server presenting another one.

A private source server (TLS, binary log, performance_schema to see its sessions' ciphers) and a
private replica server without TLS of its own, as the current system's usually is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymysql
import pytest

from appliance.certificates import self_signed_certificate
from config.env import MySQLURL
from devtools.mariadb import MariaDBServer
from migrations_engine.datacopy.sql import SourceDatabase
from migrations_engine.operations.base import OperationFailed
from migrations_engine.operations.data_ops import (
    REPLICA_NAME,
    replica_start,
    replica_stop,
    replica_wait_caught_up,
)
from tests.engine import replica_support
from tests.engine.replica_support import sql

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(databases=["default", "data"], transaction=True),
]

HOST = os.environ.get("TEST_DATACOPY_SOURCE_HOST", "127.0.0.3")
SOURCE_PORT, REPLICA_PORT = 3326, 3327
DATABASE = "ha_data"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MariaDBServer, MariaDBServer]]:
    base = Path(tempfile.mkdtemp(prefix="replica-tls-"))
    source = MariaDBServer(
        base / "source",
        HOST,
        SOURCE_PORT,
        server_id=26,
        options=(*MariaDBServer.options, "--performance-schema=ON"),
        tls=True,
    )
    replica = MariaDBServer(base / "replica", HOST, REPLICA_PORT, server_id=27)
    source.start()
    replica.start()
    yield source, replica
    replica.stop()
    source.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh(servers: tuple[MariaDBServer, MariaDBServer]) -> Iterator[tuple[MariaDBServer, ...]]:
    """The data database on the source, an empty one of the same name on the replica."""
    source, replica = servers
    for server in servers:
        sql(
            server,
            f"DROP DATABASE IF EXISTS {DATABASE}",
            f"CREATE DATABASE {DATABASE}",
            f"CREATE TABLE {DATABASE}.events (id INT PRIMARY KEY, what VARCHAR(40))",
        )
    yield source, replica
    replica_stop(target_of(replica))


def target_of(replica: MariaDBServer) -> MySQLURL:
    return MySQLURL("root", "", replica.host, replica.port, DATABASE)


def replicating_account(source: MariaDBServer, settings: Any) -> SourceDatabase:
    """The run's account for this module's data database on `source`."""
    return replica_support.replicating_account(
        source, settings, database=DATABASE, run_ref="run-ha"
    )


def binlog_end(source: MariaDBServer) -> tuple[str, int]:
    (row,) = sql(source, "SHOW MASTER STATUS")
    return str(row[0]), int(row[1])


def replica_sessions(source: MariaDBServer, user: str) -> dict[str, str]:
    """The command and TLS cipher of each session `user` has on the source, as it sees them."""
    rows = sql(
        source,
        "SELECT t.PROCESSLIST_COMMAND, s.VARIABLE_VALUE FROM performance_schema.status_by_thread s "
        "JOIN performance_schema.threads t USING (THREAD_ID) "
        f"WHERE s.VARIABLE_NAME = 'Ssl_cipher' AND t.PROCESSLIST_USER = '{user}'",
    )
    return {str(command): str(cipher) for command, cipher in rows}


def replica_status(replica: MariaDBServer) -> dict[str, Any]:
    with replica.connect() as connection:
        with connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(f"SHOW SLAVE '{REPLICA_NAME}' STATUS")
            return dict(cursor.fetchone() or {})


def test_the_replica_reads_the_binary_log_over_tls(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any
) -> None:
    source, replica = fresh
    account = replicating_account(source, settings)
    file, position = binlog_end(source)

    replica_start(target_of(replica), account, file, position)
    sql(source, f"INSERT INTO {DATABASE}.events VALUES (1, 'after the copy'), (2, 'and more')")
    replica_wait_caught_up(target_of(replica), account, lambda: None, timeout=60)

    assert sql(replica, f"SELECT * FROM {DATABASE}.events ORDER BY id") == [
        (1, "after the copy"),
        (2, "and more"),
    ]
    sessions = replica_sessions(source, account.user)
    assert sessions.get("Binlog Dump"), sessions  # the replica's session is encrypted
    status = replica_status(replica)
    assert (status["Master_SSL_Allowed"], status["Master_SSL_Verify_Server_Cert"]) == (
        "Yes",
        "Yes",
    )
    assert status["Master_Host"] == source.host


def test_a_replica_never_logs_in_to_a_server_with_another_certificate(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any, tmp_path: Path
) -> None:
    source, replica = fresh
    account = replicating_account(source, settings)
    other = tmp_path / "other.crt"
    self_signed_certificate(
        cert_path=other, key_path=tmp_path / "other.key", common_name=HOST, addresses=[HOST]
    )
    impersonated = replace(account, certificate=other.read_text())
    file, position = binlog_end(source)

    replica_start(target_of(replica), impersonated, file, position)
    sql(source, f"INSERT INTO {DATABASE}.events VALUES (1, 'not for an impostor')")
    deadline = time.monotonic() + 30
    while not replica_status(replica).get("Last_IO_Errno"):
        assert time.monotonic() < deadline, "the replica did not try to connect"
        time.sleep(0.2)

    assert logins(source, account.user) == 0  # its login never reached the server
    assert sql(replica, f"SELECT * FROM {DATABASE}.events") == []
    with pytest.raises(OperationFailed) as refused:
        replica_wait_caught_up(target_of(replica), account, lambda: None, timeout=30)
    assert "could not open a verified TLS connection" in str(refused.value)
    assert f"names {HOST}" in str(refused.value)
    assert account.password not in str(refused.value) + refused.value.fix


def logins(server: MariaDBServer, user: str) -> int:
    """How often `user` has logged in to `server` (performance_schema counts every session)."""
    rows = sql(
        server,
        "SELECT COALESCE(SUM(TOTAL_CONNECTIONS), 0) FROM performance_schema.accounts "
        f"WHERE USER = '{user}'",
    )
    return int(rows[0][0])
