"""Operations on the data database: copy it from the source (and, HA, replicate until caught up).

Every connection to the source's port 3306 is encrypted and checks the certificate the source's
peer API handed out: the copier's (`connect_source`) and the replica's, which this system's
database server opens itself (`MASTER_SSL` with that certificate as its only CA, and the server's
name checked against the run's source address).
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from typing import Any

import pymysql
from cryptography import x509
from django.conf import settings

from config.env import MySQLURL
from migrations_engine.accounts import accounts_copy
from migrations_engine.context import Progress, RunContext
from migrations_engine.datacopy import CopyError, ProgressEvent, RefusedObject, copy_database
from migrations_engine.datacopy.objects import EVENTS_NOT_COPIED
from migrations_engine.datacopy.sql import (
    SourceDatabase,
    SourceTrustError,
    connect_source,
    pem_fingerprint,
)
from migrations_engine.datacopy.upgrade import upgrade_data_schema
from migrations_engine.handoffs import OnlineVerified, PreCopy, RunHandoffs
from migrations_engine.online_copy import (
    SSL_CONNECTION_FAILED,
    BinlogPosition,
    Lag,
    TableCheck,
    TableWatch,
    binlog_position,
    replica_status,
    replica_wait,
    server_connection,
    tables_verify,
)
from migrations_engine.operations.base import Operation, OperationFailed
from migrations_engine.plan import PlanFacts, online_copy_refusal
from migrations_engine.source_info import SourceInfo

REPLICA_NAME = "migration"
CONNECT_RETRY = 2
"""Seconds between the replica's attempts to reach a source that went away (MariaDB's 60 s
would leave a restarted source unfollowed for a minute)."""
EXEC_MODES = {False: "STRICT", True: "IDEMPOTENT"}
"""slave_exec_mode of this system's database server while its replica runs, by `idempotent`."""
COPY_SHARE = 0.9
"""Part of the operation's bar the copy takes; the schema upgrade (and replica) the rest."""


def copy_reporter(progress: Progress, share: float = COPY_SHARE) -> Callable[[ProgressEvent], None]:
    """The copy's events as the operation's reports, in the copy's share of its bar; the
    copy's last event (its totals) always gets through."""

    def on_progress(event: ProgressEvent) -> None:
        progress.report(event.report().scaled(share))

    return on_progress


def copy_verified(
    context: RunContext,
    progress: Progress,
    *,
    source: SourceDatabase | None = None,
    tables: list[str] | None = None,
    share: float = COPY_SHARE,
) -> dict[str, Any]:
    """Copy the source's data database (or the chosen tables) here, verified chunk by chunk;
    resumes a copy this operation started before. Returns what the report says of it."""
    source = source or context.source_database()
    target = context.copier_database()
    resume = bool(context.memory.get("copy_started"))
    context.remember(copy_started=True)
    context.log(
        f"copying {source.redacted()} to {target.redacted()}" + (" (resumed)" if resume else "")
    )
    try:
        result = copy_database(
            source,
            target,
            tables=tables if tables is not None else context.run.tables,
            resume=resume,
            progress=copy_reporter(progress, share),
            workers=settings.MIGRATION_COPY_WORKERS,
            bandwidth_limit=context.run.bandwidth_limit,
        )
    except CopyError as error:
        raise OperationFailed(
            str(error), "Fix the cause, then Resume: the copy continues where it stopped."
        ) from error
    context.log(f"copied {result.rows} rows in {len(result.tables)} tables, verified")
    refused = result.refused + events_not_copied(context.run.source, result.refused)
    for item in refused:
        context.log(f"not copied: {item.kind} {item.name}: {item.reason}")
    return {
        "tables": {
            name: {"rows": table.rows, "checksum": table.checksum}
            for name, table in sorted(result.tables.items())
        },
        "views": result.views,
        "triggers": result.triggers,
        "routines": result.routines,
        "refused": [item.as_dict() for item in refused],
        "rows": result.rows,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 2),
        "resumed": resume,
    }


def schema_upgrade(context: RunContext, progress: Progress, fraction: float) -> list[str]:
    """Upgrade the copied data database's schema to this system's version."""
    progress.update(fraction, message="upgrading the data schema", force=True)
    steps = upgrade_data_schema()
    for step in steps:
        context.log(f"data schema upgraded to {step.version} ({step.migration})")
    return [f"{step.version} ({step.migration})" for step in steps]


