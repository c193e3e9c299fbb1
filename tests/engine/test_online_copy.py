"""The online pre-copy on real servers: the data copied while the source keeps writing, then a
replica from the point noted before the copy, the verification of every table at one point
while the source writes, and the cutover's verification.

A private source server (TLS, binary log in ROW format) that a writer keeps changing (inserts,
updates and deletes) through the whole copy, and a private server as this system's.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from config.env import MySQLURL
from devtools.mariadb import MariaDBServer
from migrations_engine.datacopy import copy_database
from migrations_engine.datacopy.sql import SourceDatabase
from migrations_engine.online_copy import (
    Lag,
    ReplicaGate,
    binlog_position,
    binlog_refusal,
    replica_wait,
    server_connection,
    server_refusal,
    snapshot_verify,
    tables_verify,
)
from migrations_engine.operations.data_ops import REPLICA_NAME, replica_start, replica_stop
from tests.engine import replica_support
from tests.engine.replica_support import sql

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(databases=["default", "data"], transaction=True),
]

HOST = os.environ.get("TEST_DATACOPY_SOURCE_HOST", "127.0.0.3")
SOURCE_PORT, TARGET_PORT, PLAIN_PORT = 3336, 3337, 3338
DATABASE = "online_data"
ROWS = 20_000


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MariaDBServer, MariaDBServer]]:
    base = Path(tempfile.mkdtemp(prefix="online-copy-"))
    source = MariaDBServer(base / "source", HOST, SOURCE_PORT, server_id=36, tls=True)
    target = MariaDBServer(base / "target", HOST, TARGET_PORT, server_id=37)
    source.start()
    target.start()
    yield source, target
    target.stop()
    source.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh(servers: tuple[MariaDBServer, MariaDBServer]) -> Iterator[tuple[MariaDBServer, ...]]:
    """A data database of ROWS rows on the source; none on this system's server."""
    source, target = servers
    sql(target, f"DROP DATABASE IF EXISTS {DATABASE}")
    sql(
        source,
        f"DROP DATABASE IF EXISTS {DATABASE}",
        f"CREATE DATABASE {DATABASE}",
        f"USE {DATABASE}",
        f"CREATE TABLE {DATABASE}.accounting (id INT AUTO_INCREMENT PRIMARY KEY, "
        "user VARCHAR(40) NOT NULL, bytes BIGINT NOT NULL, KEY (user))",
        f"CREATE TABLE {DATABASE}.sessions (user VARCHAR(40) PRIMARY KEY, started DATETIME)",
        f"INSERT INTO {DATABASE}.accounting (user, bytes) SELECT CONCAT('user', seq % 500), seq "
        f"FROM seq_1_to_{ROWS}",
        f"INSERT INTO {DATABASE}.sessions SELECT CONCAT('user', seq), NOW() FROM seq_1_to_300",
    )
    yield source, target
    replica_stop(target_url(target))
    sql(source, "DROP USER IF EXISTS 'intruder'@'%'")


def target_url(target: MariaDBServer) -> MySQLURL:
    return MySQLURL("root", "", target.host, target.port, DATABASE)


def replicating_account(source: MariaDBServer, settings: Any) -> SourceDatabase:
    """The run's account for this module's data database on `source`."""
    return replica_support.replicating_account(
        source, settings, database=DATABASE, run_ref="run-online"
    )


class Writer(threading.Thread):
    """The source's users: inserts, updates and deletes, as fast as the server takes them."""

    def __init__(self, source: MariaDBServer, *, sessions: bool = True) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.sessions = sessions
        """Whether the sessions table is written too (else only accounting)."""
        self.stopping = threading.Event()
        self.writes = 0

    def run(self) -> None:
        randomly = random.Random(7)
        with self.source.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"USE {DATABASE}")
            while not self.stopping.is_set():
                row = randomly.randint(1, ROWS)
                cursor.execute("INSERT INTO accounting (user, bytes) VALUES ('new', %s)", [row])
                cursor.execute("UPDATE accounting SET bytes = bytes + 1 WHERE id = %s", [row])
                cursor.execute("DELETE FROM accounting WHERE id = %s", [row + 7])
                if self.sessions:
                    cursor.execute(
                        "REPLACE INTO sessions VALUES (CONCAT('user', %s), NOW())", [row % 400]
                    )
                connection.commit()
                self.writes += 4 if self.sessions else 3

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def caught_up_with(account: SourceDatabase, target: MariaDBServer) -> Lag:
    """Wait until this system's replica has applied what the source has written so far."""
    final = binlog_position(account)
    assert final is not None
    return replica_wait(
        target_url(target), REPLICA_NAME, lambda: final, lambda lag: None, timeout=60
    )


