"""What an operation gets while it runs: its memory, the run's log, the source, and progress.

`RunContext` hands out the connections an operation needs (the source's peer API, the source's
data database through a per-run account, always at the run's source address and with the
certificate of its server from the peer API pinned) and remembers what the operation did, in the
control database, so that a run resumed on another worker knows it too. `Progress` writes
figures and an ETA from measured speed, at most twice a second, and notices when another worker
took the run over (the fencing counter), stopping this one. `heartbeat_kept` beats on a timer for
as long as an operation runs, so a long blocking call (a reboot, a big query) does not look like
a dead worker.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Concat
from django.utils import timezone

from appliance.progress import INTERVAL, Report, Throttle
from config.env import MySQLURL
from migrations_engine.datacopy.sql import SourceDatabase
from migrations_engine.models import MigrationRun, OperationState
from migrations_engine.peer_client import PeerClient, PeerError
from migrations_engine.secrets import SecretMissing, secret_get, secret_put

logger = logging.getLogger(__name__)
PROGRESS_INTERVAL = INTERVAL


class Fenced(Exception):
    """Another worker has taken this run over; this one must stop without touching anything."""


def run_log_path(run_id: int) -> Path:
    """Where a run's log file is written."""
    return Path(settings.APPLIANCE_VAR_DIR) / "logs" / f"migration-{run_id}.log"


def run_log(run_id: int, message: str) -> None:
    """Add a line to the run's log file and to its row (never pass secrets here)."""
    line = f"{timezone.now():%Y-%m-%d %H:%M:%S} {message}\n"
    path = run_log_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
    MigrationRun.objects.filter(id=run_id).update(log=Concat("log", Value(line)))
    logger.info("run %s: %s", run_id, message)


def heartbeat(run_id: int, fence: int) -> None:
    """Tell that this worker still holds the run; Fenced if another one took it."""
    if not MigrationRun.objects.filter(id=run_id, fence=fence).update(heartbeat_at=timezone.now()):
        raise Fenced(f"run {run_id} was taken over by another worker")


def heartbeat_interval() -> float:
    """How often a running operation's timer beats: well within the stale limit."""
    return max(0.2, float(settings.MIGRATION_HEARTBEAT_STALE) / 5)


Beat = Callable[[], bool]
"""One heartbeat of a job (a run, a rehearsal): False once the job is fenced."""


class HeartbeatThread(threading.Thread):
    """Calls `beat` every `interval` seconds until stopped; once the job is found fenced it
    sets `fenced` and stops, so the job's next progress or memory write raises Fenced."""

    def __init__(self, name: str, beat: Beat, fenced: threading.Event, interval: float) -> None:
        super().__init__(name=f"heartbeat-{name}", daemon=True)
        self.job = name
        self.beat = beat
        self.fenced = fenced
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                if not self._beat():
                    return
        finally:
            connection.close()  # this thread's own connection

    def _beat(self) -> bool:
        """One beat; False once the job is fenced."""
        try:
            if self.beat():
                return True
        except Exception:
            logger.exception("%s: heartbeat failed; trying again", self.job)
            connection.close()
            return True
        logger.info("%s: fenced; the heartbeat stops", self.job)
        self.fenced.set()
        return False

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=self.interval + 10)


@contextmanager
def beats_kept(name: str, beat: Beat, fenced: threading.Event) -> Iterator[None]:
    """Keep a job's heartbeat fresh while the block runs (see `HeartbeatThread`)."""
    beats = HeartbeatThread(name, beat, fenced, heartbeat_interval())
    beats.start()
    try:
        yield
    finally:
        beats.stop()


def heartbeat_kept(
    run_id: int, fence: int, fenced: threading.Event
) -> AbstractContextManager[None]:
    """Keep the run's heartbeat fresh while the block runs."""

    def beat() -> bool:
        try:
            heartbeat(run_id, fence)
        except Fenced:
            return False
        return True

    return beats_kept(f"run {run_id}", beat, fenced)


@dataclass
class Progress:
    """Writes an operation's progress (fraction, figures, ETA) and keeps the run's heartbeat."""

    state: OperationState
    fence: int
    fenced: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    throttle: Throttle = field(default_factory=lambda: Throttle(PROGRESS_INTERVAL))

    def update(
        self,
        fraction: float,
        *,
        figures: dict[str, Any] | None = None,
        message: str | None = None,
        eta_seconds: float | None = None,
        force: bool = False,
        moving: bool = False,
    ) -> None:
        """Record how far the operation is (0..1); cheap to call often. A `force`d update
        always gets through; others at most once per PROGRESS_INTERVAL. `moving`: the work
        goes on as it should although the fraction stays (a wait that is not a stall)."""
        if self.fenced.is_set():
            raise Fenced(f"run {self.state.run_id} was taken over by another worker")
        if not self.throttle.passes(final=force):
            return
        now = time.monotonic()
        fraction = max(0.0, min(1.0, fraction))
        if eta_seconds is None and fraction >= 0.02:
            eta_seconds = (now - self.started) * (1 - fraction) / fraction
        changes: dict[str, Any] = {"eta_seconds": eta_seconds, "stalled": False}
        if fraction != self.state.fraction or moving:
            changes |= {"fraction": fraction, "moved_at": timezone.now()}
        if figures is not None:
            changes["figures"] = figures
        if message is not None:
            changes["message"] = message[:300]
        OperationState.objects.filter(id=self.state.id).update(**changes)
        for key, value in changes.items():
            setattr(self.state, key, value)
        heartbeat(self.state.run_id, self.fence)

    def report(self, report: Report) -> None:
        """Record a job's report (a `Reporter`); a final one always gets through."""
        self.update(
            report.fraction,
            figures=report.figures,
            message=report.message,
            eta_seconds=report.eta_seconds,
            force=report.final,
        )


