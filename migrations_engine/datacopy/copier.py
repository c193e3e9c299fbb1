"""The data copy as one call: `copy_database(source, target, ...)`.

It replaces the target database (or only the chosen tables) with the source's: tables with
their rows, indexes, AUTO_INCREMENT counters, partitions and generated columns, then foreign
keys, triggers, views and routines. Chunks are copied by worker processes, verified and
checkpointed one by one, so a copy that stopped can resume where it was.

Every definition from the source is checked before it runs here (see `schema` and `objects`);
what fails is not created and is listed in `CopyResult.refused` with the reason, and the rest
of the copy goes on. Views, triggers and routines get the definer account (MIGRATION_DEFINER)
as their DEFINER. Events are never copied, and are listed there too.

The target account may be the copier's own (`manage.py migration_accounts`), with rights on
the data database, its rehearsal copy and the checkpoints only: the copy needs no more.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql
from pymysql.connections import Connection

from config.env import MySQLURL
from migrations_engine.datacopy import checkpoints, objects
from migrations_engine.datacopy.checksums import ChunkChecksum
from migrations_engine.datacopy.chunking import Chunk, plan_chunks
from migrations_engine.datacopy.errors import (
    CopyError,
    SourceUnavailableError,
    UnsafeDefinitionError,
)
from migrations_engine.datacopy.objects import ROUTINE_KINDS, RefusedObject
from migrations_engine.datacopy.progress import ProgressCallback, ProgressTracker
from migrations_engine.datacopy.schema import (
    TableSchema,
    add_foreign_keys,
    base_table_names,
    create_table,
    database_charset,
    read_table,
)
from migrations_engine.datacopy.sql import (
    close_quietly,
    connect_source,
    connect_target,
    execute,
    fetch_one,
    is_connection_lost,
    quote_name,
)
from migrations_engine.datacopy.transfer import (
    ChunkDone,
    Transfer,
    TransferSettings,
    init_worker,
    run_chunk,
    run_finish,
)

DEFAULT_CHUNK_BYTES = 8 << 20
DEFAULT_SOURCE_WAIT = 300.0
LARGEST_CONCAT = 64 << 20
PACKET_MARGIN = 1 << 20


@dataclass(frozen=True)
class TableResult:
    """One copied table for the migration report: its rows and checksum, equal on both sides."""

    name: str
    rows: int
    checksum: str
    chunks: int


@dataclass(frozen=True)
class CopyResult:
    """What a copy did: per table rows and checksums, the other objects, and the effort."""

    source: str
    target: str
    tables: dict[str, TableResult]
    views: list[str]
    triggers: list[str]
    routines: list[str]
    rows: int
    bytes: int
    seconds: float
    chunks_total: int
    chunks_copied: int
    resumed: bool
    refused: list[RefusedObject] = field(default_factory=list)
    """What was not created here, with the reason: tables, views, triggers and routines whose
    definition failed a check or that the current system's server refused, and every event."""


