"""The processes a demo started, kept in pid files so that it, or the next demo, can stop them.

Each process gets a file `<label>.pid` in the demo's `pids/` directory with its id, its start time
(clock ticks after boot, from /proc/PID/stat) and its program (/proc/PID/exe): a recorded process
is stopped only while the same process (not a later one given the same id) still runs. Processes
started in a session of their own are stopped with their whole group (workers, children).

It also tells who listens on an address and port (/proc/net/tcp and /proc/*/fd), so that a port
taken by a server of someone else is named instead of silently reused.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"


@dataclass(frozen=True)
class Recorded:
    """A process as it was recorded: enough to recognise it later."""

    label: str
    pid: int
    started: int
    program: str
    group: bool = True
    """Stop its whole process group (it leads a session of its own)."""


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about a running process."""

    pid: int
    group: int
    started: int
    program: str
    command: str
    zombie: bool


def process_info(pid: int) -> ProcessInfo | None:
    """The process with this id, or None when there is none (or it cannot be read)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw_command = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    try:
        program = os.readlink(PROC / str(pid) / "exe")
    except OSError:
        program = ""
    return ProcessInfo(
        pid=pid,
        group=int(fields[2]),
        started=int(fields[19]),
        program=program,
        command=raw_command.replace(b"\0", b" ").decode(errors="replace").strip(),
        zombie=fields[0] == "Z",
    )


def all_processes() -> list[ProcessInfo]:
    infos = (process_info(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return [info for info in infos if info is not None]


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting to be reaped does not)."""
    _reap(pid)
    info = process_info(pid)
    return info is not None and not info.zombie


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@dataclass(frozen=True)
class ProcessBook:
    """The pid files of one demo (a directory of `<label>.pid`)."""

    directory: Path

    def record(self, label: str, pid: int, *, group: bool = True) -> None:
        """Remember a process just started (it must be running)."""
        info = process_info(pid)
        if info is None:
            (self.directory / f"{label}.pid").unlink(missing_ok=True)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = Recorded(label, pid, info.started, info.program, group)
        (self.directory / f"{label}.pid").write_text(json.dumps(asdict(entry)) + "\n")

    def recorded(self, labels: Iterable[str] | None = None) -> list[Recorded]:
        """The recorded processes (of these labels), running or not."""
        files = (
            sorted(self.directory.glob("*.pid"))
            if labels is None
            else [self.directory / f"{label}.pid" for label in labels]
        )
        entries = []
        for file in files:
            try:
                entries.append(Recorded(**json.loads(file.read_text())))
            except (FileNotFoundError, ValueError, TypeError):
                continue
        return entries

    def forget(self, label: str) -> None:
        """Drop a pid file (of a process that ends by itself, as the demo's own script)."""
        (self.directory / f"{label}.pid").unlink(missing_ok=True)

    def pid(self, label: str) -> int | None:
        """The id of the recorded process of this label while it still runs."""
        entries = self.recorded([label])
        if entries and self.is_running(entries[0]):
            return entries[0].pid
        return None

    @staticmethod
    def is_running(entry: Recorded) -> bool:
        """Whether the very process recorded still runs (same id, start time and program)."""
        info = process_info(entry.pid)
        return (
            info is not None
            and not info.zombie
            and info.started == entry.started
            and info.program == entry.program
        )

    def members(self, entry: Recorded) -> list[int]:
        """The running processes to stop for this entry: its group (started no earlier than it)
        or itself."""
        running = self.is_running(entry)
        if not entry.group or (not running and process_info(entry.pid) is not None):
            return [entry.pid] if running else []  # an id given to another process is left
        return [
            info.pid
            for info in all_processes()
            if info.group == entry.pid and info.started >= entry.started and not info.zombie
        ]

    def stop(self, labels: Iterable[str] | None = None, grace: float = 5) -> list[Recorded]:
        """Stop the recorded processes (all, or these labels): SIGTERM, then after `grace`
        seconds SIGKILL to what is left; their pid files go. Returns the ones that were running."""
        entries = self.recorded(labels)
        targets = {entry.label: self.members(entry) for entry in entries}
        stopped = [entry for entry in entries if targets[entry.label]]
        pids = [pid for members in targets.values() for pid in members]
        signal_all(pids, signal.SIGTERM)
        if not wait_gone(pids, grace):
            signal_all(pids, signal.SIGKILL)
            wait_gone(pids, 5)
        for entry in entries:
            self.forget(entry.label)
        return stopped


def signal_all(pids: Iterable[int], number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, number)
        except (ProcessLookupError, PermissionError):
            pass


def wait_gone(pids: list[int], timeout: float) -> bool:
    """Wait until none of the processes runs; whether they all ended in time."""
    deadline = time.monotonic() + timeout
    while True:
        if not any(alive(pid) for pid in pids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


# Who listens where


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket and the process that holds it (if it can be seen)."""

    address: str
    port: int
    process: ProcessInfo | None

    def describe(self) -> str:
        if self.process is None:
            return f"{self.address}:{self.port} (a process this user cannot see)"
        return f"pid {self.process.pid}: {self.process.command}"


def _listening_sockets() -> list[tuple[str, int, str]]:
    """(address, port, inode) of each listening TCP socket of this network namespace."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address_hex, port_hex = fields[1].split(":")
            found.append((_address(address_hex), int(port_hex, 16), fields[9]))
    return found


def _address(hex_address: str) -> str:
    """An address of /proc/net/tcp[6] (32-bit words in host order) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _socket_owner(inode: str) -> ProcessInfo | None:
    link = f"socket:[{inode}]"
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) == link:
                    return process_info(int(entry.name))
            except OSError:
                continue
    return None


def listener(address: str, port: int) -> Listener | None:
    """Who listens on this address and port (or on every address at that port), if anyone."""
    for bound, bound_port, inode in _listening_sockets():
        every = ipaddress.ip_address(bound).is_unspecified
        if bound_port == port and (bound == address or every):
            return Listener(bound, bound_port, _socket_owner(inode))
    return None
