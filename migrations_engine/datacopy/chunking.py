"""Splits a table into chunks: half-open ranges of one indexed column's values.

Chunk n holds the rows with `lower <= column < upper`; the first chunk has no lower bound and
also holds the NULLs, the last has no upper bound, so the chunks hold every row exactly once on
the source and on the target alike. A table without a usable index is one chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pymysql.connections import Connection

from migrations_engine.datacopy.schema import TableSchema
from migrations_engine.datacopy.sql import fetch_one, quote_name

MIN_ROWS_PER_CHUNK = 100
FALLBACK_ROW_BYTES = 200


@dataclass(frozen=True)
class Chunk:
    """One range of a table's rows; the unit that is copied, verified and checkpointed."""

    table: str
    number: int
    lower: Any = None
    upper: Any = None

    def as_json(self) -> list[Any]:
        """The chunk as JSON-friendly values, for the checkpoint table."""
        return [self.table, self.number, _bound_to_json(self.lower), _bound_to_json(self.upper)]

    @classmethod
    def from_json(cls, values: list[Any]) -> Chunk:
        """The chunk `as_json` described."""
        table, number, lower, upper = values
        return cls(str(table), int(number), _bound_from_json(lower), _bound_from_json(upper))


def _bound_to_json(value: Any) -> Any:
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, (Decimal, date, datetime, time, timedelta)):
        return {"text": str(value)}
    raise TypeError(f"cannot store a chunk bound of type {type(value).__name__}")


def _bound_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"]) if "hex" in value else value["text"]
    return value


def chunk_predicate(table: TableSchema, chunk: Chunk) -> tuple[str, tuple[Any, ...]]:
    """The WHERE condition that selects the chunk's rows, and its parameters."""
    if table.chunk_column is None:
        return "TRUE", ()
    column = quote_name(table.chunk_column)
    if chunk.lower is None and chunk.upper is None:
        return "TRUE", ()
    if chunk.lower is None:
        return f"({column} < %s OR {column} IS NULL)", (chunk.upper,)
    if chunk.upper is None:
        return f"{column} >= %s", (chunk.lower,)
    return f"{column} >= %s AND {column} < %s", (chunk.lower, chunk.upper)


def rows_per_chunk(table: TableSchema, chunk_bytes: int) -> int:
    """How many rows fit the byte budget of a chunk, from the server's size estimates."""
    row_bytes = FALLBACK_ROW_BYTES
    if table.estimated_rows > 0 and table.estimated_bytes > 0:
        row_bytes = max(1, table.estimated_bytes // table.estimated_rows)
    return max(MIN_ROWS_PER_CHUNK, chunk_bytes // row_bytes)


def plan_chunks(source: Connection, table: TableSchema, chunk_bytes: int) -> list[Chunk]:
    """Cut the table into chunks of about `chunk_bytes` each."""
    if table.chunk_column is None:
        return [Chunk(table.name, 0)]
    step_rows = rows_per_chunk(table, chunk_bytes)
    if table.chunk_is_integer:
        bounds = _integer_bounds(source, table, step_rows)
    else:
        bounds = _walked_bounds(source, table, step_rows)
    edges: list[Any] = [None, *bounds, None]
    return [
        Chunk(table.name, number, edges[number], edges[number + 1])
        for number in range(len(edges) - 1)
    ]


def _integer_bounds(source: Connection, table: TableSchema, step_rows: int) -> list[int]:
    """Evenly spaced values between the column's minimum and maximum."""
    column = quote_name(str(table.chunk_column))
    lowest, highest = fetch_one(
        source, f"SELECT MIN({column}), MAX({column}) FROM {quote_name(table.name)}"
    )
    if lowest is None:
        return []
    count = math.ceil(max(table.estimated_rows, 1) / step_rows)
    if count <= 1:
        return []
    width = max(1, math.ceil((int(highest) - int(lowest) + 1) / count))
    return list(range(int(lowest) + width, int(highest) + 1, width))


def _walked_bounds(source: Connection, table: TableSchema, step_rows: int) -> list[Any]:
    """About every `step_rows`-th value, read by walking the column's index.

    Each bound is strictly greater than the one before in the column's own collation, so
    duplicates and case-insensitive twins never make an endless walk.
    """
    column = quote_name(str(table.chunk_column))
    name = quote_name(table.name)
    bounds: list[Any] = []
    condition, offset = f"{column} IS NOT NULL", step_rows
    args: tuple[Any, ...] = ()
    while True:
        row = _first_or_none(
            source,
            f"SELECT {column} FROM {name} WHERE {condition} ORDER BY {column} "
            f"LIMIT 1 OFFSET {offset}",
            args,
        )
        if row is None:
            return bounds
        bounds.append(row[0])
        condition, args, offset = f"{column} > %s", (row[0],), step_rows - 1


def _first_or_none(source: Connection, statement: str, args: Any) -> tuple[Any, ...] | None:
    with source.cursor() as cursor:
        cursor.execute(statement, args)
        row = cursor.fetchone()
    return tuple(row) if row is not None else None
