"""The plan of a migration: which operations run, in what order, and why the others do not.

The facts it needs are the source's info (HA or not, licence) and the administrator's options;
each operation decides for itself through `applies(facts)`, so the rules live with the work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from migrations_engine.source_info import SourceInfo


@dataclass(frozen=True)
class PlanFacts:
    """What decides the plan: the source's nature and the chosen options."""

    source_is_ha: bool
    swap_configuration: bool = False
    migrate_licence: bool = False
    copy_traffic_logs: bool = False
    tables: tuple[str, ...] | None = None
    accounts: tuple[str, ...] | None = None
    binlog_refusal: str = "the source does not say whether its database server writes a binary log"
    """Why the source's database server cannot be followed by a replica ('' when it can)."""
    cutover_waits: bool = False
    """Whether the cutover waits for a chosen time or for someone to ask for it."""


@dataclass(frozen=True)
class PlannedOperation:
    """One row of the plan: an operation, whether it runs, and the reason."""

    name: str
    label: str
    runs: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_build(facts: PlanFacts) -> list[PlannedOperation]:
    """Every operation in execution order, each saying whether it runs for these facts and why."""
    from migrations_engine.operations import OPERATIONS

    rows = []
    for operation in OPERATIONS:
        runs, reason = operation.applies(facts)
        rows.append(PlannedOperation(operation.name, operation.label, runs, reason))
    return rows


def online_copy_refusal(facts: PlanFacts) -> str:
    """Why the data cannot be pre-copied while the source serves ('' when it can): then it is
    copied inside the maintenance window, as the plan says."""
    if facts.accounts is not None:
        return "only the chosen accounts are migrated"
    if facts.tables is not None:
        return "only chosen tables are copied"
    return facts.binlog_refusal


def licence_migration_refusal(*, target_licence_state: str, source: SourceInfo) -> str:
    """Why the licence cannot be migrated ('' when it can): the seed's two conditions."""
    if target_licence_state == "active":
        return "This system already has a licence."
    if not source.licence.is_active:
        return "The source has no active licence."
    if not source.licence.has_active_maintenance:
        return "The source's maintenance contract is not active."
    return ""