def source_database_url(run: MigrationRun, account: dict[str, Any]) -> SourceDatabase:
    """The source's data database as the account its peer API issued describes it.

    The server is always the one at the run's source address: the host the answer names is not
    followed, so a source cannot send this system's login (or its replica) elsewhere. Its server
    must present the certificate the answer carries (`connect_source` refuses one without).
    """
    return SourceDatabase(
        user=str(account["user"]),
        password=str(account["password"]),
        host=str(run.source_address),
        port=int(account["port"]),
        database=str(account["database"]),
        certificate=str(account.get("tls_certificate") or ""),
    )


def copier_database(database: str) -> MySQLURL:
    """A database here, reached through the copier's own account."""
    copier: MySQLURL = settings.MIGRATION_COPIER_DB
    return replace(copier, database=database)


class RunContext:
    """The run, the operation's memory and the connections an operation needs."""

    def __init__(self, run: MigrationRun, state: OperationState, fence: int) -> None:
        self.run = run
        self.state = state
        self.fence = fence
        self.fenced = threading.Event()  # set by the heartbeat timer once the run is fenced
        self._peer: PeerClient | None = None

    @property
    def memory(self) -> dict[str, Any]:
        return self.state.memory

    def remember(self, **values: Any) -> None:
        """Record facts about this operation's work at once (they survive a crash)."""
        if self.fenced.is_set():
            raise Fenced(f"run {self.run.id} was taken over by another worker")
        heartbeat(self.run.id, self.fence)
        self.state.memory = {**self.state.memory, **values}
        OperationState.objects.filter(id=self.state.id).update(memory=self.state.memory)

    def log(self, message: str) -> None:
        run_log(self.run.id, f"[{self.state.name}] {message}")

    def downtime_begins(self) -> None:
        """The source refuses writes from now on (the first time only: a resumed run's window
        began when the source first went into maintenance)."""
        MigrationRun.objects.filter(id=self.run.id, downtime_started_at=None).update(
            downtime_started_at=timezone.now()
        )

    def downtime_ends(self) -> None:
        """This system serves again, with the migrated data (the first time only)."""
        MigrationRun.objects.filter(
            id=self.run.id, downtime_started_at__isnull=False, downtime_ended_at=None
        ).update(downtime_ended_at=timezone.now())
        self.run.refresh_from_db(fields=["downtime_started_at", "downtime_ended_at"])
        if (seconds := self.run.downtime_seconds) is not None:
            self.log(f"service downtime: {seconds:.1f} s")

    def peer(self) -> PeerClient:
        """The source's peer API, logged in with the run's stored admin password."""
        if self._peer is None:
            client = PeerClient(
                str(self.run.source_address), self.run.source_certificate, self.run.source_port
            )
            client.login(secret_get(self.run, "admin_password"))
            self._peer = client
        return self._peer

    def peer_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a PeerClient method, logging in again once if the token has expired."""
        try:
            return getattr(self.peer(), method)(*args, **kwargs)
        except PeerError as error:
            if error.status != 401:
                raise
            self._peer = None
            return getattr(self.peer(), method)(*args, **kwargs)

    def source_database(self, *, replication: bool = False) -> SourceDatabase:
        """The source's data database, through the run's own read-only account; with
        `replication`, an account that may also replicate (asked for once, then kept)."""
        try:
            account = json.loads(secret_get(self.run, "database_account"))
        except SecretMissing:
            account = None
        if account is None or (replication and not account.get("replication")):
            answer = self.peer_call("database_account", self.run.peer_ref, replication=replication)
            account = {**answer, "replication": replication}
            secret_put(self.run, "database_account", json.dumps(account))
        return source_database_url(self.run, account)

    @staticmethod
    def target_database() -> MySQLURL:
        """This system's data database."""
        data: MySQLURL = settings.DATA_DB
        return data

    @staticmethod
    def copier_database() -> MySQLURL:
        """This system's data database through the copier's own account, which has rights on
        the data database and the copy checkpoints only (`manage.py migration_accounts`)."""
        return copier_database(settings.DATA_DB.database)
