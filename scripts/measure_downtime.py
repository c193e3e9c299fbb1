"""How long the source's users are without service during a migration, with the data and the
traffic logs copied while the source serves.

The claim: at most 10 s of service downtime (median) with about 100 writes a second on the
source, whatever the size of the data (the bench size and the demo size within 25 %), every write
made while the source served on the current system, the data databases and the traffic logs
identical.

    .venv/bin/python scripts/measure_downtime.py [--runs 3] [--size bench] [--writes 100]

Needs the two-node demo running (`DEMO_NO_WAIT=1 DEMO_SIZE=bench make demo`, standard name
"demo"); it is reset and migrated --runs times. Each run resets both nodes (the source seeded at
--size), lets the servers write out what the reset left in memory, starts the source's users (a
row in event_log every 1/--writes s, until the source refuses them: maintenance on), runs
`migrate_from --yes --copy-logs` as the current system (the cutover as soon as the copy has
caught up), then checks the rows written while in service, CHECKSUM TABLE of every data table on
both systems, and the SHA-256 of every traffic log on both. Prints each run, then the medians.
Exit status 1 when the claim does not hold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.env import parse_mysql_url  # noqa: E402
from scripts.demo import read_env_file  # noqa: E402
from scripts.measure_polling import (  # noqa: E402
    DEMO_DIR,
    demo_reset,
    migration_log,
    migration_start,
    servers_quiet,
)

DOWNTIME_LIMIT = 10.0
SIZE_SPREAD = 0.25


@dataclass
class Run:
    """One migration: its downtime and total time, and what was checked after it."""

    downtime: float
    total: float
    verify: float
    """Seconds the cutover spent checksumming every table on both servers (in the window)."""
    writes: int
    writes_here: int
    tables_equal: bool
    logs_equal: bool

    @property
    def ok(self) -> bool:
        return self.writes == self.writes_here and self.tables_equal and self.logs_equal


class SourceUsers(threading.Thread):
    """The source's users: one row in event_log every `interval` s, until the source is in
    maintenance (the appliance refuses them then)."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url = parse_mysql_url(url)
        self.interval = interval
        self.stopping = threading.Event()
        self.written = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.serve()
            except pymysql.MySQLError:
                time.sleep(0.1)

    def serve(self) -> None:
        with (
            pymysql.connect(
                host=self.url.host, port=self.url.port, user="root", autocommit=True
            ) as connection,
            connection.cursor() as cursor,
        ):
            due = time.monotonic()
            while not self.stopping.is_set():
                due += self.interval
                time.sleep(max(0.0, due - time.monotonic()))
                cursor.execute("SELECT maintenance FROM appliance_control.appliance_node")
                if (cursor.fetchone() or (1,))[0]:
                    continue
                cursor.execute(
                    f"INSERT INTO {self.url.database}.event_log (ts, source, message, payload) "
                    "VALUES (NOW(6), 'measure-downtime', 'a user while in service', '{}')"
                )
                self.written += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def written_rows(url: str) -> int:
    database = parse_mysql_url(url)
    with pymysql.connect(host=database.host, port=database.port, user="root") as connection:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM {database.database}.event_log "
                "WHERE source = 'measure-downtime'"
            )
            (count,) = cursor.fetchone() or (0,)
    return int(count)


def table_checksums(url: str) -> dict[str, int]:
    """CHECKSUM TABLE of every table of a data database, by name."""
    database = parse_mysql_url(url)
    with pymysql.connect(host=database.host, port=database.port, user="root") as connection:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_type = 'BASE TABLE' AND table_name <> 'django_migrations'",
                [database.database],
            )
            names = [f"{database.database}.{row[0]}" for row in cursor.fetchall()]
            cursor.execute(f"CHECKSUM TABLE {', '.join(names)}")
            return {str(name).split(".")[1]: int(value) for name, value in cursor.fetchall()}


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def measure_run(demo: dict[str, str], size: str, writes: float) -> Run:
    demo_reset(demo, size)
    servers_quiet(demo)
    users = SourceUsers(demo["SOURCE_DATA_DB_URL"], 1 / writes)
    users.start()
    with tempfile.TemporaryDirectory(prefix="measure-downtime-") as folder:
        work = Path(folder)
        migration = migration_start(demo, work, "--copy-logs")
        migration.wait()
        users.stop()
        if migration.returncode != 0:
            sys.exit(f"the migration failed:\n{migration_log(work)}")
        report = json.loads((work / "report.json").read_text())
    source_logs = file_hashes(Path(demo["SOURCE_TRAFFIC_LOG_DIR"]))
    target_logs = file_hashes(Path(demo["TARGET_TRAFFIC_LOG_DIR"]))
    cutover = next(op for op in report["operations"] if op["name"] == "copy_data")["result"]
    return Run(
        downtime=float(report["downtime"]["seconds"]),
        total=float(report["seconds"]),
        verify=float(cutover.get("verified_seconds") or 0.0),
        writes=written_rows(demo["SOURCE_DATA_DB_URL"]),
        writes_here=written_rows(demo["TARGET_DATA_DB_URL"]),
        tables_equal=table_checksums(demo["SOURCE_DATA_DB_URL"])
        == table_checksums(demo["TARGET_DATA_DB_URL"]),
        logs_equal=bool(source_logs)
        and all(target_logs.get(name) == digest for name, digest in source_logs.items()),
    )


def run_line(number: int, size: str, run: Run) -> str:
    return (
        f"{size} run {number}: service downtime {run.downtime:.1f} s (verification "
        f"{run.verify:.1f} s), total {run.total:.0f} s, "
        f"{run.writes} writes while in service ({run.writes_here} here), tables "
        f"{'identical' if run.tables_equal else 'DIFFERENT'}, traffic logs "
        f"{'identical' if run.logs_equal else 'DIFFERENT'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="bench", help="the source's size (small, demo, bench)")
    parser.add_argument("--compare", default="demo", help="a second size to compare ('' none)")
    parser.add_argument("--writes", type=float, default=100.0, help="writes a second")
    options = parser.parse_args()
    demo = read_env_file(DEMO_DIR.parent / "demo.env")
    sizes = [options.size, *([options.compare] if options.compare else [])]
    medians: dict[str, float] = {}
    good = True
    for size in sizes:
        runs = [measure_run(demo, size, options.writes) for _ in range(options.runs)]
        for number, run in enumerate(runs, start=1):
            print(run_line(number, size, run), flush=True)
        medians[size] = statistics.median(run.downtime for run in runs)
        total = statistics.median(run.total for run in runs)
        print(f"{size}: median service downtime {medians[size]:.1f} s, median total {total:.0f} s")
        good = good and all(run.ok for run in runs) and medians[size] <= DOWNTIME_LIMIT
    if len(medians) == 2:
        first, second = medians.values()
        spread = abs(first - second) / max(second, 1e-9)
        print(f"downtime {sizes[0]} against {sizes[1]}: {spread:+.0%}")
        good = good and spread <= SIZE_SPREAD
    print("claim holds" if good else "claim does NOT hold")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