def copy_then_follow(target: MariaDBServer, account: SourceDatabase) -> None:
    """Copy the source's data here, then start the replica from where its binary log ends."""
    copy_database(account, target_url(target), workers=1)
    start = binlog_position(account)
    assert start is not None
    replica_start(target_url(target), account, start.file, start.position, idempotent=True)


def copy_while_writing(
    source: MariaDBServer, target: MariaDBServer, account: SourceDatabase, *, idempotent: bool
) -> Writer:
    """Note the source's position, copy with the writer going, then start the replica there."""
    writer = Writer(source)
    writer.start()
    start = binlog_position(account)
    assert start is not None
    copy_database(account, target_url(target), workers=2, chunk_bytes=64 << 10)
    replica_start(target_url(target), account, start.file, start.position, idempotent=idempotent)
    return writer


def test_a_copy_made_while_the_source_writes_ends_identical_after_the_replica(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any
) -> None:
    source, target = fresh
    account = replicating_account(source, settings)
    writer = copy_while_writing(source, target, account, idempotent=True)
    writer.stopping.wait(1.5)  # the source keeps serving while the replica follows
    writer.stop()
    lag = caught_up_with(account, target)
    replica_stop(target_url(target))
    checks = tables_verify(account, target_url(target))

    assert lag.caught_up, lag.text
    assert writer.writes > 100
    assert {check.name: check.equal for check in checks} == {"accounting": True, "sessions": True}
    (count,) = sql(source, f"SELECT COUNT(*) FROM {DATABASE}.accounting")
    assert checks[0].target_rows == count[0]


def test_every_table_verified_at_one_point_while_the_source_writes_then_the_tables_written_since(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any
) -> None:
    source, target = fresh
    account = replicating_account(source, settings)
    copy_while_writing(source, target, account, idempotent=True).stop()
    assert caught_up_with(account, target).caught_up
    writer = Writer(source, sessions=False)  # the source's users go on writing accounting
    writer.start()
    with server_connection(target_url(target)) as connection:
        gate = ReplicaGate(connection, REPLICA_NAME)
        check = snapshot_verify(account, gate, timeout=60)
        for _ in range(20):
            gate.advance()
            writer.stopping.wait(0.05)
    writer.stop()
    lag = caught_up_with(account, target)

    assert check is not None
    assert {table.name: table.equal for table in check.tables} == {
        "accounting": True,
        "sessions": True,
    }
    assert check.tables[0].source_rows > ROWS - writer.writes
    assert gate.watch is not None
    assert gate.watch.changed == {"accounting"}
    assert lag.caught_up, lag.text
    assert all(table.equal for table in tables_verify(account, target_url(target)))


def test_without_idempotent_replay_the_replica_stops_on_rows_the_copy_already_has(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any
) -> None:
    source, target = fresh
    account = replicating_account(source, settings)
    writer = copy_while_writing(source, target, account, idempotent=False)
    writer.stop()
    lag = caught_up_with(account, target)

    assert not lag.caught_up
    assert lag.error


def test_a_source_restarted_while_it_is_followed_is_followed_again(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any
) -> None:
    source, target = fresh
    account = replicating_account(source, settings)
    copy_then_follow(target, account)
    sql(source, f"USE {DATABASE}", "INSERT INTO sessions VALUES ('before', NOW())")
    source.stop()  # a clean shutdown ends its binary log with a Stop event
    source.start()
    sql(source, f"USE {DATABASE}", "INSERT INTO sessions VALUES ('after', NOW())")
    lag = caught_up_with(account, target)

    assert lag.caught_up, lag.text
    rows = f"SELECT user FROM {DATABASE}.sessions WHERE user IN ('before', 'after')"
    assert sorted(sql(target, rows)) == [("after",), ("before",)]


