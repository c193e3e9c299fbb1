"""`manage.py restore_backup ID` (or `--latest`): bring this system back to a backup's state."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from appliance.backup import BackupError, backup_get, backup_latest, backup_restore


class Command(BaseCommand):
    help = "Restore this system's data database, settings, licence and certificates from a backup."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("backup_id", nargs="?", help="the backup's id (see list_backups)")
        parser.add_argument("--latest", action="store_true", help="the newest backup")

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["backup_id"]) == options["latest"]:
            raise CommandError("Name one backup, or give --latest.")
        try:
            backup = backup_latest() if options["latest"] else backup_get(options["backup_id"])
            self.stdout.write(f"Restoring backup {backup.id} ({backup.reason}) ...")
            outcome = backup_restore(backup)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored backup {outcome['backup']}: {outcome['tables']} tables verified, "
                "settings, licence and certificates back. Restart the services to serve the "
                "restored certificate."
            )
        )
