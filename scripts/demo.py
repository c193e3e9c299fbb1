"""The two-node demo on one machine: a seeded source (127.0.0.2) and a current system (127.0.0.1).

Starts a second MariaDB server for the source (with a TLS certificate of its own for its
address, handed out by the source's peer API), both nodes' web processes (nginx in front for
TLS and the published progress partials, Django behind it on a socket), publishers and Celery
workers, and an OpenSSH server for the source; prints the wizard's URL and the logins and writes
them to var/demo.env. Every run starts from fresh data.

It first checks what it needs from the system (devtools/system.py) and installs what is missing
when it runs as root. Everything it starts is recorded in pid files (var/<name>/pids): Ctrl-C,
SIGTERM, or a failure during start-up stops all of it, and a demo of the same name stops what an
earlier one left (one killed outright included). A port it wants that a server of someone else
holds is named, with that server, and the demo stops. Long steps show progress bars on a terminal.

A node's restart command makes its gunicorn reload (new workers, new certificate); its reboot
command makes this script stop and start all of that node's processes.

Environment: DEMO_SIZE (small|demo|bench, default demo), DEMO_HA=1 for an HA source,
DEMO_HTTPS_PORT / DEMO_HTTP_PORT / DEMO_SSH_PORT / DEMO_SOURCE_DB_PORT to move off the
standard ports, DEMO_NO_WAIT=1 to set everything up and return (for scripts and tests; then
`scripts/demo.py stop` stops it), and
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
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402

from devtools import system  # noqa: E402
from devtools.mariadb import MariaDBServer  # noqa: E402
from devtools.processes import (  # noqa: E402
    ProcessBook,
    ProcessInfo,
    Recorded,
    listener,
    process_info,
)
from devtools.progress import Step, TerminalProgress  # noqa: E402
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
BOOK = ProcessBook(DEMO_DIR / "pids")
"""The pid files of everything this demo starts."""
SOURCE_DB_LABEL, SSH_LABEL, SCRIPT_LABEL = "source-mysql", "source-ssh", "demo"
STOP_GRACE, DATABASE_STOP_GRACE = 5.0, 30.0
"""Seconds a process has to end on SIGTERM before SIGKILL (MariaDB gets longer to flush)."""
SEED_TABLE_SIZES = {
    "subscriber": "subscribers",
    "voucher": "vouchers",
    "accounting_session": "sessions",
    "event_log": "events",
}
"""The data tables seed_node fills and the field of its size that says how many rows."""


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """KEY=value lines, quoted for the shell (`set -a; . FILE`), readable by the owner only."""
    path.write_text("".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items()))
    path.chmod(0o600)


def read_env_file(path: Path) -> dict[str, str]:
    """The values of a file written by `write_env_file`."""
    pairs = (shlex.split(line)[0] for line in path.read_text().splitlines() if line.strip())
    return dict(pair.split("=", 1) for pair in pairs)


def port_setting(name: str, standard: int, fallback: int, address: str) -> int:
    """The configured port, else the standard one unless this user may not bind it (then the
    fallback). A standard port that someone else holds is reported by `refuse_taken_ports`."""
    if os.environ.get(name):
        return int(os.environ[name])
    return standard if may_bind(address, standard) else fallback


def may_bind(address: str, port: int) -> bool:
    """False only when binding is refused for want of rights (a low port, not root)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except PermissionError:
            return False
        except OSError:
            return True
    return True