def test_a_table_changed_behind_the_replicas_back_is_found_by_the_verification(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any
) -> None:
    source, target = fresh
    account = replicating_account(source, settings)
    copy_database(account, target_url(target), workers=1)
    sql(target, f"UPDATE {DATABASE}.sessions SET started = '2001-01-01' WHERE user = 'user5'")

    checks = {check.name: check for check in tables_verify(account, target_url(target))}

    assert checks["accounting"].equal
    assert not checks["sessions"].equal
    assert checks["sessions"].source_rows == checks["sessions"].target_rows == 300


def test_a_server_without_a_binary_log_in_rows_cannot_be_followed(tmp_path: Path) -> None:
    options = tuple(option for option in MariaDBServer.options if "bin" not in option)
    plain = MariaDBServer(tmp_path / "plain", HOST, PLAIN_PORT, server_id=38, options=options)
    plain.start()
    try:
        refusal = server_refusal(MySQLURL("root", "", HOST, PLAIN_PORT, "mysql"))
    finally:
        plain.stop()

    assert refusal == "the source's database server writes no binary log (log_bin is off)"
    assert "STATEMENT format, not ROW" in binlog_refusal(True, "STATEMENT", "10.11.6-MariaDB")
    assert "too old" in binlog_refusal(True, "ROW", "10.1.48-MariaDB")
    assert binlog_refusal(True, "ROW", "10.11.6-MariaDB-0+deb12u1") == ""


def test_forgetting_the_replica_removes_it_and_puts_the_exec_mode_back(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any
) -> None:
    source, target = fresh
    account = replicating_account(source, settings)
    writer = copy_while_writing(source, target, account, idempotent=True)
    writer.stop()
    replica_stop(target_url(target))

    with pymysql.connect(host=target.host, port=target.port, user="root") as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@slave_exec_mode")
            assert cursor.fetchone() == ("STRICT",)  # what the server had before the pre-copy
            cursor.execute("SHOW ALL SLAVES STATUS")
            assert cursor.fetchall() == ()


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("GRANT ALL ON *.* TO 'intruder'@'%' IDENTIFIED BY 'let-me-in'", "GRANT ALL"),
        ("CREATE USER 'intruder'@'%' IDENTIFIED BY 'let-me-in'", "CREATE USER"),
        (
            "CREATE DEFINER = 'root'@'localhost' PROCEDURE grant_me() SQL SECURITY DEFINER "
            "GRANT ALL ON *.* TO 'intruder'@'%' IDENTIFIED BY 'let-me-in'",
            "CREATE DEFINER",
        ),
        ("ALTER TABLE sessions ADD COLUMN note TEXT", "ALTER TABLE"),
    ],
)
def test_what_the_sources_binary_log_says_beyond_its_rows_is_not_run_here(
    fresh: tuple[MariaDBServer, MariaDBServer], settings: Any, statement: str, named: str
) -> None:
    source, target = fresh
    account = replicating_account(source, settings)
    copy_then_follow(target, account)
    sql(
        source,
        f"USE {DATABASE}",
        "INSERT INTO sessions (user, started) VALUES ('before', NOW())",
        statement,
        "INSERT INTO sessions (user, started) VALUES ('after', NOW())",
    )
    lag = caught_up_with(account, target)

    assert not lag.caught_up
    assert f"holds the statement {named} ..., not a row change" in lag.error
    assert "let-me-in" not in lag.error
    rows = f"SELECT user FROM {DATABASE}.sessions WHERE user IN ('before', 'after')"
    assert ("after",) not in sql(target, rows)  # the replica stopped before it
    assert sql(target, "SELECT COUNT(*) FROM mysql.user WHERE user = 'intruder'") == [(0,)]
    routines = "SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = %r"
    assert sql(target, routines % DATABASE) == [(0,)]
    columns = "SELECT COUNT(*) FROM information_schema.columns WHERE column_name = 'note'"
    assert sql(target, columns) == [(0,)]
