"""The traffic-log copy through OpenSSH's client on the real OpenSSH server: resumable inside a
file after a kill, incremental, verified, refused on a changed host key, held to a bandwidth
limit."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import stat
import time
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest

from appliance.progress import Report
from devtools.sshd import SSHServer
from migrations_engine.remote.connection import SSHGrant, ssh_connect
from migrations_engine.remote.errors import HostKeyMismatch
from migrations_engine.remote.keys import RunKey, key_pair_make
from migrations_engine.remote.session import SSHSession
from migrations_engine.remote.transfer import partial_path
from migrations_engine.remote.tree import copy_tree
from tests.remote.conftest import grant_for, random_gzip

MB = 1_000_000


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same_tree(source: Path, target: Path) -> bool:
    names = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    copied = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    return names == copied and all(sha256(source / n) == sha256(target / n) for n in names)


@pytest.fixture
def session(sshd: SSHServer, session_key: RunKey, ssh_client: paramiko.SSHClient) -> SSHSession:
    """The run's session as `ssh_session` gives it: grant, key and a pinned connection."""
    return SSHSession(grant_for(sshd), session_key, ssh_client)


def _copy_in_child(grant: SSHGrant, key: RunKey, source: Path, target: Path) -> None:
    """A worker's copy, slowed down so that it can be killed in the middle of the file."""
    client = ssh_connect(grant, key, timeout=5)
    copy_tree(SSHSession(grant, key, client), str(source), target, bwlimit=3 * MB)


def test_a_copy_killed_in_the_middle_of_a_file_resumes_inside_it(
    sshd: SSHServer, session_key: RunKey, session: SSHSession, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    big = random_gzip(source / "traffic-big.log.gz", 12 * MB)
    size = big.stat().st_size
    target = tmp_path / "target"
    partial = partial_path(target / big.name)
    worker = multiprocessing.get_context("fork").Process(
        target=_copy_in_child, args=(grant_for(sshd), session_key, source, target)
    )
    worker.start()
    deadline = time.monotonic() + 30
    while not (partial.exists() and partial.stat().st_size >= 3 * MB):
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.05)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    time.sleep(0.3)  # the orphaned ssh notices its reader is gone
    kept = partial.stat().st_size
    assert 3 * MB <= kept < size
    assert not (target / big.name).exists()

    result = copy_tree(session, str(source), target)
    assert result.copied == [big.name]
    assert result.bytes_transferred == size - kept
    assert sha256(target / big.name) == sha256(big)
    assert stat.S_IMODE((target / big.name).stat().st_mode) == 0o640
    assert not partial.exists()


def test_a_grown_log_copies_only_its_new_bytes_and_removed_logs_are_listed(
    session: SSHSession, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    active = random_gzip(source / "traffic.log", 2 * MB)
    old = random_gzip(source / "archive" / "traffic-20250101.log.gz", 1 * MB)
    target = tmp_path / "target"
    first = copy_tree(session, str(source), target)
    assert sorted(first.copied) == ["archive/traffic-20250101.log.gz", "traffic.log"]

    with active.open("ab") as handle:
        handle.write(os.urandom(700_000))
    os.utime(active, (1_800_000_000, 1_800_000_000))
    new = random_gzip(source / "traffic-20250102.log.gz", 300_000)
    old.unlink()
    second = copy_tree(session, str(source), target)

    assert second.grown == ["traffic.log"]
    assert sorted(second.copied) == ["traffic-20250102.log.gz", "traffic.log"]
    assert second.bytes_transferred == 700_000 + new.stat().st_size
    assert second.not_on_source == ["archive/traffic-20250101.log.gz"]
    assert (target / "archive" / "traffic-20250101.log.gz").exists()  # listed, not deleted
    assert sha256(target / "traffic.log") == sha256(active)
    assert int((target / "traffic.log").stat().st_mtime) == 1_800_000_000


def test_a_grown_log_whose_old_part_differs_is_copied_whole(
    session: SSHSession, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    log = random_gzip(source / "traffic.log", 1 * MB)
    target = tmp_path / "target"
    copy_tree(session, str(source), target)
    log.write_bytes(os.urandom(1_500_000))  # rotated and written anew: longer, not appended
    result = copy_tree(session, str(source), target)
    assert result.grown == [] and result.copied == ["traffic.log"]
    assert result.bytes_transferred == 1_500_000
    assert sha256(target / "traffic.log") == sha256(log)


def test_a_second_pass_over_an_unchanged_tree_transfers_nothing(
    session: SSHSession, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    for day in range(1, 6):
        random_gzip(source / f"traffic-2025010{day}.log.gz", 400_000)
    target = tmp_path / "target"
    first = copy_tree(session, str(source), target)
    assert len(first.copied) == 5 and same_tree(source, target)
    second = copy_tree(session, str(source), target)
    assert second.bytes_transferred == 0
    assert second.copied == [] and second.grown == []
    assert len(second.skipped) == 5


def test_a_partial_file_that_does_not_match_the_source_is_fetched_again(
    session: SSHSession, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    log = random_gzip(source / "traffic.log.gz", 2 * MB)
    target = tmp_path / "target"
    target.mkdir()
    partial_path(target / log.name).write_bytes(os.urandom(500_000))  # not the source's bytes
    result = copy_tree(session, str(source), target)
    size = log.stat().st_size
    assert result.copied == [log.name] and result.not_copied == []
    assert result.bytes_transferred == (size - 500_000) + size
    assert sha256(target / log.name) == sha256(log)


def test_a_changed_host_key_is_refused_before_the_run_key_is_offered(
    sshd: SSHServer, session: SSHSession, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    random_gzip(source / "traffic.log.gz", 500_000)
    target = tmp_path / "target"
    impostor = key_pair_make()
    pinned = replace(
        session.grant,
        host_key=impostor.public_line,
        host_key_fingerprint=impostor.fingerprint,
    )
    accepted = sshd.log_file.read_text().count("Accepted publickey")
    with pytest.raises(HostKeyMismatch, match="Nothing was sent") as raised:
        copy_tree(replace(session, grant=pinned), str(source), target)
    assert raised.value.presented == grant_for(sshd).host_key_fingerprint
    assert raised.value.expected == impostor.fingerprint
    time.sleep(0.2)
    assert sshd.log_file.read_text().count("Accepted publickey") == accepted
    assert not (target / "traffic.log.gz").exists()


def test_the_bandwidth_limit_holds_the_copy_and_the_eta_follows_it(
    session: SSHSession, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    log = random_gzip(source / "traffic.log.gz", 6 * MB)
    events: list[Report] = []
    started = time.monotonic()
    result = copy_tree(
        session,
        str(source),
        tmp_path / "target",
        bwlimit=2 * MB,
        progress=events.append,
        progress_interval=0.2,
    )
    seconds = time.monotonic() - started
    assert result.bytes_transferred == log.stat().st_size
    assert seconds >= 2.5
    first = next(event for event in events if event.figures and event.figures["bytes"] > 0)
    assert first.figures is not None and first.eta_seconds is not None
    left = first.figures["bytes_total"] - first.figures["bytes"]
    assert first.eta_seconds >= 0.8 * left / (2 * MB)
