"""The tables of the source database as the copier sees them, and how they are made on the target.

A table is created on the target without its secondary indexes and foreign keys (building an
index once after the load is much faster than updating it row by row); `finish_table` adds them
afterwards, and is safe to run again after a crash because it only adds what is missing.

A table's CREATE statement comes from the source and runs here, so `read_table` checks it
first: exactly one CREATE TABLE statement for that table, filled by no query, and with
nothing that reaches beyond the database: no DATA DIRECTORY or INDEX DIRECTORY (files written
anywhere on disk), no CONNECTION, no storage engine outside ALLOWED_ENGINES (CONNECT,
FEDERATED or SPIDER read and write other servers and files), no foreign key to another
database. A table that fails raises UnsafeDefinitionError and is not copied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymysql.connections import Connection

from migrations_engine.datacopy.errors import UnsafeDefinitionError
from migrations_engine.datacopy.objects import (
    NAME,
    STRING,
    WORD,
    Token,
    require_single_statements,
    sql_tokens,
)
from migrations_engine.datacopy.sql import execute, fetch_all, fetch_one, quote_name

DEFERRED_KEY_PREFIXES = ("KEY ", "UNIQUE KEY ", "FULLTEXT KEY ", "SPATIAL KEY ")
CHUNKABLE_TYPES = frozenset(
    {
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "bigint",
        "decimal",
        "char",
        "varchar",
        "binary",
        "varbinary",
        "date",
        "datetime",
        "timestamp",
        "time",
        "year",
    }
)
"""Column types whose ORDER BY order and comparison order agree, so value ranges split rows."""
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
IDENTIFIER = re.compile(r"`((?:[^`]|``)*)`")
ALLOWED_ENGINES = frozenset({"INNODB", "ARIA", "MYISAM", "MEMORY"})
"""Storage engines that keep a table's rows in the server's own files, nowhere else."""


@dataclass(frozen=True)
class Column:
    """One column: its name, its type, and whether the server computes it."""

    name: str
    data_type: str
    generated: bool
    nullable: bool = True
    max_bytes: int | None = None


@dataclass(frozen=True)
class TableSchema:
    """What the copier needs to know about one base table of the source."""

    name: str
    columns: tuple[Column, ...]
    create_sql: str
    load_sql: str
    deferred_keys: tuple[str, ...]
    foreign_keys: tuple[str, ...]
    chunk_column: str | None
    chunk_is_integer: bool
    unique_rows: bool
    auto_increment: int | None
    estimated_rows: int
    estimated_bytes: int

    @property
    def copied_columns(self) -> tuple[Column, ...]:
        """The columns whose values travel (generated ones are computed by the target)."""
        return tuple(column for column in self.columns if not column.generated)


def database_charset(connection: Connection, database: str) -> tuple[str, str]:
    """The default character set and collation of a database."""
    row = fetch_one(
        connection,
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
        "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
        (database,),
    )
    return str(row[0]), str(row[1])


def base_table_names(connection: Connection, database: str) -> list[str]:
    """The names of the database's base tables (not views), in name order."""
    rows = fetch_all(
        connection,
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (database,),
    )
    return [str(row[0]) for row in rows]


def read_table(connection: Connection, database: str, name: str) -> TableSchema:
    """Everything about one table, read from the source.

    Raises UnsafeDefinitionError when its definition may not run here (see the module's
    description).
    """
    columns = _read_columns(connection, database, name)
    create_sql = str(fetch_one(connection, f"SHOW CREATE TABLE {quote_name(name)}")[1])
    check_create_table(create_sql, name)
    chunk_column = _chunk_column(connection, database, name, columns)
    auto_increment, rows, data_bytes = fetch_one(
        connection,
        "SELECT AUTO_INCREMENT, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (database, name),
    )
    # The chunk column's index serves the chunk queries; an AUTO_INCREMENT column needs a key.
    keep = {name for name in (chunk_column, _auto_increment_column(create_sql)) if name}
    load_sql, deferred, foreign = split_create_table(create_sql, keep_first_columns=keep)
    check_create_table(load_sql, name)
    for definition in deferred + foreign:
        check_key_definition(definition)
    types = {column.name: column.data_type for column in columns}
    return TableSchema(
        name=name,
        columns=tuple(columns),
        create_sql=create_sql,
        load_sql=load_sql,
        deferred_keys=deferred,
        foreign_keys=foreign,
        chunk_column=chunk_column,
        chunk_is_integer=types.get(chunk_column or "") in INTEGER_TYPES,
        unique_rows=_has_unique_rows(connection, database, name, columns),
        auto_increment=int(auto_increment) if auto_increment is not None else None,
        estimated_rows=int(rows or 0),
        estimated_bytes=int(data_bytes or 0),
    )


