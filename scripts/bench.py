"""Benchmark of the data copy against `mariadb-dump --single-transaction --quick | mariadb`.

Builds the benchmark data set (`devtools/dataset.py`, at BENCH_SCALE, default 1) on a
private MariaDB server at 127.0.0.4, then copies it BENCH_ROUNDS times (default 3) with each
method, alternating, into a scratch database of the machine's MariaDB at 127.0.0.1. After each
copy the target must match the source (CHECKSUM TABLE and row count per table). The copier runs
as `manage.py copy_data`, so its time includes start-up and its own verification.

The last line printed is `ratio copier/baseline: X (median of N)`.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.env import quote_name  # noqa: E402
from devtools.dataset import dataset_make  # noqa: E402
from devtools.mariadb import MariaDBServer  # noqa: E402

SOURCE_HOST = "127.0.0.4"
TARGET_HOST = "127.0.0.1"
SOURCE_DATABASE = "bench"
TARGET_DATABASE = "bench_copy"


@dataclass(frozen=True)
class Run:
    """One timed copy."""

    method: str
    seconds: float
    peak_mb: float


def connect(host: str, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(host=host, user="root", database=database, autocommit=True)


def fresh_target() -> None:
    """An empty scratch database on the target."""
    with connect(TARGET_HOST) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {TARGET_DATABASE}")
        cursor.execute(f"CREATE DATABASE {TARGET_DATABASE} CHARACTER SET utf8mb4")


def table_facts(host: str, database: str) -> dict[str, tuple[int, int]]:
    """CHECKSUM TABLE and row count of every table."""
    with connect(host, database) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        tables = [row[0] for row in cursor.fetchall()]
        facts = {}
        for table in tables:
            cursor.execute(f"CHECKSUM TABLE {quote_name(table)}")
            checksum = cursor.fetchall()[0][1]
            cursor.execute(f"SELECT COUNT(*) FROM {quote_name(table)}")
            facts[table] = (int(checksum), int(cursor.fetchall()[0][0]))
    return facts


def timed(command: str) -> Run:
    """Run a shell command; its wall time and the peak memory of its largest process."""
    started = time.monotonic()
    process = subprocess.Popen(command, shell=True, cwd=ROOT)  # noqa: S602 - fixed commands
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"command failed ({status}): {command}")
    return Run(command, seconds, usage.ru_maxrss / 1024)


def run_baseline() -> Run:
    fresh_target()
    return timed(
        f"mariadb-dump -h{SOURCE_HOST} -uroot --single-transaction --quick {SOURCE_DATABASE} "
        f"| mariadb -h{TARGET_HOST} -uroot {TARGET_DATABASE}"
    )


def run_copier() -> Run:
    fresh_target()
    python = shlex.quote(sys.executable)
    return timed(
        f"{python} manage.py copy_data mysql://root@{SOURCE_HOST}:3306/{SOURCE_DATABASE} "
        f"mysql://root@{TARGET_HOST}:3306/{TARGET_DATABASE} > /dev/null 2>&1"
    )


def check(expected: dict[str, tuple[int, int]], method: str) -> None:
    actual = table_facts(TARGET_HOST, TARGET_DATABASE)
    if actual != expected:
        raise SystemExit(f"{method}: the target does not match the source: {actual} != {expected}")


def main() -> None:
    scale = os.environ.get("BENCH_SCALE", "1")
    rounds = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
    server = MariaDBServer(
        datadir=ROOT / "var" / "bench" / "mariadb", host=SOURCE_HOST, port=3306, server_id=4
    )
    server.start()
    try:
        print(f"building the data set at scale {scale} on {SOURCE_HOST}", flush=True)
        dataset_make(SOURCE_DATABASE, float(scale), host=SOURCE_HOST)
        expected = table_facts(SOURCE_HOST, SOURCE_DATABASE)
        rows = sum(count for _, count in expected.values())
        print(f"{rows:,} rows in {len(expected)} tables", flush=True)
        ratios, peaks = [], []
        for number in range(1, rounds + 1):
            order = [("baseline", run_baseline), ("copier", run_copier)]
            if number % 2 == 0:
                order.reverse()
            times = {}
            for method, function in order:
                run = function()
                check(expected, method)
                times[method] = run.seconds
                memory = f", peak memory {run.peak_mb:.0f} MB" if method == "copier" else ""
                if method == "copier":
                    peaks.append(run.peak_mb)
                print(
                    f"round {number} {method}: {run.seconds:.2f} s, "
                    f"{rows / run.seconds:,.0f} rows/s{memory}",
                    flush=True,
                )
            ratios.append(times["copier"] / times["baseline"])
            print(f"round {number} ratio: {ratios[-1]:.3f}", flush=True)
        print(f"copier peak memory: {max(peaks):.0f} MB")
        print(f"ratio copier/baseline: {statistics.median(ratios):.3f} (median of {rounds})")
    finally:
        with connect(TARGET_HOST) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {TARGET_DATABASE}")
        server.stop()


if __name__ == "__main__":
    main()
