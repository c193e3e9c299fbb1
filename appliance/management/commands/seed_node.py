"""`manage.py seed_node`: fill this node with identity, licence, settings, data and traffic logs."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from appliance import seeding
from appliance.models import Node, ServerRole
from appliance.routers import maintenance_is_on


class Command(BaseCommand):
    help = "Fill this node with realistic state. Replaces the node's data and traffic logs."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--size", choices=sorted(seeding.SIZES), default="small")
        parser.add_argument("--host-name", default="appliance-old")
        parser.add_argument("--domain-name", default="mycompany.test")
        parser.add_argument("--ip-address", default="127.0.0.1")
        parser.add_argument(
            "--role", choices=[choice.value for choice in ServerRole], default=ServerRole.STANDALONE
        )
        parser.add_argument("--ha-peer", default="", help="address of the HA peer (HA roles)")
        parser.add_argument("--no-licence", action="store_true", help="leave the node unlicensed")
        parser.add_argument("--no-data", action="store_true", help="identity and settings only")
        parser.add_argument(
            "--only-if-new", action="store_true", help="do nothing if the node was seeded before"
        )
        parser.add_argument(
            "--traffic-log-mb", type=int, default=None, help="total size of traffic logs to write"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["only_if_new"] and Node.objects.exists():
            self.stdout.write("already seeded: nothing changed")
            return
        if maintenance_is_on():
            raise CommandError("This node is in maintenance mode; switch it off before seeding.")
        size = seeding.SIZES[options["size"]]
        identity = seeding.Identity(
            options["host_name"], options["domain_name"], options["ip_address"], options["role"]
        )
        seeding.identity_set(identity)
        seeding.licence_seed(holder=f"{identity.domain_name} Ltd", active=not options["no_licence"])
        seeding.settings_seed(identity, ha_peer=options["ha_peer"])
        self.stdout.write(
            f"identity: {identity.host_name}.{identity.domain_name} ({identity.role})"
        )
        if options["no_data"]:
            return
        seeding.data_reset()
        rows = seeding.data_seed(size)
        self.stdout.write("data: " + ", ".join(f"{t}={n}" for t, n in rows.items()))
        files, file_kb = size.traffic_log_files, size.traffic_log_file_kb
        if options["traffic_log_mb"] is not None:
            file_kb = max(1, options["traffic_log_mb"] * 1024 // files)
        log_dir = Path(settings.APPLIANCE_TRAFFIC_LOG_DIR)
        for old in log_dir.glob("traffic-*.log.gz"):
            old.unlink()
        written = seeding.traffic_logs_seed(log_dir, files=files, file_kb=file_kb)
        self.stdout.write(f"traffic logs: {files} files, {written / 1e6:.1f} MB in {log_dir}")
