"""Runs made as rows for the engine's tests (no source is reached), and a dispatch recorder."""

from __future__ import annotations

from typing import Any

import pytest

from migrations_engine import executor
from migrations_engine.models import MigrationRun

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
