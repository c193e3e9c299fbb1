"""A hostile source cannot make a copy write outside its target folder, nor give its mode bits.

The source here is a real paramiko SSH server (`hostile_source`) whose listings carry names
that lead elsewhere, a folder that contains itself or more entries than the copy accepts. The
folder around the target is compared before and after each copy: only the target may change.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from migrations_engine.remote.connection import ssh_connect
from migrations_engine.remote.session import SSHSession
from migrations_engine.remote.tree import copy_file, copy_tree
from tests.remote.hostile_source import ROOT, HostileServer, HostileSource

Serve = Callable[[HostileSource], paramiko.SSHClient]

SERVED_FILES = {"a.log": 0o666, "b.log": 0o777, "sub/c.log": 0o604}
SERVED_MTIME = 1_750_000_000
FILE_MODE = 0o640
LEADS_OUTSIDE = "name leads outside the target directory (through a symbolic link on this system)"


@dataclass
class Area:
    """A watched folder with the copy's target deep inside it, and the folder the source serves."""

    around: Path
    target: Path
    served: Path


@pytest.fixture
def area(tmp_path: Path) -> Area:
    around = tmp_path / "around"
    target = around / "inside" / "target"
    target.mkdir(parents=True)
    (around / "outside").mkdir()
    (around / "outside" / "victim.log").write_bytes(b"this file must not change\n")
    served = tmp_path / "served"
    for name, mode in SERVED_FILES.items():
        path = served / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{name} as the source has it\n".encode() * 50)
        path.chmod(mode)
        os.utime(path, (SERVED_MTIME, SERVED_MTIME))
    return Area(around, target, served)


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a hostile server for a source and connect to it with its host key pinned."""
    servers: list[HostileServer] = []
    clients: list[paramiko.SSHClient] = []

    def start(source: HostileSource) -> paramiko.SSHClient:
        server = HostileServer(source)
        server.start()
        servers.append(server)
        client = ssh_connect(server.grant, server.client_key, timeout=5)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


@pytest.fixture
def serve_session() -> Iterator[Callable[[HostileSource], SSHSession]]:
    """The same, as the run's session: the copy's bytes then go through OpenSSH's client."""
    servers: list[HostileServer] = []

    def start(source: HostileSource) -> SSHSession:
        server = HostileServer(source)
        server.start()
        servers.append(server)
        return SSHSession(
            server.grant, server.client_key, ssh_connect(server.grant, server.client_key)
        )

    yield start
    for server in servers:
        server.stop()


