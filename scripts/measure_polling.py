"""Whether the progress partial stays fast under polling and leaves the data copy alone.

The claim: the progress partial answers in under 25 ms at the 95th percentile with 50 clients
polling while a copy runs, and the copy is not slowed by more than 5 %.

    .venv/bin/python scripts/measure_polling.py [--clients 50] [--rounds 2] [--size bench]

Needs the two-node demo running (`DEMO_NO_WAIT=1 DEMO_SIZE=bench .venv/bin/python
scripts/demo.py`, standard name "demo"); it is reset and migrated several times, and left reset.
Each round resets both nodes (source out of maintenance, `seed_node` on both, the source at
--size), runs `migrate_from --yes` as the current system and times the data copy (the
"precopy_data" operation) from its row (finished_at - started_at). Rounds alternate between no
pollers and --clients browsers (one event loop), each logged in with its own session, polling
the run's progress partial from the moment the run has its operations, as htmx does (first
/wizard/runs/<id>/progress/, then what the last answer's hx-get names with the cookies it was
given, `HX-Request: true`, on a kept-alive HTTPS connection, the next request a second after the
last answer), at CPU priority --client-nice (19: they stand for browsers on other machines and
take only the CPU the copy leaves; 0 lets them compete). The answers while the copy runs are
kept (time to the full body, status), and the CPU the node's web processes and this script used
meanwhile. Prints each round, then the medians, the slowdown, the latency percentiles and the
answers that were neither 200 nor 286.
Exit status 1 when the claim does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import http.cookiejar
import math
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.env import parse_mysql_url  # noqa: E402
from devtools.processes import ProcessBook  # noqa: E402
from migrations_engine.peer_client import PeerClient, certificate_fingerprint  # noqa: E402
from scripts.demo import read_env_file  # noqa: E402

DEMO_DIR = ROOT / "var" / "demo"
OPERATION = "precopy_data"
"""The operation that copies the data (while the source serves)."""
POLL_STOP = 286
"""The status on which htmx stops polling (the run has ended)."""
ANSWERED = (200, POLL_STOP)
P95_LIMIT_MS = 25.0
SLOWDOWN_LIMIT = 5.0


@dataclass(frozen=True)
class Target:
    """The current node's web address and the certificate it presents."""

    host: str
    port: int
    certificate: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def context(self) -> ssl.SSLContext:
        """Trust exactly the node's (self-signed) certificate; read again, a run renews it."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context


@dataclass(frozen=True)
class Poll:
    """One answer of the progress partial: seconds to the full body, and its status (0: none)."""

    seconds: float
    status: int


@dataclass(frozen=True)
class Round:
    """One migration: how many clients polled, how long the copy took, what they saw."""

    clients: int
    copy_seconds: float
    polls: list[Poll]
    load: float
    """The 1-minute load average as the copy ended: other work on the machine shows here."""
    web_cpu: dict[str, float]
    """Seconds of CPU the current node's web processes used while the copy ran, by role."""
    client_cpu: float
    """Seconds of CPU this script (the polling clients) used meanwhile."""


def node_env(node: str) -> dict[str, str]:
    """The environment that makes manage.py act as one of the demo's nodes."""
    return {**os.environ, **read_env_file(DEMO_DIR / node / "node.env")}


def manage(node: str, *args: str) -> str:
    """Run a management command as a node; stop the measurement if it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=node_env(node),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"[{node}] manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def demo_reset(demo: dict[str, str], size: str) -> None:
    """Both nodes as the demo makes them: source in service and seeded, current unlicensed."""
    source_url = urllib.parse.urlsplit(demo["SOURCE_URL"])
    peer = PeerClient(
        demo["SOURCE_ADDRESS"],
        Path(demo["SOURCE_CERTIFICATE"]).read_text(),
        port=source_url.port or 443,
    )
    peer.login(demo["SOURCE_ADMIN_PASSWORD"])
    peer.maintenance(enabled=False)
    peer.logout()
    manage(
        "source", "seed_node", "--size", size,
        "--host-name", "appliance-old", "--ip-address", demo["SOURCE_ADDRESS"],
    )  # fmt: skip
    manage(
        "current", "seed_node", "--size", "small",
        "--host-name", "appliance-new", "--ip-address", demo["TARGET_ADDRESS"], "--no-licence",
    )  # fmt: skip


def server_roots(demo: dict[str, str]) -> list[pymysql.connections.Connection]:
    """Root connections to the source's and the current node's MariaDB servers."""
    urls = [parse_mysql_url(demo[name]) for name in ("SOURCE_DATA_DB_URL", "TARGET_DATA_DB_URL")]
    return [
        pymysql.connect(host=url.host, port=url.port, user="root", autocommit=True) for url in urls
    ]


def dirty_pages(server: pymysql.connections.Connection) -> int:
    """Pages of the server's buffer pool not yet written to disk."""
    with server.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
        row = cursor.fetchone()
    return int(row[1]) if row else 0


