"""A private MariaDB server with its own data directory, for the demo's source node and tests.

It listens on its own address and port, has its own server id and writes a binary log, so that
data copied from it really crosses between two servers (and replication can be set up). With `tls`
it also gets a self-signed certificate for its address and offers TLS, as an appliance's database
server does; `certificate_pem()` is what its peer API would hand out.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql
from cryptography import x509

from appliance.certificates import self_signed_certificate


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
    tls: bool = False
    """Offer TLS with a certificate of its own (made on first start, kept beside the data)."""

    @property
    def socket(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.sock"

    @property
    def pid_file(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.err"

    @property
    def certificate_file(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}-tls.crt"

    @property
    def key_file(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}-tls.key"

    def certificate_pem(self) -> str:
        """The server's TLS certificate (PEM), as its peer API hands it out."""
        return self.certificate_file.read_text()

    def make_certificate(self) -> None:
        """A self-signed certificate naming the server's address (its IP in SubjectAltName), so
        that a replica checking the server's name against the address it connects to accepts it."""
        if self.key_file.exists() and self._certificate_names_host():
            return
        self_signed_certificate(
            cert_path=self.certificate_file,
            key_path=self.key_file,
            common_name=self.host,
            addresses=[self.host],
        )

    def _certificate_names_host(self) -> bool:
        try:
            certificate = x509.load_pem_x509_certificate(self.certificate_file.read_bytes())
            names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except (OSError, ValueError, x509.ExtensionNotFound):
            return False
        return ipaddress.ip_address(self.host) in names.value.get_values_for_type(x509.IPAddress)

    def offers_tls(self) -> bool:
        """Whether the running server offers TLS."""
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT @@have_ssl")
            row = cursor.fetchone()
        return bool(row and row[0] == "YES")

    def _tls_options(self) -> list[str]:
        if not self.tls:
            return []
        self.make_certificate()
        return [f"--ssl-cert={self.certificate_file}", f"--ssl-key={self.key_file}"]

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
        """Start the server (installing it first) and wait until it answers; one left running
        without the TLS now asked for is started again."""
        if self.answers():
            if not self.tls or self.offers_tls():
                return
            self.stop()
        self.wait_ready(self.launch(), timeout)

    def launch(self) -> subprocess.Popen[bytes]:
        """Start mariadbd in a session of its own (installing the data directory first), without
        waiting for it to answer."""
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
            *self._tls_options(),
            "--max-allowed-packet=256M",
            "--local-infile=1",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ]
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """Wait until the server launched answers on its socket (and let root in over TCP)."""
        deadline = time.monotonic() + timeout
        while not self.socket.exists() or not self._allow_root_over_tcp():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"MariaDB at {self.host}:{self.port} did not start; see {self.log_file}"
                )
            time.sleep(0.3)

    def _allow_root_over_tcp(self) -> bool:
        """Let root in over TCP without a password (the server only listens on loopback); kept
        out of the binary log, which holds only what the node itself does."""
        try:
            connection = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        except pymysql.OperationalError:
            return False
        with connection, connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_log_bin = 0")
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
