"""Running a two-node demo of the tests' own beside any other (own name, addresses, ports)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from devtools.mariadb import MariaDBServer
from devtools.processes import ProcessBook
from devtools.sshd import SSHServer
from migrations_engine.peer_client import PeerClient
from scripts.demo import SCRIPT_LABEL, Node, read_env_file, stop_recorded

ROOT = Path(__file__).resolve().parent.parent
DATA_TABLES = ("subscriber", "voucher", "accounting_session", "event_log")


NO_REBOOT = {"MIGRATION_REBOOT_SETTLE": "2"}
"""Nothing acts on a reboot flag in a demo that does not wait: no node goes down, and a
reboot's wait for it to go down is cut short."""


@dataclass(frozen=True)
class DemoUnderTest:
    """A demo started by `scripts/demo.py` with DEMO_NO_WAIT, and how to stop it."""

    name: str
    source_address: str
    current_address: str
    redis_dbs: str
    size: str = "small"

    @property
    def directory(self) -> Path:
        return ROOT / "var" / self.name

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DEMO_NAME": self.name,
            "DEMO_SOURCE_ADDRESS": self.source_address,
            "DEMO_CURRENT_ADDRESS": self.current_address,
            "DEMO_HTTPS_PORT": "8443",
            "DEMO_HTTP_PORT": "8080",
            "DEMO_SSH_PORT": "2222",
            "DEMO_REDIS_DBS": self.redis_dbs,
            "DEMO_SIZE": self.size,
            "DEMO_NO_WAIT": "1",
            **NO_REBOOT,
        }

    def start(self) -> subprocess.CompletedProcess[str]:
        """Run the demo script; it returns once both nodes answer."""
        return subprocess.run(
            [sys.executable, "scripts/demo.py"],
            cwd=ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def start_waiting(self) -> subprocess.Popen[str]:
        """Run the demo script as `make demo` does (it stays until stopped); its output piped."""
        environment = {key: value for key, value in self.environment().items()}
        environment.pop("DEMO_NO_WAIT")
        return subprocess.Popen(
            [sys.executable, "scripts/demo.py"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def book(self) -> ProcessBook:
        """The demo's pid files."""
        return ProcessBook(self.directory / "pids")

    def settings(self) -> dict[str, str]:
        """What the demo wrote for scripts (var/<name>.env)."""
        return read_env_file(ROOT / "var" / f"{self.name}.env")

    def node_env(self, node: str) -> dict[str, str]:
        """The environment that makes manage.py act as one of the demo's nodes."""
        return {**os.environ, **read_env_file(self.directory / node / "node.env")}

    def node(self, name: str) -> Node:
        """One of the demo's nodes, as the demo script started it (to start its processes)."""
        address = self.current_address if name == "current" else self.source_address
        env = read_env_file(self.directory / name / "node.env") | NO_REBOOT
        return Node(name, address, env, 8443, 8080)

    def manage(
        self, node: str, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a management command as one of the demo's nodes."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.node_env(node), **(env or {})},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def python(self, node: str, code: str) -> str:
        """The last line a piece of Python prints when run as one of the demo's nodes."""
        output = self.manage(node, "shell", "--no-imports", "-c", code).stdout
        return str(output).strip().splitlines()[-1]

    def peer(self) -> PeerClient:
        """A logged-in client of the source's peer API."""
        settings = self.settings()
        client = PeerClient(
            self.source_address, Path(settings["SOURCE_CERTIFICATE"]).read_text(), port=8443
        )
        client.login(settings["SOURCE_ADMIN_PASSWORD"])
        return client

    def seed_source(self, *options: str) -> None:
        """The source as the demo seeds it (small unless told), with any other seed options."""
        size = [] if "--size" in options else ["--size", "small"]
        self.manage(
            "source",
            "seed_node",
            *size,
            "--host-name",
            "appliance-old",
            "--ip-address",
            self.source_address,
            *options,
        )

    def seed_current(self, *options: str) -> None:
        """The current system as the demo seeds it (small), with any other seed options."""
        self.manage(
            "current",
            "seed_node",
            "--size",
            "small",
            "--host-name",
            "appliance-new",
            "--ip-address",
            self.current_address,
            *options,
        )

    def reset(self, *source_options: str) -> None:
        """Both nodes as the demo made them: source in service, current unlicensed."""
        self.peer().maintenance(enabled=False)
        self.seed_source(*source_options)
        self.seed_current("--no-licence")

    @contextmanager
    def running(self) -> Iterator[dict[str, str]]:
        """The demo started for a group of tests (its settings), stopped after them."""
        try:
            started = self.start()
            assert started.returncode == 0, started.stdout + started.stderr
            yield self.settings()
        finally:
            self.stop()

    def current_data(self) -> Any:
        """A connection to the current system's data database."""
        return pymysql.connect(host="127.0.0.1", user="root", database=f"{self.name}_current_data")

    def data_checksums(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """CHECKSUM TABLE of the data tables on the source and on the current system."""
        return (
            _checksums(self.source_address, "appliance_data"),
            _checksums("127.0.0.1", f"{self.name}_current_data"),
        )

    def stop(self) -> None:
        """Stop every process the demo started (its pid files name them)."""
        self.book().stop([SCRIPT_LABEL], grace=40)  # a demo still waiting stops its own first
        stop_recorded(self.book())
        SSHServer(self.directory / "source-ssh", self.source_address, 2222).stop()
        MariaDBServer(self.directory / "source-mysql", self.source_address, 3306, 2).stop()


def _checksums(host: str, database: str) -> dict[str, Any]:
    with pymysql.connect(host=host, user="root", database=database) as connection:
        with connection.cursor() as cursor:
            cursor.execute(f"CHECKSUM TABLE {', '.join(DATA_TABLES)}")
            return {name.split(".")[1]: value for name, value in cursor.fetchall()}
