"""What one operation of a run hands to a later one, declared and typed.

The settings this system had before the source's replaced them (the swap gives them to the
source), the round-robin hosts taken off the source's HA Master (put back at the end), the
backup taken first (restored on Start Over), the online pre-copy's replica (where in the
source's binary log it started; the cutover finishes it) and the verification made while the
source served (the cutover checks again only the tables written since). Each is written by
the operation that produces it through a `keep_*` function, in that operation's memory (which
also serves its own undo and a resume after a crash), and read by the others only through
`RunHandoffs`, never by another operation's memory key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migrations_engine.models import MigrationRun

if TYPE_CHECKING:
    from migrations_engine.context import RunContext

SETTINGS_FROM = "copy_settings"
ROUND_ROBIN_FROM = "source_maintenance"
BACKUP_FROM = "backup_current"
PRECOPY_FROM = "precopy_data"
ONLINE_CHECK_FROM = "await_cutover"
PRODUCERS = (SETTINGS_FROM, ROUND_ROBIN_FROM, BACKUP_FROM, PRECOPY_FROM, ONLINE_CHECK_FROM)
"""The operations that produce each hand-off, by name."""


@dataclass(frozen=True)
class KeptSettings:
    """This system's settings and identity from before the source's replaced them."""

    settings: dict[str, Any]
    identity: dict[str, str]


@dataclass(frozen=True)
class PreCopy:
    """The online pre-copy: the data copied while the source served, and this system's replica
    of the source following it from `start` (a binary log position, as `BinlogPosition`)."""

    start: dict[str, Any]
    replicating: bool


@dataclass(frozen=True)
class OnlineVerified:
    """Every table checksummed on both servers while the source served, at `position` (a
    binary log position, as `BinlogPosition`), and the tables written since, as far as seen."""

    position: dict[str, Any]
    tables: dict[str, dict[str, Any]]
    """Per table, as `TableCheck.as_dict`."""
    changed: tuple[str, ...]

    @property
    def differ(self) -> tuple[str, ...]:
        return tuple(name for name, check in self.tables.items() if not check.get("equal"))


@dataclass(frozen=True)
class RunHandoffs:
    """Every hand-off of a run, as far as its operations got (None or empty: not produced)."""

    settings_kept_for_swap: KeptSettings | None = None
    round_robin_hosts_removed: tuple[str, ...] = ()
    backup: str = ""
    precopy: PreCopy | None = None
    online_check: OnlineVerified | None = None

    @classmethod
    def of(cls, run: MigrationRun) -> RunHandoffs:
        """The hand-offs recorded so far by the run's operations."""
        memories: dict[str, dict[str, Any]] = dict(
            run.operations.filter(name__in=PRODUCERS).values_list("name", "memory").iterator()
        )
        return cls.from_memories(memories)

    @classmethod
    def from_memories(cls, memories: dict[str, dict[str, Any]]) -> RunHandoffs:
        """The hand-offs from the producing operations' memories, by operation name."""
        settings = memories.get(SETTINGS_FROM) or {}
        hosts = (memories.get(ROUND_ROBIN_FROM) or {}).get("round_robin_hosts") or []
        kept = None
        if "previous" in settings:
            kept = KeptSettings(dict(settings["previous"]), dict(settings.get("identity") or {}))
        precopy = memories.get(PRECOPY_FROM) or {}
        check = memories.get(ONLINE_CHECK_FROM) or {}
        return cls(
            settings_kept_for_swap=kept,
            round_robin_hosts_removed=tuple(str(host) for host in hosts),
            backup=str((memories.get(BACKUP_FROM) or {}).get("backup") or ""),
            precopy=PreCopy(dict(precopy["start"]), bool(precopy.get("replicating")))
            if precopy.get("start")
            else None,
            online_check=OnlineVerified(
                dict(check["verified"]["position"]),
                dict(check["verified"]["tables"]),
                tuple(check.get("changed") or ()),
            )
            if check.get("verified")
            else None,
        )


def keep_settings(context: RunContext, kept: KeptSettings) -> None:
    """Copy Settings: this system's settings and identity before it applies the source's."""
    context.remember(previous=kept.settings, identity=kept.identity)


def keep_round_robin_hosts(context: RunContext, hosts: tuple[str, ...]) -> None:
    """Maintenance: the round-robin hosts the source's HA Master had (taken off it next)."""
    context.remember(round_robin_hosts=list(hosts))


def keep_backup(context: RunContext, backup_id: str) -> None:
    """Backup: the backup taken before anything here changed."""
    context.remember(backup=backup_id)


def keep_precopy_start(context: RunContext, start: dict[str, Any]) -> None:
    """Pre-copy: where the source's binary log stood before the first row was read."""
    context.remember(start=start)


def keep_precopy_replicating(context: RunContext, replicating: bool) -> None:
    """Pre-copy: whether this system's replica of the source now follows it."""
    context.remember(replicating=replicating)


def keep_online_check(
    context: RunContext, position: dict[str, Any], tables: dict[str, Any]
) -> None:
    """Awaiting the cutover: every table checksummed on both servers at `position`."""
    context.remember(verified={"position": position, "tables": tables}, changed=[])


def keep_tables_changed(context: RunContext, names: list[str]) -> None:
    """Awaiting the cutover: the tables the source has written since the verification."""
    context.remember(changed=names)


def own(context: RunContext) -> RunHandoffs:
    """What the running operation itself has handed on so far (for its resume and undo)."""
    return RunHandoffs.from_memories({context.state.name: context.memory})
