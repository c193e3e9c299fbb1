"""Operations on system settings: copy them from the source, and change the source's."""

from __future__ import annotations

from typing import Any

from appliance import services
from migrations_engine.context import Progress, RunContext
from migrations_engine.handoffs import KeptSettings, RunHandoffs, keep_settings, own
from migrations_engine.operations.base import Operation, OperationFailed


class CopySettings(Operation):
    """1. Fetch the source's settings and apply them here: basic groups, or all with a swap."""

    name = "copy_settings"
    label = "Copies the System Settings"
    reversible = True

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        if own(context).settings_kept_for_swap is None:
            keep_settings(
                context, KeptSettings(services.settings_export(), services.identity_get())
            )
        source_settings = context.peer_call("settings")["settings"]
        progress.update(0.5, message="applying the source's settings", force=True)
        basic, site_bound = services.split_settings(source_settings)
        if context.run.swap_configuration:
            services.settings_set_all(source_settings)
            services.identity_set(**context.run.source.identity)
            applied = sorted(source_settings)
        else:
            services.settings_replace(basic)
            applied = sorted(basic)
        context.log(f"applied setting groups: {', '.join(applied)}")
        return {"groups_applied": applied, "groups_kept": sorted(set(site_bound) - set(applied))}

    def undo(self, context: RunContext) -> None:
        if (kept := own(context).settings_kept_for_swap) is not None:
            services.settings_set_all(kept.settings)
            services.identity_set(**kept.identity)
            context.log("this system's previous settings are back")


class ModifySourceConfiguration(Operation):
    """5. Swap: the source takes this system's former site-bound settings and identity.
    Otherwise the source is marked as migrated (and stays in maintenance)."""

    name = "modify_source_configuration"
    label = "Modifies the source configuration"
    reversible = True

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        if "source_previous" not in context.memory:
            context.remember(
                source_previous=context.peer_call("settings")["settings"],
                source_identity=context.run.source.identity,
            )
        if context.run.swap_configuration:
            ours = RunHandoffs.of(context.run).settings_kept_for_swap
            if ours is None:
                raise OperationFailed(
                    "This system's former settings were not kept: the swap cannot go on.",
                    "Start over.",
                )
            _, site_bound = services.split_settings(ours.settings)
            context.peer_call("configuration", site_bound, identity=ours.identity)
            context.log("the source took this system's former network identity and settings")
            return {"source_took": sorted(site_bound), "source_identity": ours.identity}
        fqdn = services.node_get().fqdn
        context.peer_call("configuration", {}, migrated_to=fqdn)
        context.log(f"the source is marked as migrated to {fqdn}")
        return {"source_marked_migrated_to": fqdn}

    def undo(self, context: RunContext) -> None:
        if "source_previous" in context.memory:
            context.peer_call(
                "configuration",
                context.memory["source_previous"],
                identity=context.memory["source_identity"],
                migrated_to="",
            )
            context.log("the source's previous settings are back")
