"""How honest the data copy's ETA is: run a migration on the running demo and compare.

Needs `make demo` running (any size; `DEMO_SIZE=demo` or larger gives a copy long enough to
judge). Runs `migrate_from` as the current system, samples the data copy's progress twice a
second, and prints, at 25 %, 50 % and 75 % of the copy, the remaining time the ETA promised
against the time it really took, then the error of each estimate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.env import parse_mysql_url  # noqa: E402
from scripts.demo import read_env_file  # noqa: E402

MARKS = (0.25, 0.5, 0.75)


def copy_progress(control: pymysql.connections.Connection) -> tuple[str, float, float | None]:
    """(status, fraction, eta) of the newest run's data copy."""
    with control.cursor() as cursor:
        cursor.execute(
            "SELECT status, fraction, eta_seconds FROM migrations_engine_operationstate "
            "WHERE name IN ('copy_data', 'copy_data_and_replica') ORDER BY id DESC LIMIT 1"
        )
        row = cursor.fetchone()
    return (str(row[0]), float(row[1]), row[2]) if row else ("pending", 0.0, None)


def main() -> None:
    demo = read_env_file(ROOT / "var" / "demo.env")
    node = {**os.environ, **read_env_file(ROOT / "var" / "demo" / "current" / "node.env")}
    url = parse_mysql_url(node["CONTROL_DB_URL"])
    password_file = ROOT / "var" / "demo" / "source-password"
    password_file.write_text(demo["SOURCE_ADMIN_PASSWORD"])
    password_file.chmod(0o600)
    fingerprint = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", demo["SOURCE_CERTIFICATE"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    migration = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "migrate_from",
            demo["SOURCE_ADDRESS"],
            "--password-file",
            str(password_file),
            "--confirm-fingerprint",
            fingerprint,
            "--yes",
            "--report",
            str(ROOT / "var" / "demo" / "eta-report.json"),
        ],
        cwd=ROOT,
        env=node,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    promised: dict[float, tuple[float, float]] = {}
    control = pymysql.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        database=url.database,
        autocommit=True,
    )
    while True:
        status, fraction, eta = copy_progress(control)
        now = time.monotonic()
        copy_fraction = fraction / 0.9  # the copy fills the first 90 % of the operation's bar
        for mark in MARKS:
            if mark not in promised and copy_fraction >= mark and eta is not None:
                promised[mark] = (now, float(eta))
        if status in ("succeeded", "failed"):
            break
        if migration.poll() is not None and status == "pending":
            sys.exit("the migration ended before its data copy started")
        time.sleep(0.5)
    finished = time.monotonic()
    migration.wait()
    print("mark  promised s  actual s  error")
    for mark in MARKS:
        if mark in promised:
            at, eta = promised[mark]
            actual = finished - at
            print(
                f"{mark:4.0%}  {eta:10.1f}  {actual:8.1f}  {100 * (eta - actual) / actual:+5.1f} %"
            )


if __name__ == "__main__":
    main()
