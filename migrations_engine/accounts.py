"""Selective migration: only chosen subscriber accounts, with what belongs to them.

An account is a `subscriber` row (by user name) with its `accounting_session` and `voucher`
rows, and the lines of the user traffic logs that name it. The chosen accounts replace the
accounts of the same name on this system; every other account here stays as it is. Each
account is copied in its own savepoint and verified by a digest of its rows computed on both
sides (without the ids, which this system assigns anew).

Names that come from the source are not trusted: every table and column name goes into SQL
through `quote_name`, and the source's host name must be a valid host name before it becomes
part of a file name here (`<log>.from-<host>.log.gz`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connections, transaction

from appliance.routers import DATA_DB_ALIAS
from migrations_engine.datacopy.sql import quote_name
from migrations_engine.remote.listing import name_refusal, name_shown

SUBSCRIBER_TABLE = "subscriber"
OWNED_TABLES = ("accounting_session", "voucher")
"""The tables whose rows belong to an account, through their subscriber_id."""
OWNER_COLUMN = "subscriber_id"

HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME_PATTERN = re.compile(rf"{HOST_LABEL}(?:\.{HOST_LABEL})*")
"""A DNS host name: labels of letters, digits and inner hyphens (63 at most), joined by dots."""
HOST_NAME_LIMIT = 253
LOG_SUFFIX = ".log.gz"


class UnsafeName(ValueError):
    """A name from the source that cannot become part of a file name here."""


def host_name_check(host: str) -> str:
    """The source's host name, if it is a valid host name; UnsafeName if not."""
    if len(host) > HOST_NAME_LIMIT or not HOST_NAME_PATTERN.fullmatch(host):
        raise UnsafeName(
            f"The source's host name {name_shown(host)!r} is not a valid host name (letters, "
            "digits and hyphens, in labels of at most 63 characters joined by dots), so the "
            "traffic logs copied from it cannot be named after it."
        )
    return host


def accounts_log_name(log_name: str, host: str) -> str:
    """`<log>.from-<host>.log.gz`: the file here for the chosen accounts' lines of the source's
    traffic log `log_name`; UnsafeName if either name cannot be part of a file name."""
    refusal = name_refusal(log_name)
    if refusal is None and not log_name.endswith(LOG_SUFFIX):
        refusal = f"name does not end in {LOG_SUFFIX}"
    if refusal is None and log_name == LOG_SUFFIX:
        refusal = f"name has nothing before {LOG_SUFFIX}"
    if refusal is not None:
        raise UnsafeName(f"The source's traffic log {name_shown(log_name)!r}: {refusal}.")
    return f"{log_name.removesuffix(LOG_SUFFIX)}.from-{host_name_check(host)}{LOG_SUFFIX}"


@dataclass
class AccountsResult:
    """Which accounts moved (with their row counts and digest) and which did not, and why."""

    migrated: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_migrated: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accounts_migrated": self.migrated,
            "accounts_not_migrated": [
                {"account": name, "reason": reason} for name, reason in self.not_migrated.items()
            ],
        }


def accounts_read(lines: Iterable[str]) -> list[str]:
    """User names from a list, one per line (blank lines and # comments ignored), in order."""
    names: list[str] = []
    for line in lines:
        name = line.split("#", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    return names


def _where(table: str, column: str) -> str:
    """`FROM table WHERE column = %s`, both names quoted."""
    return f"FROM {quote_name(table)} WHERE {quote_name(column)} = %s"


def insert_statement(table: str, columns: Iterable[str]) -> str:
    """`INSERT INTO table (columns) VALUES (%s, ...)`, every name quoted."""
    names = [quote_name(column) for column in columns]
    marks = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {quote_name(table)} ({', '.join(names)}) VALUES ({marks})"


def _rows(cursor: Any, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
    cursor.execute(sql, list(args))
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def account_rows(cursor: Any, username: str) -> dict[str, list[dict[str, Any]]] | None:
    """An account's rows: its subscriber row and the rows it owns (None if there is none)."""
    subscribers = _rows(cursor, f"SELECT * {_where(SUBSCRIBER_TABLE, 'username')}", [username])
    if not subscribers:
        return None
    owner = subscribers[0]["id"]
    rows = {SUBSCRIBER_TABLE: subscribers}
    for table in OWNED_TABLES:
        rows[table] = _rows(
            cursor,
            f"SELECT * {_where(table, OWNER_COLUMN)} ORDER BY {quote_name('id')}",
            [owner],
        )
    return rows


def account_digest(rows: dict[str, list[dict[str, Any]]]) -> str:
    """SHA-256 of an account's rows without their ids, the same on any system."""
    canonical = {
        table: sorted(
            json.dumps(
                {k: v for k, v in row.items() if k not in ("id", "subscriber_id")},
                sort_keys=True,
                default=str,
            )
            for row in table_rows
        )
        for table, table_rows in rows.items()
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def accounts_copy(source_cursor: Any, usernames: list[str]) -> AccountsResult:
    """Copy the chosen accounts from the source's data database into this system's."""
    result = AccountsResult()
    for username in usernames:
        rows = account_rows(source_cursor, username)
        if rows is None:
            result.not_migrated[username] = "there is no such account on the source"
            continue
        try:
            with transaction.atomic(using=DATA_DB_ALIAS):
                _account_replace(username, rows)
                copied = _here(username)
                if copied is None or account_digest(copied) != account_digest(rows):
                    raise VerificationFailed
        except IntegrityError as error:
            result.not_migrated[username] = f"it conflicts with data on this system: {error}"
            continue
        except VerificationFailed:
            result.not_migrated[username] = "its rows here differ from the source's after copying"
            continue
        result.migrated[username] = {
            "sessions": len(rows["accounting_session"]),
            "vouchers": len(rows["voucher"]),
            "sha256": account_digest(rows),
        }
    return result


class VerificationFailed(Exception):
    """An account's rows here do not match the source's."""


def _here(username: str) -> dict[str, list[dict[str, Any]]] | None:
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        return account_rows(cursor, username)


def _account_replace(username: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Remove the account of that name here (with what it owns), then insert the source's."""
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            f"SELECT {quote_name('id')} {_where(SUBSCRIBER_TABLE, 'username')}", [username]
        )
        existing = cursor.fetchone()
        if existing:
            for table in OWNED_TABLES:
                cursor.execute(f"DELETE {_where(table, OWNER_COLUMN)}", [existing[0]])
            cursor.execute(f"DELETE {_where(SUBSCRIBER_TABLE, 'id')}", [existing[0]])
        owner = _insert(cursor, SUBSCRIBER_TABLE, rows[SUBSCRIBER_TABLE][0], {})
        for table in OWNED_TABLES:
            for row in rows[table]:
                _insert(cursor, table, row, {OWNER_COLUMN: owner})


def _insert(cursor: Any, table: str, row: dict[str, Any], overrides: dict[str, Any]) -> int:
    values = {**{k: v for k, v in row.items() if k != "id"}, **overrides}
    cursor.execute(insert_statement(table, values), list(values.values()))
    return int(cursor.lastrowid)


def traffic_lines_filter(compressed: Iterable[bytes], usernames: set[str]) -> Iterator[bytes]:
    """The lines of a gzipped traffic log (a stream of chunks) that name one of the accounts."""
    reader = io.BufferedReader(_ChunkStream(iter(compressed)))
    with gzip.GzipFile(fileobj=reader) as lines:
        for line in lines:
            fields = line.split(b" ", 2)
            if len(fields) > 1 and fields[1].decode(errors="replace") in usernames:
                yield line


class _ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size
