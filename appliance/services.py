"""Reading and changing a node's own state: identity, settings, maintenance, HA, licence.

Plain functions used by the staff console, the peer API and the management commands.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from appliance import SOFTWARE_VERSION
from appliance.models import (
    SITE_BOUND_GROUPS,
    Licence,
    LicenceState,
    Node,
    Setting,
)
from appliance.routers import DATA_DB_ALIAS

SettingsByGroup = dict[str, dict[str, Any]]


class LicenceError(ValueError):
    """A licence change that cannot be made (wrong GUID, no licence to release)."""


def node_get() -> Node:
    """This node's identity and state."""
    node: Node = Node.load()
    return node


def maintenance_set(*, enabled: bool, reason: str = "") -> Node:
    """Switch maintenance mode on or off; doing it twice changes nothing."""
    node = node_get()
    if node.maintenance != enabled:
        node.maintenance = enabled
        node.maintenance_since = timezone.now() if enabled else None
    node.maintenance_reason = reason[:200] if enabled else ""
    node.save()
    return node


def settings_export(groups: set[str] | None = None) -> SettingsByGroup:
    """All settings (or those of the given groups) as {group: {key: value}}."""
    rows = Setting.objects.all()
    if groups is not None:
        rows = rows.filter(group__in=groups)
    exported: SettingsByGroup = {}
    for row in rows:
        exported.setdefault(row.group, {})[row.key] = row.value
    return exported


@transaction.atomic
def settings_replace(values: SettingsByGroup) -> None:
    """Make each given group hold exactly the given keys and values; other groups stay."""
    for group, pairs in values.items():
        Setting.objects.filter(group=group).exclude(key__in=list(pairs)).delete()
        for key, value in pairs.items():
            Setting.objects.update_or_create(group=group, key=key, defaults={"value": value})


@transaction.atomic
def settings_set_all(values: SettingsByGroup) -> None:
    """Make the node's settings exactly these (groups not given are removed)."""
    Setting.objects.exclude(group__in=list(values)).delete()
    settings_replace(values)


def identity_get() -> dict[str, str]:
    """The node's host name, domain name and IP address."""
    node = node_get()
    return {
        "host_name": node.host_name,
        "domain_name": node.domain_name,
        "ip_address": node.ip_address,
    }


def identity_set(*, host_name: str, domain_name: str, ip_address: str) -> Node:
    """Give the node another identity (a swap of configuration does this)."""
    node = node_get()
    node.host_name, node.domain_name, node.ip_address = host_name, domain_name, ip_address
    node.full_clean(exclude=["maintenance_reason", "migrated_to"])
    node.save()
    return node


def split_settings(values: SettingsByGroup) -> tuple[SettingsByGroup, SettingsByGroup]:
    """Split settings into (basic, site-bound) groups."""
    basic = {g: v for g, v in values.items() if g not in SITE_BOUND_GROUPS}
    site_bound = {g: v for g, v in values.items() if g in SITE_BOUND_GROUPS}
    return basic, site_bound


def ha_settings() -> dict[str, Any]:
    """The HA configuration: replication peer, round-robin hosts, load-balancing domain."""
    ha = settings_export({"ha"}).get("ha", {})
    return {
        "replication_peer": ha.get("replication_peer", ""),
        "round_robin_hosts": list(ha.get("round_robin_hosts", [])),
        "load_balancing_domain": ha.get("load_balancing_domain", ""),
    }


def round_robin_hosts_set(hosts: list[str]) -> list[str]:
    """Replace the HA round-robin hosts (empty to take them out of the rotation)."""
    Setting.objects.update_or_create(
        group="ha", key="round_robin_hosts", defaults={"value": list(hosts)}
    )
    return list(hosts)


def replication_set(*, running: bool) -> Node:
    """Start or stop the replication between this node and its HA peer."""
    node = node_get()
    node.replication_running = running
    node.save(update_fields=["replication_running"])
    return node


def licence_get() -> Licence:
    """This node's licence (state `none` when it has never had one)."""
    licence: Licence = Licence.load()
    return licence


@transaction.atomic
def licence_release(*, guid: str, transferred_to: str) -> Licence:
    """Invalidate this node's licence because another system took it over (idempotent)."""
    licence = Licence.objects.select_for_update().get(id=licence_get().id)
    if not licence.guid or licence.guid != guid:
        raise LicenceError("The licence GUID does not match this system's licence.")
    if licence.state == LicenceState.TRANSFERRED:
        return licence
    if licence.state != LicenceState.ACTIVE:
        raise LicenceError("This system's licence is not active, so it cannot be released.")
    licence.state = LicenceState.TRANSFERRED
    licence.transferred_to = transferred_to[:190]
    licence.changed_at = timezone.now()
    licence.save()
    return licence


def mark_migrated(*, migrated_to: str) -> Node:
    """Record that this node's duties moved to another system ('' takes the mark away)."""
    node = node_get()
    if not migrated_to:
        node.migrated_at = None
    elif node.migrated_at is None:
        node.migrated_at = timezone.now()
    node.migrated_to = migrated_to[:190]
    node.save(update_fields=["migrated_at", "migrated_to"])
    return node


