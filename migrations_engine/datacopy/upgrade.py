"""Brings a copied data database up to this software's data schema, one version at a time.

A source running an older version of the software has its data database at an older migration
of `appliance_data`; the copy carries its `django_migrations` rows along, so the data
database's own migrations (schema changes and data migrations alike) can run here, in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from appliance.data.models import SCHEMA_VERSIONS
from appliance.routers import DATA_APP_LABEL, DATA_DB_ALIAS


@dataclass(frozen=True)
class UpgradeStep:
    """One migration applied: its name, the software version it belongs to, how long it took."""

    migration: str
    version: str
    seconds: float


def pending_data_migrations(*, alias: str = DATA_DB_ALIAS) -> list[str]:
    """Names of the data schema's migrations not yet applied to the database, oldest first."""
    executor = MigrationExecutor(connections[alias])
    targets = executor.loader.graph.leaf_nodes(DATA_APP_LABEL)
    return [
        migration.name
        for migration, backwards in executor.migration_plan(targets)
        if migration.app_label == DATA_APP_LABEL and not backwards
    ]


def upgrade_data_schema(
    *, alias: str = DATA_DB_ALIAS, progress: Callable[[UpgradeStep], None] | None = None
) -> list[UpgradeStep]:
    """Apply the pending data migrations one by one, reporting each step as it completes."""
    steps = []
    for name in pending_data_migrations(alias=alias):
        started = time.monotonic()
        executor = MigrationExecutor(connections[alias])
        executor.migrate([(DATA_APP_LABEL, name)])
        step = UpgradeStep(name, SCHEMA_VERSIONS.get(name, "?"), time.monotonic() - started)
        steps.append(step)
        if progress is not None:
            progress(step)
    return steps
