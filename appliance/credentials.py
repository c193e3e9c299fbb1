"""Short-lived credentials a source hands to the system migrating from it, one set per run.

A read-only account on the data database (port 3306) and an authorisation of the run's SSH key
for the migration-only account (port 22), each usable only from the address that asked for it.
The account may log in only over TLS (`REQUIRE SSL`): the answer carries the database server's
certificate, which the caller pins, as it pins the SSH host key. It may read (and replicate, only
when asked for); it cannot write. Each credential is recorded so that it can be revoked at the end
of the run; expired ones are revoked by `credentials_revoke_expired`, which a periodic task runs.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

from appliance.models import IssuedCredential
from appliance.routers import DATA_DB_ALIAS
from appliance.services import ssh_fingerprint, ssh_host_key

logger = logging.getLogger(__name__)

RUN_REF_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa")
KEY_PATTERN = re.compile(r"^({}) [A-Za-z0-9+/=]{{40,2000}}$".format("|".join(KEY_TYPES)))
DATABASE_GRANTS = "SELECT, SHOW VIEW, TRIGGER"
"""Reading rows, view and trigger definitions (MariaDB shows a trigger only with TRIGGER)."""
ROUTINE_GRANTS = "SELECT ON mysql.proc"
"""Reading routine definitions: MariaDB 10.11 shows another account's routines only so."""
REPLICATION_GRANTS = "REPLICATION SLAVE, BINLOG MONITOR"
"""Streaming the binary log and reading its position (SHOW MASTER STATUS); replicating runs only."""
NO_SUCH_THREAD = 1094


class CredentialError(ValueError):
    """A request for credentials that cannot be granted as asked."""


class CredentialUnavailable(CredentialError):
    """This node cannot issue the credential at all, however it is asked for."""


def _check_run_ref(run_ref: str) -> str:
    if not RUN_REF_PATTERN.match(run_ref):
        raise CredentialError("run must be 1 to 40 letters, digits, '-' or '_'")
    return run_ref


def _expiry() -> Any:
    return timezone.now() + timedelta(seconds=settings.PEER_CREDENTIAL_TTL)


def _quote_account(user: str, host: str) -> str:
    return "'{}'@'{}'".format(user.replace("'", "''"), host.replace("'", "''"))


def _check_address(client_address: str) -> str:
    """The caller's IP address, as the credential's only allowed origin."""
    try:
        return str(ipaddress.ip_address(client_address))
    except ValueError:
        raise CredentialError("the caller's address is not an IP address") from None


def database_certificate() -> str:
    """The data database server's TLS certificate (PEM); CredentialUnavailable without one."""
    path = settings.APPLIANCE_DATA_DB_CERTIFICATE
    if not path:
        raise CredentialUnavailable(
            "This node's database server has no TLS certificate configured "
            "(APPLIANCE_DATA_DB_CERTIFICATE), so its data cannot be read over a verified, "
            "encrypted connection: no database account is issued. Give the database server a "
            "certificate (ssl_cert, ssl_key) and point APPLIANCE_DATA_DB_CERTIFICATE at it."
        )
    try:
        pem = Path(path).read_text()
        x509.load_pem_x509_certificate(pem.encode())
    except (OSError, ValueError) as error:
        raise CredentialUnavailable(
            f"This node's database certificate ({path}, APPLIANCE_DATA_DB_CERTIFICATE) cannot "
            f"be read as a PEM certificate ({error}); no database account is issued."
        ) from None
    return pem


