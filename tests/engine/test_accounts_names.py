"""Names from the source in selective migration: host names in file names, identifiers in SQL."""

from __future__ import annotations

from typing import Any

import pytest

from migrations_engine import accounts


def test_a_source_log_gets_the_source_host_name_in_its_name() -> None:
    assert (
        accounts.accounts_log_name("traffic-20260601.log.gz", "appliance-old")
        == "traffic-20260601.from-appliance-old.log.gz"
    )
    assert (
        accounts.accounts_log_name("traffic.log.gz", "old.example.org")
        == "traffic.from-old.example.org.log.gz"
    )


@pytest.mark.parametrize(
    "host",
    [
        "../../etc/cron.d/x",
        "a/b",
        "..",
        ".",
        "",
        "host\0name",
        "-leading-hyphen",
        "trailing-hyphen-",
        "two..dots",
        "with space",
        "under_score",
        "x" * 64,
        ".".join(["label"] * 50),
    ],
)
def test_a_host_name_that_is_not_a_dns_name_is_refused_clearly(host: str) -> None:
    with pytest.raises(accounts.UnsafeName, match="is not a valid host name"):
        accounts.accounts_log_name("traffic-20260601.log.gz", host)


@pytest.mark.parametrize("name", ["../traffic.log.gz", "a/b.log.gz", "nul\0.log.gz", ".log.gz"])
def test_a_log_name_that_is_not_a_plain_file_name_is_refused(name: str) -> None:
    with pytest.raises(accounts.UnsafeName, match="traffic log"):
        accounts.accounts_log_name(name, "appliance-old")


class RecordingCursor:
    """A cursor that notes each statement and answers with one subscriber and nothing else."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.description: list[tuple[str]] = []
        self.rows: list[tuple[Any, ...]] = []
        self.lastrowid = 7

    def execute(self, sql: str, args: Any = None) -> None:
        self.statements.append(sql)
        subscriber = "`subscriber`" in sql and "`username`" in sql
        self.description = [("id",), ("username",)] if subscriber else [("id",)]
        self.rows = [(1, "alice")] if subscriber else []

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


def test_every_identifier_in_an_accounts_query_is_quoted() -> None:
    cursor = RecordingCursor()
    rows = accounts.account_rows(cursor, "alice")
    assert rows == {
        "subscriber": [{"id": 1, "username": "alice"}],
        "accounting_session": [],
        "voucher": [],
    }
    assert cursor.statements == [
        "SELECT * FROM `subscriber` WHERE `username` = %s",
        "SELECT * FROM `accounting_session` WHERE `subscriber_id` = %s ORDER BY `id`",
        "SELECT * FROM `voucher` WHERE `subscriber_id` = %s ORDER BY `id`",
    ]


def test_a_column_name_with_a_backtick_cannot_break_out_of_its_quotes() -> None:
    assert (
        accounts.insert_statement("voucher", ["code", "x`) VALUES (1); DROP TABLE subscriber; -- "])
        == "INSERT INTO `voucher` (`code`, `x``) VALUES (1); DROP TABLE subscriber; -- `) "
        "VALUES (%s, %s)"
    )
