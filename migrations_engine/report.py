"""The migration report: what each operation did, per-table rows and checksums, durations.

It also lists what the data copy did not create here and why (`objects_not_copied`): the
source's tables, views, triggers and routines whose definition was refused, and its events,
which are never copied. A copy operation's result carries them as `result["refused"]`, a list
of {"kind", "name", "reason"} (see `RefusedObject.as_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from appliance import services
from migrations_engine.advice import dns_advice_after
from migrations_engine.models import MigrationRun


def _seconds(start: Any, end: Any) -> float | None:
    return round((end - start).total_seconds(), 1) if start and end else None


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


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


@dataclass(frozen=True)
class MovedSummary:
    """What a run moved and checked, and how long the appliance's users were without service."""

    tables: int
    rows: int
    files: int
    bytes: int
    downtime_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def moved_summary(run: MigrationRun, operations: list[dict[str, Any]]) -> MovedSummary:
    """The tables and rows verified and the files and bytes checked, each counted once (the
    cutover's figures replace the pre-copy's, the last log pass lists every file)."""
    tables: dict[str, int] = {}
    files: dict[str, int] = {}
    for operation in operations:
        result = operation["result"] if isinstance(operation["result"], dict) else {}
        for name, table in (result.get("tables") or {}).items():
            tables[str(name)] = int(table.get("rows") or 0)
        for item in result.get("files") or []:
            files[str(item.get("path"))] = int(item.get("bytes") or 0)
    downtime = run.downtime_seconds
    return MovedSummary(
        tables=len(tables),
        rows=sum(tables.values()),
        files=len(files),
        bytes=sum(files.values()),
        downtime_seconds=round(downtime, 1) if downtime is not None else None,
    )


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
    summary = moved_summary(run, operations)
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
            "cutover": run.get_cutover_mode_display(),
            "cutover_at": run.cutover_at.isoformat() if run.cutover_at else None,
            "bandwidth_limit_bytes_per_second": run.bandwidth_limit,
        },
        "summary": summary.as_dict(),
        "downtime": {
            "seconds": summary.downtime_seconds,
            "source_refused_writes_at": _iso(run.downtime_started_at),
            "served_again_at": _iso(run.downtime_ended_at),
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
