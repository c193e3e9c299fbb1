"""Fixtures for the data copy tests: a private source MariaDB and the machine's as the target.

The source server runs on 127.0.0.3:3306 with its own data directory and its own TLS certificate
for the whole session, and is read over TLS with that certificate pinned, as a source's is; the
target is the machine's MariaDB at 127.0.0.1:3306 (root, no password). Every test works in
scratch databases it creates and drops.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from config.env import MySQLURL, parse_mysql_url
from devtools.dataset import dataset_make
from devtools.mariadb import MariaDBServer
from migrations_engine.datacopy.checkpoints import STATE_DATABASE
from migrations_engine.datacopy.sql import SourceDatabase

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TARGET_HOST = "127.0.0.1"
SOURCE_HOST = os.environ.get("TEST_DATACOPY_SOURCE_HOST", "127.0.0.3")


SAKILA = PROJECT_ROOT / "tests" / "datasets" / "sakila"
"""The Sakila sample database (public, BSD licence): a compatibility case nobody here wrote."""


def target_connection(database: str | None = None) -> pymysql.connections.Connection:
    """A root connection to the machine's MariaDB."""
    return pymysql.connect(
        host=TARGET_HOST, user="root", database=database, charset="utf8mb4", autocommit=True
    )


def run_sql(connection: pymysql.connections.Connection, *statements: str) -> None:
    """Run statements one by one."""
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def query(
    connection: pymysql.connections.Connection, statement: str, args: Any = None
) -> list[Any]:
    """All rows of a query."""
    with connection.cursor() as cursor:
        cursor.execute(statement, args)
        return list(cursor.fetchall())


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


DEFINER_CLAUSE = re.compile(r"DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`")


def without_definer(text: str) -> str:
    """A definition with its DEFINER left out: copied objects get this system's definer."""
    return DEFINER_CLAUSE.sub("DEFINER=?", text)


def definition(row: Any) -> tuple[str, str]:
    """The SQL mode and text of a trigger's or routine's SHOW CREATE row, definer left out."""
    return str(row[1]), without_definer(str(row[2]))


def database_snapshot(connection: pymysql.connections.Connection, database: str) -> dict[str, Any]:
    """What a user would compare: every table's rows and checksum, definitions of everything."""
    run_sql(connection, f"USE {quote(database)}")
    tables = [
        row[0]
        for row in query(
            connection,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (database,),
        )
    ]
    snapshot: dict[str, Any] = {"tables": {}}
    for table in tables:
        checksum = query(connection, f"CHECKSUM TABLE {quote(table)}")[0][1]
        count = query(connection, f"SELECT COUNT(*) FROM {quote(table)}")[0][0]
        create = query(connection, f"SHOW CREATE TABLE {quote(table)}")[0][1]
        snapshot["tables"][table] = {"checksum": checksum, "rows": count, "create": create}
    snapshot["views"] = {
        name: without_definer(query(connection, f"SHOW CREATE VIEW {quote(name)}")[0][1])
        for (name,) in query(
            connection,
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
            (database,),
        )
    }
    snapshot["triggers"] = {
        name: definition(query(connection, f"SHOW CREATE TRIGGER {quote(name)}")[0])
        for (name,) in query(
            connection,
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
            (database,),
        )
    }
    snapshot["routines"] = {
        f"{kind} {name}": definition(query(connection, f"SHOW CREATE {kind} {quote(name)}")[0])
        for kind, name in query(
            connection,
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s",
            (database,),
        )
    }
    snapshot["auto_increment"] = dict(
        query(
            connection,
            "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s",
            (database,),
        )
    )
    snapshot["indexes"] = sorted(
        query(
            connection,
            "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, INDEX_TYPE "
            "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s",
            (database,),
        )
    )
    return snapshot


@dataclass
class Scratch:
    """A pair of scratch databases (same name on the source and the target) for one test."""

    source_server: MariaDBServer
    name: str
    source_name: str = ""

    def __post_init__(self) -> None:
        self.source_name = self.source_name or self.name

    @property
    def source_url(self) -> SourceDatabase:
        """The source as root, its server's certificate pinned."""
        return source_database(self.source_server, self.source_name)

    @property
    def target_url(self) -> MySQLURL:
        return parse_mysql_url(f"mysql://root@{TARGET_HOST}:3306/{self.name}")

    def source(self) -> pymysql.connections.Connection:
        """A root connection to the source server, in the scratch database."""
        return self.source_server.connect(self.source_name)

    def target(self) -> pymysql.connections.Connection:
        return target_connection()

    def load_sql_file(self, path: Path) -> None:
        """Feed a SQL file to the source server with the mariadb client."""
        with path.open("rb") as stream:
            subprocess.run(
                ["mariadb", f"-h{self.source_server.host}", "-uroot"],
                stdin=stream,
                check=True,
            )

    def make_dataset(self, scale: float) -> None:
        """The benchmark data set, at a small scale, in the source's scratch database."""
        dataset_make(self.source_name, scale, host=self.source_server.host)

    def assert_identical(self, *, auto_increment: bool = True) -> dict[str, Any]:
        """The target's copy matches the source in every way the snapshot looks at.

        `auto_increment=False` leaves the counters out: a restarted source recomputes them.
        """
        with self.source() as source, self.target() as target:
            expected = database_snapshot(source, self.source_name)
            actual = database_snapshot(target, self.name)
        if not auto_increment:
            for snapshot in (expected, actual):
                snapshot["auto_increment"] = {}
                for facts in snapshot["tables"].values():
                    facts["create"] = re.sub(r" AUTO_INCREMENT=\d+", "", facts["create"])
        assert actual["tables"].keys() == expected["tables"].keys()
        for table, facts in expected["tables"].items():
            assert actual["tables"][table] == facts, f"table {table!r} differs"
        for part in ("views", "triggers", "routines", "auto_increment", "indexes"):
            assert actual[part] == expected[part], f"{part} differ"
        return expected


