"""A hostile or impersonated source cannot change anything outside the data database here.

The source's data database has a trigger and a view whose DEFINER is root and which write into
and read from a control database (one of that name exists on both servers), and an event. On
top of that its server's answers are altered, as an impersonated source's would be: a
procedure's text carries a second statement, a function's text names another function, a
trigger's text is on a table of the control database, and two tables ask for a directory and
an engine that reach outside the database. The copy runs as the copier's own account.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pymysql
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.template.loader import render_to_string
from pymysql.constants import CLIENT

from config.env import MySQLURL
from migrations_engine.datacopy import CopyError, copy_database, copy_forget
from migrations_engine.datacopy import objects as objects_module
from migrations_engine.datacopy import schema as schema_module
from migrations_engine.datacopy.accounts import Account, AccountsPlan, accounts_ensure
from migrations_engine.datacopy.checkpoints import STATE_DATABASE
from migrations_engine.datacopy.objects import SchemaObject, create_object
from migrations_engine.datacopy.sql import connect_target, fetch_one
from migrations_engine.report import objects_not_copied

from .conftest import (
    SAKILA,
    TARGET_HOST,
    Scratch,
    database_snapshot,
    query,
    quote,
    run_sql,
    target_connection,
)

PASSWORD = "C0pier-Pw!x"
DEFINER_CLAUSE = re.compile(r"DEFINER=`[^`]*`@`[^`]*`")


@dataclass(frozen=True)
class CopyAccounts:
    """The copier's account (as a target address) and the definer account of a test."""

    copier: MySQLURL
    definer: str
    plan: AccountsPlan


def accounts_drop(plan: AccountsPlan) -> None:
    with target_connection() as admin:
        for account in (*plan.copier, plan.definer):
            run_sql(admin, f"DROP USER IF EXISTS '{account.user}'@'{account.host}'")


@pytest.fixture
def copy_accounts(scratch: Scratch) -> Iterator[CopyAccounts]:
    """The two accounts for the scratch database, as `manage.py migration_accounts` makes them."""
    suffix = uuid.uuid4().hex[:8]
    plan = AccountsPlan(
        data_database=scratch.name,
        copier_databases=(scratch.name, f"{scratch.name}_rehearsal", STATE_DATABASE),
        copier=(Account(f"cop_{suffix}", TARGET_HOST),),
        copier_password=PASSWORD,
        definer=Account(f"def_{suffix}", "localhost"),
    )
    with target_connection() as admin:
        accounts_ensure(admin, plan)
    copier = replace(scratch.target_url, user=plan.copier[0].user, password=PASSWORD)
    yield CopyAccounts(copier, str(plan.definer), plan)
    accounts_drop(plan)


@pytest.fixture
def control(scratch: Scratch) -> Iterator[str]:
    """A stand-in for the control database, of one name on both servers, with secrets in it."""
    name = f"ctl_{uuid.uuid4().hex[:10]}"
    for connect in (scratch.source_server.connect, target_connection):
        with connect() as connection:
            run_sql(
                connection,
                f"CREATE DATABASE {name}",
                f"CREATE TABLE {name}.secrets (id INT AUTO_INCREMENT PRIMARY KEY, "
                "note VARCHAR(100)) ENGINE=InnoDB",
                f"INSERT INTO {name}.secrets (note) VALUES ('admin password hash'), ('api key')",
            )
    yield name
    for connect in (scratch.source_server.connect, target_connection):
        with connect() as connection:
            run_sql(connection, f"DROP DATABASE IF EXISTS {name}")


def control_state(database: str) -> dict[str, Any]:
    """All one can compare of the control database on the current system."""
    with target_connection() as connection:
        snapshot = database_snapshot(connection, database)
        snapshot["rows"] = query(connection, f"SELECT * FROM {quote(database)}.secrets")
        snapshot["events"] = query(
            connection,
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
            (database,),
        )
    return snapshot


