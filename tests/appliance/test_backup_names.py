"""Backups work whatever the data database's tables and views are called: every name is quoted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections

from appliance.backup import backup_create, backup_restore, data_checksums

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)

ODD_TABLE = "odd`name; DROP TABLE x"
ODD_VIEW = "view`of odd"


def run(*statements: str) -> None:
    with connections["data"].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def tables() -> set[str]:
    with connections["data"].cursor() as cursor:
        cursor.execute("SHOW FULL TABLES")
        return {str(name) for name, _ in cursor.fetchall()}


@pytest.fixture
def odd_names() -> Iterator[None]:
    """A table and a view whose names hold a backtick, a space and a semicolon."""
    run(
        "CREATE TABLE `odd``name; DROP TABLE x` (id INT PRIMARY KEY, note VARCHAR(20))",
        "INSERT INTO `odd``name; DROP TABLE x` VALUES (1, 'kept')",
        "CREATE VIEW `view``of odd` AS SELECT id FROM `odd``name; DROP TABLE x`",
    )
    yield
    run("DROP VIEW IF EXISTS `view``of odd`", "DROP TABLE IF EXISTS `odd``name; DROP TABLE x`")


def test_a_table_with_an_odd_name_has_its_checksum(odd_names: None) -> None:
    assert data_checksums()[ODD_TABLE] is not None


def test_a_backup_with_odd_names_is_restored_exactly(odd_names: None) -> None:
    backup = backup_create("odd names")
    run("DELETE FROM `odd``name; DROP TABLE x`")
    backup_restore(backup)
    assert {ODD_TABLE, ODD_VIEW} <= tables()
    assert data_checksums() == backup.manifest["table_checksums"]
