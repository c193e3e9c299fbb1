"""Views, triggers, stored procedures and functions: read from the source, made on the target.

Each is created with the SQL mode and character set it was created with on the source, the
way mariadb-dump does it. Triggers are made after the rows are loaded, so loading fires none.
Every creation first drops an object of the same name, so running it again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

import pymysql
from pymysql.connections import Connection

from migrations_engine.datacopy.errors import CopyError
from migrations_engine.datacopy.sql import execute, fetch_all, fetch_one, quote_name


@dataclass(frozen=True)
class SchemaObject:
    """One view, trigger, procedure or function, as its CREATE statement and session settings."""

    kind: str
    name: str
    create_sql: str
    sql_mode: str
    character_set_client: str
    collation_connection: str


def read_triggers(source: Connection, database: str, tables: set[str] | None) -> list[SchemaObject]:
    """The database's triggers (those of `tables` only, when given), in firing order."""
    rows = fetch_all(
        source,
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
        (database,),
    )
    triggers = []
    for name, table in rows:
        if tables is not None and table not in tables:
            continue
        row = fetch_one(source, f"SHOW CREATE TRIGGER {quote_name(str(name))}")
        triggers.append(
            SchemaObject("TRIGGER", str(name), str(row[2]), str(row[1]), str(row[3]), str(row[4]))
        )
    return triggers


def read_routines(source: Connection, database: str) -> list[SchemaObject]:
    """The database's stored procedures and functions."""
    rows = fetch_all(
        source,
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
        (database,),
    )
    routines = []
    for kind, name in rows:
        row = fetch_one(source, f"SHOW CREATE {kind} {quote_name(str(name))}")
        if row[2] is None:
            raise CopyError(
                f"The source's account may not read the definition of {str(kind).lower()} "
                f"{name!r}; grant it SHOW CREATE ROUTINE (or SELECT on mysql.proc)."
            )
        routines.append(
            SchemaObject(str(kind), str(name), str(row[2]), str(row[1]), str(row[3]), str(row[4]))
        )
    return routines


def read_views(source: Connection, database: str) -> list[SchemaObject]:
    """The database's views."""
    rows = fetch_all(
        source,
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME",
        (database,),
    )
    views = []
    for (name,) in rows:
        row = fetch_one(source, f"SHOW CREATE VIEW {quote_name(str(name))}")
        views.append(SchemaObject("VIEW", str(name), str(row[1]), "", str(row[2]), str(row[3])))
    return views


def create_object(target: Connection, item: SchemaObject) -> None:
    """Replace the object on the target with the source's definition."""
    execute(target, f"DROP {item.kind} IF EXISTS {quote_name(item.name)}")
    with target.cursor() as cursor:
        if item.sql_mode:
            cursor.execute("SET SESSION sql_mode = %s", (item.sql_mode,))
        cursor.execute(
            "SET SESSION character_set_client = %s, collation_connection = %s",
            (item.character_set_client, item.collation_connection),
        )
        try:
            cursor.execute(item.create_sql)
        finally:
            cursor.execute("SET NAMES utf8mb4")
            cursor.execute("SET SESSION sql_mode = ''")


def create_views(target: Connection, views: list[SchemaObject]) -> None:
    """Create views, each after the views it reads from (by retrying those that failed)."""
    pending = list(views)
    while pending:
        failed: list[tuple[SchemaObject, pymysql.MySQLError]] = []
        for view in pending:
            try:
                create_object(target, view)
            except pymysql.MySQLError as error:
                failed.append((view, error))
        if len(failed) == len(pending):
            first, reason = failed[0]
            raise CopyError(
                f"Could not create view {first.name!r} on the target: {reason.args[-1]}"
            )
        pending = [view for view, _ in failed]
