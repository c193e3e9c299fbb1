"""Copying the data while the source serves, and the short cutover that ends it.

The online pre-copy notes where the source's binary log stands (file, position and GTID), then
copies every table with the verified copier while the source goes on serving; every chunk is
read after that point. This system's database server then replicates the source's data
database from exactly there with MariaDB's own replication, in IDEMPOTENT mode: a change the
copy already saw is applied again to the same row and changes nothing, so the copy and the
replica together hold every write. At cutover (the source in maintenance, refusing writes) the
replica applies up to the source's final position and stops. Every table was checksummed on
both servers while the source served, at one point of its binary log (`snapshot_verify`); inside
the window only the tables written since that point are checksummed again (the gate saw them in
the binary log), so the window does not grow with the data. A table that differs is copied again
inside the window.

The copier's chunks run in parallel on several connections, and MariaDB cannot share one
snapshot between connections without FLUSH TABLES WITH READ LOCK (a global lock that needs
RELOAD on the source and stops its writes): replaying from the point noted before the first
chunk, with the verification at the end, gives the same result without either.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pymysql

from config.env import MySQLURL
from migrations_engine.datacopy.checksums import ChunkChecksum, checksum_sql
from migrations_engine.datacopy.schema import base_table_names, read_table
from migrations_engine.datacopy.sql import fetch_one, quote_name, source_connection
from migrations_engine.source_info import DataBinlog

SSL_CONNECTION_FAILED = 2026
"""The replica's error when the TLS connection to the source could not be opened or verified."""
OLDEST_VERSION = (10, 3)
"""The oldest MariaDB a source may run for its data to be replicated while it serves."""
GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
TABLE_MAP = re.compile(r"\(`?([^`.]+)`?\.`?([^`]+?)`?\)$")
"""The database and table a Table_map event names ("table_id: 33 (data.event_log)")."""


@dataclass(frozen=True)
class BinlogPosition:
    """A point in the source's binary log: file and offset, and the GTID position there."""

    file: str
    position: int
    gtid: str = ""

    @property
    def text(self) -> str:
        return f"{self.file}:{self.position}" + (f" (GTID {self.gtid})" if self.gtid else "")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "position": self.position, "gtid": self.gtid}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinlogPosition:
        return cls(str(data["file"]), int(data["position"]), str(data.get("gtid") or ""))

    @property
    def point(self) -> tuple[str, int]:
        """File and offset, for comparing with other points of the same binary log."""
        return (self.file, self.position)


@dataclass(frozen=True)
class Lag:
    """How far this system's replica is behind the source."""

    events: int | None
    """Transactions the source has written and the replica not yet applied (None: unknown)."""
    seconds: int | None
    bytes: int
    caught_up: bool
    error: str = ""
    """Why the replica stopped for good (the data is then copied inside the window)."""
    waiting: str = ""
    """Why it cannot move for now (a source restarting): it goes on by itself."""
    refused: bool = False
    """The gate stopped the replica before something other than row changes (see `error`)."""

    @property
    def text(self) -> str:
        if self.error:
            return f"replication stopped: {self.error}"
        if self.waiting:
            return f"waiting for the source: {self.waiting}"
        if self.caught_up:
            return "in sync with the source"
        events = "?" if self.events is None else str(self.events)
        seconds = "?" if self.seconds is None else str(self.seconds)
        return f"{events} transactions ({seconds} s) behind the source"


@dataclass(frozen=True)
class TableCheck:
    """One table checksummed on both servers at the same moment."""

    name: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str

    @property
    def equal(self) -> bool:
        return (self.source_rows, self.source_checksum) == (self.target_rows, self.target_checksum)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.source_rows,
            "checksum": self.source_checksum,
            "equal": self.equal,
            **({} if self.equal else {"rows_here": self.target_rows}),
        }


def _version(text: str) -> tuple[int, int]:
    numbers = re.findall(r"\d+", text)[:2]
    return (int(numbers[0]), int(numbers[1])) if len(numbers) == 2 else (0, 0)


