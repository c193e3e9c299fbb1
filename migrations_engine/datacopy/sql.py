"""Connections to the two servers and the few SQL helpers every module of the copier shares.

The target connection can run `LOAD DATA LOCAL INFILE` from bytes held in memory: PyMySQL only
reads the rows to send from a file, so a small subclass feeds them from a buffer instead.

The source connection goes over TLS to a server that must present exactly the certificate the
source's peer API handed out (`SourceDatabase.certificate`): it is the only certificate trusted
during the handshake and is compared byte for byte right after it, before PyMySQL sends the login.
Only a server on this machine given without a certificate (a headless copy, development) is read
without that check.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysql.connections import Connection, MySQLResult

from config.env import MySQLURL
from config.env import quote_name as quote_name  # the one quoting of names, shared with appliance
from migrations_engine.datacopy.errors import CopyError

LOAD_PACKET_BYTES = 1 << 20
"""How much of a LOAD DATA payload goes into one protocol packet."""

SESSION_SETTINGS = "SET SESSION sql_mode = '', time_zone = '+00:00', group_concat_max_len = %s"
"""Both servers format values the same way: no backslash surprises, zero dates allowed, UTC."""

CONNECTION_LOST_CODES = frozenset({2003, 2006, 2013, 2055, 1053, 1927})
"""Client and server error numbers that mean the server went away (not that the SQL was wrong)."""

TARGET_FULL_CODES = frozenset({1021, 1114, 3})
"""Disk full, table full, error writing file."""


class _MemoryLoadResult(MySQLResult):
    """A query result that answers the server's request for a LOAD DATA file from memory."""

    def _read_load_local_packet(self, first_packet: Any) -> None:
        connection: Any = self.connection
        payload = memoryview(connection.load_payload)
        try:
            for start in range(0, len(payload), LOAD_PACKET_BYTES):
                connection.write_packet(bytes(payload[start : start + LOAD_PACKET_BYTES]))
        finally:
            connection.write_packet(b"")
            ok_packet = connection._read_packet()
        self._read_ok_packet(ok_packet)  # type: ignore[attr-defined]


class LoadingConnection(Connection):  # type: ignore[misc]
    """A PyMySQL connection whose `LOAD DATA LOCAL INFILE` reads `load_payload`, not a file."""

    load_payload: bytes = b""

    def _read_query_result(self, unbuffered: bool = False) -> int:
        self._result = None
        result = _MemoryLoadResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return int(result.affected_rows or 0)

    def load_bytes(self, statement: str, payload: bytes) -> int:
        """Run a `LOAD DATA LOCAL INFILE` statement with `payload` as the file; rows loaded."""
        self.load_payload = payload
        try:
            with self.cursor() as cursor:
                return int(cursor.execute(statement))
        finally:
            self.load_payload = b""


SSL_CONNECTION_ERROR = 2026
"""PyMySQL's error number when the server does not offer the TLS it was asked for."""

CERTIFICATE_DATES = frozenset({9, 10})
"""OpenSSL's verify codes for a certificate not valid yet or expired."""
NAME_MISMATCH = frozenset({62, 64})
"""OpenSSL's verify codes for a certificate that does not name the host or address asked for."""


class SourceTrustError(CopyError):
    """The source's database server cannot be trusted with the login: no certificate is known
    for it, it offers no TLS, or it presented another certificate than the pinned one."""


@dataclass(frozen=True)
class SourceDatabase(MySQLURL):
    """A source's data database and the TLS certificate (PEM) its server must present."""

    certificate: str = field(default="", repr=False)


