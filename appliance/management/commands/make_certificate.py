"""`manage.py make_certificate`: a self-signed TLS certificate for this node's name and address."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from appliance import services
from appliance.certificates import self_signed_certificate


class Command(BaseCommand):
    help = "Create a self-signed certificate for this node (keeps an existing one unless --force)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--force", action="store_true", help="replace an existing certificate")
        parser.add_argument("--address", action="append", default=[], help="extra IP address")

    def handle(self, *args: Any, **options: Any) -> None:
        cert, key = services.certificate_path(), services.private_key_path()
        if cert.exists() and key.exists() and not options["force"]:
            self.stdout.write(f"certificate kept: {services.tls_fingerprint()}")
            return
        node = services.node_get()
        addresses = sorted({node.ip_address, *options["address"]})
        fingerprint = self_signed_certificate(
            cert_path=cert, key_path=key, common_name=node.fqdn, addresses=addresses
        )
        self.stdout.write(f"certificate for {node.fqdn} {addresses}: {fingerprint}")