def online_refusal(binlog: DataBinlog) -> str:
    """Why the source's data cannot be copied while it serves ('' when it can), from what the
    source says of its database server; the pre-copy checks the server itself again."""
    if not binlog.known:
        return "the source does not say whether its database server writes a binary log"
    return binlog_refusal(binlog.log_bin, binlog.format, binlog.server_version)


def binlog_refusal(log_bin: bool, binlog_format: str, version: str) -> str:
    """Why a server with these settings cannot be replicated from ('' when it can)."""
    if not log_bin:
        return "the source's database server writes no binary log (log_bin is off)"
    if binlog_format.upper() != "ROW":
        return f"the source's binary log is in {binlog_format or 'an unknown'} format, not ROW"
    if "mariadb" not in version.lower():
        return f"the source's database server ({version[:40]}) is not MariaDB"
    if _version(version) < OLDEST_VERSION:
        return f"the source's database server is too old ({version[:40]})"
    return ""


def server_refusal(source: MySQLURL) -> str:
    """`binlog_refusal` for the source's server as it is now."""
    with source_connection(source, read_timeout=60) as connection:
        log_bin, binlog_format, version = fetch_one(
            connection, "SELECT @@log_bin, @@binlog_format, @@version"
        )
    return binlog_refusal(bool(log_bin), str(binlog_format), str(version))


def binlog_position(source: MySQLURL) -> BinlogPosition | None:
    """Where the source's binary log ends now (None when it writes none)."""
    with source_connection(source, read_timeout=60) as connection:
        return binlog_end(connection)


def binlog_end(connection: pymysql.connections.Connection) -> BinlogPosition | None:
    """`binlog_position` on an open connection to the source."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW MASTER STATUS")
        row = cursor.fetchone()
        cursor.execute("SELECT @@gtid_binlog_pos")
        gtid = str((cursor.fetchone() or [""])[0] or "")
    if not row:
        return None
    return BinlogPosition(str(row[0]), int(row[1]), gtid)


def _sequences(gtid: str) -> dict[int, int]:
    """The sequence number of each replication domain in a GTID position."""
    result: dict[int, int] = {}
    for part in gtid.replace(" ", "").split(","):
        if match := GTID.match(part):
            result[int(match[1])] = int(match[3])
    return result


def events_behind(source_gtid: str, replica_gtid: str) -> int | None:
    """Transactions in the source's position that the replica's has not reached (None when the
    positions cannot be compared)."""
    source, replica = _sequences(source_gtid), _sequences(replica_gtid)
    if not source:
        return None
    return sum(max(0, sequence - replica.get(domain, 0)) for domain, sequence in source.items())


def replica_status(target: pymysql.connections.Connection, name: str) -> dict[str, Any]:
    """SHOW SLAVE STATUS of this system's replica called `name` ({} when there is none)."""
    try:
        with target.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(f"SHOW SLAVE '{name}' STATUS")
            return dict(cursor.fetchone() or {})
    except pymysql.err.OperationalError:
        return {}


def replica_lag(status: dict[str, Any], goal: BinlogPosition, *, replica_gtid: str = "") -> Lag:
    """How far a replica with this status is from `goal` (the source's end of binary log)."""
    io_error = str(status.get("Last_IO_Error") or "")
    lasting = (
        int(status.get("Last_IO_Errno") or 0) == SSL_CONNECTION_FAILED
        or status.get("Slave_IO_Running") == "No"
    )
    error = str(status.get("Last_SQL_Error") or "") or (io_error if lasting else "")
    if not status:
        error = "this system has no replica of the source"
    applied_file = str(status.get("Relay_Master_Log_File") or "")
    applied = int(status.get("Exec_Master_Log_Pos") or 0)
    caught_up = (applied_file, applied) >= (goal.file, goal.position)
    behind = goal.position - applied if applied_file == goal.file else max(goal.position, 1)
    seconds = status.get("Seconds_Behind_Master")
    events = 0 if caught_up else events_behind(goal.gtid, replica_gtid)
    return Lag(
        events=events,
        seconds=int(seconds) if seconds is not None else None,
        bytes=0 if caught_up else max(0, behind),
        caught_up=caught_up and not error,
        error=error,
        waiting="" if lasting else io_error,
    )


