"""Runs made as rows for the engine's tests (no source is reached), and a dispatch recorder."""

from __future__ import annotations

from typing import Any

import pytest

from migrations_engine import executor
from migrations_engine.models import MigrationRun

FULL_INFO: dict[str, Any] = {
    "host_name": "appliance-old",
    "domain_name": "mycompany.test",
    "ip_address": "192.0.2.10",
    "server_role": "standalone",
    "server_role_label": "Standalone",
    "software_version": "3.2",
    "data_size_bytes": 1000,
    "data_tables": [{"name": "subscriber", "rows": 3, "bytes": 1000}],
    "traffic_log_files": 0,
    "traffic_log_bytes": 0,
    "licence": {"guid": "G-1", "state": "active", "has_active_maintenance": True},
    "tls_fingerprint": "AA",
    "ssh_host_key": "ssh-ed25519 AAAA",
    "commands": {"restart": "true", "reboot": "true"},
    "traffic_log_dir": "/var/log/traffic",
    "certificate_files": {"certificate": "/etc/c.pem", "key": "/etc/k.pem"},
}
"""A complete `info` answer of a standalone source, as the peer API gives it."""
STANDALONE_INFO: dict[str, Any] = {
    "server_role": "standalone",
    "host_name": "old",
    "domain_name": "acme.test",
    "commands": {"reboot": "reboot"},
}


def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record what would be sent to the workers instead of sending it."""
    sent: list[int] = []
    monkeypatch.setattr(executor, "_dispatch", sent.append)
    return sent


def new_run(**fields: Any) -> MigrationRun:
    """A planned run of a standalone source."""
    run = MigrationRun.objects.create(
        source_address="127.0.0.2", source_info=STANDALONE_INFO, **fields
    )
    executor.run_plan(run)
    return run
