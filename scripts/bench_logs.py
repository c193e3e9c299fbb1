"""Benchmark the traffic-log copy against `scp -r`: same data, same pinned host key (bench-logs).

    python scripts/bench_logs.py

Makes (or reuses) about `BENCH_LOGS_MB` MB (default 1000) of incompressible gzipped logs of
`BENCH_LOGS_FILE_MB` MB each (default 25), starts an OpenSSH server on 127.0.0.62 serving them
(`BENCH_LOGS_HOST`, `BENCH_LOGS_PORT`, default 2222), then for `BENCH_LOGS_ROUNDS` rounds
(default 3) copies the tree into fresh folders once with the project's copier (`copy_tree` with
the run's `SSHSession`: OpenSSH's client, hashed on both sides), once with `scp -r` as it comes
(host key checked against a known_hosts file holding only the pinned key, OpenSSH's default
cipher) and once with `scp -r -c aes128-gcm@openssh.com` (the copier's cipher), rotating which
goes first. Each copy is checked identical to the source afterwards. The copier runs in a
child process of its own; its peak memory is that child's maximum resident set size (the Python
process) and, apart, that of the `ssh` processes it started. With `BENCH_LOGS_BWLIMIT_MB` set,
one more copy runs under that limit and its rate is printed. The last line is
`ratio copier/scp: X (median of N)`, the copier's time over plain `scp -r`'s time (below 1:
faster); the line before it gives the same against scp with the copier's cipher.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paramiko

from devtools.sshd import SSHServer
from migrations_engine.remote.connection import (
    SSHGrant,
    host_key_parse,
    known_host_name,
    ssh_connect,
)
from migrations_engine.remote.keys import RunKey, key_pair_make
from migrations_engine.remote.openssh import CIPHERS
from migrations_engine.remote.session import SSHSession
from migrations_engine.remote.tree import copy_tree
from scripts.measure_sftp import key_authorise, logs_make

MB = 1_000_000
HOST = os.environ.get("BENCH_LOGS_HOST", "127.0.0.62")
PORT = int(os.environ.get("BENCH_LOGS_PORT", "2222"))
TOTAL_MB = int(os.environ.get("BENCH_LOGS_MB", "1000"))
FILE_MB = int(os.environ.get("BENCH_LOGS_FILE_MB", "25"))
ROUNDS = int(os.environ.get("BENCH_LOGS_ROUNDS", "3"))
BWLIMIT_MB = float(os.environ.get("BENCH_LOGS_BWLIMIT_MB", "0"))
WORK = Path(os.environ.get("BENCH_LOGS_DIR", "var/bench-logs")).resolve()
PLAIN = "scp -r"
GCM = "scp -r -c aes128-gcm"
METHODS = {"copier": "", PLAIN: "", GCM: CIPHERS.split(",")[0]}
"""The ways to copy, with the cipher given to scp (none: OpenSSH's default)."""


@dataclass(frozen=True)
class CopierRun:
    """One copy by the project's copier, as its child process told it."""

    seconds: float
    bytes_transferred: int
    python_peak_mb: float
    ssh_peak_mb: float


def grant_for(server: SSHServer) -> SSHGrant:
    host_key = " ".join(server.host_public_key.read_text().split()[:2])
    fingerprint = host_key_parse(host_key).fingerprint
    return SSHGrant(server.user, server.host, server.port, host_key, fingerprint)


def key_load(path: Path, public_line: str) -> RunKey:
    """The run key written by the parent process, read back in the child."""
    private = paramiko.Ed25519Key.from_private_key_file(str(path))
    return RunKey(private, public_line, private.fingerprint, path, path.read_bytes())


def fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def tree_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under `directory`, by relative path."""
    digests = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                digests[str(path.relative_to(directory))] = hashlib.file_digest(
                    handle, "sha256"
                ).hexdigest()
    return digests


def copier_child(order: Path) -> None:
    """In the child: copy once as the order file says, print the figures as JSON."""
    spec = json.loads(order.read_text())
    grant = SSHGrant(**spec["grant"])
    key = key_load(Path(spec["key"]), spec["public_line"])
    client = ssh_connect(grant, key)
    try:
        started = time.monotonic()
        result = copy_tree(
            SSHSession(grant, key, client),
            spec["source"],
            Path(spec["target"]),
            bwlimit=spec["bwlimit"],
        )
        seconds = time.monotonic() - started
    finally:
        client.close()
    if not result.complete:
        raise SystemExit(f"the copy was not complete: {result.not_copied}")
    figures = {
        "seconds": seconds,
        "bytes_transferred": result.bytes_transferred,
        "python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ssh_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(json.dumps(figures))


def run_copier(
    grant: SSHGrant, key: RunKey, source: Path, target: Path, bwlimit: int | None = None
) -> CopierRun:
    order = WORK / "order.json"
    order.write_text(
        json.dumps(
            {
                "grant": grant.__dict__,
                "key": str(key.path),
                "public_line": key.public_line,
                "source": str(source),
                "target": str(fresh(target)),
                "bwlimit": bwlimit,
            }
        )
    )
    done = subprocess.run(
        [sys.executable, __file__, "--copier", str(order)],
        check=True,
        capture_output=True,
        text=True,
    )
    return CopierRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def run_scp(grant: SSHGrant, key: RunKey, source: Path, target: Path, cipher: str) -> float:
    """Seconds `scp -r` takes (with `cipher` if not empty, else OpenSSH's default)."""
    known = WORK / "known_hosts"
    known.write_text(f"{known_host_name(grant.host, grant.port)} {grant.host_key}\n")
    command = [
        "scp", "-r", "-q", "-F", "/dev/null", "-i", str(key.path), "-P", str(grant.port),
        *(["-c", cipher] if cipher else []),
        "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        f"{grant.user}@{grant.host}:{source}/.", str(fresh(target)),
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - started


def check_identical(expected: dict[str, str], target: Path, who: str) -> None:
    if tree_digests(target) != expected:
        raise SystemExit(f"the copy by {who} differs from the source")


def main() -> None:
    source = WORK / "source"
    files = max(1, TOTAL_MB // FILE_MB)
    size = logs_make(source, files, FILE_MB)
    expected = tree_digests(source)
    print(f"source: {files} files, {size / MB:.0f} MB on {HOST}:{PORT}")
    server = SSHServer(directory=WORK / "sshd", host=HOST, port=PORT, user="root")
    if server.answers():
        raise SystemExit(f"{HOST}:{PORT} is already in use; set BENCH_LOGS_HOST or _PORT")
    server.start()
    key = key_pair_make(comment="bench-logs", directory=fresh(WORK / "key"))
    seconds: dict[str, list[float]] = {who: [] for who in METHODS}
    peaks: list[CopierRun] = []
    try:
        key_authorise(server, key)
        grant = grant_for(server)
        for number in range(ROUNDS):
            names = list(METHODS)
            order = names[number % 3 :] + names[: number % 3]
            for who in order:
                target = WORK / "target"
                if who == "copier":
                    peaks.append(run_copier(grant, key, source, target))
                    seconds[who].append(peaks[-1].seconds)
                else:
                    seconds[who].append(run_scp(grant, key, source, target, METHODS[who]))
                check_identical(expected, target, who)
                shutil.rmtree(target)
            print(
                f"round {number + 1}: "
                + ", ".join(
                    f"{who} {size / MB / seconds[who][-1]:.1f} MB/s ({seconds[who][-1]:.1f} s)"
                    for who in METHODS
                )
                + f"; copier peak {peaks[-1].python_peak_mb:.0f} MB"
            )
        if BWLIMIT_MB:
            limit = int(BWLIMIT_MB * MB)
            run = run_copier(grant, key, source, WORK / "target-limited", limit)
            check_identical(expected, WORK / "target-limited", "copier (limited)")
            shutil.rmtree(WORK / "target-limited")
            rate = run.bytes_transferred / MB / run.seconds
            print(
                f"limited to {BWLIMIT_MB:g} MB/s: {rate:.2f} MB/s "
                f"({(rate / BWLIMIT_MB - 1) * 100:+.1f} %)"
            )
    finally:
        server.stop()
        key.forget()
    for who in METHODS:
        print(f"{who}: {size / MB / statistics.median(seconds[who]):.1f} MB/s (median)")
    print(
        f"copier peak memory: {max(run.python_peak_mb for run in peaks):.0f} MB (the copying "
        f"Python process's maxrss), {max(run.ssh_peak_mb for run in peaks):.0f} MB (its "
        "largest ssh child's maxrss)"
    )
    gcm = [ours / theirs for ours, theirs in zip(seconds["copier"], seconds[GCM], strict=True)]
    plain = [ours / theirs for ours, theirs in zip(seconds["copier"], seconds[PLAIN], strict=True)]
    print(f"ratio copier/{GCM}: {statistics.median(gcm):.2f} (median of {ROUNDS})")
    print(f"ratio copier/scp: {statistics.median(plain):.2f} (median of {ROUNDS})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--copier":
        copier_child(Path(sys.argv[2]))
    else:
        main()
