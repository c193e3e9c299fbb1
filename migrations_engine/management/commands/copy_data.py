"""`manage.py copy_data SOURCE_URL TARGET_URL`: copy a data database from the command line.

Passwords come from files or from SOURCE_DB_PASSWORD / TARGET_DB_PASSWORD, so they never have
to appear on a command line (a password inside the URL still works). Exits with status 0 only
when every table was copied and verified.

A source on another machine is read over TLS and must present the certificate given with
`--source-certificate FILE` (PEM); without one the copy is refused before anything is sent.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.env import MySQLURL, parse_mysql_url
from migrations_engine.datacopy import CopyError, ProgressEvent, copy_database
from migrations_engine.datacopy.sql import SourceDatabase, pem_fingerprint
from migrations_engine.services import MB

BAR_WIDTH = 30


def read_url(url: str, what: str, password_file: str | None, variable: str) -> MySQLURL:
    """Parse an address and add its password from a file or the environment."""
    try:
        parsed = parse_mysql_url(url, what)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if password_file:
        try:
            password = Path(password_file).read_text().rstrip("\r\n")
        except OSError as error:
            raise CommandError(f"Cannot read the {what} password file: {error.strerror}") from None
        return replace(parsed, password=password)
    if not parsed.password and os.environ.get(variable):
        return replace(parsed, password=os.environ[variable])
    return parsed


def pinned_source(source: MySQLURL, certificate_file: str | None) -> MySQLURL:
    """The source with the certificate its server must present; refused without one when the
    server is on another machine."""
    if not certificate_file:
        if source.is_local:
            return source
        raise CommandError(
            f"The source database server {source.host} is not on this machine: give its TLS "
            "certificate with --source-certificate FILE (PEM), so that the copy is encrypted "
            "and its password and data go to that server only."
        )
    try:
        pem = Path(certificate_file).read_text()
        pem_fingerprint(pem)
    except OSError as error:
        raise CommandError(f"Cannot read the source certificate file: {error.strerror}") from None
    except ValueError:
        raise CommandError(f"{certificate_file} does not hold a PEM certificate.") from None
    return SourceDatabase(**asdict(source), certificate=pem)


def human_bytes(count: float) -> str:
    """A byte count as KB, MB, GB."""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def progress_line(event: ProgressEvent) -> str:
    """One line of the progress bar."""
    filled = int(event.fraction * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    eta = f"ETA {event.eta_seconds:.0f}s" if event.eta_seconds is not None else "ETA --"
    table = f" {event.table}" if event.table else ""
    return (
        f"[{bar}] {event.fraction * 100:5.1f}% {event.rows:,}/{event.rows_total:,} rows "
        f"{human_bytes(event.bytes)} {event.rows_per_second:,.0f} rows/s {eta} "
        f"({event.phase}{table})"
    )


class ProgressBar:
    """Redraws one line on a terminal; prints a line now and then when output is a file."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.last_line = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        line = progress_line(event)
        if self.interactive:
            self.stream.write("\r" + line[:160].ljust(160))
        elif time.monotonic() - self.last_line >= 5 or event.phase == "done":
            self.stream.write(line + "\n")
            self.last_line = time.monotonic()
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")


class Command(BaseCommand):
    help = "Copy a data database from a source MariaDB server into this system's, verified."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source_url", help="mysql://user@host:port/database of the source")
        parser.add_argument("target_url", help="mysql://user@host:port/database to replace")
        parser.add_argument("--tables", help="comma-separated tables to copy (default: all)")
        parser.add_argument("--resume", action="store_true", help="continue an unfinished copy")
        parser.add_argument("--source-password-file", help="file holding the source password")
        parser.add_argument(
            "--source-certificate",
            help="the source database server's TLS certificate (PEM) to pin; required unless "
            "the server is on this machine",
        )
        parser.add_argument("--target-password-file", help="file holding the target password")
        parser.add_argument("--workers", type=int, default=2, help="parallel copy processes")
        parser.add_argument(
            "--chunk-kb", type=int, default=8192, help="size of a copied chunk in KB"
        )
        parser.add_argument(
            "--bwlimit", type=float, help="limit the copy's traffic to this many MB/s"
        )
        parser.add_argument(
            "--source-wait",
            type=float,
            default=300.0,
            help="seconds to wait for a source that stopped answering",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = pinned_source(
            read_url(
                options["source_url"],
                "source URL",
                options["source_password_file"],
                "SOURCE_DB_PASSWORD",
            ),
            options["source_certificate"],
        )
        target = read_url(
            options["target_url"],
            "target URL",
            options["target_password_file"],
            "TARGET_DB_PASSWORD",
        )
        tables = (
            [name.strip() for name in options["tables"].split(",") if name.strip()]
            if options["tables"]
            else None
        )
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        bar = ProgressBar(sys.stderr)
        try:
            result = copy_database(
                source,
                target,
                tables=tables,
                resume=options["resume"],
                progress=bar,
                workers=options["workers"],
                chunk_bytes=max(4, options["chunk_kb"]) * 1024,
                source_wait=options["source_wait"],
                bandwidth_limit=int(options["bwlimit"] * MB) if options["bwlimit"] else None,
            )
        except CopyError as error:
            bar.close()
            raise CommandError(str(error)) from None
        bar.close()
        for table in result.tables.values():
            self.stdout.write(f"{table.name}: {table.rows} rows, checksum {table.checksum}")
        self.stdout.write(
            f"Copied and verified {len(result.tables)} tables ({result.rows:,} rows, "
            f"{human_bytes(result.bytes)}), {len(result.views)} views, "
            f"{len(result.triggers)} triggers, {len(result.routines)} routines from "
            f"{result.source} to {result.target} in {result.seconds:.1f}s."
        )