def replica_gtid(target: pymysql.connections.Connection) -> str:
    """The GTID position this system's replica threads have applied."""
    with target.cursor() as cursor:
        cursor.execute("SELECT @@gtid_slave_pos")
        return str((cursor.fetchone() or [""])[0] or "")


def tables_verify(
    source: MySQLURL, target: MySQLURL, tables: Iterable[str] | None = None
) -> list[TableCheck]:
    """Every table (or the named ones) checksummed on both servers at once: the same SQL, one
    connection per server, each table read on both sides at the same time."""
    with source_connection(source) as source_db, server_connection(target) as target_db:
        return tables_checksum(source_db, target_db, source.database, tables)


def tables_checksum(
    source_db: pymysql.connections.Connection,
    target_db: pymysql.connections.Connection,
    database: str,
    tables: Iterable[str] | None = None,
) -> list[TableCheck]:
    """`tables_verify` on open connections (the source's in `database`)."""
    names = list(tables) if tables is not None else base_table_names(source_db, database)
    checks = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in names:
            schema = read_table(source_db, database, name)
            statement = f"SELECT {checksum_sql(schema)} FROM {quote_name(name)}"
            there = pool.submit(_checksum, source_db, statement)
            here = pool.submit(_checksum, target_db, statement)
            mine, theirs = here.result(), there.result()
            checks.append(TableCheck(name, theirs.rows, mine.rows, theirs.text, mine.text))
    return checks


def server_connection(url: MySQLURL) -> pymysql.connections.Connection:
    """A connection to this system's own database server (its replica runs there), in `url`'s
    database."""
    return pymysql.connect(**url.login(), database=url.database, charset="utf8mb4", autocommit=True)


def _checksum(connection: pymysql.connections.Connection, statement: str) -> ChunkChecksum:
    rows, bit_xor, crc_sum = fetch_one(connection, statement)
    return ChunkChecksum(int(rows), int(bit_xor), int(crc_sum))


class ReplicaRefused(Exception):
    """The source's binary log holds something other than row changes; it is not run here."""


ROW_EVENT = re.compile(r"^(Write|Update|Delete)_rows(_compressed)?(_v1)?$")
PASSING_EVENTS = frozenset(
    {
        "Format_desc",
        "Gtid_list",
        "Binlog_checkpoint",
        "Rotate",
        "Table_map",
        "Annotate_rows",
        "Stop",  # the source's server shut down (a restart): its next binary log follows
        "Start_encryption",
    }
)
"""Relay log events that change nothing here, besides row changes and transaction bounds."""
STATEMENT = re.compile(r"^(?:use `[^`]*`; )?\s*(\w+(?:\s+\w+)?)", re.IGNORECASE)


@dataclass
class TableWatch:
    """The source's tables written after a point of its binary log, as the gate finds them in
    the Table_map events that come before each row change."""

    since: tuple[str, int]
    database: str
    """The source's data database (the binary log also holds the source's other databases)."""
    changed: set[str] = field(default_factory=set)

    def note(self, position: tuple[str, int], info: str) -> None:
        match = TABLE_MAP.search(info)
        if match and match[1] == self.database and position > self.since:
            self.changed.add(match[2])


