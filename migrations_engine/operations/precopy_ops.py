"""The online part of a migration, before the source goes into maintenance.

The data is copied while the source serves and then followed by this system's replica (see
`migrations_engine.online_copy`), the traffic logs are copied file by file, and the run stays in
sync until its cutover: as soon as the copy has caught up, at a chosen time, or when someone
asks for it. Only what the source writes after that point is moved inside the maintenance
window, by the seed's operations that follow.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
from django.conf import settings
from django.utils import timezone

from migrations_engine import notifications
from migrations_engine.context import Progress, RunContext
from migrations_engine.datacopy.sql import (
    SourceDatabase,
    SourceTrustError,
    close_quietly,
    source_connection,
)
from migrations_engine.handoffs import (
    RunHandoffs,
    keep_online_check,
    keep_precopy_replicating,
    keep_precopy_start,
    keep_tables_changed,
    own,
)
from migrations_engine.models import CutoverMode, MigrationRun
from migrations_engine.online_copy import (
    BinlogPosition,
    Lag,
    OnlineCheck,
    ReplicaGate,
    ReplicaRefused,
    TableWatch,
    binlog_end,
    binlog_position,
    replica_gtid,
    replica_lag,
    replica_status,
    server_connection,
    server_refusal,
    snapshot_verify,
)
from migrations_engine.operations.base import Operation
from migrations_engine.operations.data_ops import (
    REPLICA_NAME,
    copy_verified,
    online_watch,
    replica_start,
    replica_stop,
)
from migrations_engine.operations.remote_ops import CopySyslog
from migrations_engine.plan import PlanFacts, online_copy_refusal

COPY_SHARE = 0.9
"""Part of the pre-copy's bar the copy takes; starting the replica takes the rest."""
CATCH_UP_GRACE = 0.5
"""Seconds the replica is given to reach where the source's binary log ended a moment ago."""
SNAPSHOT_TIMEOUT = 60.0
"""Seconds the replica is given to reach the point where every table is verified online."""


class PreCopyData(Operation):
    """Copy the data while the source serves, then have a replica here follow its writes."""

    name = "precopy_data"
    label = "Pre-copies data (the source stays in service)"
    reversible = True
    weight = 20
    stall_hint = "The source's database does not answer, or a table on it is locked."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if refusal := online_copy_refusal(facts):
            return False, f"the data is copied inside the maintenance window because {refusal}"
        return True, "the source's binary log lets this system follow its writes while it serves"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        source = context.source_database(replication=True)
        if refusal := server_refusal(source):
            context.log(f"no online pre-copy: {refusal}")
            return {"online": False, "reason": f"the data is copied in the window: {refusal}"}
        if "start" not in context.memory:
            start = binlog_position(source)
            if start is None:
                return {"online": False, "reason": "the source writes no binary log"}
            keep_precopy_start(context, start.as_dict())
            context.log(f"the source's binary log stands at {start.text}; copying from here")
        start = BinlogPosition.from_dict(context.memory["start"])
        result = copy_verified(context, progress, source=source, share=COPY_SHARE)
        progress.update(COPY_SHARE, message="starting the replica", force=True)
        replica_start(
            context.target_database(), source, start.file, start.position, idempotent=True
        )
        keep_precopy_replicating(context, True)
        context.log(f"replicating the source's writes since {start.text}")
        return {**result, "online": True, "replicating_from": start.text}

    def undo(self, context: RunContext) -> None:
        replica_stop(context.target_database())
        if context.memory.get("replicating"):
            keep_precopy_replicating(context, False)


class PreCopyLogs(CopySyslog):
    """Copy every traffic log while the source serves; later passes copy only what changed."""

    name = "precopy_syslog"
    label = "Pre-copies the traffic logs"
    reversible = False
    weight = 6

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        if not facts.copy_traffic_logs:
            return False, "Copy User Traffic Logs is off"
        if facts.accounts is not None:
            return False, "only the chosen accounts' lines are copied, inside the window"
        return True, "every file now; inside the window only what changed since"


