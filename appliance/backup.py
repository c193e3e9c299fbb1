"""Backups of this node's own state: its data database, settings, identity, licence and
certificates, so that a migration that went wrong can be taken back exactly.

A backup is a directory named by its id under the backup directory, holding compressed parts
and `manifest.json` with each part's size and SHA-256 and each data table's checksum. It is
written under a temporary name and renamed when complete, so a half-written backup is never
listed. Restoring checks every part first and, after loading, the tables' checksums.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import serializers
from django.db import connections, transaction
from django.utils import timezone

from appliance import SOFTWARE_VERSION
from appliance.models import Licence, Node, Setting
from appliance.progress import Report, Reporter, Throttle
from appliance.routers import DATA_DB_ALIAS
from appliance.services import certificate_path, data_size_bytes, private_key_path
from config.env import MySQLURL, quote_name

DATA_PART = "data.sql.gz"
STATE_PART = "state.json.gz"
CERTIFICATE_PARTS = {"server.crt": certificate_path, "server.key": private_key_path}
STATE_MODELS = (Node, Licence, Setting)
SPACE_MARGIN = 1.2
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup cannot be taken or restored; the message says why and what to do."""


@dataclass(frozen=True)
class Backup:
    """One complete backup: its id, directory and manifest."""

    id: str
    directory: Path
    manifest: dict[str, Any]

    @property
    def reason(self) -> str:
        return str(self.manifest.get("reason", ""))

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at", ""))

    @property
    def size_bytes(self) -> int:
        return sum(int(part["bytes"]) for part in self.manifest["parts"].values())


def backup_root() -> Path:
    """Where backups are kept."""
    configured = settings.APPLIANCE_BACKUP_DIR
    return Path(configured) if configured else Path(settings.APPLIANCE_VAR_DIR) / "backups"


def backups_list() -> list[Backup]:
    """Every complete backup, newest first."""
    root = backup_root()
    if not root.is_dir():
        return []
    found = []
    for manifest in root.glob("*/manifest.json"):
        if not manifest.parent.name.startswith("."):
            found.append(
                Backup(manifest.parent.name, manifest.parent, json.loads(manifest.read_text()))
            )
    return sorted(found, key=lambda backup: backup.id, reverse=True)


def backup_get(backup_id: str) -> Backup:
    """The backup with this id, or BackupError."""
    for backup in backups_list():
        if backup.id == backup_id:
            return backup
    raise BackupError(f"There is no backup {backup_id!r}; `manage.py list_backups` lists them.")


def backup_latest() -> Backup:
    backups = backups_list()
    if not backups:
        raise BackupError("There is no backup on this system yet.")
    return backups[0]


def backup_create(reason: str, progress: Reporter | None = None) -> Backup:
    """Back up this node's data database, state and certificates (space is checked first);
    `progress` hears how far the dump is, and a final report once the backup is complete."""
    root = backup_root()
    root.mkdir(parents=True, exist_ok=True)
    _space_check(root)
    backup_id = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    partial = root / f".{backup_id}.partial"
    partial.mkdir(mode=0o700)
    try:
        parts: dict[str, dict[str, Any]] = {}
        parts[DATA_PART], dumped = _dump_data(partial / DATA_PART, progress)
        parts[STATE_PART] = _dump_state(partial / STATE_PART)
        for name, path in CERTIFICATE_PARTS.items():
            if path().exists():
                shutil.copy2(path(), partial / name)
                parts[name] = _describe(partial / name)
        manifest = {
            "id": backup_id,
            "created_at": timezone.now().isoformat(),
            "reason": reason,
            "software_version": SOFTWARE_VERSION,
            "database": data_database().database,
            "parts": parts,
            "table_checksums": data_checksums(),
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2))
        partial.rename(root / backup_id)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if progress:
        progress(_dump_report(dumped, dumped, final=True))
    return Backup(backup_id, root / backup_id, manifest)


def _space_check(root: Path) -> None:
    needed = data_size_bytes() * SPACE_MARGIN + 10_000_000
    free = shutil.disk_usage(root).free
    if free < needed:
        raise BackupError(
            f"Not enough free space in {root} for the backup: {free / 1e9:.2f} GB free, about "
            f"{needed / 1e9:.2f} GB needed. Free some space or set APPLIANCE_BACKUP_DIR."
        )


def data_database() -> MySQLURL:
    """Where the data database is, as the data connection sees it (test databases too)."""
    params = connections[DATA_DB_ALIAS].settings_dict
    return MySQLURL(
        user=params["USER"],
        password=params["PASSWORD"],
        host=params["HOST"] or "127.0.0.1",
        port=int(params["PORT"] or 3306),
        database=params["NAME"],
    )


def _client_environment(database: MySQLURL) -> dict[str, str]:
    """The password goes to the MariaDB tools in their environment, never on a command line."""
    return {**os.environ, "MYSQL_PWD": database.password}


def _client_arguments(database: MySQLURL) -> list[str]:
    return [
        f"--host={database.host}",
        f"--port={database.port}",
        f"--user={database.user}",
        "--default-character-set=utf8mb4",
    ]


