"""Checkpoints of a copy, kept on the target server in their own database.

A chunk's checkpoint is written in the same transaction as the chunk's rows, so after a crash
a chunk is either loaded and recorded or neither. The state lives outside the copied database,
which a copy drops and re-creates. One copy per target database: its name is the run's key.
"""

from __future__ import annotations

import json
from typing import Any

from pymysql.connections import Connection

from migrations_engine.datacopy.checksums import ChunkChecksum
from migrations_engine.datacopy.chunking import Chunk
from migrations_engine.datacopy.sql import execute, fetch_all, quote_name

STATE_DATABASE = "appliance_copy_state"

STATE_TABLES = (
    """CREATE TABLE IF NOT EXISTS copy_run (
        target_database VARCHAR(64) NOT NULL PRIMARY KEY,
        source VARCHAR(255) NOT NULL,
        plan LONGTEXT NOT NULL,
        started_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        finished_at DATETIME(3) NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS copy_chunk (
        target_database VARCHAR(64) NOT NULL,
        table_name VARCHAR(64) NOT NULL,
        chunk_number INT NOT NULL,
        row_count BIGINT UNSIGNED NOT NULL,
        bit_xor BIGINT UNSIGNED NOT NULL,
        crc_sum DECIMAL(40, 0) NOT NULL,
        bytes BIGINT UNSIGNED NOT NULL,
        copied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        PRIMARY KEY (target_database, table_name, chunk_number)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS copy_attempt (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        target_database VARCHAR(64) NOT NULL,
        table_name VARCHAR(64) NOT NULL,
        chunk_number INT NOT NULL,
        started_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        KEY ix_chunk (target_database, table_name, chunk_number)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS copy_table (
        target_database VARCHAR(64) NOT NULL,
        table_name VARCHAR(64) NOT NULL,
        finished_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        PRIMARY KEY (target_database, table_name)
    ) ENGINE=InnoDB""",
)
"""copy_attempt records each start of a chunk, so a report can tell how much work was redone."""


def _table(name: str) -> str:
    return f"{quote_name(STATE_DATABASE)}.{quote_name(name)}"


def ensure_state_tables(target: Connection) -> None:
    """Create the state database and its tables if they are not there yet."""
    execute(target, f"CREATE DATABASE IF NOT EXISTS {quote_name(STATE_DATABASE)}")
    for statement in STATE_TABLES:
        execute(
            target, statement.replace("EXISTS copy_", f"EXISTS {quote_name(STATE_DATABASE)}.copy_")
        )


def load_plan(target: Connection, database: str) -> tuple[str, dict[str, Any]] | None:
    """The source and plan of an unfinished or finished copy into `database`, if any."""
    rows = fetch_all(
        target,
        f"SELECT source, plan FROM {_table('copy_run')} WHERE target_database = %s",
        (database,),
    )
    if not rows:
        return None
    return str(rows[0][0]), json.loads(rows[0][1])


def start_run(target: Connection, database: str, source: str, plan: dict[str, Any]) -> None:
    """Forget any earlier copy into `database` and record the plan of a new one."""
    for name in ("copy_chunk", "copy_attempt", "copy_table", "copy_run"):
        execute(target, f"DELETE FROM {_table(name)} WHERE target_database = %s", (database,))
    execute(
        target,
        f"INSERT INTO {_table('copy_run')} (target_database, source, plan) VALUES (%s, %s, %s)",
        (database, source, json.dumps(plan)),
    )


def finish_run(target: Connection, database: str) -> None:
    """Mark the copy into `database` as complete."""
    execute(
        target,
        f"UPDATE {_table('copy_run')} SET finished_at = CURRENT_TIMESTAMP(3) "
        "WHERE target_database = %s",
        (database,),
    )


def record_chunk(
    target: Connection, database: str, chunk: Chunk, checksum: ChunkChecksum, size: int
) -> None:
    """Record a copied and verified chunk (call inside the chunk's own transaction)."""
    execute(
        target,
        f"REPLACE INTO {_table('copy_chunk')} "
        "(target_database, table_name, chunk_number, row_count, bit_xor, crc_sum, bytes) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            database,
            chunk.table,
            chunk.number,
            checksum.rows,
            checksum.bit_xor,
            checksum.crc_sum,
            size,
        ),
    )


def forget_chunks(target: Connection, database: str, table: str) -> None:
    """Forget the chunks of one table (it is copied again from scratch)."""
    execute(
        target,
        f"DELETE FROM {_table('copy_chunk')} WHERE target_database = %s AND table_name = %s",
        (database, table),
    )


def record_attempt(target: Connection, database: str, chunk: Chunk) -> None:
    """Note that copying a chunk has started (committed at once, outside the chunk's work)."""
    execute(
        target,
        f"INSERT INTO {_table('copy_attempt')} (target_database, table_name, chunk_number) "
        "VALUES (%s, %s, %s)",
        (database, chunk.table, chunk.number),
    )


def copied_chunks(
    target: Connection, database: str
) -> dict[tuple[str, int], tuple[ChunkChecksum, int]]:
    """The chunks already copied into `database`: checksum and bytes per (table, number)."""
    rows = fetch_all(
        target,
        "SELECT table_name, chunk_number, row_count, bit_xor, crc_sum, bytes "
        f"FROM {_table('copy_chunk')} WHERE target_database = %s",
        (database,),
    )
    return {
        (str(table), int(number)): (ChunkChecksum(int(count), int(xor), int(total)), int(size))
        for table, number, count, xor, total, size in rows
    }


def attempts_per_chunk(target: Connection, database: str) -> dict[tuple[str, int], int]:
    """How many times each chunk was started, over every run into `database`."""
    rows = fetch_all(
        target,
        f"SELECT table_name, chunk_number, COUNT(*) FROM {_table('copy_attempt')} "
        "WHERE target_database = %s GROUP BY table_name, chunk_number",
        (database,),
    )
    return {(str(table), int(number)): int(count) for table, number, count in rows}


def finished_tables(target: Connection, database: str) -> set[str]:
    """Tables whose indexes and counters are in place."""
    rows = fetch_all(
        target,
        f"SELECT table_name FROM {_table('copy_table')} WHERE target_database = %s",
        (database,),
    )
    return {str(row[0]) for row in rows}


def record_table_finished(target: Connection, database: str, table: str) -> None:
    """Note that a table's indexes and counters are in place."""
    execute(
        target,
        f"REPLACE INTO {_table('copy_table')} (target_database, table_name) VALUES (%s, %s)",
        (database, table),
    )


def forget_copy(target: Connection, database: str) -> None:
    """Forget every checkpoint of copies into `database` (it was dropped)."""
    ensure_state_tables(target)
    for name in ("copy_run", "copy_chunk", "copy_attempt", "copy_table"):
        execute(target, f"DELETE FROM {_table(name)} WHERE target_database = %s", [database])
