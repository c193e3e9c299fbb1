"""Copies one chunk: read it from the source, load it into the target, verify, checkpoint.

The whole chunk is one target transaction: its rows, the check that the target now holds the
same rows as the source (count and checksum, computed by each server), and its checkpoint.
A chunk that differs is rolled back and copied again. A source that goes away is waited for,
with growing pauses, up to a limit; then the copy stops with `SourceUnavailableError`.

Each worker process holds one `Transfer`, with its own connection to each server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import SSCursor

from appliance.progress import RateLimit
from config.env import MySQLURL
from migrations_engine.datacopy import checkpoints
from migrations_engine.datacopy.checksums import (
    ChunkChecksum,
    checksum_sql,
    load_sql,
    row_text_sql,
)
from migrations_engine.datacopy.chunking import Chunk, chunk_predicate
from migrations_engine.datacopy.errors import (
    CopyError,
    SourceUnavailableError,
    TargetFullError,
    VerificationError,
)
from migrations_engine.datacopy.schema import TableSchema, finish_table
from migrations_engine.datacopy.sql import (
    LoadingConnection,
    close_quietly,
    connect_source,
    connect_target,
    error_code,
    fetch_one,
    is_connection_lost,
    is_target_full,
    quote_name,
)

RETRY_CODES = frozenset({1205, 1213})
"""Lock wait timeout and deadlock: the chunk is simply tried again."""
FIRST_PAUSE = 0.2
LONGEST_PAUSE = 5.0

Result = TypeVar("Result")


@dataclass(frozen=True)
class TransferSettings:
    """What every worker needs to know; passed once to each worker process."""

    source: MySQLURL
    target: MySQLURL
    chunk_bytes: int
    concat_limit: int
    source_wait: float
    verify_attempts: int = 3
    bytes_per_second: int | None = None
    """This worker's share of the copy's traffic limit (None: no limit)."""
    packet_advice: str = ""
    """Said when a chunk does not arrive intact and the target's max_allowed_packet is the
    smaller one (the copy's account could not raise it)."""


@dataclass(frozen=True)
class ChunkDone:
    """A chunk copied and verified: its checksum, size and how long it took."""

    chunk: Chunk
    checksum: ChunkChecksum
    bytes: int
    seconds: float
    verify_attempts: int


class _SourceLost(Exception):
    """The source connection broke (internal: turned into a wait and a retry)."""


class Transfer:
    """Copies chunks with one connection to each server, reconnecting to the source as needed."""

    def __init__(self, settings: TransferSettings) -> None:
        self.settings = settings
        self._source: Connection | None = None
        self._target: LoadingConnection | None = None
        self.limit = RateLimit(settings.bytes_per_second)

    @property
    def target(self) -> LoadingConnection:
        """The target connection, opened on first use."""
        if self._target is None:
            self._target = connect_target(
                self.settings.target, database=self.settings.target.database
            )
        return self._target

    def source(self) -> Connection:
        """The source connection in its snapshot, opened on first use."""
        if self._source is None:
            try:
                self._source = connect_source(
                    self.settings.source, group_concat_max_len=self.settings.concat_limit
                )
                with self._source.cursor() as cursor:  # rows arrive as bytes, never decoded
                    cursor.execute("SET SESSION character_set_results = binary")
            except pymysql.MySQLError as error:
                if is_connection_lost(error):
                    raise _SourceLost(str(error)) from error
                raise
        return self._source

    def close(self) -> None:
        """Close both connections."""
        close_quietly(self._source)
        close_quietly(self._target)
        self._source = self._target = None

    def copy_chunk(self, table: TableSchema, chunk: Chunk) -> ChunkDone:
        """Copy, verify and checkpoint one chunk; try again while it differs."""
        started = time.monotonic()
        try:
            checkpoints.record_attempt(self.target, self.settings.target.database, chunk)
        except pymysql.MySQLError as error:
            raise self._target_failure(error, table) from None
        source_sum = target_sum = ChunkChecksum()
        for attempt in range(1, self.settings.verify_attempts + 1):
            outcome = self._with_source(table, lambda: self._copy_once(table, chunk))
            if outcome is None:
                continue  # a deadlock: try again
            source_sum, target_sum, size = outcome
            if source_sum == target_sum:
                self.limit.spend(size)
                return ChunkDone(chunk, source_sum, size, time.monotonic() - started, attempt)
        where, _ = chunk_predicate(table, chunk)
        raise VerificationError(
            f"Table {table.name!r} (rows where {where}, chunk {chunk.number}) still differs "
            f"after {self.settings.verify_attempts} copies: the source has {source_sum.rows} "
            f"rows (checksum {source_sum.text}), the copy {target_sum.rows} "
            f"(checksum {target_sum.text}). Make sure the source is in maintenance mode so "
            "that nothing changes its data, then resume the copy." + self.settings.packet_advice
        )

    def finish_table(self, table: TableSchema) -> str:
        """Add the table's secondary indexes and AUTO_INCREMENT, and record that it is done."""
        database = self.settings.target.database
        try:
            finish_table(self.target, database, table)
            checkpoints.record_table_finished(self.target, database, table.name)
        except pymysql.MySQLError as error:
            raise self._target_failure(error, table) from None
        return table.name

    def _with_source(self, table: TableSchema, work: Callable[[], Result]) -> Result:
        """Run `work`, waiting for the source to come back when it goes away."""
        lost_since: float | None = None
        pause = FIRST_PAUSE
        while True:
            try:
                return work()
            except _SourceLost:
                self._drop_source()
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > self.settings.source_wait:
                    raise SourceUnavailableError(
                        f"The source database server ({self.settings.source.redacted()}) "
                        f"stopped answering while table {table.name!r} was being copied and "
                        f"did not come back within {self.settings.source_wait:.0f} seconds. "
                        "Check that the source system is running and that port "
                        f"{self.settings.source.port} is reachable from this system, then "
                        "resume the copy: what was copied so far is kept."
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)

    def _drop_source(self) -> None:
        close_quietly(self._source)
        self._source = None

    def _copy_once(
        self, table: TableSchema, chunk: Chunk
    ) -> tuple[ChunkChecksum, ChunkChecksum, int] | None:
        """One try: load the chunk, compare checksums, commit when equal, roll back if not."""
        target = self.target
        database = self.settings.target.database
        try:
            target.begin()
            source_sum, batches = self._read_chunk(table, chunk)
            size = 0
            statement = load_sql(table)
            for batch in batches:
                target.load_bytes(statement, batch)
                size += len(batch)
            target_sum = self._target_checksum(table, chunk)
            if source_sum == target_sum:
                checkpoints.record_chunk(target, database, chunk, source_sum, size)
                target.commit()
            else:
                target.rollback()
        except (_SourceLost, CopyError):
            self._rollback_quietly()
            raise
        except pymysql.MySQLError as error:
            self._rollback_quietly()
            if error_code(error) in RETRY_CODES:
                return None
            raise self._target_failure(error, table) from None
        return source_sum, target_sum, size

    def _rollback_quietly(self) -> None:
        if self._target is None:
            return
        try:
            self._target.rollback()
        except (pymysql.MySQLError, OSError):
            self._target = None

    def _target_checksum(self, table: TableSchema, chunk: Chunk) -> ChunkChecksum:
        where, args = chunk_predicate(table, chunk)
        row = fetch_one(
            self.target,
            f"SELECT {checksum_sql(table)} FROM {quote_name(table.name)} WHERE {where}",
            args,
        )
        return ChunkChecksum(int(row[0]), int(row[1]), int(row[2]))

    def _read_chunk(
        self, table: TableSchema, chunk: Chunk
    ) -> tuple[ChunkChecksum, Iterator[bytes]]:
        """The chunk's checksum on the source and its rows as LOAD DATA text, in batches.

        Usually the source formats the whole chunk in one GROUP_CONCAT; a chunk too big for
        that (or for the source's max_allowed_packet) is streamed row by row instead.
        """
        where, args = chunk_predicate(table, chunk)
        name = quote_name(table.name)
        row = self._source_row(
            f"SELECT GROUP_CONCAT({row_text_sql(table)} SEPARATOR '\\n'), {checksum_sql(table)} "
            f"FROM {name} WHERE {where}",
            args,
        )
        checksum = ChunkChecksum(int(row[1]), int(row[2]), int(row[3]))
        text = row[0]
        if checksum.rows == 0:
            return checksum, iter(())
        if text is not None and len(text) < self.settings.concat_limit:
            data = text if isinstance(text, bytes) else str(text).encode()
            return checksum, iter((data + b"\n",))
        return checksum, self._stream_rows(table, where, args)

    def _source_row(self, statement: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        try:
            return fetch_one(self.source(), statement, args)
        except pymysql.MySQLError as error:
            if is_connection_lost(error):
                raise _SourceLost(str(error)) from error
            raise CopyError(f"Reading from the source database server failed: {error}") from None

    def _stream_rows(
        self, table: TableSchema, where: str, args: tuple[object, ...]
    ) -> Iterator[bytes]:
        """The chunk's lines, read one row at a time and grouped into batches of bounded size."""
        try:
            with self.source().cursor(SSCursor) as cursor:
                cursor.execute(
                    f"SELECT {row_text_sql(table)} FROM {quote_name(table.name)} WHERE {where}",
                    args,
                )
                batch: list[bytes] = []
                size = 0
                while rows := cursor.fetchmany(1000):
                    for (line,) in rows:
                        if line is None:
                            raise CopyError(
                                f"A row of table {table.name!r} is larger than the source "
                                "server's max_allowed_packet; raise that setting on the source "
                                "(for example to 1G) and resume the copy."
                            )
                        data = line if isinstance(line, bytes) else str(line).encode()
                        batch.append(data)
                        size += len(data) + 1
                        if size >= self.settings.chunk_bytes:
                            yield b"\n".join(batch) + b"\n"
                            batch, size = [], 0
                if batch:
                    yield b"\n".join(batch) + b"\n"
        except pymysql.MySQLError as error:
            if is_connection_lost(error):
                raise _SourceLost(str(error)) from error
            raise CopyError(f"Reading from the source database server failed: {error}") from None

    def _target_failure(self, error: pymysql.MySQLError, table: TableSchema) -> CopyError:
        """A user-facing error for a failure on the target server."""
        where = self.settings.target.redacted()
        if is_target_full(error):
            return TargetFullError(
                f"The current system's database server ({where}) ran out of space while "
                f"copying table {table.name!r} ({error.args[-1]}). The rows of the chunk in "
                "progress were not kept. Free disk space on the current system, then resume "
                "the copy."
            )
        if is_connection_lost(error):
            self._target = None
            return CopyError(
                f"Lost the connection to the current system's database server ({where}) while "
                f"copying table {table.name!r}. Check that it is running, then resume the copy."
            )
        return CopyError(
            f"Copying table {table.name!r} failed on the current system's database server "
            f"({where}): {error.args[-1]}"
        )


_worker: Transfer | None = None
_parent_pid = 0


def init_worker(settings: TransferSettings) -> None:
    """Set up a worker process: its own Transfer, opened lazily."""
    global _worker, _parent_pid
    _worker = Transfer(settings)
    _parent_pid = os.getppid()


def _current() -> Transfer:
    if _worker is None:
        raise RuntimeError("init_worker was not called in this process")
    if os.getppid() != _parent_pid:
        os._exit(1)  # the copy that started this worker is gone: take no new work
    return _worker


def run_chunk(table: TableSchema, chunk: Chunk) -> ChunkDone:
    """Worker entry point: copy one chunk."""
    return _current().copy_chunk(table, chunk)


def run_finish(table: TableSchema) -> str:
    """Worker entry point: finish one table."""
    return _current().finish_table(table)