def certificate_path() -> Path:
    return Path(settings.APPLIANCE_CERT_DIR) / "server.crt"


def private_key_path() -> Path:
    return Path(settings.APPLIANCE_CERT_DIR) / "server.key"


def tls_fingerprint(path: Path | None = None) -> str:
    """SHA-256 of the node's TLS certificate, as colon-separated hex ('' if it has none)."""
    path = path or certificate_path()
    if not path.exists():
        return ""
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def ssh_host_key() -> str:
    """The SSH host public key line ('type base64'), or '' when there is none."""
    path = Path(settings.APPLIANCE_SSH_HOST_KEY)
    if not path.exists():
        return ""
    return " ".join(path.read_text().split()[:2])


def ssh_fingerprint(public_key_line: str) -> str:
    """OpenSSH's SHA256:... fingerprint of a public key line ('' for an empty line)."""
    if not public_key_line:
        return ""
    blob = base64.b64decode(public_key_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def data_size_bytes() -> int:
    """Bytes the data database takes on its server (data and indexes)."""
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(data_length + index_length), 0) "
            "FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
        (size,) = cursor.fetchone()
    return int(size)


def data_events() -> list[str]:
    """The names of the data database's scheduled events (a migration never copies them, and
    the account a migration reads with cannot see them, so this node names them itself)."""
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT event_name FROM information_schema.events WHERE event_schema = DATABASE() "
            "ORDER BY event_name"
        )
        return [str(row[0]) for row in cursor.fetchall()]


def data_binlog() -> dict[str, Any]:
    """Whether the data database's server writes a binary log a replica can follow while this
    node stays in service (a migration's online pre-copy needs it on, in ROW format)."""
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT @@log_bin, @@binlog_format, @@version")
        log_bin, binlog_format, version = cursor.fetchone()
    return {"log_bin": bool(log_bin), "format": str(binlog_format), "server_version": str(version)}


def data_tables() -> list[dict[str, Any]]:
    """The data database's tables with their approximate rows and bytes, by name."""
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT table_name, COALESCE(table_rows, 0), COALESCE(data_length + index_length, 0) "
            "FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_type = 'BASE TABLE' AND table_name <> 'django_migrations' "
            "ORDER BY table_name"
        )
        rows = cursor.fetchall()
    return [{"name": name, "rows": int(count), "bytes": int(size)} for name, count, size in rows]


def data_schema_version() -> str:
    """The newest migration applied to the data database ('' when none is)."""
    with connections[DATA_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT name FROM django_migrations WHERE app = 'appliance_data' "
            "ORDER BY id DESC LIMIT 1"
        )
        row = cursor.fetchone()
    return str(row[0]) if row else ""


def directory_size_bytes(path: Path) -> tuple[int, int]:
    """(files, bytes) under a directory, following no links."""
    files = size = 0
    if path.is_dir():
        for item in path.rglob("*"):
            if item.is_file() and not item.is_symlink():
                files += 1
                size += item.stat().st_size
    return files, size


def node_info() -> dict[str, Any]:
    """What Source Info shows about this node, plus versions, sizes and fingerprints."""
    node = node_get()
    licence = licence_get()
    log_files, log_bytes = directory_size_bytes(Path(settings.APPLIANCE_TRAFFIC_LOG_DIR))
    host_key = ssh_host_key()
    database_certificate = settings.APPLIANCE_DATA_DB_CERTIFICATE
    return {
        "host_name": node.host_name,
        "domain_name": node.domain_name,
        "ip_address": node.ip_address,
        "server_role": node.server_role,
        "server_role_label": node.get_server_role_display(),
        "ha": ha_settings() if node.is_ha else None,
        "replication_running": node.replication_running,
        "maintenance": node.maintenance,
        "migrated_to": node.migrated_to,
        "licence": {
            "guid": licence.guid,
            "holder": licence.holder,
            "state": licence.state,
            "maintenance_until": licence.maintenance_until.isoformat()
            if licence.maintenance_until
            else None,
            "has_active_maintenance": licence.has_active_maintenance,
        },
        "software_version": SOFTWARE_VERSION,
        "data_schema_version": data_schema_version(),
        "data_size_bytes": data_size_bytes(),
        "data_tables": data_tables(),
        "data_events": data_events(),
        "data_binlog": data_binlog(),
        "traffic_log_files": log_files,
        "traffic_log_bytes": log_bytes,
        "tls_fingerprint": tls_fingerprint(),
        "database_tls_fingerprint": (
            tls_fingerprint(Path(database_certificate)) if database_certificate else ""
        ),
        "ssh_host_key": host_key,
        "ssh_fingerprint": ssh_fingerprint(host_key),
        "commands": {
            "restart": settings.APPLIANCE_RESTART_COMMAND,
            "reboot": settings.APPLIANCE_REBOOT_COMMAND,
        },
        "traffic_log_dir": str(settings.APPLIANCE_TRAFFIC_LOG_DIR),
        "certificate_files": {
            "certificate": str(certificate_path()),
            "key": str(private_key_path()),
        },
    }
