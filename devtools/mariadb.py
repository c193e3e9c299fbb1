"""A private MariaDB server with its own data directory, for the demo's source node and tests.

It listens on its own address and port, has its own server id and writes a binary log, so that
data copied from it really crosses between two servers (and replication can be set up).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql


@dataclass
class MariaDBServer:
    """One mariadbd process owned by the caller; `start()` creates the data directory if needed."""

    datadir: Path
    host: str = "127.0.0.2"
    port: int = 3306
    server_id: int = 2
    options: tuple[str, ...] = (
        "--log-bin=binlog",
        "--binlog-format=ROW",
        "--innodb-buffer-pool-size=256M",
        "--innodb-log-file-size=256M",
    )
    """Server options besides the ones every instance needs (address, files, id)."""

    @property
    def socket(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.sock"

    @property
    def pid_file(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.err"

    def url(self, database: str, user: str = "root", password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"mysql://{user}{secret}@{self.host}:{self.port}/{database}"

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        """A root connection over TCP."""
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user="root",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            local_infile=True,
        )

    def answers(self) -> bool:
        try:
            self.connect().close()
        except pymysql.OperationalError:
            return False
        return True

    def install(self) -> None:
        """Create the system tables in an empty data directory; root gets no password."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if (self.datadir / "mysql").exists():
            return
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 60) -> None:
        """Start the server (installing it first) and wait until it answers."""
        if self.answers():
            return
        self.install()
        command = [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            "--user=root",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log_file}",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            f"--server-id={self.server_id}",
            *self.options,
            "--max-allowed-packet=256M",
            "--local-infile=1",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ]
        subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not self.socket.exists() or not self._allow_root_over_tcp():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"MariaDB at {self.host}:{self.port} did not start; see {self.log_file}"
                )
            time.sleep(0.3)

    def _allow_root_over_tcp(self) -> bool:
        """Let root in over TCP without a password (the server only listens on loopback)."""
        try:
            connection = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        except pymysql.OperationalError:
            return False
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE USER IF NOT EXISTS 'root'@'%'")
            cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION")
        return True

    def stop(self, timeout: float = 60) -> None:
        """Stop the server cleanly (SIGTERM) and wait for it to go."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not self._wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """Stop the server the hard way (SIGKILL), as a crash or a pulled cable would."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._wait_gone(pid, 10)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        """Wait until the process has ended (reaping it when this process started it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return True
            except ChildProcessError:
                pass  # not our child: probing below tells
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
