"""0. The backup of the current system, taken before any operation changes it."""

from __future__ import annotations

from typing import Any

from appliance.backup import BackupError, backup_create, backup_get
from migrations_engine.context import Progress, RunContext
from migrations_engine.handoffs import keep_backup, own
from migrations_engine.operations.base import Operation, OperationFailed
from migrations_engine.plan import PlanFacts


class BackupCurrentSystem(Operation):
    """Back up this system's data database, settings, licence and certificates (once per run)."""

    name = "backup_current"
    label = "Backs up the current system"
    weight = 2
    stall_hint = "The backup is not moving: check the disk and the database server here."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        return True, "always, before anything here is overwritten"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        if taken := own(context).backup:
            try:
                backup = backup_get(taken)
                return _described(backup.id, backup.size_bytes, str(backup.directory))
            except BackupError:
                context.log("the backup recorded earlier is gone; taking a new one")
        try:
            backup = backup_create(
                f"before migration run {context.run.id} from {context.run.source_address}",
                progress=progress.report,
            )
        except BackupError as error:
            raise OperationFailed(
                str(error), "Free space or fix the cause, then Resume."
            ) from error
        keep_backup(context, backup.id)
        context.log(f"backup {backup.id} taken ({backup.size_bytes} bytes) in {backup.directory}")
        return _described(backup.id, backup.size_bytes, str(backup.directory))


def _described(backup_id: str, size: int, directory: str) -> dict[str, Any]:
    return {"backup": backup_id, "bytes": size, "directory": directory}