def copy_and_upgrade(context: RunContext, progress: Progress) -> dict[str, Any]:
    """Copy the source's data database here, verified, then upgrade its schema to ours."""
    result = copy_verified(context, progress)
    return {**result, "schema_upgrades": schema_upgrade(context, progress, COPY_SHARE)}


def cutover(
    context: RunContext, progress: Progress, precopy: PreCopy, *, keep_replica: bool = False
) -> dict[str, Any]:
    """Finish an online pre-copy inside the maintenance window: the replica applies the source's
    binary log up to its end (the source refuses writes now), stops (unless `keep_replica`),
    and the tables are checksummed on both servers at once: every table, or, when every table
    was verified while the source served, those written since. A table that differs is copied
    again here. Returns the per-table figures for the report."""
    source = context.source_database(replication=True)
    target = context.target_database()
    online = RunHandoffs.of(context.run).online_check
    watch = online_watch(online, source.database)
    started = time.monotonic()
    final = binlog_position(source)
    if final is None:
        raise OperationFailed(
            "The source's database server no longer writes a binary log.",
            "Turn log_bin back on at the source, then Resume.",
        )
    progress.update(0.05, message=f"applying the source's last changes (up to {final.text})")

    def waiting(lag: Lag) -> None:
        progress.update(0.1, message=f"applying the source's last changes: {lag.text}")

    lag = replica_wait(
        target,
        REPLICA_NAME,
        lambda: final,
        waiting,
        timeout=settings.MIGRATION_REPLICA_TIMEOUT,
        watch=watch,
    )
    applied = time.monotonic() - started
    result: dict[str, Any] = {"online": True, "replicated_from": precopy.start, "to": final.text}
    if not lag.caught_up:
        context.log(f"the replica did not reach {final.text}: {lag.text}; copying again here")
        replica_stop(target)
        if keep_replica:  # the caller copies again and starts a replica of its own
            return {**result, "fallback": lag.text}
        return {**result, "fallback": lag.text, **copy_verified(context, progress, source=source)}
    if not keep_replica:
        replica_stop(target)
    context.log(f"the replica applied the source's changes up to {final.text}")
    again = None if online is None or watch is None else sorted(watch.changed | set(online.differ))
    progress.update(0.3, message=_verifying_message(online, again), force=True)
    checks = tables_verify(source, context.copier_database(), again)
    tables = _verified_tables(online, checks)
    differ = [check.name for check in checks if not check.equal]
    rows = sum(int(table["rows"]) for table in tables.values())
    progress.update(
        COPY_SHARE, figures={"rows_verified": rows, "tables_verified": len(tables)}, force=True
    )
    result |= {
        "applied_seconds": round(applied, 2),
        "verified_seconds": round(time.monotonic() - started - applied, 2),
        "verified_in_window": [check.name for check in checks],
        "tables": tables,
        "rows": rows,
    }
    if differ:
        context.log(f"tables that differ after the replica: {', '.join(differ)}; copied again")
        copied = copy_verified(context, progress, source=source, tables=differ, share=0.9)
        result |= {"copied_again": differ, "tables": {**result["tables"], **copied["tables"]}}
    return result


def online_watch(online: OnlineVerified | None, database: str) -> TableWatch | None:
    """What to note of the tables written since the verification made online (if any)."""
    if online is None:
        return None
    since = BinlogPosition.from_dict(online.position)
    return TableWatch(since.point, database, set(online.changed))


def _verifying_message(online: OnlineVerified | None, again: list[str] | None) -> str:
    if again is None:
        return "verifying every table on both servers"
    if not again:
        return "no table was written since every table was verified while the source served"
    return f"verifying the tables written since the online verification: {', '.join(again)}"


def _verified_tables(
    online: OnlineVerified | None, checks: list[TableCheck]
) -> dict[str, dict[str, Any]]:
    """Each table's figures for the report, saying when it was verified: those verified
    while the source served (and not written since), then those verified in the window."""
    tables: dict[str, dict[str, Any]] = {}
    if online is not None:
        where = f"while the source served (at {BinlogPosition.from_dict(online.position).text})"
        tables = {name: {**check, "verified": where} for name, check in online.tables.items()}
    for check in checks:
        tables[check.name] = {**check.as_dict(), "verified": "inside the maintenance window"}
    return dict(sorted(tables.items()))


