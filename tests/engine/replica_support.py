"""What the tests of replication share: statements on a private server, and the run's account
as a source's peer API issues it for a replicating run."""

from __future__ import annotations

from typing import Any

from django.db import connections

from appliance import credentials
from devtools.mariadb import MariaDBServer
from migrations_engine.context import source_database_url
from migrations_engine.datacopy.sql import SourceDatabase
from migrations_engine.models import MigrationRun


def sql(server: MariaDBServer, *statements: str) -> list[Any]:
    """Run statements as root on a private server; the rows of the last one."""
    with server.connect() as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
        return list(cursor.fetchall())


def replicating_account(
    source: MariaDBServer, settings: Any, *, database: str, run_ref: str
) -> SourceDatabase:
    """The run's account on `source`'s `database`, issued by the peer API's own code (with the
    node's data database pointed there for the call), with replication rights and the server's
    certificate to pin."""
    settings.APPLIANCE_DATA_DB_CERTIFICATE = str(source.certificate_file)
    settings.APPLIANCE_DATA_DB_PUBLIC_PORT = source.port
    connection = connections["data"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST=source.host, PORT=str(source.port), NAME=database)
    connection.settings_dict.update(USER="root", PASSWORD="")
    try:
        account = credentials.database_account_issue(
            run_ref=run_ref, client_address="127.0.0.1", replication=True
        )
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    return source_database_url(MigrationRun(source_address=source.host), account)