def servers_quiet(demo: dict[str, str], limit: float = 120) -> None:
    """Let both servers write out what the reset left in memory, so that each round's copy
    starts from the same state (without this the copy's time varied by half between rounds)."""
    servers = server_roots(demo)
    try:
        for server in servers:
            with server.cursor() as cursor:
                cursor.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and max(map(dirty_pages, servers)) > 10:
            time.sleep(0.5)
    finally:
        for server in servers:
            with server.cursor() as cursor:
                cursor.execute("SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT")
            server.close()


def migration_start(demo: dict[str, str], work: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`migrate_from --yes` (and `extra`) as the current system, in the background, its output
    in work/."""
    password_file = work / "source-password"
    password_file.write_text(demo["SOURCE_ADMIN_PASSWORD"])
    password_file.chmod(0o600)
    fingerprint = certificate_fingerprint(Path(demo["SOURCE_CERTIFICATE"]).read_text())
    env = node_env("current")
    command = [
        sys.executable, "manage.py", "migrate_from", demo["SOURCE_ADDRESS"],
        "--port", str(urllib.parse.urlsplit(demo["SOURCE_URL"]).port or 443),
        "--check-ports", env.get("MIGRATION_SOURCE_PORTS", "80,443,3306,22"),
        "--password-file", str(password_file),
        "--confirm-fingerprint", fingerprint,
        "--report", str(work / "report.json"),
        "--yes", *extra,
    ]  # fmt: skip
    with open(work / "migrate_from.log", "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def migration_log(work: Path) -> str:
    """What migrate_from printed."""
    return (work / "migrate_from.log").read_text()


def control_connect() -> pymysql.connections.Connection:
    """The current node's control database, where the run's rows are."""
    url = parse_mysql_url(node_env("current")["CONTROL_DB_URL"])
    return pymysql.connect(**url.login(), database=url.database, autocommit=True)


def newest_run_id(control: pymysql.connections.Connection) -> int:
    """The id of the newest run on the current node (0 when there is none)."""
    with control.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM migrations_engine_migrationrun")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def copy_status(control: pymysql.connections.Connection, run_id: int) -> str:
    """Where the run's copy stands ('' before the run has its operations)."""
    with control.cursor() as cursor:
        cursor.execute(
            "SELECT status FROM migrations_engine_operationstate WHERE run_id = %s AND name = %s",
            [run_id, OPERATION],
        )
        row = cursor.fetchone()
    return str(row[0]) if row else ""


def run_created(
    control: pymysql.connections.Connection,
    before: int,
    migration: subprocess.Popen[bytes],
    work: Path,
) -> int:
    """Wait until the run newer than `before` has its operations; its id."""
    while True:
        run_id = newest_run_id(control)
        if run_id > before and copy_status(control, run_id):
            return run_id
        if migration.poll() is not None:
            sys.exit(f"migrate_from ended before its run began:\n{migration_log(work)}")
        time.sleep(0.1)


def copy_started(
    control: pymysql.connections.Connection,
    run_id: int,
    migration: subprocess.Popen[bytes],
    work: Path,
) -> None:
    """Wait until the run's copy runs (or already ran)."""
    while copy_status(control, run_id) in ("", "pending"):
        if migration.poll() is not None:
            sys.exit(f"migrate_from ended before the copy ran:\n{migration_log(work)}")
        time.sleep(0.1)


def copy_ended(control: pymysql.connections.Connection, run_id: int) -> None:
    """Wait until the run's copy no longer runs."""
    while copy_status(control, run_id) == "running":
        time.sleep(0.1)


def copy_seconds(run_id: int) -> float:
    """The copy's duration as its row says, read with the current node's settings."""
    code = (
        "from migrations_engine.models import OperationState; "
        f"state = OperationState.objects.get(run_id={run_id}, name={OPERATION!r}); "
        "print((state.finished_at - state.started_at).total_seconds())"
    )
    output = manage("current", "shell", "--no-imports", "-c", code)
    return float(output.strip().splitlines()[-1])


def login(target: Target, user: str, password: str) -> str:
    """Log in on the staff login page as a browser does; the session cookie's value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=target.context()),
        urllib.request.HTTPCookieProcessor(jar),
    )
    url = f"{target.url}/accounts/login/"
    with opener.open(url, timeout=30) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if token is None:
        sys.exit(f"no CSRF token on {url}")
    form = {"csrfmiddlewaretoken": token[1], "username": user, "password": password, "next": ""}
    request = urllib.request.Request(  # noqa: S310 - our own https URL
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": url, "Origin": target.url},
    )
    with opener.open(request, timeout=30) as response:
        response.read()
    session = next((cookie.value for cookie in jar if cookie.name == "sessionid"), None)
    if not session:
        sys.exit(f"could not log in as {user} at {url}")
    return session


POLL_URL = re.compile(rb'hx-get="([^"]+)"')


@dataclass
class Browser:
    """What one polling browser holds: the URL it polls next and its cookies."""

    path: str
    cookies: dict[str, str]

    def request(self, target: Target) -> bytes:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            f"Cookie: {cookie}\r\nHX-Request: true\r\nHX-Target: progress\r\n"
            f"HX-Current-URL: {target.url}/wizard/execution/\r\nAccept: */*\r\n\r\n"
        ).encode()

    def take(self, head: bytes, body: bytes) -> None:
        """Keep what the answer gives, as htmx and the browser do: the cookies it sets, and the
        URL the partial's hx-get names."""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"set-cookie":
                pair = value.strip().split(b";", 1)[0].decode()
                key, _, cookie = pair.partition("=")
                self.cookies[key] = cookie
        if found := POLL_URL.search(body):
            self.path = found[1].decode()


async def answer_read(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes, bool]:
    """One HTTP/1.1 answer: status, head, body, and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    }
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, head, body, headers.get(b"connection", b"").lower() == b"close"


async def poll(
    target: Target,
    context: ssl.SSLContext,
    session: str,
    run_id: int,
    delay: float,
    stop: threading.Event,
    polls: list[Poll],
) -> None:
    """One browser on the Execution step: the partial, then again a second after each answer.

    Like htmx, it asks next for what the last partial's hx-get names (the published copy where
    the node publishes them) and keeps the cookies it is given (the poll pass); one kept-alive
    HTTPS connection, a new one when the server closes it.
    """
    browser = Browser(f"/wizard/runs/{run_id}/progress/", {"sessionid": session})
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    await asyncio.sleep(delay)
    while not stop.is_set():
        started = time.perf_counter()
        status = 0
        for _ in range(2):  # a kept-alive connection the server has closed gets one more try
            try:
                if connection is None:
                    connection = await asyncio.open_connection(
                        target.host, target.port, ssl=context
                    )
                reader, writer = connection
                writer.write(browser.request(target))
                status, head, body, closes = await asyncio.wait_for(answer_read(reader), 10)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                connection = None
                continue
            browser.take(head, body)
            if closes:
                writer.close()
                connection = None
            break
        polls.append(Poll(time.perf_counter() - started, status))
        if status == POLL_STOP:
            break
        await asyncio.sleep(1.0)
    if connection is not None:
        connection[1].close()


def pollers_start(
    target: Target,
    sessions: list[str],
    run_id: int,
    stop: threading.Event,
    polls: list[Poll],
    nice: int,
) -> list[threading.Thread]:
    """The browsers, all in one event loop on one thread at CPU priority `nice`, their first
    requests spread over a second. Real browsers run on other machines; these share this one
    with the copy they measure, so by default they only get the CPU the copy leaves (their
    latencies then include their own waits: the figures err on the slow side)."""
    context = target.context()

    async def all_browsers() -> None:
        await asyncio.gather(
            *(
                poll(target, context, session, run_id, index / len(sessions), stop, polls)
                for index, session in enumerate(sessions)
            )
        )

    def browsers_nice() -> None:
        os.nice(nice)  # this thread only (Linux): the browsers stand for other machines
        asyncio.run(all_browsers())

    thread = threading.Thread(target=browsers_nice, daemon=True)
    thread.start()
    return [thread]


def measure_round(
    demo: dict[str, str], target: Target, sessions: list[str], work: Path, client_nice: int
) -> Round:
    """One migration, polled by every session while its copy runs (by none if none given)."""
    control = control_connect()
    try:
        before = newest_run_id(control)
        migration = migration_start(demo, work)
        run_id = run_created(control, before, migration, work)
        stop = threading.Event()
        polls: list[Poll] = []
        threads = (
            pollers_start(target, sessions, run_id, stop, polls, client_nice) if sessions else []
        )
        copy_started(control, run_id, migration, work)
        polls_before = len(polls)
        workers = web_workers()
        cpu_before = {role: cpu_seconds(pids) for role, pids in workers.items()}
        client_before = time.process_time()
        copy_ended(control, run_id)
        polls_after = len(polls)
        web_cpu = {role: cpu_seconds(pids) - cpu_before[role] for role, pids in workers.items()}
        client_cpu = time.process_time() - client_before
        load = os.getloadavg()[0]
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        control.close()
    if migration.wait() != 0:
        sys.exit(f"migrate_from failed:\n{migration_log(work)}")
    during_copy = polls[polls_before:polls_after]
    return Round(len(sessions), copy_seconds(run_id), during_copy, load, web_cpu, client_cpu)


def web_workers() -> dict[str, list[int]]:
    """The current node's processes that answer polls, by role: its front server (nginx), the
    publisher of the partials, and Django's web workers (the children of their master)."""
    front, publisher, master = (node_pid(role) for role in ("front", "publisher", "web"))
    return {"front": [*front, *children(front)], "publisher": publisher, "django": children(master)}


