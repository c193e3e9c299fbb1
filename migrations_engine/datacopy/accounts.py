"""The data copy's two accounts on the current system's MariaDB (`manage.py migration_accounts`).

The copier's account loads the source's data here. It has rights on the data database, on the
rehearsal's scratch copy of it and on the copy checkpoints, plus SET USER so that it may give
the views, triggers and routines it copies the definer account as their DEFINER; nothing else.

The definer account is the DEFINER of every copied view, trigger and routine. It has rights
on the data rows only (no DDL, no other database), and nobody logs in with it (ACCOUNT LOCK,
and a random password nobody knows): whatever an object from a hostile source does when it
runs, it does with no more power than that.

Both accounts are made exactly so on every run: any other privilege they had is revoked. An
existing account with server-wide privileges is never touched (it is somebody else's).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pymysql.connections import Connection

from migrations_engine.datacopy.sql import execute, fetch_all, fetch_one, quote_name

COPIER_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW, TRIGGER, "
    "CREATE ROUTINE, ALTER ROUTINE, EXECUTE"
)
"""What the copy does in its databases: make tables, load and check rows, make the objects."""
COPIER_GLOBAL_PRIVILEGES = "SET USER"
"""Create a view, trigger or routine for another DEFINER (MariaDB 10.5.2 and later)."""
DEFINER_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, EXECUTE, CREATE TEMPORARY TABLES, LOCK TABLES, SHOW VIEW, "
    "TRIGGER"
)
"""What a copied view, trigger or routine may do when it runs: read and write the data.

MariaDB fires a trigger only when its definer has the TRIGGER privilege on the table."""
OWN_GLOBAL_PRIVILEGES = frozenset({"USAGE", "SET USER"})
"""Server-wide privileges an account may have for this command to take it over."""


class AccountError(Exception):
    """The accounts could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class Account:
    """A MariaDB account: a user name and the host it may connect from."""

    user: str
    host: str

    @property
    def grantee(self) -> str:
        """The account as information_schema writes it: 'user'@'host'."""
        return f"'{self.user.replace(chr(39), chr(39) * 2)}'@'{self.host}'"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}"


@dataclass(frozen=True)
class AccountsPlan:
    """The accounts to make and the databases they serve."""

    data_database: str
    copier_databases: tuple[str, ...]
    copier: tuple[Account, ...]
    copier_password: str
    definer: Account


def account_parse(text: str) -> Account:
    """An account written `user@host` (as MIGRATION_DEFINER is)."""
    user, separator, host = text.rpartition("@")
    if not separator or not user or not host:
        raise AccountError(f"{text!r} is not an account name such as appliance_definer@localhost.")
    return Account(user, host)


def database_pattern(name: str) -> str:
    """A database name for GRANT ... ON name.*, where _ and % would otherwise match anything."""
    if "\\" in name:
        raise AccountError(f"The database name {name!r} holds a backslash; choose another name.")
    return quote_name(name.replace("_", "\\_").replace("%", "\\%"))


def accounts_ensure(admin: Connection, plan: AccountsPlan) -> list[str]:
    """Create or update both accounts on the server of `admin`; what was done, line by line.

    `admin` needs CREATE USER and every privilege it grants, with GRANT OPTION (root does).
    """
    _check_distinct(plan)
    for account in (*plan.copier, plan.definer):
        _check_not_foreign(admin, account)
    done = []
    for account in plan.copier:
        done.append(_copier_ensure(admin, account, plan))
    done.append(_definer_ensure(admin, plan))
    done += _warnings(admin)
    return done


def _check_distinct(plan: AccountsPlan) -> None:
    if plan.definer.user in {account.user for account in plan.copier}:
        raise AccountError(
            f"The copier's account and the definer account are both called {plan.definer.user!r}; "
            "give them different names (MIGRATION_COPIER_DB_URL, MIGRATION_DEFINER)."
        )


def _check_not_foreign(admin: Connection, account: Account) -> None:
    """Refuse an existing account with server-wide privileges: it is not one of ours."""
    rows = fetch_all(
        admin,
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s",
        (account.grantee,),
    )
    foreign = sorted({str(row[0]) for row in rows} - OWN_GLOBAL_PRIVILEGES)
    if foreign:
        raise AccountError(
            f"The account {account} already exists with server-wide privileges "
            f"({', '.join(foreign)}); it is not one this command made, so it is left alone. "
            "Choose another name for the copy's account."
        )


def _exists(admin: Connection, account: Account) -> bool:
    row = fetch_one(
        admin,
        "SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = %s",
        (account.user, account.host),
    )
    return bool(row[0])


def _revoke_everything(admin: Connection, account: Account) -> None:
    execute(admin, "REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", (account.user, account.host))


def _copier_ensure(admin: Connection, account: Account, plan: AccountsPlan) -> str:
    """The copier's account with its password and exactly its privileges."""
    created = not _exists(admin, account)
    target = (account.user, account.host)
    if created:
        execute(admin, "CREATE USER %s@%s IDENTIFIED BY %s", (*target, plan.copier_password))
    else:
        execute(admin, "ALTER USER %s@%s IDENTIFIED BY %s", (*target, plan.copier_password))
    execute(admin, "ALTER USER %s@%s ACCOUNT UNLOCK", target)
    _revoke_everything(admin, account)
    for database in plan.copier_databases:
        execute(
            admin, f"GRANT {COPIER_PRIVILEGES} ON {database_pattern(database)}.* TO %s@%s", target
        )
    execute(admin, f"GRANT {COPIER_GLOBAL_PRIVILEGES} ON *.* TO %s@%s", target)
    return (
        f"copier's account {account} {'created' if created else 'updated'}: rights on "
        f"{', '.join(plan.copier_databases)}, and SET USER"
    )


def _definer_ensure(admin: Connection, plan: AccountsPlan) -> str:
    """The definer account: locked, rights on the data rows of the data database only."""
    account = plan.definer
    created = not _exists(admin, account)
    target = (account.user, account.host)
    if created:
        password = secrets.token_urlsafe(32)  # known to nobody: the account is never logged in
        execute(admin, "CREATE USER %s@%s IDENTIFIED BY %s ACCOUNT LOCK", (*target, password))
    else:
        execute(admin, "ALTER USER %s@%s ACCOUNT LOCK", target)
    _revoke_everything(admin, account)
    execute(
        admin,
        f"GRANT {DEFINER_PRIVILEGES} ON {database_pattern(plan.data_database)}.* TO %s@%s",
        target,
    )
    return (
        f"definer account {account} {'created' if created else 'updated'}: locked, rights on "
        f"the rows of {plan.data_database} only"
    )


def _warnings(admin: Connection) -> list[str]:
    """What on this server would still keep the copier from creating triggers and functions."""
    log_bin, trusted = fetch_one(admin, "SELECT @@log_bin, @@log_bin_trust_function_creators")
    if int(log_bin) and not int(trusted):
        return [
            "warning: binary logging is on and log_bin_trust_function_creators is off, so the "
            "copier's account (which has no SUPER) cannot create triggers and stored functions: "
            "they would be listed as refused. Set log_bin_trust_function_creators = ON in the "
            "server's configuration."
        ]
    return []
