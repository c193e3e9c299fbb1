"""The two-node demo on one machine: a seeded source (127.0.0.2) and a current system (127.0.0.1).

Starts a second MariaDB server for the source (with a TLS certificate of its own for its
address, handed out by the source's peer API), both nodes' web processes (nginx in front for
TLS and the published progress partials, Django behind it on a socket), publishers and Celery
workers, and an OpenSSH server for the source; prints the wizard's URL and the logins and writes
them to var/demo.env. Ctrl-C stops everything it started. Every run starts from fresh data.

A node's restart command makes its gunicorn reload (new workers, new certificate); its reboot
command makes this script stop and start all of that node's processes.

Environment: DEMO_SIZE (small|demo|bench, default demo), DEMO_HA=1 for an HA source,
DEMO_HTTPS_PORT / DEMO_HTTP_PORT / DEMO_SSH_PORT / DEMO_SOURCE_DB_PORT to move off the
standard ports, DEMO_NO_WAIT=1 to set everything up and return (for scripts and tests), and
DEMO_NAME / DEMO_SOURCE_ADDRESS / DEMO_CURRENT_ADDRESS / DEMO_REDIS_DBS to run a second demo
beside the first (the tests do).
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402

from devtools.mariadb import MariaDBServer  # noqa: E402
from devtools.sshd import SSHServer  # noqa: E402

DEMO_NAME = os.environ.get("DEMO_NAME", "demo")
DEMO_DIR = ROOT / "var" / DEMO_NAME
ENV_FILE = ROOT / "var" / f"{DEMO_NAME}.env"
PYTHON = sys.executable
SOURCE_ADDRESS = os.environ.get("DEMO_SOURCE_ADDRESS", "127.0.0.2")
CURRENT_ADDRESS = os.environ.get("DEMO_CURRENT_ADDRESS", "127.0.0.1")
CURRENT_BROKER_DB, SOURCE_BROKER_DB = (
    int(n) for n in os.environ.get("DEMO_REDIS_DBS", "10,11").split(",")
)


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """KEY=value lines, quoted for the shell (`set -a; . FILE`), readable by the owner only."""
    path.write_text("".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items()))
    path.chmod(0o600)


def read_env_file(path: Path) -> dict[str, str]:
    """The values of a file written by `write_env_file`."""
    pairs = (shlex.split(line)[0] for line in path.read_text().splitlines() if line.strip())
    return dict(pair.split("=", 1) for pair in pairs)


def port_setting(name: str, standard: int, fallback: int, address: str) -> int:
    """The configured port, else the standard one if it can be bound here, else the fallback."""
    if os.environ.get(name):
        return int(os.environ[name])
    return standard if can_bind(address, standard) else fallback


def can_bind(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def load_secrets() -> dict[str, str]:
    """Passwords and keys of the demo, made once and kept in var/demo (never in the repo)."""
    path = DEMO_DIR / "secrets.json"
    values = {
        "source_admin_password": secrets.token_urlsafe(12),
        "target_admin_password": secrets.token_urlsafe(12),
        "source_db_password": secrets.token_urlsafe(18),
        "copier_db_password": secrets.token_urlsafe(18),
        "source_secret_key": secrets.token_urlsafe(50),
        "target_secret_key": secrets.token_urlsafe(50),
    }
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        if set(values) <= set(stored):
            return stored
        values |= stored  # a demo made before a secret was added keeps the ones it has
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


@dataclass
class Node:
    """One node of the demo: its name, address, environment and processes."""

    name: str
    address: str
    env: dict[str, str]
    https_port: int
    http_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def var_dir(self) -> Path:
        return Path(self.env["APPLIANCE_VAR_DIR"])

    @property
    def url(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.address}{port}"

    @property
    def front_config(self) -> Path:
        return self.var_dir / "front" / "nginx.conf"

    def front_configure(self) -> None:
        """Write the node's nginx configuration (TLS on its HTTPS port, Django on a socket)."""
        user = ["--user", getpass.getuser()] if os.geteuid() == 0 else []
        self.manage(
            "front_config",
            f"--listen={self.address}:{self.https_port}",
            f"--upstream={self.var_dir / 'web.sock'}",
            f"--prefix={self.front_config.parent}",
            f"--output={self.front_config}",
            *user,
        )

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Run a management command for this node and stop the demo if it fails."""
        env = {**os.environ, **self.env, **(extra_env or {})}
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            sys.exit(f"[{self.name}] manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
        for line in result.stdout.strip().splitlines():
            print(f"[{self.name}] {line}")

    def commands(self) -> dict[str, list[str]]:
        """Each of the node's processes by role, in the order they start (the worker last)."""
        gunicorn, celery = (
            str(Path(PYTHON).parent / "gunicorn"),
            str(Path(PYTHON).parent / "celery"),
        )
        return {
            "web": [
                gunicorn,
                "config.wsgi",
                f"--bind=unix:{self.var_dir / 'web.sock'}",
                "--workers=2",
                "--threads=4",
                "--worker-class=gthread",
                "--timeout=120",
                f"--pid={self.var_dir / 'web.pid'}",
            ],
            "front": [nginx_binary(), "-c", str(self.front_config), "-g", "daemon off;"],
            "publisher": [PYTHON, "manage.py", "publish_progress"],
            "redirect": [
                gunicorn,
                "config.redirect_wsgi",
                f"--bind={self.address}:{self.http_port}",
                "--workers=1",
            ],
            "worker": [
                celery,
                "-A",
                "config",
                "worker",
                f"--hostname={self.name}@%h",
                "--pool=threads",
                "--concurrency=4",
                "--loglevel=INFO",
                "--beat",
                f"--schedule={self.var_dir / 'logs' / 'beat-schedule'}",
            ],
        }

    def spawn(self, role: str) -> subprocess.Popen[bytes]:
        """Start one of the node's processes in its own session, its output in logs/<role>.log."""
        logs = self.var_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{role}.log", "ab") as log:
            return subprocess.Popen(
                self.commands()[role],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pids(self) -> dict[str, int]:
        """The process id of each running role, as `start` wrote them."""
        pids = map(int, (self.var_dir / "pids").read_text().split())
        return dict(zip(self.commands(), pids, strict=True))

    def pids_write(self, pids: dict[str, int]) -> None:
        (self.var_dir / "pids").write_text(" ".join(str(pids[role]) for role in self.commands()))

    def start(self) -> None:
        """Start the front server, web process, publisher, port-80 redirect and Celery worker;
        their process ids go to `pids`, in the order of `commands`."""
        spawned = {role: self.spawn(role) for role in self.commands()}
        self.processes = list(spawned.values())
        self.pids_write({role: process.pid for role, process in spawned.items()})
        env_file = self.var_dir / "node.env"
        write_env_file(env_file, self.env)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def wait_until_up(self, timeout: float = 60) -> None:
        """Wait until the login page answers over HTTPS with this node's own certificate."""
        context = ssl.create_default_context(cafile=str(self.var_dir / "certs" / "server.crt"))
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own https URL
                    f"{self.url}/accounts/login/", context=context, timeout=3
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"[{self.name}] did not answer at {self.url}; see {self.var_dir}/logs")
            time.sleep(0.5)