def node_pid(role: str) -> list[int]:
    """The current node's process of this role as the demo recorded it (none if not running)."""
    pid = ProcessBook(DEMO_DIR / "pids").pid(f"current-{role}")
    return [] if pid is None else [pid]


def children(pids: list[int]) -> list[int]:
    return [
        int(child)
        for pid in pids
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes have used so far (those gone count nothing)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


def round_line(number: int, result: Round) -> str:
    """One round's figures on one line."""
    line = f"round {number}: {result.clients:2} pollers, copy {result.copy_seconds:6.1f} s"
    if result.polls:
        latencies = sorted(poll.seconds * 1000 for poll in result.polls)
        line += f", {len(latencies)} polls, p95 {percentile(latencies, 0.95):.1f} ms"
        per_poll = ", ".join(
            f"{role} {1000 * seconds / len(latencies):.2f}"
            for role, seconds in result.web_cpu.items()
        )
        clients = 1000 * result.client_cpu / len(latencies)
        line += f", CPU ms per poll: {per_poll}, clients {clients:.2f}"
    used = ", ".join(f"{role} {seconds:.2f}" for role, seconds in result.web_cpu.items())
    return f"{line}; CPU s: {used}; load {result.load:.1f}"


def summary(rounds: list[Round], clients: int) -> bool:
    """Print the medians, slowdown and latencies; whether the claim holds."""
    quiet = statistics.median(r.copy_seconds for r in rounds if not r.clients)
    polled = statistics.median(r.copy_seconds for r in rounds if r.clients)
    slowdown = 100 * (polled - quiet) / quiet
    polls = [poll for result in rounds for poll in result.polls]
    latencies = sorted(poll.seconds * 1000 for poll in polls)
    others = [poll.status for poll in polls if poll.status not in ANSWERED]
    if not latencies:
        sys.exit("no poll was answered: the copy ended before the pollers started")
    p95 = percentile(latencies, 0.95)
    print(f"copy, median: {quiet:.1f} s without pollers, {polled:.1f} s with {clients} pollers")
    print(f"copy slowdown: {slowdown:+.1f} %")
    print(
        f"polls: {len(latencies)}, latency p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p95 {p95:.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, max {latencies[-1]:.1f} ms"
    )
    counts = {status: others.count(status) for status in sorted(set(others))}
    print(f"answers neither 200 nor 286: {len(others)} {counts or ''}".rstrip())
    holds = p95 <= P95_LIMIT_MS and slowdown <= SLOWDOWN_LIMIT and not others
    print(f"claim (p95 <= {P95_LIMIT_MS:.0f} ms, slowdown <= {SLOWDOWN_LIMIT:.0f} %): "
          f"{'holds' if holds else 'does NOT hold'}")  # fmt: skip
    print(f"partial p95: {p95:.1f} ms ({clients} clients), copy slowdown: {slowdown:.1f} %")
    return holds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="polling browsers")
    parser.add_argument("--rounds", type=int, default=2, help="migrations per variant")
    parser.add_argument("--size", default="bench", help="seed_node size of the source")
    parser.add_argument(
        "--client-nice", type=int, default=19, help="CPU priority of the polling browsers"
    )
    parser.add_argument("--settle", type=float, default=5, help="seconds of quiet after a reset")
    options = parser.parse_args()
    demo = read_env_file(ROOT / "var" / "demo.env")
    current = urllib.parse.urlsplit(demo["TARGET_URL"])
    target = Target(
        current.hostname or demo["TARGET_ADDRESS"],
        current.port or 443,
        DEMO_DIR / "current" / "certs" / "server.crt",
    )
    print(f"logging in {options.clients} clients at {target.url} ...", flush=True)
    sessions = [
        login(target, demo["TARGET_ADMIN_USER"], demo["TARGET_ADMIN_PASSWORD"])
        for _ in range(options.clients)
    ]
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="measure-polling-") as work:
        for number in range(1, 2 * options.rounds + 1):
            demo_reset(demo, options.size)
            servers_quiet(demo)
            time.sleep(options.settle)
            pollers = sessions if number % 2 == 0 else []
            result = measure_round(demo, target, pollers, Path(work), options.client_nice)
            rounds.append(result)
            print(round_line(number, result), flush=True)
    demo_reset(demo, options.size)
    print("the demo is reset (source in service, both nodes seeded)")
    if not summary(rounds, options.clients):
        sys.exit(1)


if __name__ == "__main__":
    main()
