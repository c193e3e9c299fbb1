"""Measure the SFTP copy (a bare paramiko connection) against `scp -r`, same data, same key.

    python scripts/measure_sftp.py [--directory var/measure-sftp] [--files 40] [--file-mb 25]

Makes (or reuses) about 1 GB of gzipped traffic logs, starts an OpenSSH server on 127.0.0.6:2222
serving them, copies the tree once with `copy_tree` over SFTP (SHA-256 verified, hashed on the
source) and once with `scp -r` (host key checked against a known_hosts file holding the pinned
key) into fresh folders, and prints both rates, their ratio and what the source's hashing alone
costs.
The traffic-log copy of a run goes through OpenSSH's client instead: `scripts/bench_logs.py`
(make bench-logs) measures that one.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.sshd import SSHServer
from migrations_engine.remote.connection import (
    SSHGrant,
    host_key_parse,
    known_host_name,
    ssh_connect,
)
from migrations_engine.remote.hashing import remote_sha256
from migrations_engine.remote.keys import RunKey, key_pair_make
from migrations_engine.remote.tree import copy_tree

HOST = "127.0.0.6"
PORT = 2222
MB = 1_000_000


def logs_make(source: Path, files: int, file_mb: int) -> int:
    """Write `files` gzipped logs of about `file_mb` MB of random data (reused when present)."""
    source.mkdir(parents=True, exist_ok=True)
    first_day = datetime(2026, 6, 1)
    for index in range(files):
        path = source / f"traffic-{first_day - timedelta(days=index):%Y%m%d}.log.gz"
        if path.exists() and path.stat().st_size >= file_mb * MB:
            continue
        with gzip.open(path, "wb", compresslevel=1) as handle:
            for _ in range(file_mb):
                handle.write(os.urandom(MB))
    return sum(path.stat().st_size for path in source.iterdir())


def key_authorise(server: SSHServer, key: RunKey) -> None:
    """Authorise the key with the line the peer API writes (restricted, expiring)."""
    expiry = datetime.now(UTC) + timedelta(hours=1)
    key_part = " ".join(key.public_line.split()[:2])
    server.authorized_keys.write_text(
        f'restrict,expiry-time="{expiry:%Y%m%d%H%M%S}Z" {key_part} measure\n'
    )


def grant_for(server: SSHServer) -> SSHGrant:
    host_key = " ".join(server.host_public_key.read_text().split()[:2])
    fingerprint = host_key_parse(host_key).fingerprint
    return SSHGrant(server.user, server.host, server.port, host_key, fingerprint)


def fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def measure_project(grant: SSHGrant, key: RunKey, source: Path, target: Path) -> float:
    client = ssh_connect(grant, key)
    try:
        started = time.monotonic()
        result = copy_tree(client, str(source), fresh(target))
        seconds = time.monotonic() - started
    finally:
        client.close()
    if not result.complete or result.skipped:
        raise SystemExit(f"the copy was not complete: {result.not_copied}")
    return seconds


def measure_scp(grant: SSHGrant, key: RunKey, source: Path, target: Path, known: Path) -> float:
    known.write_text(f"{known_host_name(grant.host, grant.port)} {grant.host_key}\n")
    command = [
        "scp", "-r", "-q", "-i", str(key.path), "-P", str(grant.port),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
        f"{grant.user}@{grant.host}:{source}/.", str(fresh(target)),
    ]  # fmt: skip
    print("$", " ".join(command))
    started = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - started


def measure_hashing(grant: SSHGrant, key: RunKey, source: Path) -> float:
    """Seconds `sha256sum` takes on the source for all files, one after the other."""
    client = ssh_connect(grant, key)
    try:
        started = time.monotonic()
        for path in sorted(source.iterdir()):
            remote_sha256(client, str(path), path.stat().st_size)
        return time.monotonic() - started
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, default=Path("var/measure-sftp"))
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--file-mb", type=int, default=25)
    options = parser.parse_args()
    work = options.directory.resolve()
    source = work / "source"
    started = time.monotonic()
    size = logs_make(source, options.files, options.file_mb)
    print(f"source: {options.files} files, {size / MB:.0f} MB ({time.monotonic() - started:.0f} s)")
    server = SSHServer(directory=work / "sshd", host=HOST, port=PORT, user="root")
    server.start()
    key = key_pair_make(comment="measure", directory=fresh(work / "key"))
    try:
        key_authorise(server, key)
        grant = grant_for(server)
        project = measure_project(grant, key, source, work / "target-sftp")
        scp = measure_scp(grant, key, source, work / "target-scp", work / "known_hosts")
        hashing = measure_hashing(grant, key, source)
    finally:
        server.stop()
        key.forget()
        for target in ("target-sftp", "target-scp"):
            shutil.rmtree(work / target, ignore_errors=True)
    print(f"project SFTP copy: {size / MB / project:6.1f} MB/s ({project:.1f} s, verified)")
    print(f"scp -r:            {size / MB / scp:6.1f} MB/s ({scp:.1f} s)")
    print(f"ratio project/scp: {scp / project:.2f}")
    print(f"sha256sum on the source alone: {size / MB / hashing:.0f} MB/s ({hashing:.1f} s)")


if __name__ == "__main__":
    main()
