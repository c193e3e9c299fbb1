"""A copy from a source on an older software version ends at this version's data schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management import call_command
from django.db import connections

from config.env import MySQLURL
from migrations_engine.datacopy import copy_database
from migrations_engine.datacopy.upgrade import UpgradeStep, upgrade_data_schema

from .conftest import Scratch, query, run_sql

OLD_ROWS = [
    "INSERT INTO subscriber (id, username, full_name, email, password_hash, created_at, "
    "is_active, quota_mb) VALUES (1, 'alice', 'Alice', 'Alice@Example.TEST', 'x', "
    "'2020-01-01 10:00:00', 1, 100), (2, 'bob', 'Bob', 'BOB@example.test', 'y', "
    "'2020-02-01 10:00:00', 0, 0)",
    "INSERT INTO voucher (id, code, minutes, created_at, used_at, subscriber_id) VALUES "
    "(1, 'V-1', 60, '2020-03-01 00:00:00', NULL, NULL), (2, 'V-2', 30, '2020-03-02 00:00:00', "
    "'2020-03-03 00:00:00', 1)",
    "INSERT INTO accounting_session (id, session_id, nas_ip, started_at, stopped_at, bytes_in, "
    "bytes_out, subscriber_id) VALUES (1, 's1', '10.0.0.1', '2020-03-03 00:00:00', NULL, 5, 6, 1)",
    "INSERT INTO event_log (id, ts, source, message) VALUES (1, '2020-03-03 00:00:00', "
    "'radius', 'alice logged in'), (2, '2020-03-04 00:00:00', 'admin', 'voucher V-2 sold')",
]


@contextmanager
def data_alias_on(url: MySQLURL) -> Iterator[None]:
    """Point Django's `data` database alias at another database for a while."""
    connection = connections["data"]
    saved: dict[str, Any] = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(
        HOST=url.host, PORT=str(url.port), NAME=url.database, USER=url.user, PASSWORD=url.password
    )
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_a_copy_from_version_2_1_is_upgraded_step_by_step(
    scratch: Scratch, django_db_blocker: Any
) -> None:
    with django_db_blocker.unblock():
        with data_alias_on(scratch.source_url):
            call_command("migrate", "appliance_data", "0002_v2_1", database="data", verbosity=0)
        with scratch.source() as source:
            run_sql(source, *OLD_ROWS)

        copy_database(scratch.source_url, scratch.target_url)
        steps: list[UpgradeStep] = []
        with data_alias_on(scratch.target_url):
            upgrade_data_schema(progress=steps.append)

    assert [(step.migration, step.version) for step in steps] == [
        ("0003_v3_0", "3.0"),
        ("0004_v3_2", "3.2"),
    ]
    with scratch.target() as target:
        run_sql(target, f"USE `{scratch.name}`")
        assert query(target, "SELECT username, email FROM subscriber ORDER BY id") == [
            ("alice", "alice@example.test"),
            ("bob", "bob@example.test"),
        ]
        payloads = query(target, "SELECT JSON_VALUE(payload, '$.msg') FROM event_log ORDER BY id")
        assert payloads == [("alice logged in",), ("voucher V-2 sold",)]
        assert query(target, "SELECT COUNT(*) FROM voucher")[0][0] == 2
        assert query(target, "SELECT mac, terminate_cause FROM accounting_session") == [("", None)]
        assert (
            query(target, "SELECT COUNT(*) FROM django_migrations WHERE app = 'appliance_data'")[0][
                0
            ]
            == 4
        )