@dataclass(frozen=True)
class Ports:
    """The ports the demo listens on."""

    source_https: int
    source_http: int
    current_https: int
    current_http: int
    ssh: int
    source_db: int

    @classmethod
    def chosen(cls) -> Ports:
        return cls(
            source_https=port_setting("DEMO_HTTPS_PORT", 443, 8443, SOURCE_ADDRESS),
            source_http=port_setting("DEMO_HTTP_PORT", 80, 8080, SOURCE_ADDRESS),
            current_https=port_setting("DEMO_HTTPS_PORT", 443, 8443, CURRENT_ADDRESS),
            current_http=port_setting("DEMO_HTTP_PORT", 80, 8080, CURRENT_ADDRESS),
            ssh=port_setting("DEMO_SSH_PORT", 22, 2222, SOURCE_ADDRESS),
            source_db=int(os.environ.get("DEMO_SOURCE_DB_PORT", 3306)),
        )

    def wanted(self) -> list[tuple[str, str, int]]:
        """(setting that moves it, address, port) of each listening socket."""
        return [
            ("DEMO_HTTPS_PORT", SOURCE_ADDRESS, self.source_https),
            ("DEMO_HTTP_PORT", SOURCE_ADDRESS, self.source_http),
            ("DEMO_SSH_PORT", SOURCE_ADDRESS, self.ssh),
            ("DEMO_SOURCE_DB_PORT", SOURCE_ADDRESS, self.source_db),
            ("DEMO_HTTPS_PORT", CURRENT_ADDRESS, self.current_https),
            ("DEMO_HTTP_PORT", CURRENT_ADDRESS, self.current_http),
        ]


def refuse_taken_ports(ports: Ports) -> None:
    """Stop with a message naming each wanted address:port that a server not started by this
    demo listens on, and that server. One of ours that no pid file names (its command names
    this demo's directory) is stopped instead."""
    problems = []
    for setting, address, port in ports.wanted():
        holder = listener(address, port)
        if holder is None:
            continue
        if holder.process and is_ours(holder.process):
            stop_unrecorded(holder.process)
            continue
        problems.append(
            f"{address}:{port} is already in use by {holder.describe()}, which this demo did "
            f"not start: stop it, or set {setting} to another port."
        )
    if problems:
        sys.exit("\n".join(problems))


def is_ours(process: ProcessInfo) -> bool:
    """Whether the process, or the leader of its group, names this demo's directory."""
    leader = process_info(process.group)
    return any(f"{DEMO_DIR}/" in each.command for each in (process, leader) if each)


