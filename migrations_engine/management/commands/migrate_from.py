"""`manage.py migrate_from SOURCE_ADDRESS`: the whole migration from the command line.

Prints the plan; with --yes runs it on this system's Celery workers (or in this process with
--here), showing one progress bar per operation, and writes the report. Exit status 0 only when
the run completed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from appliance.progress import Report
from migrations_engine import executor
from migrations_engine.accounts import accounts_read
from migrations_engine.models import (
    CutoverMode,
    MigrationRun,
    OperationStatus,
    RehearsalStatus,
    RunStatus,
)
from migrations_engine.peer_client import PeerError
from migrations_engine.preflight import AddressRefused, preflight, source_address_check
from migrations_engine.rehearsal import RehearsalFailed, rehearsal_execute, rehearsal_start
from migrations_engine.report import report_html
from migrations_engine.services import MB, PreparationError, Timing, run_prepare

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Migrate everything from SOURCE_ADDRESS to this system (prints the plan without --yes)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("source_address")
        parser.add_argument("--port", type=int, default=443, help="the source's HTTPS port")
        parser.add_argument(
            "--check-ports", help="ports to check first (default: 80, the HTTPS port, 3306, 22)"
        )
        parser.add_argument("--password-file", help="file holding the source's Admin User password")
        parser.add_argument(
            "--confirm-fingerprint", required=True, help="the source certificate's SHA-256"
        )
        parser.add_argument("--swap", action="store_true", help="Swap Configuration")
        parser.add_argument("--migrate-licence", action="store_true", help="Migrate License")
        parser.add_argument("--copy-logs", action="store_true", help="Copy User Traffic Logs")
        parser.add_argument("--tables", help="comma-separated tables to copy (default: all)")
        parser.add_argument(
            "--accounts",
            help="file listing the accounts to migrate, one user name per line (default: all)",
        )
        parser.add_argument(
            "--cutover-at",
            help="keep the copy in sync while the source serves and begin the maintenance "
            "window at this time (ISO 8601 with its zone, e.g. 2026-12-24T02:00+01:00)",
        )
        parser.add_argument(
            "--cutover-manual",
            action="store_true",
            help="keep the copy in sync until `manage.py migration_run cutover ID`",
        )
        parser.add_argument(
            "--bwlimit",
            type=float,
            help="limit the migration's traffic (data and logs) to this many MB/s",
        )
        parser.add_argument("--yes", action="store_true", help="run it (it cannot be undone)")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="rehearse: copy the data into a scratch database here, verify, estimate; "
            "change nothing on either system",
        )
        parser.add_argument(
            "--here", action="store_true", help="run in this process, not on a worker"
        )
        parser.add_argument("--report", help="where to write the report (JSON; HTML beside it)")

    def handle(self, *args: Any, **options: Any) -> None:
        password = self._password(options["password_file"])
        self._preflight(options, password)
        try:
            run = run_prepare(
                address=options["source_address"],
                port=options["port"],
                password=password,
                fingerprint=options["confirm_fingerprint"],
                swap_configuration=options["swap"],
                migrate_licence=options["migrate_licence"],
                copy_traffic_logs=options["copy_logs"],
                tables=options["tables"].split(",") if options["tables"] else None,
                accounts=self._accounts(options["accounts"]),
                timing=self._timing(options),
            )
        except (PreparationError, PeerError) as error:
            raise CommandError(str(error)) from None
        self._print_plan(run)
        if options["dry_run"]:
            self._rehearse(run, options["report"])
            return
        if not options["yes"]:
            executor.run_abandon(run)
            self.stdout.write("Nothing was changed. Add --yes to run this plan.")
            return
        try:
            executor.run_start(run, dispatch=not options["here"])
        except executor.RunRefused as error:
            raise CommandError(str(error)) from None
        if options["here"]:
            executor.run_execute(run.id, worker=f"migrate_from-{os.getpid()}")
        self._follow(run)
        run.refresh_from_db()
        self._write_report(run, options["report"])
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"The migration failed: {run.error}\nWhat to do: {run.fix}")
        if (downtime := run.downtime_seconds) is not None:
            self.stdout.write(f"Service downtime: {downtime:.1f} s")
        self.stdout.write(
            self.style.SUCCESS("Congratulations! Migration was successfully completed")
        )

    def _rehearse(self, run: MigrationRun, report_path: str | None) -> None:
        """The dry run: its figures, what would and would not be migrated, the estimate."""
        try:
            outcome = self._rehearsal_outcome(run)
        finally:
            executor.run_abandon(run)
        self.stdout.write("")
        for name, table in outcome["tables"].items():
            self.stdout.write(f"  {name}: {table['rows']} rows, checksum {table['checksum']}")
        for skipped in outcome["tables_not_migrated"]:
            self.stdout.write(f"  {skipped['name']}: not migrated ({skipped['reason']})")
        for group in outcome["settings"]["not_migrated"]:
            self.stdout.write(f"  settings {group['group']}: not migrated ({group['reason']})")
        licence = outcome["licence"]
        self.stdout.write(
            f"  licence {licence['guid']}: {'migrated' if licence['migrated'] else 'not migrated'}"
            f" ({licence['reason']})"
        )
        estimate = outcome["estimate"]
        self.stdout.write(
            f"Verified {outcome['rows']} rows in {outcome['copy_seconds']} s. The real run "
            f"would take about {estimate['total_seconds']:.0f} s ({estimate['basis']})."
        )
        self.stdout.write(
            f"Expected time with the source in service: {estimate['online_seconds']:.0f} s; "
            f"expected service downtime: {estimate['downtime_seconds']:.0f} s "
            f"({estimate['downtime_basis']})."
        )
        target = Path(report_path or f"migration-{run.id}-rehearsal.json")
        target.write_text(json.dumps({"rehearsal": outcome}, indent=2))
        self.stdout.write(f"Rehearsal report: {target}")
        self.stdout.write("Nothing was changed on either system.")

    def _rehearsal_outcome(self, run: MigrationRun) -> dict[str, Any]:
        """Rehearse in this process, as a worker would (claimed, fenced, with its heartbeat)."""
        try:
            rehearsal = rehearsal_start(run, dispatch=False)
        except RehearsalFailed as error:
            raise CommandError(f"The rehearsal failed: {error}") from None
        rehearsal_execute(
            rehearsal.id, worker=f"migrate_from-{os.getpid()}", report=self._rehearsal_progress
        )
        rehearsal.refresh_from_db()
        if rehearsal.status != RehearsalStatus.DONE:
            raise CommandError(f"The rehearsal failed: {rehearsal.error}")
        return rehearsal.outcome

    def _rehearsal_progress(self, report: Report) -> None:
        if sys.stdout.isatty():
            line = f"\r  rehearsal {report.fraction * 100:5.1f}% {report.message or ''}\x1b[K"
            self.stdout.write(line, ending="")

    def _preflight(self, options: dict[str, Any], password: str) -> None:
        """Check the source before anything else; stop with every failure and its fix."""
        try:
            address = source_address_check(options["source_address"])
        except AddressRefused as error:
            raise CommandError(str(error)) from None
        ports = [80, options["port"], 3306, 22]
        if options["check_ports"]:
            ports = [int(port) for port in options["check_ports"].split(",")]
        checks = preflight(
            address,
            password,
            fingerprint=options["confirm_fingerprint"],
            port=options["port"],
            ports=ports,
        ).checks
        for check in checks:
            self.stdout.write(f"  [{'ok' if check.ok else 'FAILED'}] {check.name}: {check.detail}")
        failed = [check for check in checks if not check.ok]
        if failed:
            fixes = "\n".join(f"- {check.name}: {check.fix}" for check in failed)
            raise CommandError(f"The source is not ready for a migration:\n{fixes}")

    def _timing(self, options: dict[str, Any]) -> Timing:
        """The cutover and the traffic limit as the options give them."""
        if options["cutover_at"] and options["cutover_manual"]:
            raise CommandError("Choose --cutover-at or --cutover-manual, not both.")
        at = None
        if options["cutover_at"]:
            at = parse_datetime(options["cutover_at"])
            if at is None:
                raise CommandError(f"--cutover-at {options['cutover_at']!r} is not a time.")
        mode = CutoverMode.AT if at else CutoverMode.MANUAL if options["cutover_manual"] else None
        limit = options["bwlimit"]
        return Timing(
            cutover_mode=mode or CutoverMode.CAUGHT_UP,
            cutover_at=at,
            bandwidth_limit=int(limit * MB) if limit is not None else None,
        )

    def _accounts(self, path: str | None) -> list[str] | None:
        if not path:
            return None
        try:
            return accounts_read(Path(path).read_text().splitlines())
        except OSError as error:
            raise CommandError(f"Cannot read the accounts file: {error}") from None

    def _password(self, path: str | None) -> str:
        if path:
            return Path(path).read_text().strip()
        password = os.environ.get("SOURCE_ADMIN_PASSWORD", "")
        if not password:
            raise CommandError("Give the source's Admin User password with --password-file.")
        return password

    def _print_plan(self, run: MigrationRun) -> None:
        info = run.source
        self.stdout.write(
            f"Source: {info.fqdn} ({run.source_address}), "
            f"{info.role_label}, version {info.software_version}"
        )
        self.stdout.write("Plan:")
        for index, row in enumerate(run.plan, start=1):
            mark = "runs   " if row["runs"] else "skipped"
            self.stdout.write(f"  {index:2}. [{mark}] {row['label']} ({row['reason']})")

    def _follow(self, run: MigrationRun) -> None:
        """Redraw one progress bar per operation until the run ends."""
        drawn = 0
        while True:
            run.refresh_from_db()
            lines = [self._line(state) for state in run.operations.order_by("position")]
            if drawn and sys.stdout.isatty():
                self.stdout.write(f"\x1b[{drawn}F", ending="")
            if sys.stdout.isatty() or run.is_finished:
                self.stdout.write("\n".join(lines))
                drawn = len(lines)
            if run.is_finished:
                return
            time.sleep(1)

    @staticmethod
    def _line(state: Any) -> str:
        filled = int(state.fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        running = state.status == OperationStatus.RUNNING
        eta = f" ETA {state.eta_seconds:.0f}s" if running and state.eta_seconds else ""
        status = state.get_status_display()
        line = f"[{bar}] {state.fraction * 100:5.1f}% {state.label} ({status}){eta}"
        return line + ("\x1b[K" if sys.stdout.isatty() else "")

    def _write_report(self, run: MigrationRun, path: str | None) -> None:
        target = Path(path or f"migration-{run.id}-report.json")
        target.write_text(
            json.dumps(run.report or {"status": run.status, "error": run.error}, indent=2)
        )
        if run.report:
            target.with_suffix(".html").write_text(report_html(run))
        self.stdout.write(f"Report: {target}")