@dataclass
class LagHistory:
    """The lag over the last minute: whether it shrinks, and how fast the replica applies."""

    window: float
    samples: deque[tuple[float, int, int]]
    """(time, transactions behind, transactions applied so far) per second."""

    def add(self, events: int, applied: int) -> None:
        now = time.monotonic()
        self.samples.append((now, events, applied))
        while len(self.samples) > 1 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()  # the oldest kept is the last one a window ago

    @property
    def full(self) -> bool:
        return bool(self.samples) and self.samples[-1][0] - self.samples[0][0] >= self.window * 0.9

    @property
    def falling_behind(self) -> bool:
        """Behind, and no less behind than a minute ago."""
        if not self.full:
            return False
        first, last = self.samples[0][1], self.samples[-1][1]
        return last > 0 and last >= first

    @property
    def apply_rate(self) -> float:
        """Transactions applied per second over the window (0 when unknown)."""
        if len(self.samples) < 2:
            return 0.0
        (start, _, applied_then), (end, _, applied_now) = self.samples[0], self.samples[-1]
        return max(0.0, (applied_now - applied_then) / max(end - start, 1e-6))

    @property
    def shrink_rate(self) -> float:
        """How fast the lag shrinks, in transactions per second (<= 0: it does not)."""
        if len(self.samples) < 2:
            return 0.0
        (start, behind_then, _), (end, behind_now, _) = self.samples[0], self.samples[-1]
        return (behind_then - behind_now) / max(end - start, 1e-6)


def applied_sequence(gtid: str) -> int:
    """The total of the sequence numbers in a GTID position (grows as transactions apply)."""
    total = 0
    for part in gtid.split(","):
        pieces = part.strip().split("-")
        if len(pieces) == 3 and pieces[2].isdigit():
            total += int(pieces[2])
    return total


@dataclass(frozen=True)
class CutoverOrder:
    """What the administrator chose, read again each second (it may change while waiting)."""

    mode: str
    at: Any
    requested: bool

    @classmethod
    def of(cls, run_id: int) -> CutoverOrder:
        mode, at, requested = MigrationRun.objects.values_list(
            "cutover_mode", "cutover_at", "cutover_requested_at"
        ).get(id=run_id)
        return cls(str(mode), at, requested is not None)

    def due(self, lag: Lag | None) -> bool:
        if self.requested:
            return True
        if self.mode == CutoverMode.AT:
            return self.at is None or timezone.now() >= self.at
        if self.mode == CutoverMode.MANUAL:
            return False
        return lag is None or lag.caught_up or bool(lag.error)


@dataclass
class SourceEnd:
    """Where the source's binary log ends, read each second on one connection kept open while
    the run waits (opened again after an error: a source that restarted)."""

    source: SourceDatabase
    connection: pymysql.connections.Connection | None = None

    def read(self) -> BinlogPosition:
        if self.connection is None:
            self.connection = source_connection(self.source, read_timeout=60)
        try:
            return binlog_end(self.connection) or BinlogPosition("", 0)
        except pymysql.MySQLError:
            self.close()
            raise

    def close(self) -> None:
        close_quietly(self.connection)
        self.connection = None