def stop_unrecorded(process: ProcessInfo) -> None:
    """Stop a process of this demo that no pid file names, with its group when it leads one."""
    leader = process_info(process.group)
    if leader is not None and is_ours(leader):
        BOOK.record("leftover", leader.pid)
    else:
        BOOK.record("leftover", process.pid, group=False)
    BOOK.stop(["leftover"], grace=STOP_GRACE)


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

    @property
    def var_dir(self) -> Path:
        return Path(self.env["APPLIANCE_VAR_DIR"])

    @property
    def book(self) -> ProcessBook:
        """The pid files of the demo this node belongs to."""
        return ProcessBook(self.var_dir.parent / "pids")

    def label(self, role: str) -> str:
        return f"{self.name}-{role}"

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

    def manage(self, *args: str, extra_env: dict[str, str] | None = None, show: Any = print) -> str:
        """Run a management command for this node and stop the demo if it fails; its output."""
        env = {**os.environ, **self.env, **(extra_env or {})}
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            sys.exit(f"[{self.name}] manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
        for line in result.stdout.strip().splitlines():
            show(f"[{self.name}] {line}")
        return result.stdout

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
        """Start one of the node's processes in its own session, its output in logs/<role>.log,
        and record it in the demo's pid files."""
        logs = self.var_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{role}.log", "ab") as log:
            process = subprocess.Popen(
                self.commands()[role],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.book.record(self.label(role), process.pid)
        return process

    def pids(self) -> dict[str, int]:
        """The process id of each role as recorded (whether it still runs or not)."""
        labels = {self.label(role): role for role in self.commands()}
        return {labels[entry.label]: entry.pid for entry in self.book.recorded(labels)}

    def pids_write(self, pids: dict[str, int]) -> None:
        """Record the processes now running these roles (ones started by `spawn` elsewhere)."""
        for role, pid in pids.items():
            self.book.record(self.label(role), pid)

    def start(self) -> None:
        """Start the front server, web process, publisher, port-80 redirect and Celery worker,
        each recorded in the demo's pid files."""
        for role in self.commands():
            self.spawn(role)
        env_file = self.var_dir / "node.env"
        write_env_file(env_file, self.env)

    def stop(self) -> None:
        """Stop the node's processes (SIGTERM, SIGKILL after a few seconds)."""
        self.book.stop([self.label(role) for role in self.commands()], grace=STOP_GRACE)

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


def stop_previous() -> None:
    """Stop what an earlier demo of this name left running: its script first (it then stops its
    own processes), then every process its pid files name, the database last."""
    previous = BOOK.pid(SCRIPT_LABEL)
    if previous is not None and previous != os.getpid():
        print(f"Stopping the demo already running (pid {previous}) ...", flush=True)
        BOOK.stop([SCRIPT_LABEL], grace=DATABASE_STOP_GRACE + 10)
    for stopped in stop_recorded(BOOK):
        print(f"Stopped {stopped.label} (pid {stopped.pid}), left by an earlier demo", flush=True)


def stop_everything() -> None:
    """Stop all this demo started (a second Ctrl-C or a SIGTERM does not cut it short); says how
    long it took."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    began = time.monotonic()
    stop_recorded(BOOK)
    BOOK.forget(SCRIPT_LABEL)
    print(f"Stopped everything the demo started in {time.monotonic() - began:.1f} s.", flush=True)


def stop_recorded(book: ProcessBook) -> list[Recorded]:
    """Stop the processes a demo's pid files name (its script aside), the database last, so
    that nothing still writes to it; the ones that were running."""
    others = [e.label for e in book.recorded() if e.label not in (SOURCE_DB_LABEL, SCRIPT_LABEL)]
    stopped = book.stop(others, grace=STOP_GRACE)
    return stopped + book.stop([SOURCE_DB_LABEL], grace=DATABASE_STOP_GRACE)


def stop_on_signals() -> None:
    """Ctrl-C (SIGINT, even when started with it ignored), SIGTERM and SIGHUP stop the demo."""

    def interrupt(number: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, interrupt)


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


def build_nodes(
    keys: dict[str, str], ssh: SSHServer, source_db: MariaDBServer, ports: Ports
) -> list[Node]:
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
        ports.source_https,
        ports.source_http,
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
        ports.current_https,
        ports.current_http,
    )
    for node in (source, current):
        node.env["APPLIANCE_WEB_PORT"] = str(node.https_port)
    # The wizard on the current system reaches the source on the demo's ports.
    current.env["MIGRATION_SOURCE_HTTPS_PORT"] = str(source.https_port)
    current.env["MIGRATION_SOURCE_PORTS"] = (
        f"{source.http_port},{source.https_port},{source_db.port},{ssh.port}"
    )
    return [source, current]


def seed_options(node: Node) -> list[str]:
    """The seed_node options of each node (the source at DEMO_SIZE, the current system small)."""
    if node.name == "current":
        return [
            "--size",
            "small",
            "--host-name",
            "appliance-new",
            "--ip-address",
            CURRENT_ADDRESS,
            "--no-licence",
        ]
    role = ["--role", "ha_master", "--ha-peer", "127.0.0.3"] if os.environ.get("DEMO_HA") else []
    return [
        "--size",
        demo_size(),
        "--host-name",
        "appliance-old",
        "--ip-address",
        SOURCE_ADDRESS,
        *role,
    ]


def demo_size() -> str:
    return os.environ.get("DEMO_SIZE", "demo")


def prepare(
    source: Node,
    current: Node,
    keys: dict[str, str],
    source_db: MariaDBServer,
    progress: TerminalProgress,
) -> None:
    """Fresh databases, schema, admin users, seeded state and certificates on both nodes."""
    for node, password in (
        (source, keys["source_admin_password"]),
        (current, keys["target_admin_password"]),
    ):
        with progress.step(f"Making the {node.name} node's databases", total=3) as step:
            node.manage("migrate", "--noinput", "-v0", show=progress.print)
            step.advance()
            node.manage("migrate", "--database", "data", "--noinput", "-v0", show=progress.print)
            step.advance()
            node.manage("ensure_admin", extra_env={"ADMIN_PASSWORD": password}, show=progress.print)
            step.advance()
        if node.name == "source":
            seed_watched(node, source_db, progress)
        else:
            with progress.step(f"Seeding the {node.name} node (small)"):
                node.manage("seed_node", *seed_options(node), show=progress.print)
        with progress.step(f"Certificate and front server of the {node.name} node"):
            node.manage("make_certificate", "--force", show=progress.print)
            if node.name == "current":
                node.manage("migration_accounts", show=progress.print)
            node.front_configure()
            (node.var_dir / "control").mkdir(parents=True, exist_ok=True)


def seed_watched(node: Node, database: MariaDBServer, progress: TerminalProgress) -> None:
    """Seed the source, its rows and traffic logs each shown by a bar while seed_node works."""
    size = seed_size(node)
    rows_total = sum(size[field] for field in SEED_TABLE_SIZES.values())
    watch = SeedWatch(database, size)
    command = [PYTHON, "manage.py", "seed_node", *seed_options(node)]
    label = f"Seeding the source ({demo_size()}):"
    with (
        progress.step(f"{label} data rows", total=rows_total) as rows,
        progress.step(f"{label} traffic logs", total=size["traffic_log_files"]) as logs,
        subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **node.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as seeding,
    ):
        output = watch.follow(seeding, rows, logs, node.var_dir / "traffic-logs")
    if seeding.returncode != 0:
        sys.exit(f"[source] manage.py seed_node failed:\n{''.join(output)}")
    for line in output:
        progress.print(f"[source] {line.rstrip()}")


def seed_size(node: Node) -> dict[str, int]:
    """What seed_node makes at the demo's size (rows per kind, traffic-log files), as it says."""
    code = (
        "import dataclasses, json; from appliance.seeding import SIZES; "
        f"print(json.dumps(dataclasses.asdict(SIZES[{demo_size()!r}])))"
    )
    output = node.manage("shell", "--no-imports", "-c", code, show=lambda line: None)
    size: dict[str, int] = json.loads(output.strip().splitlines()[-1])
    return size


@dataclass
class SeedWatch:
    """Follows seed_node: rows from the running INSERT's transaction (information_schema),
    traffic-log files from the directory once the rows are done."""

    database: MariaDBServer
    size: dict[str, int]
    finished: set[str] = field(default_factory=set)
    current: str = ""

    def follow(
        self, seeding: subprocess.Popen[str], rows: Step, logs: Step, log_dir: Path
    ) -> list[str]:
        """Move the bars until seed_node ends; its output lines."""
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.extend(seeding.stdout or []), daemon=True)
        reader.start()
        with self.database.connect() as connection, connection.cursor() as cursor:
            while seeding.poll() is None:
                if any(line.startswith("data:") for line in output):
                    rows.set(sum(self.size[f] for f in SEED_TABLE_SIZES.values()))
                    logs.set(max(0, len(list(log_dir.glob("traffic-*.log.gz"))) - 1))
                else:
                    rows.set(self.rows_done(cursor))
                time.sleep(0.5)
        reader.join(timeout=5)
        return output

    def rows_done(self, cursor: Any) -> int:
        """Rows of the finished tables plus the rows the running INSERT has written so far."""
        cursor.execute(
            "SELECT trx_query, trx_rows_modified FROM information_schema.INNODB_TRX "
            "WHERE trx_query LIKE 'INSERT INTO %%'"
        )
        found = cursor.fetchone()
        table, written = ("", 0) if found is None else (str(found[0]).split()[2], int(found[1]))
        if table in SEED_TABLE_SIZES and table != self.current:
            if self.current:
                self.finished.add(self.current)
            self.current = table
        done = sum(self.size[SEED_TABLE_SIZES[name]] for name in self.finished)
        return done + (written if table == self.current else 0)


def smoke_check(source: Node, password: str) -> dict[str, Any]:
    """Log in to the source's peer API with its certificate pinned and read its info."""
    from migrations_engine.peer_client import PeerClient

    pem = (source.var_dir / "certs" / "server.crt").read_text()
    client = PeerClient(source.address, pem, port=source.https_port)
    client.login(password)
    info = client.info()
    client.logout()
    return info


def write_env(source: Node, current: Node, keys: dict[str, str], ssh_port: int) -> Path:
    values = {
        "SOURCE_ADDRESS": source.address,
        "SOURCE_URL": source.url,
        "SOURCE_ADMIN_USER": "admin",
        "SOURCE_ADMIN_PASSWORD": keys["source_admin_password"],
        "SOURCE_DATA_DB_URL": source.env["DATA_DB_URL"],
        "SOURCE_DATA_DB_CERTIFICATE": source.env["APPLIANCE_DATA_DB_CERTIFICATE"],
        "SOURCE_TRAFFIC_LOG_DIR": str(source.var_dir / "traffic-logs"),
        "SOURCE_CERTIFICATE": str(source.var_dir / "certs" / "server.crt"),
        "SOURCE_SSH_PORT": str(ssh_port),
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
    if sys.argv[1:] == ["stop"]:
        stop_previous()
        return
    system.require(system.DEMO, purpose="The demo")
    require_services()
    stop_previous()
    BOOK.record(SCRIPT_LABEL, os.getpid(), group=False)
    ports = Ports.chosen()
    refuse_taken_ports(ports)
    stop_on_signals()
    keys = load_secrets()
    up = False
    try:
        with TerminalProgress() as progress:
            nodes, info = start_demo(keys, ports, progress)
        source, current = nodes
        print_banner(source, current, keys, info, write_env(source, current, keys, ports.ssh))
        up = True
        if not os.environ.get("DEMO_NO_WAIT"):
            supervise(nodes)
    except KeyboardInterrupt:
        print("\nStopping the demo ...", flush=True)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"The demo could not start: {error}") from None
    finally:
        if not (up and os.environ.get("DEMO_NO_WAIT")):
            stop_everything()


def start_demo(
    keys: dict[str, str], ports: Ports, progress: TerminalProgress
) -> tuple[list[Node], dict[str, Any]]:
    """Start the source's servers, prepare both nodes, start their processes and wait until
    they answer; the nodes and the source's info from its peer API."""
    source_db = MariaDBServer(
        DEMO_DIR / "source-mysql", SOURCE_ADDRESS, ports.source_db, 2, tls=True
    )
    ssh = SSHServer(DEMO_DIR / "source-ssh", SOURCE_ADDRESS, ports.ssh)
    with progress.step(f"Starting the source's MariaDB at {source_db.host}:{source_db.port}"):
        process = source_db.launch()
        BOOK.record(SOURCE_DB_LABEL, process.pid)
        source_db.wait_ready(process)
        with source_db.connect() as connection:
            fresh_databases(
                connection,
                ["appliance_control", "appliance_data"],
                "appliance",
                keys["source_db_password"],
            )
    with pymysql.connect(host="127.0.0.1", user="root", autocommit=True) as connection:
        fresh_databases(connection, [f"{DEMO_NAME}_current_control", f"{DEMO_NAME}_current_data"])
    source, current = nodes = build_nodes(keys, ssh, source_db, ports)
    prepare(source, current, keys, source_db, progress)
    with progress.step(f"Starting the source's SSH server at {ssh.host}:{ssh.port}"):
        ssh.start()
        BOOK.record(SSH_LABEL, pid_from_file(ssh.pid_file))
    with progress.step("Starting both nodes and waiting until they answer", total=2) as step:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_until_up()
            step.advance()
    return nodes, smoke_check(source, keys["source_admin_password"])


def pid_from_file(path: Path, timeout: float = 5) -> int:
    """The process id a server writes to its pid file (waiting a moment for it to appear)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no process id in {path}") from None
            time.sleep(0.1)


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