@dataclass
class ReplicaGate:
    """Lets this system's replica run only what was checked first.

    The replica's IO thread fetches the source's binary log into this server's relay log; its
    SQL thread, which applies it with every privilege, is started only up to the end of the
    last whole transaction read back from the relay log and found to hold nothing but row
    changes (a position in the source's binary log: `boundary`). A statement (GRANT, CREATE
    USER, CREATE PROCEDURE, ALTER TABLE, ...) stops the replica before it runs: ReplicaRefused.
    The relay log, not the source, is read, so what is checked is what would run. A new gate
    reads the relay log from its first file (what was applied already is checked again).
    With a `watch`, the tables written after its point are noted as they are checked, and
    `on_changed` hears of each new one before the replica may apply its change.
    """

    connection: pymysql.connections.Connection
    name: str
    watch: TableWatch | None = None
    on_changed: Callable[[TableWatch], None] | None = None
    cursor: tuple[str, int] = ("", 0)
    """Where in the relay log to read next (with `skip` events to pass over there)."""
    skip: int = 0
    source_file: str = ""
    """The source's binary log file the events read last come from."""
    boundary: tuple[str, int] = ("", 0)
    checked: tuple[str, int] = ("", 0)
    """The end of the last event checked, in the source's binary log."""
    in_transaction: bool = False
    server_id: int = 0
    reported: int = 0
    """How many changed tables `on_changed` has heard of."""
    running: bool = False
    """Whether the SQL thread ran at the last check."""

    def advance(self) -> None:
        """Check what the relay log holds beyond the last check and let the SQL thread run up
        to the last safe point; ReplicaRefused (the replica stopped) for a statement."""
        applied = self.check()
        if applied is None:
            return
        if self.watch is not None and self.on_changed and len(self.watch.changed) > self.reported:
            self.on_changed(self.watch)
            self.reported = len(self.watch.changed)
        if not self.running and self.boundary > applied:
            self._start_until(self.boundary)

    def check(self) -> tuple[str, int] | None:
        """Check every event the relay log holds beyond the last check; where the replica has
        applied the source's binary log to (None: there is no replica)."""
        status = replica_status(self.connection, self.name)
        if not status:
            return None
        applied = (str(status["Relay_Master_Log_File"]), int(status["Exec_Master_Log_Pos"]))
        self.running = status.get("Slave_SQL_Running") == "Yes"
        if not self.cursor[0]:
            first = fetch_one(self.connection, f"SHOW RELAYLOG '{self.name}' EVENTS LIMIT 1")
            self.cursor = (str(first[0]), 4)  # what was applied already is checked again
            self.source_file, self.boundary = applied[0], applied
            self.checked = applied
            self.server_id = int(fetch_one(self.connection, "SELECT @@server_id")[0])
        while self._read_batch():
            pass
        return applied

    def hold(self) -> None:
        """Stop the SQL thread (the next `advance` lets it go on)."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"STOP SLAVE '{self.name}' SQL_THREAD")

    def apply_until(self, point: tuple[str, int], *, timeout: float) -> bool:
        """Have the replica apply the source's binary log exactly up to `point` (a transaction
        boundary) and stop there, once everything up to it has been checked; whether it did
        within `timeout`. The replica must not have gone beyond `point` (`hold` first)."""
        deadline = time.monotonic() + timeout
        started = False
        while time.monotonic() < deadline:
            applied = self.check()
            if applied is None or applied > point:
                return False
            if applied == point and not self.running:
                return True
            if self.checked >= point and not self.running and not started:
                self._start_until(point)
                started = True
            time.sleep(0.05)
        return False

    def _start_until(self, point: tuple[str, int]) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"START SLAVE '{self.name}' SQL_THREAD UNTIL MASTER_LOG_FILE = %s, "
                "MASTER_LOG_POS = %s",
                list(point),
            )

    def _read_batch(self, size: int = 500) -> bool:
        """Check the next events of the relay log; whether there may be more."""
        file, position = self.cursor
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SHOW RELAYLOG '{self.name}' EVENTS IN %s FROM %s LIMIT %s, %s",
                [file, position, self.skip, size],
            )
            rows = cursor.fetchall()
        for _log, _start, kind, server_id, end, info in rows:
            if kind == "Rotate" and int(server_id) == self.server_id:
                self.cursor, self.skip = (str(info).split(";")[0], 4), 0
                return True
            self._check(str(kind), int(end), str(info))
            if kind == "Rotate":  # nothing of the source's next file is checked yet
                self.checked = (self.source_file, 0)
            elif int(server_id) != self.server_id and int(end):
                self.checked = (self.source_file, int(end))
        if rows:
            self.cursor, self.skip = (file, int(rows[-1][1])), 1
        return len(rows) == size

    def _check(self, kind: str, end: int, info: str) -> None:
        """One event from the source: pass it, note a transaction's bounds, or refuse it."""
        statement = info.strip().upper()
        if kind == "Rotate":
            self.source_file = info.split(";")[0]
        elif kind == "Gtid" or (kind == "Query" and statement == "BEGIN"):
            self.in_transaction = True
        elif kind == "Xid" or (kind == "Query" and statement == "COMMIT"):
            self.in_transaction = False
            self.boundary = (self.source_file, end)
        elif kind == "Table_map" and self.watch is not None:
            self.watch.note((self.source_file, end), info)
        elif not (ROW_EVENT.match(kind) or kind in PASSING_EVENTS):
            self._refuse(kind, info)

    def _refuse(self, kind: str, info: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"STOP SLAVE '{self.name}'")
        match = STATEMENT.match(info) if kind == "Query" else None
        what = f"the statement {match[1].upper()} ..." if match else f"a {kind} event"
        raise ReplicaRefused(
            f"The source's binary log holds {what}, not a row change of its data: this "
            "system's replica stopped before running it."
        )


