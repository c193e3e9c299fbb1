"""How a row travels and how a chunk is checksummed, both written as SQL run by the servers.

The source server formats each row as one line of `LOAD DATA` text (tab between fields, `\\N`
for NULL, short strings as raw bytes with backslash, tab and newline escaped, long ones in
hexadecimal), and the copier passes the bytes through without decoding a single field.

The checksum of a chunk is computed the same way on both servers, in the style of
pt-table-checksum: the row count and the BIT_XOR of the CRC32 of each row, plus the SUM of those
CRC32s for tables where a row may be there twice (a XOR cancels pairs out). It does not depend
on the order of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrations_engine.datacopy.schema import Column, TableSchema
from migrations_engine.datacopy.sql import quote_name

STRING_TYPES = frozenset(
    {
        "char",
        "varchar",
        "tinytext",
        "text",
        "mediumtext",
        "longtext",
        "enum",
        "set",
        "json",
        "binary",
        "varbinary",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "inet6",
        "uuid",
    }
)
"""Types whose values may hold any byte (tabs, newlines, backslashes included)."""
GEOMETRY_TYPES = frozenset(
    {
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    }
)
LONGEST_ESCAPED = 1024
"""Values up to this many bytes are escaped; longer ones travel in hexadecimal.

The server's REPLACE takes time proportional to length times occurrences, harmless on short
values and ruinous on a long text full of newlines; HEX is linear but doubles the bytes and
makes the target decode them.
"""
FLOAT_TYPES = frozenset({"float"})
BIT_TYPES = frozenset({"bit"})


@dataclass(frozen=True)
class ChunkChecksum:
    """Row count and order-independent checksum of a set of rows."""

    rows: int = 0
    bit_xor: int = 0
    crc_sum: int = 0

    def __add__(self, other: ChunkChecksum) -> ChunkChecksum:
        return ChunkChecksum(
            self.rows + other.rows, self.bit_xor ^ other.bit_xor, self.crc_sum + other.crc_sum
        )

    @property
    def text(self) -> str:
        """The checksum as one short string for reports."""
        return f"{self.bit_xor:08x}-{self.crc_sum:x}"


def travels_as_hex(column: Column) -> bool:
    """Whether the column's values travel in hexadecimal rather than escaped."""
    if column.data_type in GEOMETRY_TYPES:
        return True
    return column.data_type in STRING_TYPES and (column.max_bytes or 0) > LONGEST_ESCAPED


def _field(column: Column) -> str:
    """SQL for one column's value as LOAD DATA text.

    Strings travel as raw bytes with backslash, tab and newline escaped, or in hexadecimal when
    they can be long (see LONGEST_ESCAPED).
    """
    name = quote_name(column.name)
    if travels_as_hex(column):
        value = f"HEX({name})"
    elif column.data_type in STRING_TYPES:
        value = (
            f"REPLACE(REPLACE(REPLACE(CAST({name} AS BINARY), '\\\\', '\\\\\\\\'), "
            f"'\\t', '\\\\t'), '\\n', '\\\\n')"
        )
    elif column.data_type in BIT_TYPES:
        value = f"CAST({name} AS UNSIGNED)"
    elif column.data_type in FLOAT_TYPES:
        value = f"CAST({name} AS DOUBLE)"  # all of a FLOAT's digits, so it reads back the same
    else:
        value = name
    return f"IFNULL({value}, '\\\\N')"


def row_text_sql(table: TableSchema) -> str:
    """SQL for a row as one line of LOAD DATA text (without the newline)."""
    fields = ", ".join(_field(column) for column in table.copied_columns)
    return f"CONCAT_WS('\\t', {fields})"


def checksum_sql(table: TableSchema) -> str:
    """SQL for the aggregates of a chunk's checksum: COUNT, BIT_XOR and SUM of row CRC32s.

    The CRC32 is taken over the row's LOAD DATA line, which holds every value (escaped, so
    nothing is ambiguous) and a NULL marker for each NULL. The SUM is only
    needed where a row can be there twice (no unique key): it costs a second pass over the row.
    """
    crc = f"CRC32({row_text_sql(table)})"
    total = f"IFNULL(SUM({crc}), 0)" if not table.unique_rows else "0"
    return f"COUNT(*), IFNULL(BIT_XOR({crc}), 0), {total}"


def load_sql(table: TableSchema, *, database: str | None = None) -> str:
    """The LOAD DATA statement that reads lines made by `row_text_sql` into the table."""
    targets: list[str] = []
    assignments: list[str] = []
    for number, column in enumerate(table.copied_columns):
        if column.data_type in BIT_TYPES:
            variable = f"@bit{number}"
            targets.append(variable)
            assignments.append(f"{quote_name(column.name)} = CAST({variable} AS UNSIGNED)")
        elif travels_as_hex(column):
            variable = f"@hex{number}"
            targets.append(variable)
            assignments.append(f"{quote_name(column.name)} = UNHEX({variable})")
        else:
            targets.append(quote_name(column.name))
    name = quote_name(table.name)
    if database:
        name = f"{quote_name(database)}.{name}"
    statement = (
        f"LOAD DATA LOCAL INFILE 'chunk' INTO TABLE {name} CHARACTER SET binary "
        "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({', '.join(targets)})"
    )
    if assignments:
        statement += " SET " + ", ".join(assignments)
    return statement
