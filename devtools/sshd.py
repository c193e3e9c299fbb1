"""A private OpenSSH server on a loopback address, for the demo's source node and the tests.

It has its own host key, config and authorized_keys file; only public-key logins are allowed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SSHServer:
    """One sshd process owned by the caller; `start()` makes its host key on first use."""

    directory: Path
    host: str = "127.0.0.2"
    port: int = 22
    user: str = "root"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def host_public_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key.pub"

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    @property
    def pid_file(self) -> Path:
        return self.directory / "sshd.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "sshd.log"

    def write_config(self) -> Path:
        """Write sshd_config: this address and port, keys only, the migration user only."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)],
                check=True,
            )
        self.authorized_keys.touch(mode=0o600, exist_ok=True)
        config = self.directory / "sshd_config"
        config.write_text(
            f"ListenAddress {self.host}:{self.port}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.pid_file}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            f"AllowUsers {self.user}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nUsePAM no\nStrictModes no\n"
            "X11Forwarding no\nAllowTcpForwarding no\nPermitTunnel no\n"
            "Subsystem sftp internal-sftp\nLogLevel VERBOSE\n"
        )
        return config

    def start(self, timeout: float = 15) -> None:
        """Start sshd in the background and wait until its port accepts connections."""
        if self.answers():
            return
        config = self.write_config()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        subprocess.run([sshd, "-t", "-f", str(config)], check=True)
        subprocess.Popen(
            [sshd, "-D", "-f", str(config), "-E", str(self.log_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"sshd on {self.host}:{self.port} did not start; see {self.log_file}"
                )
            time.sleep(0.1)

    def answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 5) -> None:
        """Stop sshd and wait until its port is closed, so that a new start begins afresh."""
        try:
            os.kill(int(self.pid_file.read_text()), signal.SIGTERM)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass
        deadline = time.monotonic() + timeout
        while self.answers() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
