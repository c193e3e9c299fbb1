"""Operations that reach the source over SSH: reboots (swap) and the traffic-log copy.

Each opens its own SSH session: a key made for the run, authorised through the peer API with
the host key pinned, and revoked when the operation ends, whatever happens.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from appliance.progress import Report
from migrations_engine.accounts import (
    UnsafeName,
    accounts_log_name,
    host_name_check,
    traffic_lines_filter,
)
from migrations_engine.context import Progress, RunContext
from migrations_engine.operations.base import (
    Operation,
    OperationFailed,
    remote_failure,
)
from migrations_engine.operations.system_ops import (
    run_local_command,
    wait_until_web_answers,
    wait_until_web_down,
)
from migrations_engine.plan import PlanFacts
from migrations_engine.remote.errors import RemoteError, SourceDidNotReturn
from migrations_engine.remote.hashing import local_sha256
from migrations_engine.remote.listing import name_shown
from migrations_engine.remote.reboot import reboot_and_wait
from migrations_engine.remote.session import ssh_session
from migrations_engine.remote.tree import copy_tree


def write_lines(target: Path, lines: Iterable[bytes]) -> int:
    """Write lines gzipped under a temporary name, then rename; returns how many."""
    partial = target.with_name(f".{target.name}.partial")
    count = 0
    with gzip.open(partial, "wb") as out:
        for line in lines:
            out.write(line)
            count += 1
    partial.rename(target)
    return count


def _file_receipt(directory: Path, name: str, sha256: str | None = None) -> dict[str, Any]:
    """A copied file as the report lists it: its path, size and SHA-256 (the one verified
    during the copy when given, else computed here)."""
    path = directory / name
    digest = sha256 or local_sha256(path).hexdigest()
    return {"path": name, "bytes": path.stat().st_size, "sha256": digest}


def _files_report(done: int, total: int, name: str, *, final: bool = False) -> Report:
    """Where a file-by-file pass stands: `done` of `total` files, `name` the one it is on."""
    return Report(
        done / total if total else 1.0,
        figures={"files": done, "files_total": total},
        message=name,
        final=final,
    )


class RebootSystems(Operation):
    """6. Swap only: reboot the source, then this system; the run goes on after each is back."""

    name = "reboot_systems"
    label = "Reboots the current and source system"
    weight = 3
    stall_hint = "A system has not come back from its reboot yet."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if facts.swap_configuration:
            return True, "Swap Configuration is on"
        return False, "Swap Configuration is off: no reboot is needed"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if not context.memory.get("source_rebooted"):
            if context.memory.get("source_reboot_started_at"):  # asked before: never twice
                result["source_seconds"] = self._wait_for_source(context, progress)
            else:
                result["source_seconds"] = self._reboot_source(context, progress)
            context.remember(source_rebooted=True)
        progress.update(0.5, message="rebooting this system", force=True)
        if not context.memory.get("local_reboot_requested"):
            context.remember(local_reboot_requested=True)
            context.log("rebooting this system; the run goes on when it is back")
            run_local_command(settings.APPLIANCE_REBOOT_COMMAND, context)
            wait_until_web_down(context)
        result["current_back_after_seconds"] = round(wait_until_web_answers(context, progress), 1)
        return result

    def _reboot_source(self, context: RunContext, progress: Progress) -> float:
        command = context.run.source.commands.reboot
        if not command:
            raise OperationFailed("The source did not say how it reboots.", "Update the source.")
        progress.update(0.1, message="rebooting the source", force=True)
        try:
            with ssh_session(context.peer(), context.run.peer_ref) as session:
                context.remember(source_reboot_started_at=timezone.now().isoformat())
                outcome = reboot_and_wait(
                    session.client,
                    command,
                    session.connect,
                    limit=settings.MIGRATION_REBOOT_LIMIT,
                    settle=settings.MIGRATION_REBOOT_SETTLE,
                    check=lambda: self._source_answers(context),
                )
                outcome.client.close()
        except SourceDidNotReturn as error:
            raise remote_failure(error) from error  # it may be rebooting: a resume waits
        except RemoteError as error:
            if context.memory.get("source_reboot_started_at"):
                context.remember(source_reboot_started_at="")  # the command did not run
            raise remote_failure(error) from error
        context.log(f"the source is back after {outcome.seconds:.0f} s")
        return round(outcome.seconds, 1)

    def _wait_for_source(self, context: RunContext, progress: Progress) -> float:
        """The source's reboot was asked for by an earlier attempt: wait until it answers
        again rather than rebooting it a second time."""
        context.log("the source's reboot was asked for before; waiting for it to answer")
        progress.update(0.1, message="waiting for the source to come back", force=True)
        started = time.monotonic()
        deadline = started + settings.MIGRATION_REBOOT_LIMIT
        while time.monotonic() < deadline:
            if self._source_answers(context):
                seconds = time.monotonic() - started
                context.log(f"the source answers again after {seconds:.0f} s of waiting")
                return round(seconds, 1)
            progress.update(0.1, message="waiting for the source to come back")
            time.sleep(2)
        raise OperationFailed(
            f"The source did not answer within {settings.MIGRATION_REBOOT_LIMIT} s after its "
            "reboot was asked for.",
            "Look at the source on its console; Resume once it is back.",
        )

    @staticmethod
    def _source_answers(context: RunContext) -> bool:
        try:
            context.peer_call("info")
        except Exception:
            return False
        return True


class CopySyslog(Operation):
    """10. Copy User Traffic Logs: the source's traffic logs, incremental and verified (bytes
    through OpenSSH's client, see `migrations_engine.remote.tree`)."""

    name = "copy_syslog"
    label = "Copies the syslog data"
    reversible = True
    weight = 6
    stall_hint = "The SFTP copy from the source does not move: check port 22 and its disk."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if facts.copy_traffic_logs:
            return True, "Copy User Traffic Logs is on"
        return False, "Copy User Traffic Logs is off"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        source_dir = context.run.source.traffic_log_dir
        target_dir = Path(settings.APPLIANCE_TRAFFIC_LOG_DIR)
        target_dir.mkdir(parents=True, exist_ok=True)
        if context.run.accounts is not None:
            return self._copy_accounts_lines(context, progress, source_dir, target_dir)

        try:
            with ssh_session(context.peer(), context.run.peer_ref) as session:
                copied = copy_tree(
                    session,
                    source_dir,
                    target_dir,
                    progress=progress.report,
                    bwlimit=context.run.bandwidth_limit,
                )
        except RemoteError as error:
            raise remote_failure(error) from error
        context.log(
            f"traffic logs: {len(copied.copied)} copied, {len(copied.skipped)} already here, "
            f"{len(copied.not_copied)} not copied"
        )
        return {
            "files": [
                _file_receipt(target_dir, name, copied.sha256.get(name))
                for name in copied.copied + copied.skipped
            ],
            "copied": copied.copied,
            "skipped_identical": copied.skipped,
            "not_copied": [
                {"path": item.path, "reason": item.reason} for item in copied.not_copied
            ],
            "grown": copied.grown,
            "not_on_source": copied.not_on_source,
            "bytes": copied.bytes_transferred,
            "seconds": round(copied.seconds, 1),
        }

    def _copy_accounts_lines(
        self, context: RunContext, progress: Progress, source_dir: str, target_dir: Path
    ) -> dict[str, Any]:
        """Selective migration: from each source log, only the chosen accounts' lines, into
        `<name>.from-<source host>.log.gz` here (this system's own logs stay untouched).
        A log whose name cannot be a file name here is listed as not copied, with the reason."""
        accounts = set(context.run.accounts or [])
        origin = context.run.source.host_name or "source"
        try:
            host_name_check(origin)
        except UnsafeName as error:
            raise OperationFailed(
                str(error), "Give the source a valid host name, then Resume."
            ) from None
        files = []
        not_copied = []
        try:
            with ssh_session(context.peer(), context.run.peer_ref) as session:
                sftp = session.client.open_sftp()
                names = sorted(n for n in sftp.listdir(source_dir) if n.endswith(".log.gz"))
                for index, name in enumerate(names):
                    progress.report(_files_report(index, len(names), name))
                    try:
                        target = target_dir / accounts_log_name(name, origin)
                    except UnsafeName as error:
                        not_copied.append({"path": name_shown(name), "reason": str(error)})
                        continue
                    with sftp.open(f"{source_dir}/{name}", "rb") as remote:
                        remote.prefetch()
                        chunks = iter(lambda: remote.read(1 << 16), b"")
                        lines = write_lines(target, traffic_lines_filter(chunks, accounts))
                    if lines:
                        files.append({**_file_receipt(target_dir, target.name), "lines": lines})
                    else:
                        target.unlink(missing_ok=True)
                sftp.close()
            progress.report(_files_report(len(names), len(names), "", final=True))
        except (RemoteError, OSError) as error:
            if isinstance(error, RemoteError):
                raise remote_failure(error) from error
            raise OperationFailed(
                f"The traffic logs could not be filtered: {error}",
                "Check the disk of this system and the source's SSH service, then Resume.",
            ) from error
        context.log(f"traffic logs: the chosen accounts' lines from {len(names)} files")
        return {
            "files": files,
            "source_files": len(names),
            "accounts": sorted(accounts),
            "not_copied": not_copied,
        }

    def undo(self, context: RunContext) -> None:
        for partial in Path(settings.APPLIANCE_TRAFFIC_LOG_DIR).rglob(".*.partial"):
            partial.unlink(missing_ok=True)