def tree_state(directory: Path, leave_out: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every path under `directory` except `leave_out`'s: type and mode, size, time, link."""
    state = {}
    for folder, folders, files in os.walk(directory):
        folders[:] = [name for name in folders if Path(folder, name) != leave_out]
        for name in folders + files:
            path = Path(folder, name)
            info = path.lstat()
            link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else ""
            state[str(path.relative_to(directory))] = (
                info.st_mode,
                info.st_size,
                info.st_mtime_ns,
                link,
            )
    return state


def everything_under(directory: Path) -> list[str]:
    """Every file, hidden ones too, by path relative to `directory`."""
    return sorted(
        str(Path(folder, name).relative_to(directory))
        for folder, _, files in os.walk(directory)
        for name in files
    )


def assert_served_files_copied(area: Area, copied: list[str]) -> None:
    assert sorted(copied) == sorted(SERVED_FILES)
    assert everything_under(area.target) == sorted(SERVED_FILES)
    for name in SERVED_FILES:
        written = (area.target / name).stat()
        assert (area.target / name).read_bytes() == (area.served / name).read_bytes()
        assert stat.S_IMODE(written.st_mode) == FILE_MODE
        assert int(written.st_mtime) == SERVED_MTIME


HOSTILE = [
    ("../../escape.txt", "../../escape.txt", "name contains '/'"),
    ("{around}/abs.txt", "{around}/abs.txt", "name is absolute (it starts with '/')"),
    ("a/b", "a/b", "name contains '/'"),
    ("nul\0name.log", "nul\\x00name.log", "name contains a NUL character"),
    ("", '""', "name is empty"),
    ("not-utf8-\udcff.log", "not-utf8-\\xff.log", "name is not valid UTF-8"),
]
"""A name the source lists, as the result shows it, and why it is not copied."""


@pytest.mark.parametrize(("name", "shown", "reason"), HOSTILE)
def test_a_name_that_is_not_a_plain_file_name_is_refused_with_its_reason(
    area: Area, serve: Serve, name: str, shown: str, reason: str
) -> None:
    name, shown = name.format(around=area.around), shown.format(around=area.around)
    before = tree_state(area.around, area.target)
    result = copy_tree(serve(HostileSource(area.served, made_up=[name])), ROOT, area.target)
    assert tree_state(area.around, area.target) == before
    assert [(item.path, item.reason) for item in result.not_copied] == [(shown, reason)]
    assert_served_files_copied(area, result.copied)


def test_all_hostile_names_at_once_write_nothing_outside_and_the_rest_is_copied(
    area: Area, serve: Serve
) -> None:
    names = [name.format(around=area.around) for name, _, _ in HOSTILE] + ["..", "."]
    before = tree_state(area.around, area.target)
    result = copy_tree(serve(HostileSource(area.served, made_up=names)), ROOT, area.target)
    assert tree_state(area.around, area.target) == before
    reasons = {item.path: item.reason for item in result.not_copied}
    assert reasons == {shown.format(around=area.around): reason for _, shown, reason in HOSTILE}
    assert_served_files_copied(area, result.copied)


def test_hostile_names_are_refused_when_the_bytes_come_through_openssh(
    area: Area, serve_session: Callable[[HostileSource], SSHSession]
) -> None:
    names = [name.format(around=area.around) for name, _, _ in HOSTILE] + ["..", "."]
    before = tree_state(area.around, area.target)
    session = serve_session(HostileSource(area.served, made_up=names))
    result = copy_tree(session, ROOT, area.target)
    session.client.close()
    assert tree_state(area.around, area.target) == before
    reasons = {item.path: item.reason for item in result.not_copied}
    assert reasons == {shown.format(around=area.around): reason for _, shown, reason in HOSTILE}
    assert_served_files_copied(area, result.copied)


def test_a_folder_that_contains_itself_is_listed_only_so_deep(area: Area, serve: Serve) -> None:
    result = copy_tree(serve(HostileSource(area.served, loops=["loop"])), ROOT, area.target)
    assert [(item.path, item.reason) for item in result.not_copied] == [
        (
            "/".join(["loop"] * 33),
            "the folder is more than 32 levels deep; what is in it was not listed",
        )
    ]
    assert_served_files_copied(area, result.copied)


def test_a_listing_with_too_many_entries_stops_with_a_reason(
    area: Area, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("migrations_engine.remote.listing.MAX_ENTRIES", 12)
    many = [f"many-{number:05d}.log" for number in range(3000)]
    result = copy_tree(serve(HostileSource(area.served, made_up=many)), ROOT, area.target)
    assert [(item.path, item.reason) for item in result.not_copied] == [
        (
            ".",
            "the source listed more than 12 files and folders; the listing stopped here "
            "and the rest was not copied",
        )
    ]
    assert 0 < len(result.copied) <= 12
    assert len(everything_under(area.target)) == len(result.copied)


def test_a_link_here_to_a_folder_outside_is_not_written_through(area: Area, serve: Serve) -> None:
    (area.target / "sub").symlink_to(area.around / "outside")
    before = tree_state(area.around, area.target)
    result = copy_tree(serve(HostileSource(area.served)), ROOT, area.target)
    assert tree_state(area.around, area.target) == before
    assert [(item.path, item.reason) for item in result.not_copied] == [
        ("sub/c.log", LEADS_OUTSIDE)
    ]
    assert sorted(result.copied) == ["a.log", "b.log"]
    assert (area.target / "sub").is_symlink()


def test_a_link_here_to_a_file_outside_is_neither_followed_nor_touched(
    area: Area, serve: Serve
) -> None:
    victim = area.around / "outside" / "victim.log"
    victim.write_bytes((area.served / "a.log").read_bytes())
    os.utime(victim, (1_600_000_000, 1_600_000_000))
    (area.target / "a.log").symlink_to(victim)
    before = tree_state(area.around, area.target)
    result = copy_tree(serve(HostileSource(area.served)), ROOT, area.target)
    assert tree_state(area.around, area.target) == before
    assert [(item.path, item.reason) for item in result.not_copied] == [("a.log", LEADS_OUTSIDE)]
    assert sorted(result.copied) == ["b.log", "sub/c.log"]


def test_a_single_file_gets_a_fixed_mode_not_the_sources(area: Area, serve: Serve) -> None:
    target = area.target / "copied.log"
    result = copy_file(serve(HostileSource(area.served)), f"{ROOT}/b.log", target)
    assert result.copied == ["copied.log"]
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE
    assert int(target.stat().st_mtime) == SERVED_MTIME
