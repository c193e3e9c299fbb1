"""Preparing a run: reach the source, check its certificate, log in, read its info, plan.

Used by the wizard and by `manage.py migrate_from`, so both prepare runs the same way.
"""

from __future__ import annotations

import re
from typing import Any

from appliance import services as node_services
from migrations_engine.executor import run_plan
from migrations_engine.models import MigrationRun
from migrations_engine.peer_client import PeerClient, certificate_fingerprint, fetch_certificate
from migrations_engine.plan import licence_migration_refusal
from migrations_engine.secrets import secret_put


class PreparationError(Exception):
    """The run cannot be prepared as asked; the message says why and what to do."""


def fingerprint_normalise(text: str) -> str:
    """A SHA-256 fingerprint as 64 upper-case hex digits, however it was written."""
    text = text.strip()
    if "=" in text:  # as `openssl x509 -noout -fingerprint -sha256` prints it
        text = text.split("=", 1)[1]
    return re.sub(r"[^0-9A-Fa-f]", "", text).upper()


def run_prepare(
    *,
    address: str,
    password: str,
    fingerprint: str,
    port: int = 443,
    swap_configuration: bool = False,
    migrate_licence: bool = False,
    copy_traffic_logs: bool = False,
    tables: list[str] | None = None,
    user: Any = None,
) -> MigrationRun:
    """A planned run for this source and these options, with the admin password kept encrypted."""
    pem = fetch_certificate(address, port)
    presented = certificate_fingerprint(pem)
    if fingerprint_normalise(presented) != fingerprint_normalise(fingerprint):
        raise PreparationError(
            f"The source's certificate has the fingerprint {presented}, not the one confirmed. "
            "Check that you are talking to the right system."
        )
    client = PeerClient(address, pem, port)
    client.login(password)
    info = client.info()
    client.logout()
    if migrate_licence:
        refusal = licence_migration_refusal(
            target_licence_state=node_services.licence_get().state, source_info=info
        )
        if refusal:
            raise PreparationError(f"Migrate License is not possible: {refusal}")
    run = MigrationRun.objects.create(
        created_by=user if getattr(user, "pk", None) else None,
        source_address=address,
        source_port=port,
        source_certificate=pem,
        source_fingerprint=presented,
        source_info=info,
        swap_configuration=swap_configuration,
        migrate_licence=migrate_licence,
        copy_traffic_logs=copy_traffic_logs,
        tables=tables,
    )
    secret_put(run, "admin_password", password)
    run_plan(run)
    return run