def nginx_binary() -> str:
    """The front web server's program; the demo cannot run without it."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        sys.exit("nginx is not installed (apt-get install nginx): it is each node's front server.")
    return found


def stop_leftovers() -> None:
    """Stop the processes a previous demo left running (one started with DEMO_NO_WAIT)."""
    for pids in DEMO_DIR.glob("*/pids"):
        for pid in pids.read_text().split():
            try:
                os.killpg(int(pid), signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        pids.unlink()
    time.sleep(1)


def require_services() -> None:
    """The machine's MariaDB and Redis must already run."""
    try:
        pymysql.connect(host="127.0.0.1", user="root").close()
    except pymysql.err.OperationalError as error:
        sys.exit(f"The machine's MariaDB at 127.0.0.1:3306 does not answer as root: {error}")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6379)) != 0:
            sys.exit("Redis does not answer at 127.0.0.1:6379; start it first.")


def fresh_databases(connection: Any, names: list[str], user: str = "", password: str = "") -> None:
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        if user:
            cursor.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY %s", [password])
            cursor.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", [password])
            cursor.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION")


def node_env(name: str, address: str, control: str, data: str, broker_db: int) -> dict[str, str]:
    var_dir = DEMO_DIR / name
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "APPLIANCE_DEMO": "1",
        "CONTROL_DB_URL": control,
        "DATA_DB_URL": data,
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{broker_db}",
        "APPLIANCE_VAR_DIR": str(var_dir),
        "DJANGO_ALLOWED_HOSTS": f"{address},localhost",
        # Restart: gunicorn reloads gracefully on HUP, nginx with the new certificate.
        "APPLIANCE_RESTART_COMMAND": (
            f"sh -c 'kill -HUP $(cat {var_dir / 'web.pid'}) $(cat {var_dir / 'front/front.pid'})'"
        ),
        "APPLIANCE_REBOOT_COMMAND": f"touch {var_dir / 'control' / 'reboot'}",
        "WIZARD_ALLOW_LOOPBACK": "1",
        "APPLIANCE_WEB_ADDRESS": address,
        "APPLIANCE_FRONT_SERVER": "1",
        "WIZARD_PUBLISH_DIR": str(var_dir / "published"),
    }


