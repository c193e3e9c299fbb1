"""`manage.py list_backups`: this system's backups, newest first."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from appliance.backup import backup_root, backups_list


class Command(BaseCommand):
    help = "List this system's backups (data, settings, licence, certificates), newest first."

    def handle(self, *args: Any, **options: Any) -> None:
        backups = backups_list()
        if not backups:
            self.stdout.write(f"No backups in {backup_root()}.")
            return
        for backup in backups:
            self.stdout.write(
                f"{backup.id}  {backup.created_at[:19]}  {backup.size_bytes / 1e6:8.1f} MB  "
                f"{backup.reason}"
            )