def events_not_copied(source: SourceInfo, listed: list[RefusedObject]) -> list[RefusedObject]:
    """The source's events (which it names itself: the run's account cannot see them) that
    the copy has not listed yet, each as not copied."""
    known = {item.name for item in listed if item.kind == "event"}
    return [
        RefusedObject("event", name, EVENTS_NOT_COPIED)
        for name in source.data_events
        if name not in known
    ]


class CopyData(Operation):
    """4. Not HA: copy the data database over port 3306, verified by checksums."""

    name = "copy_data"
    label = "Copies data"
    weight = 20
    stall_hint = "The source's database does not answer, or a table on it is locked."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if facts.source_is_ha:
            return False, "the source is in high availability: its data is copied with the replica"
        if facts.accounts is not None:
            return False, "only the chosen accounts are migrated"
        if refusal := online_copy_refusal(facts):
            return True, f"Copies data inside the maintenance window because {refusal}"
        return True, (
            "the data was pre-copied while the source served: inside the maintenance window "
            "only its last changes are applied, then every table is verified"
        )

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        precopy = RunHandoffs.of(context.run).precopy
        if precopy is None or not precopy.replicating:
            return copy_and_upgrade(context, progress)
        result = cutover(context, progress, precopy)
        return {**result, "schema_upgrades": schema_upgrade(context, progress, COPY_SHARE)}


class CopyAccounts(Operation):
    """4'. Selective migration: only the chosen accounts, with their sessions and vouchers."""

    name = "copy_accounts"
    label = "Copies the chosen accounts"
    weight = 5
    stall_hint = "The source's database does not answer, or a table on it is locked."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if facts.accounts is None:
            return False, "all data is migrated"
        return True, f"{len(facts.accounts)} accounts were chosen"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        usernames = list(context.run.accounts or [])
        progress.update(0.1, message=f"copying {len(usernames)} accounts", force=True)
        try:
            with connect_source(context.source_database()) as source:
                with source.cursor() as cursor:
                    result = accounts_copy(cursor, usernames)
        except SourceTrustError as error:
            raise source_trust_failure(error) from error
        except pymysql.MySQLError as error:
            raise OperationFailed(
                f"The source's database could not be read: {error.args[-1]}",
                "Check that the source's database answers on port 3306, then Resume.",
            ) from error
        context.log(
            f"accounts: {len(result.migrated)} migrated, {len(result.not_migrated)} not migrated"
        )
        progress.update(
            1.0,
            figures={"accounts": len(result.migrated), "accounts_total": len(usernames)},
            force=True,
        )
        return result.as_dict()


def source_trust_failure(error: SourceTrustError) -> OperationFailed:
    """A refused source database server as a failed operation (the message says what to do)."""
    return OperationFailed(
        str(error), "Nothing was copied from that server. Fix the cause, then Resume."
    )


def _binlog_position(source: SourceDatabase) -> tuple[str, int]:
    """Where the source's binary log ends (OperationFailed when it writes none)."""
    try:
        position = binlog_position(source)
    except SourceTrustError as error:
        raise source_trust_failure(error) from error
    if position is None:
        raise OperationFailed(
            "The source's database server writes no binary log, so it cannot be replicated.",
            "Turn on log_bin on the source's MariaDB (its HA replication needs it anyway).",
        )
    return position.file, position.position