@dataclass(frozen=True)
class OnlineCheck:
    """Every table checksummed on both servers while the source served, at one point of its
    binary log: the source's consistent snapshot there and this system's replica stopped
    exactly there."""

    position: BinlogPosition
    tables: list[TableCheck]
    seconds: float


def snapshot_verify(source: MySQLURL, gate: ReplicaGate, *, timeout: float) -> OnlineCheck | None:
    """Checksum every table on both servers at one point of the source's binary log while it
    serves: the replica is held, a consistent snapshot is opened on the source (MariaDB gives
    its binary log position), the replica applies exactly up to there and stops, and each
    table is read on both sides at once. From then on, `gate` notes the tables written after
    that point (its `watch`). None when the replica did not reach the point within `timeout`
    (the gate then watches nothing); ReplicaRefused when it met a statement on the way."""
    started = time.monotonic()
    gate.hold()
    with source_connection(source, read_timeout=600) as source_db:
        with source_db.cursor() as cursor:
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cursor.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            values = {str(name).lower(): str(value) for name, value in cursor.fetchall()}
        position = BinlogPosition(
            values["binlog_snapshot_file"], int(values["binlog_snapshot_position"])
        )
        gate.watch = TableWatch(position.point, source.database)
        if not gate.apply_until(position.point, timeout=timeout):
            gate.watch = None
            return None
        checks = tables_checksum(source_db, gate.connection, source.database)
        source_db.rollback()
    return OnlineCheck(position, checks, time.monotonic() - started)


Waiting = Callable[[Lag], None]


def replica_wait(
    target: MySQLURL,
    name: str,
    goal: Callable[[], BinlogPosition],
    waiting: Waiting,
    *,
    timeout: float,
    poll: float = 1.0,
    watch: TableWatch | None = None,
) -> Lag:
    """Wait until the replica `name` has applied the source's binary log up to `goal()` (asked
    again each time, so a source that still writes is followed); `waiting` hears the lag each
    second; the tables written after `watch`'s point are noted in it. Returns the final lag;
    one with an error when replication stopped, or not caught up when `timeout` passed."""
    deadline = time.monotonic() + timeout
    with server_connection(target) as connection:
        gate = ReplicaGate(connection, name, watch=watch)
        while True:
            try:
                gate.advance()
            except ReplicaRefused as refused:
                return Lag(None, None, 0, caught_up=False, error=str(refused), refused=True)
            status = replica_status(connection, name)
            try:
                lag = replica_lag(status, goal(), replica_gtid=replica_gtid(connection))
            except pymysql.MySQLError as error:  # the source does not answer now
                lag = Lag(None, None, 0, caught_up=False, waiting=str(error.args[-1]))
            if lag.caught_up or lag.error or time.monotonic() >= deadline:
                return lag
            waiting(lag)
            time.sleep(poll)
