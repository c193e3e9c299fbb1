"""`manage.py migration_run status|resume|abandon|start-over|cutover RUN_ID`: look after a run.

cutover ends the wait of a run that keeps its copy in sync while the source serves: its
maintenance window begins now.

start-over gives a failed or half-done run up, undoes what can be undone on the source, brings
this system back to the backup taken before the run, and lets a new run begin.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from appliance.backup import BackupError
from migrations_engine import executor
from migrations_engine.models import MigrationRun, RunStatus
from migrations_engine.services import run_cutover_now


class Command(BaseCommand):
    help = (
        "Show a migration run, resume it after its cause was fixed, abandon it, or start over "
        "(abandon and restore the backup taken before it)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "action", choices=["status", "resume", "abandon", "start-over", "cutover"]
        )
        parser.add_argument("run_id", type=int)
        parser.add_argument("--here", action="store_true", help="resume in this process")

    def handle(self, *args: Any, **options: Any) -> None:
        run = MigrationRun.objects.filter(id=options["run_id"]).first()
        if run is None:
            raise CommandError(f"There is no migration run {options['run_id']}.")
        try:
            if options["action"] == "resume":
                executor.run_resume(run, dispatch=not options["here"])
                if options["here"]:
                    executor.run_execute(run.id, worker=f"migration_run-{os.getpid()}")
            elif options["action"] == "cutover":
                run_cutover_now(run)
                self.stdout.write("The cutover begins: the source goes into maintenance now.")
            elif options["action"] == "abandon":
                executor.run_abandon(run)
            elif options["action"] == "start-over":
                restored = executor.run_start_over(run)
                self.stdout.write(
                    f"This system is back to backup {restored}."
                    if restored
                    else "No backup was taken before this run: this system was not changed."
                )
        except (executor.RunRefused, BackupError) as error:
            raise CommandError(str(error)) from None
        run.refresh_from_db()
        self._show(run)
        if options["here"] and run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"The run did not complete: {run.error}\nWhat to do: {run.fix}")

    def _show(self, run: MigrationRun) -> None:
        self.stdout.write(f"Run {run.id} from {run.source_address}: {run.get_status_display()}")
        for state in run.operations.order_by("position"):
            self.stdout.write(f"  {state.label}: {state.get_status_display()}")
        if run.error:
            self.stdout.write(f"Error: {run.error}\nWhat to do: {run.fix}")