def der_fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate in DER form, as colon-separated upper-case hex."""
    return hashlib.sha256(der).digest().hex(":").upper()


def pem_fingerprint(pem: str) -> str:
    """SHA-256 fingerprint of the first certificate of a PEM text."""
    return der_fingerprint(ssl.PEM_cert_to_DER_cert(_first_certificate(pem)))


def _first_certificate(pem: str) -> str:
    start = pem.find(ssl.PEM_HEADER)
    end = pem.find(ssl.PEM_FOOTER, start)
    if start < 0 or end < 0:
        raise ValueError("not a PEM certificate")
    return pem[start : end + len(ssl.PEM_FOOTER)]


class PinnedContext(ssl.SSLContext):
    """TLS client settings that trust exactly one certificate: it is the only trust anchor of the
    handshake, and the certificate presented is compared with it right after the handshake."""

    fingerprint: str
    where: str

    def wrap_socket(  # type: ignore[override]
        self, sock: socket.socket, *args: Any, **kwargs: Any
    ) -> ssl.SSLSocket:
        try:
            wrapped = super().wrap_socket(sock, *args, **kwargs)
        except ssl.SSLCertVerificationError as error:
            raise self._refusal(error) from None
        presented = der_fingerprint(wrapped.getpeercert(binary_form=True) or b"")
        if presented != self.fingerprint:
            wrapped.close()
            raise self._refusal(None, presented)
        return wrapped

    def _refusal(
        self, error: ssl.SSLCertVerificationError | None, presented: str = ""
    ) -> SourceTrustError:
        if error is not None and error.verify_code in NAME_MISMATCH:
            return SourceTrustError(
                f"The certificate of the source's database server does not name {self.where} "
                "(the address this system reaches it at); nothing was sent to it. Give the "
                "source's database server a certificate that names this address (an IP address "
                "in its subjectAltName), set APPLIANCE_DATA_DB_CERTIFICATE on the source to it, "
                "then try again."
            )
        if error is not None and error.verify_code in CERTIFICATE_DATES:
            return SourceTrustError(
                f"The certificate of the source's database server at {self.where} is "
                f"{error.verify_message}; nothing was sent to it. Check the clocks of both "
                "systems, or give the source's database server a new certificate (and set "
                "APPLIANCE_DATA_DB_CERTIFICATE on the source to it), then try again."
            )
        seen = f" (fingerprint {presented})" if presented else ""
        return SourceTrustError(
            f"The source's database server at {self.where} presented a certificate{seen} other "
            "than the one the source's peer API handed out (fingerprint "
            f"{self.fingerprint}). Nothing was sent to it: no password, no query. Something "
            "else may be answering on that address and port: check the network path to the "
            "source. If the source's database certificate was replaced on purpose, make sure "
            "APPLIANCE_DATA_DB_CERTIFICATE on the source names the new one, then start again."
        )


def pinned_context(pem: str, where: str) -> PinnedContext:
    """A TLS client context that accepts only the server certificate `pem`."""
    context = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True  # it must name the address, as the HA replica checks too
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=_first_certificate(pem))
    context.fingerprint = pem_fingerprint(pem)
    context.where = where
    return context


def _source_tls(url: MySQLURL) -> PinnedContext | None:
    """The TLS context for a source connection, None for a local server given without one."""
    where = f"{url.host}:{url.port}"
    pem = url.certificate if isinstance(url, SourceDatabase) else ""
    if pem:
        try:
            return pinned_context(pem, where)
        except (ValueError, ssl.SSLError):
            raise SourceTrustError(
                f"The certificate given for the source's database server at {where} is not a "
                "PEM certificate; nothing was sent to the server."
            ) from None
    if isinstance(url, SourceDatabase) or not url.is_local:
        raise SourceTrustError(
            f"No certificate is known for the source's database server at {where}, so the "
            "copy could not tell that server from an impostor and would cross the network in "
            "clear text; nothing was sent to it. A source hands its database certificate out "
            "through its peer API (set APPLIANCE_DATA_DB_CERTIFICATE on the source); "
            "manage.py copy_data takes it with --source-certificate FILE."
        )
    return None


def source_connection(url: MySQLURL, *, read_timeout: int = 600) -> Connection:
    """A connection to the source server over TLS with its certificate pinned (SourceTrustError
    if that cannot be); a server on this machine given without a certificate is taken as is."""
    context = _source_tls(url)
    try:
        return pymysql.connect(
            **url.login(),
            database=url.database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=5,
            read_timeout=read_timeout,
            ssl=context,
        )
    except pymysql.OperationalError as error:
        if context is not None and error_code(error) == SSL_CONNECTION_ERROR:
            raise SourceTrustError(
                f"The source's database server at {url.host}:{url.port} does not offer TLS, "
                "although the source's peer API handed out a certificate for it; nothing was "
                "sent to it. Start the source's MariaDB with that certificate and its key "
                "(ssl_cert, ssl_key), or check that nothing else answers on that port."
            ) from None
        raise


def connect_source(url: MySQLURL, *, group_concat_max_len: int = 1 << 20) -> Connection:
    """A connection to the source server (see `source_connection`), in a consistent snapshot."""
    connection = source_connection(url)
    with connection.cursor() as cursor:
        cursor.execute(SESSION_SETTINGS, (group_concat_max_len,))
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    return connection


def connect_target(url: MySQLURL, *, database: str | None = None) -> LoadingConnection:
    """A connection to the target server, tuned for bulk loading; transactions are explicit."""
    connection = LoadingConnection(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        local_infile=True,
        connect_timeout=5,
        read_timeout=1800,
    )
    with connection.cursor() as cursor:
        cursor.execute(SESSION_SETTINGS, (1 << 20,))
        cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        try:
            cursor.execute("SET SESSION sql_log_bin = 0")
        except pymysql.OperationalError:
            pass  # an account without the privilege just writes the binary log as usual
    return connection


def error_code(error: BaseException) -> int | None:
    """The MariaDB error number of a PyMySQL error, if it has one."""
    if isinstance(error, pymysql.MySQLError) and error.args:
        first = error.args[0]
        if isinstance(first, int):
            return first
    return None


def is_connection_lost(error: BaseException) -> bool:
    """Whether the error means the server is unreachable or went away."""
    if isinstance(error, (pymysql.InterfaceError, ConnectionError, TimeoutError)):
        return True
    return error_code(error) in CONNECTION_LOST_CODES


def is_target_full(error: BaseException) -> bool:
    """Whether the error means the server has no space left for the data."""
    if error_code(error) in TARGET_FULL_CODES:
        return True
    text = str(error).lower()
    return "no space left" in text or "errno: 28" in text or "disk full" in text


def fetch_all(connection: Connection, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Every row of a query, as tuples."""
    with connection.cursor() as cursor:
        cursor.execute(statement, args)
        return list(cursor.fetchall())


def fetch_one(connection: Connection, statement: str, args: Any = None) -> tuple[Any, ...]:
    """The first row of a query that always returns one."""
    with connection.cursor() as cursor:
        cursor.execute(statement, args)
        row = cursor.fetchone()
    if row is None:
        raise LookupError(f"no row from: {statement[:80]}")
    return tuple(row)


def execute(connection: Connection, statement: str, args: Any = None) -> int:
    """Run one statement; the number of rows it touched."""
    with connection.cursor() as cursor:
        return int(cursor.execute(statement, args))


def close_quietly(connection: Connection | None) -> None:
    """Close a connection that may already be closed or broken."""
    if connection is None or not connection.open:
        return
    try:
        connection.close()
    except (pymysql.MySQLError, OSError):
        pass