def build_nodes(keys: dict[str, str], ssh: SSHServer, source_db: MariaDBServer) -> list[Node]:
    db_password = keys["source_db_password"]
    source = Node(
        "source",
        SOURCE_ADDRESS,
        node_env(
            "source",
            SOURCE_ADDRESS,
            source_db.url("appliance_control", "appliance", db_password),
            source_db.url("appliance_data", "appliance", db_password),
            SOURCE_BROKER_DB,
        )
        | {
            "DJANGO_SECRET_KEY": keys["source_secret_key"],
            "APPLIANCE_SSH_HOST": ssh.host,
            "APPLIANCE_SSH_PORT": str(ssh.port),
            "APPLIANCE_SSH_USER": ssh.user,
            "APPLIANCE_SSH_HOST_KEY": str(ssh.host_public_key),
            "APPLIANCE_SSH_AUTHORIZED_KEYS": str(ssh.authorized_keys),
            "APPLIANCE_DATA_DB_CERTIFICATE": str(source_db.certificate_file),
        },
        port_setting("DEMO_HTTPS_PORT", 443, 8443, SOURCE_ADDRESS),
        port_setting("DEMO_HTTP_PORT", 80, 8080, SOURCE_ADDRESS),
    )
    current = Node(
        "current",
        CURRENT_ADDRESS,
        node_env(
            "current",
            CURRENT_ADDRESS,
            f"mysql://root@127.0.0.1:3306/{DEMO_NAME}_current_control",
            f"mysql://root@127.0.0.1:3306/{DEMO_NAME}_current_data",
            CURRENT_BROKER_DB,
        )
        | {
            "DJANGO_SECRET_KEY": keys["target_secret_key"],
            # The copier's own account and the definer of copied objects (migration_accounts).
            "MIGRATION_COPIER_DB_URL": f"mysql://{DEMO_NAME}_copier:{keys['copier_db_password']}"
            f"@127.0.0.1:3306/{DEMO_NAME}_current_data",
            "MIGRATION_DEFINER": f"{DEMO_NAME}_definer@localhost",
        },
        port_setting("DEMO_HTTPS_PORT", 443, 8443, CURRENT_ADDRESS),
        port_setting("DEMO_HTTP_PORT", 80, 8080, CURRENT_ADDRESS),
    )
    for node in (source, current):
        node.env["APPLIANCE_WEB_PORT"] = str(node.https_port)
    # The wizard on the current system reaches the source on the demo's ports.
    current.env["MIGRATION_SOURCE_HTTPS_PORT"] = str(source.https_port)
    current.env["MIGRATION_SOURCE_PORTS"] = (
        f"{source.http_port},{source.https_port},{source_db.port},{ssh.port}"
    )
    return [source, current]


def prepare(source: Node, current: Node, keys: dict[str, str]) -> None:
    """Fresh databases, schema, admin users, seeded state and certificates on both nodes."""
    size = os.environ.get("DEMO_SIZE", "demo")
    role = ["--role", "ha_master", "--ha-peer", "127.0.0.3"] if os.environ.get("DEMO_HA") else []
    seeds = {
        "source": [
            "--size",
            size,
            "--host-name",
            "appliance-old",
            "--ip-address",
            SOURCE_ADDRESS,
            *role,
        ],
        "current": [
            "--size",
            "small",
            "--host-name",
            "appliance-new",
            "--ip-address",
            CURRENT_ADDRESS,
            "--no-licence",
        ],
    }
    for node, password in (
        (source, keys["source_admin_password"]),
        (current, keys["target_admin_password"]),
    ):
        node.manage("migrate", "--noinput", "-v0")
        node.manage("migrate", "--database", "data", "--noinput", "-v0")
        node.manage("ensure_admin", extra_env={"ADMIN_PASSWORD": password})
        node.manage("seed_node", *seeds[node.name])
        node.manage("make_certificate", "--force")
        if node.name == "current":
            node.manage("migration_accounts")
        node.front_configure()
        (node.var_dir / "control").mkdir(parents=True, exist_ok=True)


