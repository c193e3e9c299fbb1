"""`manage.py migration_accounts`: make the data copy's two accounts on this system's MariaDB.

The copier's account (MIGRATION_COPIER_DB_URL) gets rights on the data database, its
rehearsal copy and the copy checkpoints, plus SET USER; the definer account
(MIGRATION_DEFINER) is locked and may only read and write the data database's rows. Safe to
run again: both accounts are brought back to exactly that.
"""

from __future__ import annotations

from typing import Any

import pymysql
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.env import MySQLURL
from migrations_engine.datacopy.accounts import (
    Account,
    AccountError,
    AccountsPlan,
    account_parse,
    accounts_ensure,
)
from migrations_engine.datacopy.checkpoints import STATE_DATABASE
from migrations_engine.rehearsal import scratch_database

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class Command(BaseCommand):
    help = (
        "Create or update the data copy's accounts on this system's MariaDB, connecting as "
        "DATA_DB_URL's account, which needs CREATE USER and every privilege it grants with "
        "GRANT OPTION (root does; SET USER needs MariaDB 10.5.2 or later). The copier's "
        "account is MIGRATION_COPIER_DB_URL's user and password: it gets rights on the data "
        "database, its rehearsal copy (<data database>_rehearsal) and the copy checkpoints "
        f"({STATE_DATABASE}), plus SET USER, and nothing else. The definer account "
        "(MIGRATION_DEFINER, user@host) is locked and may only read and write the data "
        "database's rows; every view, trigger and routine the copy makes runs as it. Any other "
        "privilege of either account is revoked; an existing account with server-wide "
        "privileges is refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--copier-host",
            action="append",
            dest="copier_hosts",
            help="a host the copier's account connects from (may be repeated; default: "
            "localhost, 127.0.0.1 and ::1 for a server on this machine, %% otherwise)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        admin: MySQLURL = settings.DATA_DB
        copier: MySQLURL = settings.MIGRATION_COPIER_DB
        _check_copier_url(admin, copier)
        hosts = options["copier_hosts"] or (LOCAL_HOSTS if copier.is_local else ("%",))
        try:
            plan = AccountsPlan(
                data_database=admin.database,
                copier_databases=(admin.database, scratch_database().database, STATE_DATABASE),
                copier=tuple(Account(copier.user, host) for host in dict.fromkeys(hosts)),
                copier_password=copier.password,
                definer=account_parse(settings.MIGRATION_DEFINER),
            )
            with _connect(admin) as connection:
                done = accounts_ensure(connection, plan)
        except AccountError as error:
            raise CommandError(str(error)) from None
        except pymysql.MySQLError as error:
            raise CommandError(
                f"The accounts could not be made as {admin.user} on {admin.host}:{admin.port}: "
                f"{error.args[-1]}"
            ) from None
        for line in done:
            self.stdout.write(line)


def _check_copier_url(admin: MySQLURL, copier: MySQLURL) -> None:
    if copier.user == admin.user:
        raise CommandError(
            "MIGRATION_COPIER_DB_URL is not set (or names DATA_DB_URL's own account): set it to "
            "mysql://COPIER_USER:PASSWORD@host:port/<data database>, with a user of its own."
        )
    if (copier.host, copier.port) != (admin.host, admin.port):
        raise CommandError(
            f"MIGRATION_COPIER_DB_URL points at {copier.host}:{copier.port}, but the data "
            f"database is at {admin.host}:{admin.port} (DATA_DB_URL): the copier's account "
            "must be on that server."
        )
    if not copier.password:
        raise CommandError("MIGRATION_COPIER_DB_URL has no password: give the account one.")


def _connect(url: MySQLURL) -> pymysql.connections.Connection:
    return pymysql.connect(**url.login(), charset="utf8mb4", autocommit=True, connect_timeout=5)