def _dump_report(written: int, expected: int, *, final: bool = False) -> Report:
    """How far the backup is: the bytes of the dump written so far, of about `expected`."""
    if final:
        return Report(1.0, figures={"bytes": written}, message="backup complete", final=True)
    return Report(min(0.95, written / expected), figures={"bytes": written}, message="backing up")


def _dump_data(path: Path, progress: Reporter | None) -> tuple[dict[str, Any], int]:
    """Dump the data database into `path`: its description and the bytes the dump wrote."""
    database = data_database()
    expected = max(data_size_bytes(), 1)
    command = [
        "mariadb-dump",
        *_client_arguments(database),
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--skip-dump-date",
        "--no-tablespaces",
        database.database,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_client_environment(database),
    )
    assert process.stdout is not None
    written = 0
    throttle = Throttle()
    with gzip.open(path, "wb", compresslevel=3) as out:
        for chunk in iter(lambda: process.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
            out.write(chunk)
            written += len(chunk)
            if progress and throttle.passes():
                progress(_dump_report(written, expected))
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.wait() != 0:
        raise BackupError(f"The data database could not be dumped: {error.strip()[:500]}")
    return _describe(path), written


def _dump_state(path: Path) -> dict[str, Any]:
    rows = [row for model in STATE_MODELS for row in model.objects.all()]
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(serializers.serialize("json", rows))
    return _describe(path)


def _describe(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_checksums() -> dict[str, int | None]:
    """CHECKSUM TABLE of every base table of the data database."""
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        tables = [name for (name,) in cursor.fetchall()]
        if not tables:
            return {}
        cursor.execute("CHECKSUM TABLE " + ", ".join(quote_name(name) for name in tables))
        return {str(name).split(".", 1)[1]: value for name, value in cursor.fetchall()}


def backup_verify(backup: Backup) -> None:
    """Every part is there with its recorded size and SHA-256, or BackupError."""
    for name, part in backup.manifest["parts"].items():
        path = backup.directory / name
        if not path.exists():
            raise BackupError(f"Backup {backup.id} is missing {name}.")
        if file_sha256(path) != part["sha256"]:
            raise BackupError(f"Backup {backup.id}: {name} is damaged (its SHA-256 differs).")


def backup_restore(backup: Backup, *, keep_licence: bool = False) -> dict[str, Any]:
    """Bring this node back to the backup's state: data, settings, licence, certificates.

    `keep_licence`: the licence stays as it is now (it came here from a source that no longer
    holds it, so going back would leave no system licensed).
    """
    backup_verify(backup)
    licence_now = serializers.serialize("json", Licence.objects.all())
    _restore_data(backup.directory / DATA_PART)
    _restore_state(backup.directory / STATE_PART)
    if keep_licence:
        Licence.objects.all().delete()
        for row in serializers.deserialize("json", licence_now):
            row.save()
    for name, path in CERTIFICATE_PARTS.items():
        if (backup.directory / name).exists():
            path().parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(backup.directory / name, path())
    checksums = data_checksums()
    if checksums != backup.manifest["table_checksums"]:
        raise BackupError(
            f"After restoring backup {backup.id} the data tables' checksums differ from the "
            "backup's. Restore it again; if that fails, keep the backup and contact support."
        )
    return {"backup": backup.id, "tables": len(checksums)}


def _restore_data(path: Path) -> None:
    """Drop everything in the data database, then load the dump."""
    _data_objects_drop()
    database = data_database()
    process = subprocess.Popen(
        ["mariadb", *_client_arguments(database), database.database],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_client_environment(database),
    )
    assert process.stdin is not None
    try:
        for chunk in _gunzip(path):
            process.stdin.write(chunk)
    except BrokenPipeError:
        pass
    process.stdin.close()
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.wait() != 0:
        raise BackupError(f"The data could not be loaded from {path.name}: {error.strip()[:500]}")
    connections[DATA_DB_ALIAS].close()


def _gunzip(path: Path) -> Iterator[bytes]:
    with gzip.open(path, "rb") as source:
        yield from iter(lambda: source.read(CHUNK), b"")


def _data_objects_drop() -> None:
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"
        )
        objects = cursor.fetchall()
        cursor.execute(
            "SELECT routine_name, routine_type FROM information_schema.routines "
            "WHERE routine_schema = DATABASE()"
        )
        routines = cursor.fetchall()
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for name, kind in objects:
            dropped = "VIEW" if kind == "VIEW" else "TABLE"
            cursor.execute(f"DROP {dropped} IF EXISTS {quote_name(name)}")
        for name, kind in routines:
            cursor.execute(f"DROP {kind} IF EXISTS {quote_name(name)}")
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")


@transaction.atomic
def _restore_state(path: Path) -> None:
    with gzip.open(path, "rt", encoding="utf-8") as source:
        rows = list(serializers.deserialize("json", source.read()))
    for model in STATE_MODELS:
        model.objects.all().delete()
    for row in rows:
        row.save()
