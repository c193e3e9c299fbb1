"""The migration report: what each operation did, per-table rows and checksums, durations.

It also lists what the data copy did not create here and why (`objects_not_copied`): the
source's tables, views, triggers and routines whose definition was refused, and its events,
which are never copied. A copy operation's result carries them as `result["refused"]`, a list
of {"kind", "name", "reason"} (see `RefusedObject.as_dict`).
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from appliance import services
from migrations_engine.advice import dns_advice_after
from migrations_engine.models import MigrationRun


def _seconds(start: Any, end: Any) -> float | None:
    return round((end - start).total_seconds(), 1) if start and end else None


def objects_not_copied(operations: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the copy operations did not create here, each with the operation and the reason."""
    return [
        {
            "operation": str(operation["label"]),
            "kind": str(item.get("kind", "")),
            "name": str(item.get("name", "")),
            "reason": str(item.get("reason", "")),
        }
        for operation in operations
        if isinstance(operation["result"], dict)
        for item in operation["result"].get("refused") or []
        if isinstance(item, dict)
    ]


def report_build(run: MigrationRun) -> dict[str, Any]:
    """The report of a run as plain data (stored on the run, served as JSON and HTML)."""
    operations = [
        {
            "name": state.name,
            "label": state.label,
            "status": state.status,
            "attempts": state.attempts,
            "seconds": _seconds(state.started_at, state.finished_at),
            "result": state.result,
            "error": state.error,
        }
        for state in run.operations.order_by("position")
    ]
    skipped = [
        {"label": row["label"], "reason": row["reason"]} for row in run.plan if not row["runs"]
    ]
    licence = services.licence_get()
    source = run.source
    backup = run.operations.filter(name="backup_current").values_list("result", flat=True).first()
    return {
        "run": run.id,
        "status": run.status,
        "source": {
            "address": run.source_address,
            "host_name": source.host_name,
            "domain_name": source.domain_name,
            "server_role": source.role_label,
            "software_version": source.software_version,
            "certificate_fingerprint": run.source_fingerprint,
        },
        "current_system": services.identity_get(),
        "options": {
            "swap_configuration": run.swap_configuration,
            "migrate_licence": run.migrate_licence,
            "copy_traffic_logs": run.copy_traffic_logs,
            "tables": run.tables or "all",
        },
        "operations": operations,
        "objects_not_copied": objects_not_copied(operations),
        "not_run": skipped,
        "dns_advice": dns_advice_after(run),
        "backup": backup or None,
        "licence": {"guid": licence.guid, "state": licence.state},
        "certificate_fingerprint": services.tls_fingerprint(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": timezone.now().isoformat(),
        "seconds": _seconds(run.started_at, timezone.now()),
    }


def report_html(run: MigrationRun) -> str:
    """The report as a readable, self-contained HTML page."""
    return render_to_string("migrations_engine/report.html", {"run": run, "report": run.report})