def source_database(
    server: MariaDBServer, database: str, user: str = "root", password: str = ""
) -> SourceDatabase:
    """A database on the source server, read over TLS with the server's certificate pinned."""
    url = parse_mysql_url(server.url(database, user, password))
    return SourceDatabase(
        user=url.user,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
        certificate=server.certificate_pem(),
    )


def session_ciphers(server: MariaDBServer, user: str) -> dict[int, str]:
    """The TLS cipher of each session `user` has open on `server` by session id ('' for one in
    clear text), as the server itself sees them (performance_schema)."""
    with server.connect() as connection:
        rows = query(
            connection,
            "SELECT t.PROCESSLIST_ID, s.VARIABLE_VALUE FROM performance_schema.status_by_thread s "
            "JOIN performance_schema.threads t USING (THREAD_ID) "
            "WHERE s.VARIABLE_NAME = 'Ssl_cipher' AND t.PROCESSLIST_USER = %s",
            (user,),
        )
    return {int(session): str(cipher) for session, cipher in rows}


PrivateServer = MariaDBServer
"""The private servers of these tests (kept as a name the test modules use)."""

SOURCE_OPTIONS = (*MariaDBServer.options, "--performance-schema=ON")
"""The source server also tells each session's TLS cipher (performance_schema)."""


@pytest.fixture(scope="session")
def source_server() -> Iterator[MariaDBServer]:
    """The source: a private MariaDB server on 127.0.0.3 offering TLS, for the whole session.

    Its data directory is a temporary directory of its own: pytest's numbered base
    directories are pruned by any other pytest run on the machine, even while in use.
    """
    base = Path(tempfile.mkdtemp(prefix="datacopy-source-"))
    server = PrivateServer(
        datadir=base / "mariadb",
        host=SOURCE_HOST,
        port=3306,
        server_id=3,
        options=SOURCE_OPTIONS,
        tls=True,
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def definer_account() -> Iterator[str]:
    """The account copied objects run as on the target: rights on the tests' scratch databases
    only (as `migration_accounts` makes it for the data database), locked against logins."""
    user = f"def_{uuid.uuid4().hex[:8]}"
    with target_connection() as connection:
        run_sql(
            connection,
            f"CREATE USER '{user}'@'localhost' ACCOUNT LOCK",
            "GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE, CREATE TEMPORARY TABLES, LOCK TABLES, "
            f"SHOW VIEW, TRIGGER ON `dc\\_%`.* TO '{user}'@'localhost'",
        )
    yield f"{user}@localhost"
    with target_connection() as connection:
        run_sql(connection, f"DROP USER IF EXISTS '{user}'@'localhost'")


@pytest.fixture(autouse=True)
def copied_objects_definer(
    definer_account: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copies made by the tests, here and in the commands they start, use that account."""
    settings.MIGRATION_DEFINER = definer_account
    monkeypatch.setenv("MIGRATION_DEFINER", definer_account)


@pytest.fixture
def scratch(source_server: MariaDBServer) -> Iterator[Scratch]:
    """Scratch databases of one name on both servers, dropped (with copy state) afterwards."""
    source_server.start()  # a test may have stopped it
    item = Scratch(source_server, f"dc_{uuid.uuid4().hex[:10]}")
    with source_server.connect() as connection:
        run_sql(connection, f"CREATE DATABASE {quote(item.name)} CHARACTER SET utf8mb4")
    yield item
    source_server.start()
    with source_server.connect() as connection:
        for name in {item.name, item.source_name}:
            run_sql(connection, f"DROP DATABASE IF EXISTS {quote(name)}")
    with target_connection() as connection:
        run_sql(connection, f"DROP DATABASE IF EXISTS {quote(item.name)}")
        for table in ("copy_chunk", "copy_attempt", "copy_table", "copy_run"):
            try:
                run_sql(
                    connection,
                    f"DELETE FROM {STATE_DATABASE}.{table} WHERE target_database = '{item.name}'",
                )
            except pymysql.ProgrammingError:
                pass