def smoke_check(source: Node, password: str) -> dict[str, Any]:
    """Log in to the source's peer API with its certificate pinned and read its info."""
    from migrations_engine.peer_client import PeerClient

    pem = (source.var_dir / "certs" / "server.crt").read_text()
    client = PeerClient(source.address, pem, port=source.https_port)
    client.login(password)
    info = client.info()
    client.logout()
    return info


def write_env(source: Node, current: Node, keys: dict[str, str], ssh: SSHServer) -> Path:
    values = {
        "SOURCE_ADDRESS": source.address,
        "SOURCE_URL": source.url,
        "SOURCE_ADMIN_USER": "admin",
        "SOURCE_ADMIN_PASSWORD": keys["source_admin_password"],
        "SOURCE_DATA_DB_URL": source.env["DATA_DB_URL"],
        "SOURCE_DATA_DB_CERTIFICATE": source.env["APPLIANCE_DATA_DB_CERTIFICATE"],
        "SOURCE_TRAFFIC_LOG_DIR": str(source.var_dir / "traffic-logs"),
        "SOURCE_CERTIFICATE": str(source.var_dir / "certs" / "server.crt"),
        "SOURCE_SSH_PORT": str(ssh.port),
        "TARGET_ADDRESS": current.address,
        "TARGET_URL": current.url,
        "TARGET_WIZARD_URL": f"{current.url}/wizard/",
        "TARGET_ADMIN_USER": "admin",
        "TARGET_ADMIN_PASSWORD": keys["target_admin_password"],
        "TARGET_DATA_DB_URL": current.env["DATA_DB_URL"],
        "TARGET_TRAFFIC_LOG_DIR": str(current.var_dir / "traffic-logs"),
    }
    path = ENV_FILE
    write_env_file(path, values)
    return path


def supervise(nodes: list[Node]) -> None:
    """Keep the demo running; a node's reboot command stops and starts all its processes."""
    while True:
        for node in nodes:
            flag = node.var_dir / "control" / "reboot"
            if flag.exists():
                flag.unlink()
                print(f"[{node.name}] reboot requested: stopping its processes")
                node.stop()
                time.sleep(5)
                node.start()
                node.wait_until_up()
                print(f"[{node.name}] back up after the reboot")
        time.sleep(1)


def main() -> None:
    require_services()
    stop_leftovers()
    keys = load_secrets()
    source_db = MariaDBServer(
        DEMO_DIR / "source-mysql",
        SOURCE_ADDRESS,
        int(os.environ.get("DEMO_SOURCE_DB_PORT", 3306)),
        2,
        tls=True,
    )
    ssh = SSHServer(
        DEMO_DIR / "source-ssh",
        SOURCE_ADDRESS,
        port_setting("DEMO_SSH_PORT", 22, 2222, SOURCE_ADDRESS),
    )
    print(f"Starting the source's MariaDB at {source_db.host}:{source_db.port} ...")
    source_db.start()
    with source_db.connect() as connection:
        fresh_databases(
            connection,
            ["appliance_control", "appliance_data"],
            "appliance",
            keys["source_db_password"],
        )
    with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as connection:
        fresh_databases(connection, [f"{DEMO_NAME}_current_control", f"{DEMO_NAME}_current_data"])
    source, current = nodes = build_nodes(keys, ssh, source_db)
    prepare(source, current, keys)
    ssh.start()
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_until_up()
        info = smoke_check(source, keys["source_admin_password"])
        env_file = write_env(source, current, keys, ssh)
        print_banner(source, current, keys, info, env_file)
        if not os.environ.get("DEMO_NO_WAIT"):
            supervise(nodes)
    except KeyboardInterrupt:
        print("\nStopping the demo ...")
    finally:
        if not os.environ.get("DEMO_NO_WAIT"):
            for node in nodes:
                node.stop()
            ssh.stop()
            source_db.stop()


def print_banner(
    source: Node, current: Node, keys: dict[str, str], info: dict[str, Any], env_file: Path
) -> None:
    print(
        "\nThe two-node demo is running.\n"
        f"  Source         {source.url}  ({info['host_name']}.{info['domain_name']}, "
        f"{info['server_role_label']}, data {info['data_size_bytes'] / 1e6:.0f} MB)\n"
        f"                 Admin User password: {keys['source_admin_password']}\n"
        f"  Wizard         {current.url}/wizard/\n"
        f"                 log in as admin / {keys['target_admin_password']}\n"
        f"  Console        {current.url}/console/\n"
        f"  Settings for scripts and tests: {env_file}\n"
        "Press Ctrl-C to stop both nodes."
    )


if __name__ == "__main__":
    main()
