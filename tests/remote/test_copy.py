"""Copying the traffic logs and a certificate over SFTP: verified, incremental, resumable."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from appliance.progress import Report
from appliance.seeding import traffic_logs_seed
from migrations_engine.remote.errors import ConnectionLost, TargetWriteError
from migrations_engine.remote.transfer import partial_path
from migrations_engine.remote.tree import copy_file, copy_tree
from tests.remote.conftest import random_gzip

Connect = Callable[[], paramiko.SSHClient]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(directory: Path) -> list[str]:
    return sorted(
        str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()
    )


@pytest.fixture
def traffic_logs(tmp_path: Path) -> Path:
    """Rotated gzipped logs on the 'source', one in a subfolder."""
    source = tmp_path / "source"
    traffic_logs_seed(source, files=5, file_kb=60)
    random_gzip(source / "archive" / "traffic-20250101.log.gz", 300_000)
    os.utime(source / "archive" / "traffic-20250101.log.gz", (1_700_000_000, 1_700_000_000))
    return source


def test_a_tree_of_traffic_logs_is_copied_verified_and_not_copied_twice(
    connect: Connect, traffic_logs: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    events: list[Report] = []
    result = copy_tree(connect(), str(traffic_logs), target, progress=events.append)
    names = files_under(traffic_logs)
    assert len(names) == 6
    assert sorted(result.copied) == names
    assert result.not_copied == [] and result.skipped == []
    assert files_under(target) == names
    for name in names:
        source_stat, target_stat = (traffic_logs / name).stat(), (target / name).stat()
        assert sha256(target / name) == sha256(traffic_logs / name)
        assert int(target_stat.st_mtime) == int(source_stat.st_mtime)
        assert stat.S_IMODE(target_stat.st_mode) == 0o640
    assert result.bytes_transferred == sum((traffic_logs / name).stat().st_size for name in names)
    last = events[-1]
    assert last.final and last.figures is not None
    assert (last.figures["files"], last.figures["files_total"]) == (6, 6)
    assert last.figures["bytes"] == last.figures["bytes_total"] == result.bytes_transferred

    again = copy_tree(connect(), str(traffic_logs), target)
    assert again.copied == [] and again.bytes_transferred == 0
    assert sorted(again.skipped) == names


def test_same_size_files_are_compared_by_hash_when_their_times_differ(
    connect: Connect, traffic_logs: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    copy_tree(connect(), str(traffic_logs), target)
    touched, changed = sorted(traffic_logs.glob("traffic-*.gz"))[:2]
    os.utime(touched, (1_800_000_000, 1_800_000_000))
    data = bytearray(changed.read_bytes())
    data[-100] ^= 0xFF
    changed.write_bytes(bytes(data))
    os.utime(changed, (1_800_000_100, 1_800_000_100))  # not within the second of the first copy
    result = copy_tree(connect(), str(traffic_logs), target)
    assert result.copied == [changed.name]
    assert touched.name in result.skipped
    assert int((target / touched.name).stat().st_mtime) == 1_800_000_000
    assert sha256(target / changed.name) == sha256(changed)


# paramiko's prefetch thread dies with "Socket is closed" when the connection drops: expected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_interrupted_large_file_continues_from_its_partial_file(
    connect: Connect, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    big = random_gzip(source / "traffic-big.log.gz", 24_000_000)
    size = big.stat().st_size
    target = tmp_path / "target"
    client = connect()

    def drop_midway(event: Report) -> None:
        if event.figures and event.figures["bytes"] >= 6_000_000:
            client.close()

    with pytest.raises(ConnectionLost, match="continues where it stopped") as raised:
        copy_tree(client, str(source), target, progress=drop_midway, progress_interval=0)
    assert raised.value.result.copied == []
    partial = partial_path(target / big.name)
    kept = partial.stat().st_size
    assert 0 < kept < size
    assert not (target / big.name).exists()

    result = copy_tree(connect(), str(source), target)
    assert result.copied == [big.name]
    assert result.bytes_transferred == size - kept < size
    assert sha256(target / big.name) == sha256(big)
    assert not partial.exists()


def test_a_private_key_stays_0600_while_written_and_after(connect: Connect, tmp_path: Path) -> None:
    source = tmp_path / "source-certs"
    source.mkdir()
    key = source / "server.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + os.urandom(3000) + b"\n")
    key.chmod(0o644)
    target = tmp_path / "certs" / "server.key"
    modes: list[int] = []

    def watch(event: Report) -> None:
        temp = partial_path(target)
        if temp.exists():
            modes.append(stat.S_IMODE(temp.stat().st_mode))

    result = copy_file(
        connect(), str(key), target, private=True, progress=watch, progress_interval=0
    )
    assert result.copied == ["server.key"]
    assert modes and set(modes) == {0o600}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == key.read_bytes()


def test_files_the_source_cannot_give_are_listed_with_the_reason(
    connect: Connect, traffic_logs: Path, tmp_path: Path
) -> None:
    (traffic_logs / "current.log").symlink_to(traffic_logs / "archive")
    result = copy_tree(connect(), str(traffic_logs), tmp_path / "target")
    assert [item.path for item in result.not_copied] == ["current.log"]
    assert "not a regular file" in result.not_copied[0].reason
    assert len(result.copied) == 6


def test_a_full_target_disk_is_a_clear_error_and_leaves_nothing_that_looks_complete(
    connect: Connect, small_disk: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    random_gzip(source / "a-small.log.gz", 200_000)
    random_gzip(source / "b-large.log.gz", 3_000_000)
    with pytest.raises(TargetWriteError, match="disk of the current system is full") as raised:
        copy_tree(connect(), str(source), small_disk)
    assert raised.value.result.copied == ["a-small.log.gz"]
    assert files_under(small_disk) == ["a-small.log.gz"]
    assert sha256(small_disk / "a-small.log.gz") == sha256(source / "a-small.log.gz")