def make_hostile_source(scratch: Scratch, control: str) -> None:
    """The source's data database: ordinary tables and objects, and hostile ones."""
    with scratch.source() as connection:
        run_sql(
            connection,
            "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB",
            "INSERT INTO items VALUES (1, 'first'), (2, 'second')",
            "CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(50)) "
            "ENGINE=InnoDB",
            "INSERT INTO notes (body) VALUES ('n1'), ('n2')",
            "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(50)) "
            "ENGINE=InnoDB",
            "CREATE TABLE files (id INT PRIMARY KEY, data VARCHAR(20)) ENGINE=InnoDB",
            "INSERT INTO files VALUES (1, 'f')",
            "CREATE TABLE remote_rows (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO remote_rows VALUES (1)",
            "CREATE DEFINER=`root`@`localhost` TRIGGER items_spy AFTER INSERT ON items "
            f"FOR EACH ROW INSERT INTO {control}.secrets (note) VALUES (NEW.name)",
            "CREATE DEFINER=`root`@`localhost` TRIGGER notes_audit AFTER INSERT ON notes "
            "FOR EACH ROW INSERT INTO audit (note) VALUES (NEW.body)",
            "CREATE DEFINER=`root`@`localhost` TRIGGER notes_moved BEFORE UPDATE ON notes "
            "FOR EACH ROW SET NEW.body = UPPER(NEW.body)",
            "CREATE DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW secrets_view AS "
            f"SELECT id, note FROM {control}.secrets",
            "CREATE DEFINER=`root`@`localhost` SQL SECURITY INVOKER VIEW item_names AS "
            "SELECT name FROM items",
            "CREATE DEFINER=`root`@`localhost` PROCEDURE count_items(OUT n INT) "
            "BEGIN SELECT COUNT(*) INTO n FROM items; END",
            "CREATE DEFINER=`root`@`localhost` PROCEDURE add_note(IN b VARCHAR(50)) "
            "SQL SECURITY INVOKER BEGIN INSERT INTO notes (body) VALUES (b); END",
            "CREATE DEFINER=`root`@`localhost` FUNCTION item_count() RETURNS INT "
            "READS SQL DATA RETURN (SELECT COUNT(*) FROM items)",
            "CREATE DEFINER=`root`@`localhost` FUNCTION spare() RETURNS INT DETERMINISTIC RETURN 1",
            "CREATE EVENT wipe_items ON SCHEDULE EVERY 1 DAY DO DELETE FROM items",
        )


Change = Callable[[tuple[Any, ...]], tuple[Any, ...]]


def alter_answers(monkeypatch: pytest.MonkeyPatch, changes: dict[str, Change]) -> None:
    """The source's server answers these SHOW CREATE statements with altered text."""

    def altered(connection: Any, statement: str, args: Any = None) -> tuple[Any, ...]:
        row = fetch_one(connection, statement, args)
        change = changes.get(statement)
        return change(row) if change else row

    monkeypatch.setattr(schema_module, "fetch_one", altered)
    monkeypatch.setattr(objects_module, "fetch_one", altered)


def text_change(column: int, change: Callable[[str], str]) -> Change:
    return lambda row: (*row[:column], change(str(row[column])), *row[column + 1 :])


def hostile_answers(control: str, directory: Path) -> dict[str, Change]:
    connect = f"CONNECTION='mysql://root@127.0.0.1/{control}/secrets'"
    return {
        "SHOW CREATE TABLE `files`": text_change(
            1, lambda text: f"{text} DATA DIRECTORY='{directory}'"
        ),
        "SHOW CREATE TABLE `remote_rows`": text_change(
            1,
            lambda text: text.replace(
                "ENGINE=InnoDB", f"ENGINE=CONNECT TABLE_TYPE=MYSQL {connect}"
            ),
        ),
        "SHOW CREATE PROCEDURE `count_items`": text_change(
            2, lambda text: f"{text}; DROP TABLE `{control}`.`secrets`"
        ),
        "SHOW CREATE FUNCTION `spare`": text_change(
            2, lambda text: text.replace("`spare`", "`item_count`")
        ),
        "SHOW CREATE TRIGGER `notes_moved`": text_change(
            2, lambda text: text.replace("ON notes", f"ON {control}.secrets")
        ),
    }