@dataclass
class _Plan:
    """The tables and chunks of one copy, as stored with its checkpoints."""

    tables: list[str]
    chunks: list[Chunk]
    full: bool
    prepared: bool = False
    refused: list[RefusedObject] = field(default_factory=list)
    """The tables not copied because of their definition."""

    def as_json(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "chunks": [chunk.as_json() for chunk in self.chunks],
            "full": self.full,
            "prepared": self.prepared,
            "refused": [item.as_dict() for item in self.refused],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Plan:
        return cls(
            tables=list(data["tables"]),
            chunks=[Chunk.from_json(values) for values in data["chunks"]],
            full=bool(data["full"]),
            prepared=bool(data.get("prepared")),
            refused=[RefusedObject.from_dict(item) for item in data.get("refused", [])],
        )


def copy_database(
    source: MySQLURL,
    target: MySQLURL,
    *,
    tables: Iterable[str] | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    workers: int = 2,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    source_wait: float = DEFAULT_SOURCE_WAIT,
    definer: str | None = None,
    bandwidth_limit: int | None = None,
) -> CopyResult:
    """Replace the target database (or the chosen `tables` in it) with the source's.

    With `resume`, an unfinished copy into the same target database continues from its last
    committed chunk. Views, triggers and routines get `definer` (an account such as
    appliance_definer@localhost; settings.MIGRATION_DEFINER when not given) as their DEFINER.
    `bandwidth_limit` holds the rows' traffic to that many bytes per second, shared by the
    workers (None: no limit).
    Raises CopyError (or a subclass) with a message for the administrator.
    """
    started = time.monotonic()
    definer_account = objects.definer_sql(definer or _configured_definer())
    source_control, target_control = _connect_both(source, target)
    try:
        settings = _settings(
            source_control, target_control, source, target, chunk_bytes, source_wait
        )
        if bandwidth_limit:
            share = max(1, bandwidth_limit // max(1, workers))
            settings = replace(settings, bytes_per_second=share)
        plan, schemas, resumed = _prepare(
            source_control, target_control, source, target, tables, resume, settings
        )
        tracker = ProgressTracker(progress)
        pending, unfinished = _pending_work(target_control, target.database, plan, schemas, tracker)
        tracker.start()
        copied = _run_workers(settings, schemas, pending, unfinished, tracker, workers)
        tracker.set_phase("objects")
        close_quietly(source_control)  # its server may have gone away while workers waited
        source_control = _reconnect_source(source, source_wait)
        created, refused = _copy_objects(
            source_control, target_control, source, target, plan, schemas, definer_account
        )
        checkpoints.finish_run(target_control, target.database)
        tracker.set_phase("done")
        result = _result(target_control, source, target, plan, created, copied, resumed, started)
        return replace(result, refused=plan.refused + refused)
    finally:
        close_quietly(source_control)
        close_quietly(target_control)


def _configured_definer() -> str:
    """The definer account of copied objects, from the settings."""
    from django.conf import settings

    return str(settings.MIGRATION_DEFINER)


def _source_identity(source: MySQLURL) -> str:
    """Which database a copy comes from, whatever account reads it (each run has its own)."""
    return f"{source.host}:{source.port}/{source.database}"


def _reconnect_source(source: MySQLURL, source_wait: float) -> Connection:
    """A new connection to the source, waiting for it up to `source_wait` seconds."""
    deadline = time.monotonic() + source_wait
    pause = 0.2
    while True:
        try:
            return connect_source(source)
        except pymysql.MySQLError as error:
            if not is_connection_lost(error) or time.monotonic() > deadline:
                raise SourceUnavailableError(
                    f"The source database server ({source.redacted()}) does not answer "
                    f"({error.args[-1]}). Check that the source system is running, then resume "
                    "the copy: the tables copied so far are kept."
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _connect_both(source: MySQLURL, target: MySQLURL) -> tuple[Connection, Connection]:
    try:
        source_control = connect_source(source)
    except pymysql.MySQLError as error:
        raise CopyError(
            f"Cannot connect to the source database server ({source.redacted()}): "
            f"{error.args[-1]}. Check that it runs, that port {source.port} is reachable and "
            "that the migration account is allowed in."
        ) from None
    try:
        target_control = connect_target(target)
    except pymysql.MySQLError as error:
        close_quietly(source_control)
        raise CopyError(
            f"Cannot connect to the current system's database server ({target.redacted()}): "
            f"{error.args[-1]}."
        ) from None
    return source_control, target_control


def _allow_packets_as_big_as(target_control: Connection, packet: int, target: MySQLURL) -> str:
    """Raise the target's max_allowed_packet to the source's, so that any value fits.

    MariaDB lets a session read this setting but not change it, so it is raised server-wide
    (until the server restarts); new connections, the workers' included, get the new value.
    An account that may not change it (the copier's own has no SUPER) copies with the setting
    as it is: only a value larger than it cannot be copied. Returns the advice to give then
    when a chunk does not arrive intact ('' when the setting is large enough).
    """
    current = int(fetch_one(target_control, "SELECT @@global.max_allowed_packet")[0])
    if current >= packet:
        return ""
    try:
        execute(target_control, "SET GLOBAL max_allowed_packet = %s", (packet,))
    except pymysql.MySQLError:
        return (
            f" The current system's database server ({target.redacted()}) allows values of up "
            f"to {current} bytes, the source's up to {packet}, and the copy's account may not "
            f"change that: if a value is larger, set max_allowed_packet to at least {packet} "
            "there and resume the copy."
        )
    return ""


def _settings(
    source_control: Connection,
    target_control: Connection,
    source: MySQLURL,
    target: MySQLURL,
    chunk_bytes: int,
    source_wait: float,
) -> TransferSettings:
    """Chunk and GROUP_CONCAT sizes that fit the source server's max_allowed_packet."""
    packet = int(fetch_one(source_control, "SELECT @@global.max_allowed_packet")[0])
    advice = _allow_packets_as_big_as(target_control, packet, target)
    if advice:
        packet = int(fetch_one(target_control, "SELECT @@global.max_allowed_packet")[0])
    concat_limit = max(1 << 20, min(LARGEST_CONCAT, packet - PACKET_MARGIN))
    return TransferSettings(
        source=source,
        target=target,
        chunk_bytes=max(4096, min(chunk_bytes, concat_limit // 2)),
        concat_limit=concat_limit,
        source_wait=source_wait,
        packet_advice=advice,
    )


def _prepare(
    source_control: Connection,
    target_control: Connection,
    source: MySQLURL,
    target: MySQLURL,
    tables: Iterable[str] | None,
    resume: bool,
    settings: TransferSettings,
) -> tuple[_Plan, dict[str, TableSchema], bool]:
    """The plan to follow (the stored one when resuming) with the target ready for it."""
    checkpoints.ensure_state_tables(target_control)
    available = base_table_names(source_control, source.database)
    wanted = _wanted_tables(available, tables, source)
    stored = checkpoints.load_plan(target_control, target.database) if resume else None
    if stored is not None:
        stored_source, data = stored
        if stored_source != _source_identity(source):
            raise CopyError(
                f"The unfinished copy into {target.database!r} came from {stored_source}, not "
                f"from {_source_identity(source)}; start the copy again without resuming."
            )
        plan = _Plan.from_json(data)
        asked = sorted(plan.tables + [item.name for item in plan.refused])
        if tables is not None and asked != sorted(wanted):
            raise CopyError(
                "The unfinished copy was of other tables; resume it with the same tables or "
                "start again without resuming."
            )
        schemas = _read_tables_again(source_control, source.database, plan.tables)
    else:
        schemas, refused = _read_tables(source_control, source.database, wanted)
        chunks = [
            chunk
            for schema in sorted(schemas.values(), key=lambda item: -item.estimated_bytes)
            for chunk in plan_chunks(source_control, schema, settings.chunk_bytes)
        ]
        plan = _Plan(
            tables=[name for name in wanted if name in schemas],
            chunks=chunks,
            full=tables is None,
            refused=refused,
        )
        checkpoints.start_run(
            target_control, target.database, _source_identity(source), plan.as_json()
        )
    if not plan.prepared:
        _prepare_target(source_control, target_control, source, target, plan, schemas)
        plan.prepared = True
        checkpoints.start_run(
            target_control, target.database, _source_identity(source), plan.as_json()
        )
    execute(target_control, f"USE {quote_name(target.database)}")
    return plan, schemas, stored is not None


def _read_tables(
    source_control: Connection, database: str, names: list[str]
) -> tuple[dict[str, TableSchema], list[RefusedObject]]:
    """The tables' schemas, and the tables whose definition may not run here (not copied)."""
    schemas: dict[str, TableSchema] = {}
    refused: list[RefusedObject] = []
    for name in names:
        try:
            schemas[name] = read_table(source_control, database, name)
        except UnsafeDefinitionError as error:
            reason = f"{error}; the table and its rows were not copied"
            refused.append(RefusedObject("table", name, reason))
    return schemas, refused


def _read_tables_again(
    source_control: Connection, database: str, names: list[str]
) -> dict[str, TableSchema]:
    """The schemas of a resumed copy's tables, each still acceptable."""
    try:
        return {name: read_table(source_control, database, name) for name in names}
    except UnsafeDefinitionError as error:
        raise CopyError(
            f"A table's definition on the source changed since the copy started and is now "
            f"refused ({error}); start the copy again without resuming."
        ) from None


def _wanted_tables(
    available: list[str], tables: Iterable[str] | None, source: MySQLURL
) -> list[str]:
    if tables is None:
        return available
    wanted = list(dict.fromkeys(tables))
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise CopyError(
            f"The source database {source.database!r} has no table named "
            f"{', '.join(repr(name) for name in unknown)}."
        )
    return wanted


def _prepare_target(
    source_control: Connection,
    target_control: Connection,
    source: MySQLURL,
    target: MySQLURL,
    plan: _Plan,
    schemas: dict[str, TableSchema],
) -> None:
    """Empty the target: the whole database for a full copy, the chosen tables otherwise."""
    charset, collation = database_charset(source_control, source.database)
    name = quote_name(target.database)
    if plan.full:
        execute(target_control, f"DROP DATABASE IF EXISTS {name}")
    execute(
        target_control,
        f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET {charset} COLLATE {collation}",
    )
    execute(target_control, f"USE {name}")
    for table in plan.tables:
        create_table(target_control, schemas[table])


def _pending_work(
    target_control: Connection,
    database: str,
    plan: _Plan,
    schemas: dict[str, TableSchema],
    tracker: ProgressTracker,
) -> tuple[list[tuple[TableSchema, Chunk]], dict[str, int]]:
    """Chunks still to copy, and for each unfinished table how many of its chunks remain."""
    done = checkpoints.copied_chunks(target_control, database)
    finished = checkpoints.finished_tables(target_control, database)
    per_table: dict[str, int] = {}
    for chunk in plan.chunks:
        per_table[chunk.table] = per_table.get(chunk.table, 0) + 1
    for table in plan.tables:
        schema = schemas[table]
        tracker.add_table(
            table,
            schema.estimated_rows,
            per_table.get(table, 0),
            deferred=len(schema.deferred_keys) + len(schema.foreign_keys),
        )
    pending = []
    remaining = {table: 0 for table in plan.tables if table not in finished}
    for chunk in plan.chunks:
        previous = done.get((chunk.table, chunk.number))
        if previous is not None:
            tracker.chunk_done(chunk.table, previous[0].rows, previous[1], copied_now=False)
        else:
            pending.append((schemas[chunk.table], chunk))
            remaining[chunk.table] = remaining.get(chunk.table, 0) + 1
    tracker.tables_done = len(finished & set(plan.tables))
    return pending, remaining


class _InlineExecutor:
    """Runs work in this process, for a copy with a single worker."""

    def __init__(self, settings: TransferSettings) -> None:
        self.transfer = Transfer(settings)

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        method = self.transfer.copy_chunk if function is run_chunk else self.transfer.finish_table
        try:
            future.set_result(method(*args))
        except Exception as error:  # handed to the caller through the future
            future.set_exception(error)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.transfer.close()


def _run_workers(
    settings: TransferSettings,
    schemas: dict[str, TableSchema],
    pending: list[tuple[TableSchema, Chunk]],
    remaining: dict[str, int],
    tracker: ProgressTracker,
    workers: int,
) -> int:
    """Copy the pending chunks and finish each table once its last chunk is in; chunks copied."""
    executor: Any
    if workers <= 1:
        executor = _InlineExecutor(settings)
    else:
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(settings,),
        )
    queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque(
        (run_chunk, (table, chunk)) for table, chunk in pending
    )
    for table, count in remaining.items():
        if count == 0:
            queue.appendleft((run_finish, (schemas[table],)))
    in_flight: set[Future[Any]] = set()
    copied = 0
    try:
        while queue or in_flight:
            while queue and len(in_flight) < max(1, workers):
                function, args = queue.popleft()
                in_flight.add(executor.submit(function, *args))
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = future.result()
                if isinstance(outcome, ChunkDone):
                    copied += 1
                    table = outcome.chunk.table
                    tracker.chunk_done(table, outcome.checksum.rows, outcome.bytes)
                    remaining[table] -= 1
                    if remaining[table] == 0:
                        queue.appendleft((run_finish, (schemas[table],)))
                else:
                    tracker.table_finished(str(outcome))
    except BrokenProcessPool:
        raise CopyError("A copy worker process died; resume the copy to continue.") from None
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return copied


def _copy_objects(
    source_control: Connection,
    target_control: Connection,
    source: MySQLURL,
    target: MySQLURL,
    plan: _Plan,
    schemas: dict[str, TableSchema],
    definer: str,
) -> tuple[dict[str, list[str]], list[RefusedObject]]:
    """Foreign keys, then triggers; views and routines too for a full copy.

    Returns the names of what was created and what was not, with the reason (events too).
    """
    try:
        for table in plan.tables:
            add_foreign_keys(target_control, target.database, schemas[table])
        chosen = None if plan.full else set(plan.tables)
        items = objects.read_triggers(source_control, source.database, chosen)
        refused: list[RefusedObject] = []
        if plan.full:
            routines, other_routines = objects.read_routines(source_control, source.database)
            items += routines + objects.read_views(source_control, source.database)
            refused += other_routines
        ready = _checked_objects(items, definer, source.database, set(plan.tables), refused)
        failed = objects.create_objects(target_control, ready)
        refused += failed + objects.read_events(source_control, source.database)
    except pymysql.MySQLError as error:
        if is_connection_lost(error):
            raise CopyError(
                "A database server went away while views, triggers and routines were being "
                "copied; resume the copy when both servers answer."
            ) from None
        raise CopyError(f"Copying views, triggers or routines failed: {error.args[-1]}") from None
    not_made = {(item.kind, item.name) for item in failed}
    created = [item for item in ready if (item.kind.lower(), item.name) not in not_made]
    return {
        "triggers": [item.name for item in created if item.kind == "TRIGGER"],
        "views": [item.name for item in created if item.kind == "VIEW"],
        "routines": [
            f"{item.kind.lower()} {item.name}" for item in created if item.kind in ROUTINE_KINDS
        ],
    }, refused


def _checked_objects(
    items: list[objects.SchemaObject],
    definer: str,
    database: str,
    tables: set[str],
    refused: list[RefusedObject],
) -> list[objects.SchemaObject]:
    """The objects ready to create here; those that fail a check go to `refused`."""
    ready = []
    for item in items:
        try:
            ready.append(
                objects.prepare_object(item, definer=definer, database=database, tables=tables)
            )
        except UnsafeDefinitionError as error:
            refused.append(RefusedObject(item.kind.lower(), item.name, str(error)))
    return ready


def _result(
    target_control: Connection,
    source: MySQLURL,
    target: MySQLURL,
    plan: _Plan,
    created: dict[str, list[str]],
    copied: int,
    resumed: bool,
    started: float,
) -> CopyResult:
    """Per-table totals from the checkpoints: what was verified, whichever run copied it."""
    done = checkpoints.copied_chunks(target_control, target.database)
    tables: dict[str, TableResult] = {}
    total_bytes = 0
    for table in plan.tables:
        entries = [value for key, value in done.items() if key[0] == table]
        checksum = sum((entry[0] for entry in entries), ChunkChecksum())
        total_bytes += sum(entry[1] for entry in entries)
        tables[table] = TableResult(table, checksum.rows, checksum.text, len(entries))
    return CopyResult(
        source=source.redacted(),
        target=target.redacted(),
        tables=tables,
        views=created["views"],
        triggers=created["triggers"],
        routines=created["routines"],
        rows=sum(item.rows for item in tables.values()),
        bytes=total_bytes,
        seconds=time.monotonic() - started,
        chunks_total=len(plan.chunks),
        chunks_copied=copied,
        resumed=resumed,
    )


def attempts_per_chunk(target: MySQLURL) -> dict[tuple[str, int], int]:
    """How often each chunk of the copy into `target` was started (for reports and tests)."""
    connection = connect_target(target)
    try:
        return checkpoints.attempts_per_chunk(connection, target.database)
    finally:
        connection.close()


def copy_forget(target: MySQLURL) -> None:
    """Drop the target database and the checkpoints of copies into it (a scratch copy)."""
    connection = connect_target(target)
    try:
        execute(connection, f"DROP DATABASE IF EXISTS {quote_name(target.database)}")
        checkpoints.forget_copy(connection, target.database)
    finally:
        close_quietly(connection)