class CopyDataAndActivateReplica(Operation):
    """7. HA only: copy the data, then replicate from the source's binlog until caught up."""

    name = "copy_data_and_replica"
    label = "Copies data and activates replica"
    reversible = True
    weight = 22
    stall_hint = "The replica is not catching up: check the source's binary log and port 3306."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if not facts.source_is_ha:
            return False, "the source is standalone: its data is copied by Copies data"
        if refusal := online_copy_refusal(facts):
            return True, (
                f"the source is in high availability; copies data inside the maintenance "
                f"window because {refusal}"
            )
        return True, (
            "the source is in high availability; its data was pre-copied while it served and "
            "the replica follows it: inside the window only its last changes are applied"
        )

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        precopy = RunHandoffs.of(context.run).precopy
        if precopy is not None and precopy.replicating and "binlog" not in context.memory:
            result = cutover(context, progress, precopy, keep_replica=True)
            if "fallback" not in result:
                result["schema_upgrades"] = schema_upgrade(context, progress, COPY_SHARE)
                result["replica"] = {"from": precopy.start, "caught_up_at": result["to"]}
                return result
        return self._copy_and_replicate(context, progress)

    def _copy_and_replicate(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        """The data copied inside the window, then a replica from before the copy."""
        source = context.source_database(replication=True)
        if "binlog" not in context.memory:
            context.remember(binlog=list(_binlog_position(source)))
        result = copy_and_upgrade(context, progress)
        file, position = context.memory["binlog"]
        target = context.target_database()
        replica_start(target, source, file, int(position))
        context.log(
            f"replicating from {source.host}:{source.port} at {file}:{position} over TLS "
            f"(certificate {pem_fingerprint(source.certificate)})"
        )

        def waiting() -> None:
            progress.update(COPY_SHARE + 0.05, message="replica catching up with the source")

        caught_up = replica_wait_caught_up(
            target, source, waiting, timeout=settings.MIGRATION_REPLICA_TIMEOUT
        )
        result["replica"] = {"from": f"{file}:{position}", "caught_up_at": caught_up}
        return result

    def undo(self, context: RunContext) -> None:
        replica_stop(context.target_database())


CERTIFICATE_FILE = "migration-source-{}.pem"
"""Name of the file, on this system's database server, with a source's database certificate."""
FILE_EXISTS = 1086


def replica_certificate_store(cursor: Any, pem: str) -> str:
    """Have this system's database server keep the source's certificate in a file of its own,
    and return the file's path there (for MASTER_SSL_CA).

    The server writes it itself (`SELECT ... INTO DUMPFILE`, in secure_file_priv or else its
    data directory), so it can read it wherever it runs; the name comes from the fingerprint and
    a file already there is used only if it holds exactly this certificate.
    """
    cursor.execute("SELECT COALESCE(NULLIF(@@secure_file_priv, ''), @@datadir)")
    directory = str(cursor.fetchone()[0])
    name = CERTIFICATE_FILE.format(pem_fingerprint(pem).replace(":", "").lower())
    path = posixpath.join(directory, name)
    try:
        cursor.execute("SELECT %s INTO DUMPFILE %s", [pem, path])
        return path
    except pymysql.MySQLError as error:
        if error.args[0] != FILE_EXISTS:
            raise OperationFailed(
                "This system's database server could not store the source's database "
                f"certificate for its replica ({error.args[-1]}).",
                "Let this system's database account write files (the FILE privilege), or set "
                "secure_file_priv to a directory the server may write, then Resume.",
            ) from None
    cursor.execute("SELECT LOAD_FILE(%s) = %s", [path, pem])
    if (cursor.fetchone() or [0])[0] != 1:
        raise OperationFailed(
            f"The file {path} on this system's database server does not hold the source's "
            "database certificate.",
            "Remove that file, then Resume.",
        )
    return path


def replica_start(
    target: MySQLURL, source: SourceDatabase, file: str, position: int, *, idempotent: bool = False
) -> None:
    """Make this system's database server a replica of the source's from a binlog position,
    over TLS that accepts only the source's pinned certificate for the run's source address.
    Only its IO thread starts: `ReplicaGate.advance` lets it apply what it has checked.
    `idempotent`: a row change already here is applied again without error (the online
    pre-copy's replica starts from before rows its copy already holds)."""
    with server_connection(target) as connection, connection.cursor() as cursor:
        certificate = replica_certificate_store(cursor, source.certificate)
        _without_replica_error(cursor, f"STOP SLAVE '{REPLICA_NAME}'")
        cursor.execute(
            f"CHANGE MASTER '{REPLICA_NAME}' TO MASTER_HOST=%s, MASTER_PORT=%s, "
            "MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_LOG_FILE=%s, MASTER_LOG_POS=%s, "
            "MASTER_SSL=1, MASTER_SSL_CA=%s, MASTER_SSL_VERIFY_SERVER_CERT=1, "
            f"MASTER_CONNECT_RETRY={CONNECT_RETRY}",
            [
                source.host,
                source.port,
                source.user,
                source.password,
                file,
                position,
                certificate,
            ],
        )
        cursor.execute(
            f"SET GLOBAL {REPLICA_NAME}.replicate_rewrite_db = %s",
            [f"{source.database}->{target.database}"],
        )
        cursor.execute(f"SET GLOBAL {REPLICA_NAME}.replicate_do_db = %s", [target.database])
        cursor.execute(f"SET GLOBAL slave_exec_mode = '{EXEC_MODES[idempotent]}'")
        cursor.execute(f"START SLAVE '{REPLICA_NAME}' IO_THREAD")  # the gate starts the rest


def replica_wait_caught_up(
    target: MySQLURL, source: SourceDatabase, waiting: Callable[[], None], *, timeout: float
) -> str:
    """Wait until the replica has applied the source's binlog up to its end (read again each
    second); returns that position. OperationFailed when replication stops, when the gate
    refused what the source wrote, or when it does not catch up in time."""
    goal = BinlogPosition("", 0)

    def end() -> BinlogPosition:
        nonlocal goal
        goal = BinlogPosition(*_binlog_position(source))
        return goal

    lag = replica_wait(target, REPLICA_NAME, end, lambda lag: waiting(), timeout=timeout)
    if lag.caught_up:
        return f"{goal.file}:{goal.position}"
    if lag.refused:
        raise OperationFailed(
            lag.error,
            "Nothing of it ran here. Check what changed the source's database outside "
            "the appliance, then Resume: the replica starts again from the copy.",
        )
    if lag.error:
        with server_connection(target) as connection:
            _raise_replica_error(replica_status(connection, REPLICA_NAME), source)
        raise OperationFailed(
            f"Replication stopped: {lag.error}",
            "Check that port 3306 of the source is open and its binary log is complete.",
        )
    raise OperationFailed(
        f"The replica did not catch up with the source in time ({lag.text}).",
        "Check the source's load and network, then Resume.",
    )


def _raise_replica_error(status: dict[str, Any], source: SourceDatabase) -> None:
    """OperationFailed with the replica's error, if it has one."""
    if int(status.get("Last_IO_Errno") or 0) == SSL_CONNECTION_FAILED:
        raise OperationFailed(
            "This system's database server could not open a verified TLS connection to the "
            f"source's database server at {source.host}:{source.port} for its replica "
            f"({status.get('Last_IO_Error')}). It accepts only the certificate the source's peer "
            f"API handed out, and only if that certificate names {source.host} (it names: "
            f"{', '.join(certificate_names(source.certificate)) or 'nothing'}).",
            f"Give the source's database server a certificate whose SubjectAltName includes "
            f"{source.host} (and set APPLIANCE_DATA_DB_CERTIFICATE on the source to it), or "
            "check that nothing else answers on that port, then Resume.",
        )
    problem = status.get("Last_Error") or status.get("Last_IO_Error")
    if problem:
        raise OperationFailed(
            f"Replication stopped: {problem}",
            "Check that port 3306 of the source is open and its binary log is complete.",
        )


def certificate_names(pem: str) -> list[str]:
    """The names and addresses a certificate is for (its SubjectAltName, else its CN)."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return []
    try:
        alt_names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(
                x509.oid.NameOID.COMMON_NAME
            )
        ]
    addresses = alt_names.value.get_values_for_type(x509.IPAddress)
    return [*alt_names.value.get_values_for_type(x509.DNSName), *map(str, addresses)]


def replica_stop(target: MySQLURL) -> None:
    """Stop and forget this system's replica of the source (no error when there is none)."""
    with server_connection(target) as connection, connection.cursor() as cursor:
        _without_replica_error(cursor, f"STOP SLAVE '{REPLICA_NAME}'")
        _without_replica_error(cursor, f"RESET SLAVE '{REPLICA_NAME}' ALL")
        cursor.execute(f"SET GLOBAL slave_exec_mode = '{EXEC_MODES[False]}'")


NO_SUCH_REPLICA = 1617


def _without_replica_error(cursor: Any, statement: str) -> None:
    """Run a replica statement; 'there is no such replica' is fine."""
    try:
        cursor.execute(statement)
    except pymysql.err.OperationalError as error:
        if error.args[0] != NO_SUCH_REPLICA:
            raise