def test_a_hostile_source_changes_nothing_outside_the_data_database(
    scratch: Scratch,
    control: str,
    copy_accounts: CopyAccounts,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    make_hostile_source(scratch, control)
    directory = tmp_path / "elsewhere"
    alter_answers(monkeypatch, hostile_answers(control, directory))
    before = control_state(control)

    result = copy_database(
        scratch.source_url, copy_accounts.copier, definer=copy_accounts.definer, workers=2
    )

    refused = {(item.kind, item.name): item.reason for item in result.refused}
    assert set(refused) == {
        ("table", "files"),
        ("table", "remote_rows"),
        ("procedure", "count_items"),
        ("function", "spare"),
        ("trigger", "notes_moved"),
        ("view", "secrets_view"),
        ("event", "wipe_items"),
    }
    assert "DATA DIRECTORY" in refused["table", "files"]
    assert "rows were not copied" in refused["table", "files"]
    assert "storage engine CONNECT" in refused["table", "remote_rows"]
    assert refused["procedure", "count_items"] == "its text holds more than one statement"
    assert "creates function 'item_count', not 'spare'" in refused["function", "spare"]
    assert f"database '{control}'" in refused["trigger", "notes_moved"]
    assert "command denied to user" in refused["view", "secrets_view"]
    assert refused["event", "wipe_items"].startswith("events are not copied: ")
    assert control_state(control) == before
    assert not directory.exists()

    assert sorted(result.tables) == ["audit", "items", "notes"]
    assert (result.tables["items"].rows, result.tables["notes"].rows) == (2, 2)
    assert sorted(result.triggers) == ["items_spy", "notes_audit"]
    assert result.views == ["item_names"]
    assert sorted(result.routines) == ["function item_count", "procedure add_note"]
    with target_connection(scratch.name) as target:
        assert {row[0] for row in query(target, "SHOW TABLES")} == {
            "audit",
            "items",
            "notes",
            "item_names",
        }
        assert query(target, "SELECT * FROM items ORDER BY id") == [(1, "first"), (2, "second")]
        assert definers(target, scratch.name) == {copy_accounts.definer}
        assert security_types(target, scratch.name) == {
            "item_names": "INVOKER",  # as on the source
            "add_note": "DEFINER",  # INVOKER on the source: a routine always runs as its definer
            "item_count": "DEFINER",
        }

        # The spy runs as the definer account, which may not write the control database.
        with pytest.raises(pymysql.MySQLError, match="INSERT command denied"):
            run_sql(target, "INSERT INTO items VALUES (3, 'third')")
        # What stays within the data database works as it did on the source.
        run_sql(target, "INSERT INTO notes (body) VALUES ('n3')", "CALL add_note('n4')")
        assert query(target, "SELECT note FROM audit ORDER BY id") == [("n3",), ("n4",)]
        assert query(target, "SELECT item_count(), COUNT(*) FROM item_names") == [(2, 2)]
    assert control_state(control) == before


def definers(connection: pymysql.connections.Connection, database: str) -> set[str]:
    rows = query(
        connection,
        "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
        "UNION SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
        "UNION SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
        (database, database, database),
    )
    return {str(row[0]) for row in rows}


def security_types(connection: pymysql.connections.Connection, database: str) -> dict[str, str]:
    rows = query(
        connection,
        "SELECT TABLE_NAME, SECURITY_TYPE FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
        "UNION SELECT ROUTINE_NAME, SECURITY_TYPE FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = %s",
        (database, database),
    )
    return {str(name): str(kind) for name, kind in rows}


def without_definers(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with every DEFINER clause made the same (the copy rewrites them all)."""

    def plain(value: Any) -> Any:
        if isinstance(value, str):
            return DEFINER_CLAUSE.sub("DEFINER=?", value)
        if isinstance(value, tuple | list):
            return tuple(plain(part) for part in value)
        return value

    for part in ("views", "triggers", "routines"):
        snapshot[part] = {name: plain(text) for name, text in snapshot[part].items()}
    return snapshot


def test_sakila_arrives_whole_through_the_copiers_own_account(
    scratch: Scratch, copy_accounts: CopyAccounts
) -> None:
    scratch.source_name = "sakila"  # its views and routines name their database
    scratch.load_sql_file(SAKILA / "sakila-schema.sql")
    scratch.load_sql_file(SAKILA / "sakila-data.sql")

    result = copy_database(
        scratch.source_url,
        copy_accounts.copier,
        definer=copy_accounts.definer,
        chunk_bytes=64 * 1024,
    )

    assert result.refused == []
    with scratch.source() as source, target_connection() as target:
        expected = without_definers(database_snapshot(source, "sakila"))
        actual = without_definers(database_snapshot(target, scratch.name))
    assert actual == expected
    assert (len(result.views), len(result.triggers), len(result.routines)) == (7, 6, 6)
    with target_connection(scratch.name) as target:
        assert definers(target, scratch.name) == {copy_accounts.definer}
        assert query(target, "SELECT COUNT(*) FROM customer_list")[0][0] == 599
        assert query(target, "SELECT get_customer_balance(1, '2006-01-01')")[0][0] is not None
        run_sql(target, "CALL film_in_stock(1, 1, @count)")
        assert query(target, "SELECT @count")[0][0] == 4
        run_sql(
            target,
            "INSERT INTO customer (store_id, first_name, last_name, address_id) "
            "VALUES (1, 'NEW', 'CUSTOMER', 1)",
        )
        created = query(target, "SELECT create_date FROM customer WHERE first_name = 'NEW'")
        assert created[0][0] is not None  # set by the trigger, running as the definer


def test_a_target_with_a_smaller_packet_limit_is_copied_as_it_is(
    scratch: Scratch, copy_accounts: CopyAccounts
) -> None:
    """The copier's account may not raise max_allowed_packet: the copy goes on without."""
    with scratch.source() as connection:
        run_sql(
            connection,
            "CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB",
            "INSERT INTO small VALUES (1, 'a'), (2, 'b')",
        )
        original = query(connection, "SELECT @@global.max_allowed_packet")[0][0]
        with target_connection() as target:
            here = query(target, "SELECT @@global.max_allowed_packet")[0][0]
        run_sql(connection, f"SET GLOBAL max_allowed_packet = {here * 2}")
        try:
            result = copy_database(
                scratch.source_url, copy_accounts.copier, definer=copy_accounts.definer
            )
        finally:
            run_sql(connection, f"SET GLOBAL max_allowed_packet = {original}")
    assert result.tables["small"].rows == 2
    with target_connection() as target:
        assert query(target, "SELECT @@global.max_allowed_packet")[0][0] == here


def test_no_connection_to_the_target_runs_several_statements_per_call(scratch: Scratch) -> None:
    connection = connect_target(scratch.target_url)
    with connection:
        assert not connection.client_flag & CLIENT.MULTI_STATEMENTS
    several = pymysql.connect(host=TARGET_HOST, user="root", client_flag=CLIENT.MULTI_STATEMENTS)
    view = SchemaObject("VIEW", "v", "CREATE VIEW v AS SELECT 1", "", "utf8mb4", "utf8mb4_bin")
    with several, pytest.raises(CopyError, match="several statements per call"):
        create_object(several, view)


@pytest.fixture
def command_accounts(scratch: Scratch, settings: Any) -> Iterator[AccountsPlan]:
    """Settings for `manage.py migration_accounts` with accounts of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    settings.DATA_DB = replace(scratch.target_url, database=f"{scratch.name}_data")
    settings.MIGRATION_COPIER_DB = replace(
        settings.DATA_DB, user=f"cop_{suffix}", password=PASSWORD
    )
    settings.MIGRATION_DEFINER = f"def_{suffix}@localhost"
    plan = AccountsPlan(
        data_database=settings.DATA_DB.database,
        copier_databases=(),
        copier=(Account(f"cop_{suffix}", TARGET_HOST),),
        copier_password=PASSWORD,
        definer=Account(f"def_{suffix}", "localhost"),
    )
    yield plan
    accounts_drop(plan)


def grants(account: Account) -> list[str]:
    """The account's grants as SHOW GRANTS lists them, its password hash left out."""
    with target_connection() as admin:
        rows = query(admin, f"SHOW GRANTS FOR '{account.user}'@'{account.host}'")
    return sorted(re.sub(r" IDENTIFIED BY PASSWORD '[^']*'", "", str(row[0])) for row in rows)


def test_migration_accounts_makes_both_accounts_exactly_and_again(
    command_accounts: AccountsPlan,
) -> None:
    copier, definer = command_accounts.copier[0], command_accounts.definer
    data = command_accounts.data_database.replace("_", "\\_")

    call_command("migration_accounts", "--copier-host", TARGET_HOST)
    with target_connection() as admin:  # a stray privilege, gone after the next run
        run_sql(admin, f"GRANT SELECT ON mysql.* TO '{copier.user}'@'{copier.host}'")
    call_command("migration_accounts", "--copier-host", TARGET_HOST)

    state = STATE_DATABASE.replace("_", "\\_")
    assert grants(copier) == sorted(
        [
            f"GRANT SET USER ON *.* TO `{copier.user}`@`{copier.host}`",
            *(
                "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, "
                "CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, "
                f"CREATE ROUTINE, ALTER ROUTINE, TRIGGER ON `{database}`.* TO "
                f"`{copier.user}`@`{copier.host}`"
                for database in (data, f"{data}\\_rehearsal", state)
            ),
        ]
    )
    assert grants(definer) == [
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, "
        f"SHOW VIEW, TRIGGER ON `{data}`.* TO `{definer.user}`@`localhost`",
        f"GRANT USAGE ON *.* TO `{definer.user}`@`localhost`",
    ]
    with target_connection() as admin:
        created = query(admin, f"SHOW CREATE USER '{definer.user}'@'localhost'")[0][0]
    assert created.endswith(" ACCOUNT LOCK")
    copier_login = pymysql.connect(host=TARGET_HOST, user=copier.user, password=PASSWORD)
    with copier_login, pytest.raises(pymysql.MySQLError, match="denied"):
        run_sql(copier_login, "SET GLOBAL max_allowed_packet = 1073741824")


def test_migration_accounts_leaves_an_administrators_account_alone(
    command_accounts: AccountsPlan, settings: Any
) -> None:
    settings.MIGRATION_DEFINER = "root@localhost"
    before = grants(Account("root", "localhost"))
    with pytest.raises(CommandError, match="root@localhost already exists with server-wide"):
        call_command("migration_accounts", "--copier-host", TARGET_HOST)
    assert grants(Account("root", "localhost")) == before

    settings.MIGRATION_COPIER_DB = settings.DATA_DB  # MIGRATION_COPIER_DB_URL not set
    with pytest.raises(CommandError, match="MIGRATION_COPIER_DB_URL is not set"):
        call_command("migration_accounts")


def test_the_report_lists_what_was_not_copied_and_why() -> None:
    refused = [
        {
            "kind": "trigger",
            "name": "items_spy",
            "reason": "its text holds more than one statement",
        },
        {
            "kind": "event",
            "name": "wipe",
            "reason": "events are not copied: they run by themselves",
        },
    ]
    operations = [
        {"label": "Copies data", "result": {"tables": {}, "refused": refused}},
        {"label": "Restarts the services", "result": {}},
    ]

    listed = objects_not_copied(operations)
    html = render_to_string(
        "migrations_engine/report.html",
        {"report": {"run": 1, "operations": operations, "objects_not_copied": listed}},
    )

    assert [(item["operation"], item["name"]) for item in listed] == [
        ("Copies data", "items_spy"),
        ("Copies data", "wipe"),
    ]
    assert (
        "<td>trigger</td><td>items_spy</td><td>its text holds more than one statement</td>" in html
    )
    assert "events are not copied: they run by themselves" in html


def test_a_resumed_copy_still_lists_the_tables_it_refused(
    scratch: Scratch, copy_accounts: CopyAccounts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with scratch.source() as connection:
        run_sql(
            connection,
            "CREATE TABLE items (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO items VALUES (1), (2)",
            "CREATE TABLE files (id INT PRIMARY KEY) ENGINE=InnoDB",
        )
    directory = tmp_path / "elsewhere"
    answer = text_change(1, lambda text: f"{text} INDEX DIRECTORY='{directory}'")
    alter_answers(monkeypatch, {"SHOW CREATE TABLE `files`": answer})
    copy_database(scratch.source_url, copy_accounts.copier, definer=copy_accounts.definer)

    result = copy_database(
        scratch.source_url,
        copy_accounts.copier,
        definer=copy_accounts.definer,
        tables=["items", "files"],
        resume=True,
    )

    assert result.resumed
    assert [(item.kind, item.name) for item in result.refused] == [("table", "files")]
    assert "INDEX DIRECTORY" in result.refused[0].reason
    assert list(result.tables) == ["items"]
    copy_forget(copy_accounts.copier)  # as a rehearsal ends, with the copier's own account
    with target_connection() as target:
        assert not query(target, "SHOW DATABASES LIKE %s", (scratch.name,))
