"""Connections to the two servers and the few SQL helpers every module of the copier shares.

The target connection can run `LOAD DATA LOCAL INFILE` from bytes held in memory: PyMySQL only
reads the rows to send from a file, so a small subclass feeds them from a buffer instead.
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.connections import Connection, MySQLResult

from config.env import MySQLURL

LOAD_PACKET_BYTES = 1 << 20
"""How much of a LOAD DATA payload goes into one protocol packet."""

SESSION_SETTINGS = "SET SESSION sql_mode = '', time_zone = '+00:00', group_concat_max_len = %s"
"""Both servers format values the same way: no backslash surprises, zero dates allowed, UTC."""

CONNECTION_LOST_CODES = frozenset({2003, 2006, 2013, 2055, 1053, 1927})
"""Client and server error numbers that mean the server went away (not that the SQL was wrong)."""

TARGET_FULL_CODES = frozenset({1021, 1114, 3})
"""Disk full, table full, error writing file."""


def quote_name(name: str) -> str:
    """An identifier quoted for MariaDB: backticks around it, backticks inside doubled."""
    return "`" + name.replace("`", "``") + "`"


class _MemoryLoadResult(MySQLResult):
    """A query result that answers the server's request for a LOAD DATA file from memory."""

    def _read_load_local_packet(self, first_packet: Any) -> None:
        connection: Any = self.connection
        payload = memoryview(connection.load_payload)
        try:
            for start in range(0, len(payload), LOAD_PACKET_BYTES):
                connection.write_packet(bytes(payload[start : start + LOAD_PACKET_BYTES]))
        finally:
            connection.write_packet(b"")
            ok_packet = connection._read_packet()
        self._read_ok_packet(ok_packet)  # type: ignore[attr-defined]


class LoadingConnection(Connection):  # type: ignore[misc]
    """A PyMySQL connection whose `LOAD DATA LOCAL INFILE` reads `load_payload`, not a file."""

    load_payload: bytes = b""

    def _read_query_result(self, unbuffered: bool = False) -> int:
        self._result = None
        result = _MemoryLoadResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows or 0)

    def load_bytes(self, statement: str, payload: bytes) -> int:
        """Run a `LOAD DATA LOCAL INFILE` statement with `payload` as the file; rows loaded."""
        self.load_payload = payload
        try:
            with self.cursor() as cursor:
                return int(cursor.execute(statement))
        finally:
            self.load_payload = b""


def connect_source(url: MySQLURL, *, group_concat_max_len: int = 1 << 20) -> Connection:
    """A connection to the source server, in a consistent snapshot of the data."""
    connection = pymysql.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=url.database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
        read_timeout=600,
    )
    with connection.cursor() as cursor:
        cursor.execute(SESSION_SETTINGS, (group_concat_max_len,))
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    return connection


def connect_target(url: MySQLURL, *, database: str | None = None) -> LoadingConnection:
    """A connection to the target server, tuned for bulk loading; transactions are explicit."""
    connection = LoadingConnection(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        local_infile=True,
        connect_timeout=5,
        read_timeout=1800,
    )
    with connection.cursor() as cursor:
        cursor.execute(SESSION_SETTINGS, (1 << 20,))
        cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        try:
            cursor.execute("SET SESSION sql_log_bin = 0")
        except pymysql.OperationalError:
            pass  # an account without the privilege just writes the binary log as usual
    return connection


def error_code(error: BaseException) -> int | None:
    """The MariaDB error number of a PyMySQL error, if it has one."""
    if isinstance(error, pymysql.MySQLError) and error.args:
        first = error.args[0]
        if isinstance(first, int):
            return first
    return None


def is_connection_lost(error: BaseException) -> bool:
    """Whether the error means the server is unreachable or went away."""
    if isinstance(error, (pymysql.InterfaceError, ConnectionError, TimeoutError)):
        return True
    return error_code(error) in CONNECTION_LOST_CODES


def is_target_full(error: BaseException) -> bool:
    """Whether the error means the server has no space left for the data."""
    if error_code(error) in TARGET_FULL_CODES:
        return True
    text = str(error).lower()
    return "no space left" in text or "errno: 28" in text or "disk full" in text


def fetch_all(connection: Connection, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Every row of a query, as tuples."""
    with connection.cursor() as cursor:
        cursor.execute(statement, args)
        return list(cursor.fetchall())


def fetch_one(connection: Connection, statement: str, args: Any = None) -> tuple[Any, ...]:
    """The first row of a query that always returns one."""
    with connection.cursor() as cursor:
        cursor.execute(statement, args)
        row = cursor.fetchone()
    if row is None:
        raise LookupError(f"no row from: {statement[:80]}")
    return tuple(row)


def execute(connection: Connection, statement: str, args: Any = None) -> int:
    """Run one statement; the number of rows it touched."""
    with connection.cursor() as cursor:
        return int(cursor.execute(statement, args))


def close_quietly(connection: Connection | None) -> None:
    """Close a connection that may already be closed or broken."""
    if connection is None or not connection.open:
        return
    try:
        connection.close()
    except (pymysql.MySQLError, OSError):
        pass
