"""Running a two-node demo of the tests' own beside any other (own name, addresses, ports)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devtools.mariadb import MariaDBServer
from devtools.sshd import SSHServer
from scripts.demo import read_env_file

ROOT = Path(__file__).resolve().parent.parent


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

    def settings(self) -> dict[str, str]:
        """What the demo wrote for scripts (var/<name>.env)."""
        return read_env_file(ROOT / "var" / f"{self.name}.env")

    def node_env(self, node: str) -> dict[str, str]:
        """The environment that makes manage.py act as one of the demo's nodes."""
        return {**os.environ, **read_env_file(self.directory / node / "node.env")}

    def stop(self) -> None:
        """Stop every process the demo started."""
        for pids in self.directory.glob("*/pids"):
            for pid in pids.read_text().split():
                try:
                    os.killpg(int(pid), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        SSHServer(self.directory / "source-ssh", self.source_address, 2222).stop()
        MariaDBServer(self.directory / "source-mysql", self.source_address, 3306, 2).stop()
