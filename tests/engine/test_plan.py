"""The plan builder: for every combination of HA and options, which operations run, in order."""

from __future__ import annotations

import itertools

import pytest

from migrations_engine.plan import PlanFacts, licence_migration_refusal, plan_build
from migrations_engine.source_info import SourceInfo

ALWAYS = [
    "Backs up the current system",
    "Copies the System Settings",
    "Places the source under maintenance",
    "Modifies the source configuration",
    "Updates the certificates",
    "Restarts the services",
    "Final operations",
]


def expected(ha: bool, swap: bool, licence: bool, logs: bool, online: bool) -> list[str]:
    """The seed's list, after our backup and the online part, with our licence step, written
    out by hand."""
    rows = ["Backs up the current system", "Copies the System Settings"]
    if online:
        rows.append("Pre-copies data (the source stays in service)")
    if logs:
        rows.append("Pre-copies the traffic logs")
    if online:
        rows.append("Keeps the copy in sync until the cutover")
    rows.append("Places the source under maintenance")
    if ha:
        rows.append("Deactivates the replica")
    else:
        rows.append("Copies data")
    if licence:
        rows.append("Migrates the license")
    rows.append("Modifies the source configuration")
    if swap:
        rows.append("Reboots the current and source system")
    if ha:
        rows.append("Copies data and activates replica")
    rows += ["Updates the certificates", "Restarts the services"]
    if logs:
        rows.append("Copies the syslog data")
    rows.append("Final operations")
    return rows


@pytest.mark.parametrize(
    ("ha", "swap", "licence", "logs", "online"),
    list(itertools.product([False, True], repeat=5)),
)
def test_every_combination_runs_the_right_operations_in_order(
    ha: bool, swap: bool, licence: bool, logs: bool, online: bool
) -> None:
    plan = plan_build(
        PlanFacts(
            source_is_ha=ha,
            swap_configuration=swap,
            migrate_licence=licence,
            copy_traffic_logs=logs,
            binlog_refusal="" if online else "the source's binary log is off",
        )
    )
    assert [row.label for row in plan if row.runs] == expected(ha, swap, licence, logs, online)
    assert all(row.reason for row in plan)


def test_a_source_that_cannot_be_followed_is_copied_inside_the_window_and_the_plan_says_why() -> (
    None
):
    facts = PlanFacts(source_is_ha=False, binlog_refusal="the source's binary log is off")
    plan = {row.label: row for row in plan_build(facts)}
    assert not plan["Pre-copies data (the source stays in service)"].runs
    assert plan["Copies data"].reason == (
        "Copies data inside the maintenance window because the source's binary log is off"
    )
    online = {
        row.label: row for row in plan_build(PlanFacts(source_is_ha=False, binlog_refusal=""))
    }
    assert "only its last changes are applied" in online["Copies data"].reason


def test_a_cutover_at_a_chosen_time_waits_even_when_nothing_is_copied_online() -> None:
    facts = PlanFacts(source_is_ha=True, cutover_waits=True, binlog_refusal="no binary log")
    plan = {row.label: row for row in plan_build(facts)}
    assert plan["Keeps the copy in sync until the cutover"].runs
    assert not plan["Pre-copies data (the source stays in service)"].runs


def test_skipped_operations_say_why() -> None:
    plan = {row.label: row for row in plan_build(PlanFacts(source_is_ha=False))}
    assert not plan["Deactivates the replica"].runs
    assert "standalone" in plan["Deactivates the replica"].reason
    assert "Swap Configuration is off" in plan["Reboots the current and source system"].reason
    assert "Copy User Traffic Logs is off" in plan["Copies the syslog data"].reason


@pytest.mark.parametrize(
    ("target_state", "source_licence", "refusal"),
    [
        ("none", {"state": "active", "has_active_maintenance": True}, ""),
        ("active", {"state": "active", "has_active_maintenance": True}, "already has a licence"),
        ("none", {"state": "active", "has_active_maintenance": False}, "maintenance contract"),
        ("none", {"state": "transferred", "has_active_maintenance": True}, "no active licence"),
        ("transferred", {"state": "active", "has_active_maintenance": True}, ""),
    ],
)
def test_licence_migration_needs_no_licence_here_and_a_maintained_one_there(
    target_state: str, source_licence: dict[str, object], refusal: str
) -> None:
    reason = licence_migration_refusal(
        target_licence_state=target_state,
        source=SourceInfo.stored({"licence": source_licence}),
    )
    assert (refusal in reason) if refusal else reason == ""
