"""`manage.py publish_progress`: keep the published progress partials up to date."""

from __future__ import annotations

import logging
import signal
import time
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from wizard import progress

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Render the progress partial of every run in progress into WIZARD_PUBLISH_DIR twice a "
        "second, for the front web server to hand out; removes them all when it stops."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="publish once and stop")

    def handle(self, *args: Any, **options: Any) -> None:
        if not progress.publishing():
            raise CommandError("WIZARD_PUBLISH_DIR is not set: there is nothing to publish to.")
        if options["once"]:
            progress.publish_once()
            return
        signal.signal(signal.SIGTERM, _stop)
        try:
            while True:
                started = time.monotonic()
                try:
                    progress.publish_once()
                except Exception:  # a database hiccup must not stop the publishing
                    log.exception("publishing the progress partials failed; trying again")
                    connections.close_all()
                time.sleep(max(0.05, progress.PUBLISH_EVERY_SECONDS - (time.monotonic() - started)))
        except KeyboardInterrupt:
            pass
        finally:
            progress.unpublish_all()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