def check_create_table(create_sql: str, name: str) -> None:
    """Refuse (UnsafeDefinitionError) a CREATE TABLE text that may not run here.

    The text is read as the target runs it: with the copier's session sql_mode, ''.
    """
    tokens = sql_tokens(create_sql)
    if any(token.is_symbol(";") for token in tokens):
        raise UnsafeDefinitionError("its text holds more than one statement")
    if len(tokens) < 4 or not (tokens[0].is_word("CREATE") and tokens[1].is_word("TABLE")):
        raise UnsafeDefinitionError("its text is not a CREATE TABLE statement")
    if tokens[2].kind not in (NAME, WORD) or tokens[3].is_symbol("."):
        raise UnsafeDefinitionError("its text creates a table in another database")
    if tokens[2].value != name:
        raise UnsafeDefinitionError(f"its text creates table {tokens[2].value!r}, not {name!r}")
    if not tokens[3].is_symbol("(") or (len(tokens) > 4 and tokens[4].is_word("LIKE")):
        raise UnsafeDefinitionError("its text does not list the table's columns")
    _check_options(tokens)


def check_key_definition(definition: str) -> None:
    """Refuse an index or foreign key definition that is more than one (it is added by ALTER
    TABLE ... ADD, where a second clause could change the table)."""
    tokens = sql_tokens(definition)
    if not tokens or not tokens[0].is_word("KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "CONSTRAINT"):
        raise UnsafeDefinitionError(f"its text has an unexpected definition: {definition[:80]}")
    depth = 0
    for token in tokens:
        depth += token.is_symbol("(") - token.is_symbol(")")
        if depth == 0 and (token.is_symbol(",") or token.is_symbol(";")):
            raise UnsafeDefinitionError(
                f"its text has a definition with more than one clause: {definition[:80]}"
            )
    _check_options(tokens)


def _check_options(tokens: list[Token]) -> None:
    """Refuse options that reach beyond the database, wherever they are in the statement."""
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.is_word("DATA", "INDEX") and following and following.is_word("DIRECTORY"):
            raise UnsafeDefinitionError(
                f"it keeps its files in a directory of its choosing ({token.value} DIRECTORY)"
            )
        if token.is_word("CONNECTION"):
            raise UnsafeDefinitionError("it connects to another server (CONNECTION)")
        if token.is_word("ENGINE"):
            _check_engine(tokens, index + 1)
        if token.is_word("SELECT"):
            raise UnsafeDefinitionError("its text fills the table from a query (SELECT)")
        if token.is_word("REFERENCES") and _is_qualified(tokens, index + 1):
            raise UnsafeDefinitionError(
                f"it has a foreign key to a table of database {tokens[index + 1].value!r}"
            )


def _check_engine(tokens: list[Token], index: int) -> None:
    if index < len(tokens) and tokens[index].is_symbol("="):
        index += 1
    engine = tokens[index] if index < len(tokens) else None
    if engine is None or engine.kind not in (WORD, NAME, STRING):
        raise UnsafeDefinitionError("its text names no storage engine after ENGINE")
    if engine.value.upper() not in ALLOWED_ENGINES:
        raise UnsafeDefinitionError(
            f"its storage engine {engine.value} may reach beyond the database (the copy "
            "accepts InnoDB, Aria, MyISAM and MEMORY tables)"
        )


def _is_qualified(tokens: list[Token], index: int) -> bool:
    """Whether a `database`.`table` name starts at `index`."""
    return index + 1 < len(tokens) and tokens[index + 1].is_symbol(".")


def _read_columns(connection: Connection, database: str, table: str) -> list[Column]:
    rows = fetch_all(
        connection,
        "SELECT COLUMN_NAME, DATA_TYPE, IS_GENERATED, IS_NULLABLE, CHARACTER_OCTET_LENGTH "
        "FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    return [
        Column(
            str(name),
            str(kind).lower(),
            generated == "ALWAYS",
            nullable == "YES",
            int(octets) if octets is not None else None,
        )
        for name, kind, generated, nullable, octets in rows
    ]


def _has_unique_rows(
    connection: Connection, database: str, table: str, columns: list[Column]
) -> bool:
    """Whether a primary key or a unique key on NOT NULL columns makes every row distinct."""
    rows = fetch_all(
        connection,
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0",
        (database, table),
    )
    nullable = {column.name for column in columns if column.nullable}
    indexes: dict[str, list[str]] = {}
    for index_name, column_name in rows:
        indexes.setdefault(str(index_name), []).append(str(column_name))
    return any(not nullable.intersection(names) for names in indexes.values())


def _chunk_column(
    connection: Connection, database: str, table: str, columns: list[Column]
) -> str | None:
    """The column whose value ranges split the table into chunks, best index first.

    The primary key's first column, else a unique key's, else any index's; None when the
    table has no usable index (it is then copied as one chunk).
    """
    rows = fetch_all(
        connection,
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE "
        "FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND SEQ_IN_INDEX = 1",
        (database, table),
    )
    types = {column.name: column for column in columns}

    def rank(row: tuple[object, ...]) -> int:
        index_name, non_unique = row[0], row[1]
        return 0 if index_name == "PRIMARY" else 1 if not non_unique else 2

    for _index, _non_unique, column_name, sub_part, index_type in sorted(rows, key=rank):
        column = types.get(str(column_name))
        if (
            column is not None
            and not column.generated
            and sub_part is None
            and index_type == "BTREE"
            and column.data_type in CHUNKABLE_TYPES
        ):
            return column.name
    return None


def split_create_table(
    create_sql: str, keep_first_columns: set[str] | frozenset[str] = frozenset()
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Take the secondary indexes and foreign keys out of a CREATE TABLE statement.

    Returns the statement to create the table for loading, the index definitions to add after
    the load, and the foreign key definitions to add once every table is there. An index whose
    first column is in `keep_first_columns` stays (the chunk queries need it during the load).
    """
    lines = create_sql.split("\n")
    kept: list[str] = []
    deferred: list[str] = []
    foreign: list[str] = []
    for line in lines:
        definition = line.strip().rstrip(",")
        if definition.startswith("CONSTRAINT ") and " FOREIGN KEY " in definition:
            foreign.append(definition)
        elif definition.startswith(DEFERRED_KEY_PREFIXES) and not _first_column_in(
            definition, keep_first_columns
        ):
            deferred.append(definition)
        else:
            kept.append(line)
    return _fix_commas(kept), tuple(deferred), tuple(foreign)


def _fix_commas(lines: list[str]) -> str:
    """Drop the comma left dangling before the closing parenthesis of the column list."""
    fixed = list(lines)
    for number in range(len(fixed) - 1):
        if fixed[number + 1].startswith(")") and fixed[number].endswith(","):
            fixed[number] = fixed[number][:-1]
    return "\n".join(fixed)


def _first_column_in(definition: str, names: set[str] | frozenset[str]) -> bool:
    columns_part = definition[definition.find("(") :]
    match = IDENTIFIER.search(columns_part)
    return bool(match) and match.group(1).replace("``", "`") in names  # type: ignore[union-attr]


def _auto_increment_column(create_sql: str) -> str | None:
    """The AUTO_INCREMENT column of a CREATE TABLE statement, if any."""
    for line in create_sql.split("\n"):
        stripped = line.strip()
        match = IDENTIFIER.match(stripped)
        if match and " AUTO_INCREMENT" in stripped:
            return match.group(1).replace("``", "`")
    return None


def definition_name(definition: str) -> str:
    """The name of an index or constraint definition (its first quoted identifier)."""
    match = IDENTIFIER.search(definition)
    return match.group(1).replace("``", "`") if match else ""


def create_table(target: Connection, table: TableSchema) -> None:
    """Replace the target's table with an empty one ready to load."""
    require_single_statements(target)
    execute(target, f"DROP TABLE IF EXISTS {quote_name(table.name)}")
    execute(target, table.load_sql)


def finish_table(target: Connection, database: str, table: TableSchema) -> None:
    """Add the secondary indexes the target's table still lacks and set its AUTO_INCREMENT."""
    existing = {
        str(row[0])
        for row in fetch_all(
            target,
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table.name),
        )
    }
    missing = [key for key in table.deferred_keys if definition_name(key) not in existing]
    plain = [key for key in missing if not key.startswith("FULLTEXT")]
    if plain:
        additions = ", ".join(f"ADD {key}" for key in plain)
        execute(target, f"ALTER TABLE {quote_name(table.name)} {additions}")
    for key in missing:
        if key.startswith("FULLTEXT"):  # InnoDB builds one full-text index per statement
            execute(target, f"ALTER TABLE {quote_name(table.name)} ADD {key}")
    if table.auto_increment is not None:
        execute(
            target,
            f"ALTER TABLE {quote_name(table.name)} AUTO_INCREMENT = %s",
            (table.auto_increment,),
        )


def add_foreign_keys(target: Connection, database: str, table: TableSchema) -> None:
    """Add the table's foreign keys that the target still lacks (without re-checking rows)."""
    existing = {
        str(row[0])
        for row in fetch_all(
            target,
            "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table.name),
        )
    }
    missing = [key for key in table.foreign_keys if definition_name(key) not in existing]
    if missing:
        additions = ", ".join(f"ADD {key}" for key in missing)
        execute(target, f"ALTER TABLE {quote_name(table.name)} {additions}")
