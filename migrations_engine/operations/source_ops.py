"""Operations on the source through its peer API: maintenance, replication, the final tidy-up."""

from __future__ import annotations

from typing import Any

from migrations_engine.context import Progress, RunContext
from migrations_engine.handoffs import RunHandoffs, keep_round_robin_hosts, own
from migrations_engine.operations.base import Operation
from migrations_engine.operations.data_ops import replica_stop
from migrations_engine.plan import PlanFacts


class PlaceSourceUnderMaintenance(Operation):
    """2. Maintenance on at the source; HA: take the round-robin hosts off its Master."""

    name = "source_maintenance"
    label = "Places the source under maintenance"
    reversible = True

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        source = context.run.source
        if "round_robin_hosts" not in context.memory:
            keep_round_robin_hosts(context, source.ha.round_robin_hosts)
        hosts = list(own(context).round_robin_hosts_removed)
        context.peer_call("maintenance", enabled=True, reason=f"migration run {context.run.id}")
        context.downtime_begins()
        result: dict[str, Any] = {"maintenance": True}
        if source.is_ha_master and hosts:
            context.peer_call("round_robin_hosts", [])
            result["round_robin_hosts_removed"] = hosts
        context.log("the source is in maintenance mode")
        return result

    def undo(self, context: RunContext) -> None:
        if hosts := list(own(context).round_robin_hosts_removed):
            context.peer_call("round_robin_hosts", hosts)
        context.peer_call("maintenance", enabled=False)
        context.log("the source is out of maintenance mode")


class DeactivateReplica(Operation):
    """3. HA only: stop the replication between the source and its HA peer."""

    name = "deactivate_replica"
    label = "Deactivates the replica"
    reversible = True

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if facts.source_is_ha:
            return True, "the source is in high availability"
        return False, "the source is standalone: it has no replica"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        context.peer_call("replication", running=False)
        context.log("replication between the source and its HA peer is stopped")
        return {"replication": "stopped"}

    def undo(self, context: RunContext) -> None:
        context.peer_call("replication", running=True)


class FinalOperations(Operation):
    """11. HA: round-robin hosts back on the source Master; revoke the run's credentials."""

    name = "final_operations"
    label = "Final operations"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if hosts := list(RunHandoffs.of(context.run).round_robin_hosts_removed):
            context.peer_call("round_robin_hosts", hosts)
            result["round_robin_hosts_restored"] = hosts
        if context.run.swap_configuration:
            context.peer_call("maintenance", enabled=False)
            result["source_maintenance"] = "off (it took this system's former configuration)"
        else:
            result["source_maintenance"] = "on (the source is retired)"
        if context.run.operations.filter(name="copy_data_and_replica").exists():
            replica_stop(context.target_database())
            result["replica"] = "caught up, then stopped before the run's account is dropped"
        result["credentials_revoked"] = context.peer_call("revoke", context.run.peer_ref)
        context.log("final operations done")
        return result
