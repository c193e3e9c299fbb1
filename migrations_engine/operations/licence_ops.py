"""Migrate License: this system claims the licence first, then the source invalidates its own.

Both halves are idempotent (keyed by the licence GUID), so a crash between them ends, after a
retry, with exactly one active licence: this system's.
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_date

from appliance import services
from appliance.models import LicenceState
from migrations_engine.context import Progress, RunContext
from migrations_engine.operations.base import Operation, OperationFailed
from migrations_engine.plan import PlanFacts


class MigrateLicence(Operation):
    """Move the licence from the source to this system."""

    name = "migrate_licence"
    label = "Migrates the license"

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if facts.migrate_licence:
            return True, "Migrate License is on"
        return False, "Migrate License is off"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        source_licence = context.run.source.licence
        guid = source_licence.guid
        if not guid:
            raise OperationFailed(
                "The source has no licence to migrate.", "Run without Migrate License."
            )
        licence = services.licence_get()
        if licence.state == LicenceState.ACTIVE and licence.guid != guid:
            raise OperationFailed(
                "This system already has another active licence.",
                "Run again without Migrate License, or remove this system's licence first.",
            )
        licence.guid = guid
        licence.holder = source_licence.holder
        licence.maintenance_until = parse_date(source_licence.maintenance_until or "")
        licence.state = LicenceState.ACTIVE
        licence.save()
        context.log(f"this system claimed licence {guid}")
        progress.update(0.5, message="claimed here; releasing on the source", force=True)
        context.peer_call("licence_release", guid=guid, transferred_to=services.node_get().fqdn)
        context.log(f"the source released licence {guid}")
        return {"guid": guid, "current_system": "active", "source": "transferred"}
