"""Selective migration: only chosen subscriber accounts, with what belongs to them.

An account is a `subscriber` row (by user name) with its `accounting_session` and `voucher`
rows, and the lines of the user traffic logs that name it. The chosen accounts replace the
accounts of the same name on this system; every other account here stays as it is. Each
account is copied in its own savepoint and verified by a digest of its rows computed on both
sides (without the ids, which this system assigns anew).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connections, transaction

from appliance.routers import DATA_DB_ALIAS

OWNED_TABLES = ("accounting_session", "voucher")
"""The tables whose rows belong to an account, through their subscriber_id."""


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


def _rows(cursor: Any, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
    cursor.execute(sql, list(args))
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def account_rows(cursor: Any, username: str) -> dict[str, list[dict[str, Any]]] | None:
    """An account's rows: its subscriber row and the rows it owns (None if there is none)."""
    subscribers = _rows(cursor, "SELECT * FROM subscriber WHERE username = %s", [username])
    if not subscribers:
        return None
    owner = subscribers[0]["id"]
    rows = {"subscriber": subscribers}
    for table in OWNED_TABLES:
        rows[table] = _rows(
            cursor, f"SELECT * FROM `{table}` WHERE subscriber_id = %s ORDER BY id", [owner]
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
        cursor.execute("SELECT id FROM subscriber WHERE username = %s", [username])
        existing = cursor.fetchone()
        if existing:
            for table in OWNED_TABLES:
                cursor.execute(f"DELETE FROM `{table}` WHERE subscriber_id = %s", [existing[0]])
            cursor.execute("DELETE FROM subscriber WHERE id = %s", [existing[0]])
        owner = _insert(cursor, "subscriber", rows["subscriber"][0], {})
        for table in OWNED_TABLES:
            for row in rows[table]:
                _insert(cursor, table, row, {"subscriber_id": owner})


def _insert(cursor: Any, table: str, row: dict[str, Any], overrides: dict[str, Any]) -> int:
    values = {**{k: v for k, v in row.items() if k != "id"}, **overrides}
    columns = ", ".join(f"`{name}`" for name in values)
    marks = ", ".join(["%s"] * len(values))
    cursor.execute(f"INSERT INTO `{table}` ({columns}) VALUES ({marks})", list(values.values()))
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