class AwaitCutover(Operation):
    """Keep the copy in sync while the source serves, until it is time to cut over."""

    name = "await_cutover"
    label = "Keeps the copy in sync until the cutover"
    weight = 2
    stall_hint = "The replica does not apply the source's writes: check port 3306 and the load."

    def applies(self, facts: PlanFacts) -> tuple[bool, str]:
        online = not online_copy_refusal(facts)
        if facts.cutover_waits:
            return True, "the cutover waits for the chosen time or for Cut over now"
        if online:
            return True, "the maintenance window begins once the copy has caught up"
        return False, "nothing is copied while the source serves"

    def run(self, context: RunContext, progress: Progress) -> dict[str, Any]:
        precopy = RunHandoffs.of(context.run).precopy
        replicating = precopy is not None and precopy.replicating
        source = context.source_database(replication=True) if replicating else None
        history = LagHistory(float(settings.MIGRATION_LAG_WINDOW), deque())
        waited = time.monotonic()
        notified = bool(context.memory.get("waiting_notified"))
        end = SourceEnd(source) if source is not None else None
        try:
            with server_connection(context.target_database()) as target:
                gate = ReplicaGate(target, REPLICA_NAME)
                check_online = source is not None and not self._watch_again(context, gate, source)
                while True:
                    lag = None
                    if source is not None and end is not None:
                        lag = self._lag(context, end, target, gate, history)
                        if lag is None:  # the replica refused what the source wrote
                            source = None
                    order = CutoverOrder.of(context.run.id)
                    if check_online and lag is not None and lag.caught_up and not order.requested:
                        check_online = False  # once: the tables written since are followed
                        if source is not None and not self._verify(context, progress, source, gate):
                            source = None
                        continue
                    if order.due(lag):
                        break
                    if not notified and (lag is None or lag.caught_up):
                        notified = _notify_waiting(context, order)
                    self._report(progress, order, lag, history)
                    time.sleep(1)
        finally:
            if end is not None:
                end.close()
        progress.update(1.0, message="cutting over", force=True)
        result: dict[str, Any] = {"waited_seconds": round(time.monotonic() - waited, 1)}
        if lag is not None:
            result |= {"lag_at_cutover": lag.text, "transactions_behind": lag.events}
        if order.requested:
            result["cutover"] = "asked for (Cut over now)"
        context.log(f"cutover: {result.get('cutover') or order.mode}")
        return result

    def _lag(
        self,
        context: RunContext,
        end: SourceEnd,
        target: pymysql.connections.Connection,
        gate: ReplicaGate,
        history: LagHistory,
    ) -> Lag | None:
        """How far the replica is from where the source's binary log ended a moment ago: the
        replica is let apply what it has checked and given half a second to get there (a
        source that writes all the time is never caught up with its very latest write). A
        source that does not answer (restarting, say) is waited for: the replica reconnects by
        itself. None once the replica refused something."""
        try:
            goal = end.read()
        except (pymysql.MySQLError, SourceTrustError) as error:
            return Lag(None, None, 0, caught_up=False, waiting=str(error.args[-1])[:200])
        deadline = time.monotonic() + CATCH_UP_GRACE
        while True:
            if not self._gate(context, gate):
                return None
            gtid = replica_gtid(target)
            lag = replica_lag(replica_status(target, REPLICA_NAME), goal, replica_gtid=gtid)
            if lag.caught_up or lag.error or lag.waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not lag.waiting:
            history.add(lag.events or 0, applied_sequence(gtid))
        return lag

    @staticmethod
    def _watch_again(context: RunContext, gate: ReplicaGate, source: SourceDatabase) -> bool:
        """After a restart: have the gate note again the tables written since the verification
        made online before (whether there was one)."""
        gate.watch = online_watch(own(context).online_check, source.database)
        if gate.watch is None:
            return False
        gate.on_changed = _changed_keeper(context)
        return True

    def _verify(
        self, context: RunContext, progress: Progress, source: SourceDatabase, gate: ReplicaGate
    ) -> bool:
        """Checksum every table on both servers while the source serves, at one point of its
        binary log; from then on the gate notes the tables written after it (only those are
        checked again inside the window). False once the replica refused something."""
        progress.update(
            0.9, message="verifying every table on both servers while the source serves", force=True
        )
        try:
            check = snapshot_verify(source, gate, timeout=SNAPSHOT_TIMEOUT)
        except ReplicaRefused:
            return self._gate(context, gate)
        except (pymysql.MySQLError, SourceTrustError) as error:
            gate.watch, check = None, None
            context.log(f"the verification while the source served stopped: {error.args[-1]}")
        if check is None:
            context.log("every table is verified inside the maintenance window instead")
            return True
        keep_online_check(
            context, check.position.as_dict(), {c.name: c.as_dict() for c in check.tables}
        )
        gate.on_changed = _changed_keeper(context)
        context.log(_verified_line(check))
        return True

    @staticmethod
    def _gate(context: RunContext, gate: ReplicaGate) -> bool:
        """Let the replica apply what it has checked; False once it refused something (it is
        stopped, and the data is copied inside the maintenance window instead)."""
        try:
            gate.advance()
        except ReplicaRefused as refused:
            context.log(f"{refused} The data is copied inside the maintenance window instead.")
            replica_stop(context.target_database())
            return False
        return True

    def _report(
        self, progress: Progress, order: CutoverOrder, lag: Lag | None, history: LagHistory
    ) -> None:
        figures: dict[str, Any] = {"cutover": order.mode}
        message = _waiting_message(order)
        eta = None
        fraction = 0.9
        if lag is not None:
            figures |= {
                "transactions_behind": lag.events,
                "seconds_behind": lag.seconds,
                "bytes_behind": lag.bytes,
                "in_sync": lag.caught_up,
            }
            if lag.waiting or lag.error:  # the figures say how far behind otherwise
                message = f"{lag.text}; {message}"
            if not lag.caught_up:
                fraction = 0.5
                if history.shrink_rate > 0 and lag.events:
                    eta = lag.events / history.shrink_rate
            if history.falling_behind:
                window = window_seconds(lag, history)
                figures |= {"falling_behind": True, "window_seconds": window}
                message = (
                    f"The copy is not catching up: the source writes faster than this system "
                    f"applies ({lag.text}). Lower the load on the source, or cut over now: "
                    f"the maintenance window would then last about {window} s."
                )
        progress.update(
            fraction,
            figures=figures,
            message=message,
            eta_seconds=eta,
            moving=not figures.get("falling_behind"),
        )


