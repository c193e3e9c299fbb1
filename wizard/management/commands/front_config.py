"""`manage.py front_config`: the nginx configuration of this node's front web server."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.template.loader import render_to_string

from appliance import services
from wizard import progress


class Command(BaseCommand):
    help = (
        "Write the nginx configuration that terminates TLS for this node, passes requests to "
        "Django's socket and hands out the published progress partials."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--listen", required=True, help="address:port for HTTPS")
        parser.add_argument("--upstream", required=True, help="Django's Unix socket")
        parser.add_argument("--prefix", required=True, help="directory for pid, logs, temp files")
        parser.add_argument("--user", default="", help="user of nginx's workers (when root)")
        parser.add_argument("--output", required=True, help="file to write (mode 600)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not progress.publishing():
            raise CommandError("Set WIZARD_PUBLISH_DIR: the front server hands out its files.")
        prefix = Path(options["prefix"])
        for sub in ("logs", "tmp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        progress.published_dir().mkdir(parents=True, exist_ok=True)
        text = render_to_string(
            "wizard/front_nginx.conf",
            {
                "user": options["user"],
                "prefix": prefix,
                "listen": options["listen"],
                "upstream": options["upstream"],
                "certificate": services.certificate_path(),
                "key": services.private_key_path(),
                "published_prefix": progress.PUBLISHED_PREFIX,
                "publish_dir": progress.published_dir(),
                "pass_cookie": progress.POLL_PASS_COOKIE,
                "pass_expires_cookie": progress.POLL_PASS_EXPIRES_COOKIE,
                "pass_key": progress.poll_pass_key(),
            },
        )
        output = Path(options["output"])
        output.touch(mode=0o600, exist_ok=True)
        output.chmod(0o600)
        output.write_text(text)
        self.stdout.write(f"front server configuration written to {output}")