def certificate_fingerprint(pem: str) -> str:
    """SHA-256 fingerprint of a PEM certificate, as colon-separated hex."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def database_account_issue(
    *, run_ref: str, client_address: str, replication: bool = False
) -> dict[str, Any]:
    """Create a run's account on the data database, for logins over TLS from the caller's address
    only: it reads, and replicates only with `replication`. The password is told once."""
    _check_run_ref(run_ref)
    host = _check_address(client_address)
    certificate = database_certificate()
    user = "mig_" + re.sub(r"[^a-z0-9]", "", run_ref.lower())[:20] + "_" + secrets.token_hex(3)
    password = secrets.token_urlsafe(24)
    database = connections[DATA_DB_ALIAS].settings_dict["NAME"]
    account = _quote_account(user, host)
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(f"CREATE USER {account} IDENTIFIED BY %s REQUIRE SSL", [password])
        cursor.execute(f"GRANT {DATABASE_GRANTS} ON `{database}`.* TO {account}")
        cursor.execute(f"GRANT {ROUTINE_GRANTS} TO {account}")
        if replication:
            cursor.execute(f"GRANT {REPLICATION_GRANTS} ON *.* TO {account}")
    expires_at = _expiry()
    IssuedCredential.objects.create(
        kind=IssuedCredential.Kind.DATABASE,
        run_ref=run_ref,
        name=f"{user}@{host}",
        client_address=client_address,
        expires_at=expires_at,
    )
    return {
        "user": user,
        "password": password,
        "host": settings.APPLIANCE_DATA_DB_PUBLIC_HOST,
        "port": settings.APPLIANCE_DATA_DB_PUBLIC_PORT,
        "database": database,
        "replication": replication,
        "tls_certificate": certificate,
        "tls_fingerprint": certificate_fingerprint(certificate),
        "expires_at": expires_at.isoformat(),
    }


def _drop_database_account(name: str) -> None:
    """Drop the account and end the sessions it still has (a replica's, say)."""
    user, _, host = name.rpartition("@")
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS {_quote_account(user, host)}")
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", [user])
        for (session,) in cursor.fetchall():
            _end_session(cursor, int(session))


def _end_session(cursor: Any, session: int) -> None:
    try:
        cursor.execute("KILL CONNECTION %s", [session])
    except DatabaseError as error:
        if error.args[0] != NO_SUCH_THREAD:  # it ended meanwhile
            logger.warning(
                "Could not end database session %s of a revoked account: %s", session, error
            )


def ssh_key_authorise(*, run_ref: str, public_key: str, client_address: str) -> dict[str, Any]:
    """Let the run's public key log in to the migration-only account, from the caller's address
    only, until it expires."""
    _check_run_ref(run_ref)
    address = _check_address(client_address)
    key = " ".join(public_key.split()[:2])
    if not KEY_PATTERN.match(key):
        raise CredentialError("public_key must be an OpenSSH public key line")
    fingerprint = ssh_fingerprint(key)
    expires_at = _expiry()
    options = f'restrict,expiry-time="{expires_at:%Y%m%d%H%M%S}Z",from="{address}"'
    line = f"{options} {key} migration-run-{run_ref}"
    _authorized_keys_edit(lambda lines: [*_without(lines, fingerprint), line])
    IssuedCredential.objects.update_or_create(
        kind=IssuedCredential.Kind.SSH_KEY,
        name=fingerprint,
        defaults={
            "run_ref": run_ref,
            "client_address": client_address,
            "expires_at": expires_at,
            "revoked_at": None,
        },
    )
    host_key = ssh_host_key()
    return {
        "user": settings.APPLIANCE_SSH_USER,
        "host": settings.APPLIANCE_SSH_HOST,
        "port": settings.APPLIANCE_SSH_PORT,
        "host_key": host_key,
        "host_key_fingerprint": ssh_fingerprint(host_key),
        "key_fingerprint": fingerprint,
        "expires_at": expires_at.isoformat(),
    }


def _line_fingerprint(line: str) -> str:
    """The fingerprint of the key on an authorized_keys line ('' if it holds none)."""
    parts = line.split()
    for kind, blob in itertools.pairwise(parts):
        if kind in KEY_TYPES:
            return ssh_fingerprint(f"{kind} {blob}")
    return ""


def _without(lines: list[str], fingerprint: str) -> list[str]:
    return [line for line in lines if _line_fingerprint(line) != fingerprint]


def _authorized_keys_edit(change: Any) -> None:
    """Rewrite the authorized_keys file atomically, private to its owner."""
    path = Path(settings.APPLIANCE_SSH_AUTHORIZED_KEYS)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = path.read_text().splitlines() if path.exists() else []
    new_lines = change(lines)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".authorized_keys.")
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{line}\n" for line in new_lines))
    os.chmod(temp, 0o600)
    os.replace(temp, path)


def credential_revoke(credential: IssuedCredential) -> None:
    """Take back one credential (drop the account, remove the key); idempotent."""
    if credential.kind == IssuedCredential.Kind.DATABASE:
        _drop_database_account(credential.name)
    else:
        _authorized_keys_edit(lambda lines: _without(lines, credential.name))
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])


def credentials_revoke(*, run_ref: str, kind: str | None = None) -> int:
    """Revoke what was issued to a run (of one kind, or all); returns how many."""
    issued = IssuedCredential.objects.filter(run_ref=run_ref, revoked_at__isnull=True)
    if kind:
        issued = issued.filter(kind=kind)
    count = 0
    for credential in issued:
        credential_revoke(credential)
        count += 1
    return count


def credentials_revoke_expired() -> int:
    """Revoke every credential whose time is up; returns how many."""
    count = 0
    expired = IssuedCredential.objects.filter(
        revoked_at__isnull=True, expires_at__lt=timezone.now()
    )
    for credential in expired:
        credential_revoke(credential)
        count += 1
    return count