def _changed_keeper(context: RunContext) -> Callable[[TableWatch], None]:
    """Keeps in the run the tables the gate finds written since the online verification."""
    return lambda watch: keep_tables_changed(context, sorted(watch.changed))


def _verified_line(check: OnlineCheck) -> str:
    differ = [table.name for table in check.tables if not table.equal]
    rows = sum(table.source_rows for table in check.tables)
    line = (
        f"{len(check.tables)} tables ({rows} rows) verified on both servers while the source "
        f"served, at {check.position.text}, in {check.seconds:.1f} s"
    )
    if differ:
        line += f"; differ, verified again inside the window: {', '.join(differ)}"
    return line


def _waiting_message(order: CutoverOrder) -> str:
    if order.mode == CutoverMode.AT and order.at is not None:
        return f"the cutover begins at {timezone.localtime(order.at):%Y-%m-%d %H:%M}"
    if order.mode == CutoverMode.MANUAL:
        return "waiting for Cut over now"
    return "the cutover begins once the copy has caught up"


def window_seconds(lag: Lag, history: LagHistory) -> int:
    """About how long the maintenance window would last if the cutover began now: the time to
    apply what is behind (at the measured rate), plus a margin for the verification."""
    rate = history.apply_rate
    catch_up = (lag.events or 0) / rate if rate > 0 else float(lag.seconds or 0)
    return int(catch_up + settings.MIGRATION_VERIFY_MARGIN)


def _notify_waiting(context: RunContext, order: CutoverOrder) -> bool:
    """Tell the administrators the run is in sync and waits for its cutover (once)."""
    if order.mode == CutoverMode.CAUGHT_UP:
        return True
    context.remember(waiting_notified=True)
    context.log("in sync with the source; waiting for the cutover")
    notifications.notify_waiting_for_cutover(context.run)
    return True
