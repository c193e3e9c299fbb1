"""Who the source is, as typed facts: its identity, role, licence, versions, sizes, fingerprints
and commands, parsed once from the peer API's `info` answer.

`SourceInfo.parse` is strict: it checks an answer from the source field by field (the source may
be old, compromised or lying) and raises `BadAnswer` naming the first field that is wrong.
`SourceInfo.stored` reads the form kept in a run's row (`as_dict`): it was checked when it was
received, and an older row may lack fields added since, so it fills those with defaults.
The server role is interpreted here only (`is_ha`, `is_ha_master`, `role_label`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from migrations_engine.peer_errors import BadAnswer, answer_field

STANDALONE = "standalone"
HA_MASTER = "ha_master"
SERVER_ROLES = (STANDALONE, HA_MASTER, "ha_slave")
ROLE_LABELS = {STANDALONE: "Standalone", HA_MASTER: "HA Master", "ha_slave": "HA Slave"}
HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
DOMAIN_NAME = re.compile(r"^(?=.{0,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)*$")
VERSION = re.compile(r"^\d{1,4}(\.\d{1,4}){0,3}$")
INFO_FIELDS: dict[str, type | tuple[type, ...]] = {
    "host_name": str,
    "domain_name": str,
    "ip_address": str,
    "server_role": str,
    "server_role_label": str,
    "software_version": str,
    "data_size_bytes": int,
    "data_tables": list,
    "traffic_log_files": int,
    "traffic_log_bytes": int,
    "licence": dict,
    "tls_fingerprint": str,
    "ssh_host_key": str,
    "commands": dict,
    "traffic_log_dir": str,
    "certificate_files": dict,
}
"""What every source's `info` answer holds, by type (other fields are optional)."""
LICENCE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "guid": str,
    "state": str,
    "has_active_maintenance": bool,
}


@dataclass(frozen=True)
class LicenceInfo:
    """The source's licence."""

    guid: str = ""
    state: str = ""
    has_active_maintenance: bool = False
    holder: str = ""
    maintenance_until: str | None = None

    @property
    def is_active(self) -> bool:
        return self.state == "active"


@dataclass(frozen=True)
class HAInfo:
    """How a source in high availability is set up (empty for a standalone one)."""

    replication_peer: str = ""
    round_robin_hosts: tuple[str, ...] = ()
    load_balancing_domain: str = ""


@dataclass(frozen=True)
class TableInfo:
    """One table of the source's data database, with its approximate size."""

    name: str
    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class DataBinlog:
    """The binary log of the source's data database server, as the source described it."""

    known: bool = False
    """Whether the source said anything (an older source does not)."""
    log_bin: bool = False
    format: str = ""
    server_version: str = ""


@dataclass(frozen=True)
class Commands:
    """The shell commands that restart the source's services and reboot it."""

    restart: str = ""
    reboot: str = ""


@dataclass(frozen=True)
class CertificateFiles:
    """Where the source keeps its web certificate and private key."""

    certificate: str = ""
    key: str = ""


@dataclass(frozen=True)
class SourceInfo:
    """The source as it described itself when the run was prepared."""

    host_name: str = ""
    domain_name: str = ""
    ip_address: str = ""
    server_role: str = STANDALONE
    server_role_label: str = ""
    ha: HAInfo = field(default_factory=HAInfo)
    licence: LicenceInfo = field(default_factory=LicenceInfo)
    software_version: str = ""
    data_schema_version: str = ""
    data_size_bytes: int = 0
    data_tables: tuple[TableInfo, ...] = ()
    data_events: tuple[str, ...] = ()
    data_binlog: DataBinlog = field(default_factory=DataBinlog)
    traffic_log_files: int = 0
    traffic_log_bytes: int = 0
    traffic_log_dir: str = ""
    tls_fingerprint: str = ""
    database_tls_fingerprint: str = ""
    ssh_host_key: str = ""
    ssh_fingerprint: str = ""
    commands: Commands = field(default_factory=Commands)
    certificate_files: CertificateFiles = field(default_factory=CertificateFiles)

    @classmethod
    def parse(cls, answer: dict[str, Any]) -> SourceInfo:
        """The source's `info` answer once every field this system relies on is of the right
        type and shape; BadAnswer naming the first field that is not."""
        answer_check(answer)
        return cls.stored(answer)

    @classmethod
    def stored(cls, data: dict[str, Any]) -> SourceInfo:
        """The info kept in a run's row (checked when received); what it lacks is a default."""
        return cls(
            host_name=str(data.get("host_name") or ""),
            domain_name=str(data.get("domain_name") or ""),
            ip_address=str(data.get("ip_address") or ""),
            server_role=str(data.get("server_role") or STANDALONE),
            server_role_label=str(data.get("server_role_label") or ""),
            ha=_ha(data.get("ha")),
            licence=_licence(data.get("licence")),
            software_version=str(data.get("software_version") or ""),
            data_schema_version=str(data.get("data_schema_version") or ""),
            data_size_bytes=int(data.get("data_size_bytes") or 0),
            data_tables=tuple(_table(table) for table in data.get("data_tables") or []),
            data_events=tuple(str(name) for name in data.get("data_events") or []),
            data_binlog=_binlog(data.get("data_binlog")),
            traffic_log_files=int(data.get("traffic_log_files") or 0),
            traffic_log_bytes=int(data.get("traffic_log_bytes") or 0),
            traffic_log_dir=str(data.get("traffic_log_dir") or ""),
            tls_fingerprint=str(data.get("tls_fingerprint") or ""),
            database_tls_fingerprint=str(data.get("database_tls_fingerprint") or ""),
            ssh_host_key=str(data.get("ssh_host_key") or ""),
            ssh_fingerprint=str(data.get("ssh_fingerprint") or ""),
            commands=Commands(**_strings(data.get("commands"), ("restart", "reboot"))),
            certificate_files=CertificateFiles(
                **_strings(data.get("certificate_files"), ("certificate", "key"))
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """The form kept in a run's row (JSON), read back by `stored`."""
        return asdict(self)

    @property
    def is_ha(self) -> bool:
        """Whether the source is in high availability (a Master or a Slave)."""
        return self.server_role != STANDALONE

    @property
    def is_ha_master(self) -> bool:
        return self.server_role == HA_MASTER

    @property
    def role_label(self) -> str:
        """The role as the source names it (or as this system does when it did not say)."""
        return self.server_role_label or ROLE_LABELS.get(self.server_role, self.server_role)

    @property
    def fqdn(self) -> str:
        """The source's fully qualified host name."""
        return ".".join(part for part in (self.host_name, self.domain_name) if part)

    @property
    def identity(self) -> dict[str, str]:
        """Its host name, domain name and address, as this system's identity is set."""
        return {
            "host_name": self.host_name,
            "domain_name": self.domain_name,
            "ip_address": self.ip_address,
        }

    @property
    def table_names(self) -> set[str]:
        return {table.name for table in self.data_tables}


def _ha(value: Any) -> HAInfo:
    if not isinstance(value, dict):
        return HAInfo()
    return HAInfo(
        replication_peer=str(value.get("replication_peer") or ""),
        round_robin_hosts=tuple(str(host) for host in value.get("round_robin_hosts") or []),
        load_balancing_domain=str(value.get("load_balancing_domain") or ""),
    )


def _licence(value: Any) -> LicenceInfo:
    if not isinstance(value, dict):
        return LicenceInfo()
    until = value.get("maintenance_until")
    return LicenceInfo(
        guid=str(value.get("guid") or ""),
        state=str(value.get("state") or ""),
        has_active_maintenance=bool(value.get("has_active_maintenance")),
        holder=str(value.get("holder") or ""),
        maintenance_until=str(until) if until else None,
    )


def _binlog(value: Any) -> DataBinlog:
    if not isinstance(value, dict):
        return DataBinlog()
    return DataBinlog(
        known=bool(value.get("known", True)),
        log_bin=bool(value.get("log_bin")),
        format=str(value.get("format") or ""),
        server_version=str(value.get("server_version") or ""),
    )


def _table(value: dict[str, Any]) -> TableInfo:
    return TableInfo(str(value["name"]), int(value.get("rows") or 0), int(value.get("bytes") or 0))


def _strings(value: Any, names: tuple[str, ...]) -> dict[str, str]:
    pairs = value if isinstance(value, dict) else {}
    return {name: str(pairs.get(name) or "") for name in names}


def answer_check(answer: dict[str, Any]) -> None:
    """BadAnswer naming the first field of an `info` answer that is missing or wrong."""
    for name, kind in INFO_FIELDS.items():
        answer_field(answer, name, kind, "info")
    for name, kind in LICENCE_FIELDS.items():
        answer_field(answer["licence"], name, kind, "info (licence)")
    for name in ("restart", "reboot"):
        answer_field(answer["commands"], name, str, "info (commands)")
    for name in ("certificate", "key"):
        answer_field(answer["certificate_files"], name, str, "info (certificate_files)")
    _values_check(answer)


def _values_check(answer: dict[str, Any]) -> None:
    """Values that end up in names, paths and decisions here must have their expected form."""
    if not HOST_NAME.match(answer["host_name"]):
        raise BadAnswer(f"The source's host name {answer['host_name'][:80]!r} is not a host name.")
    if not DOMAIN_NAME.match(answer["domain_name"]):
        raise BadAnswer("The source's domain name is not a domain name.")
    if answer["server_role"] not in SERVER_ROLES:
        raise BadAnswer(f"The source's server role {answer['server_role'][:40]!r} is unknown.")
    if answer["server_role"] != STANDALONE and not isinstance(answer.get("ha"), dict):
        raise BadAnswer("The source is in high availability but does not say how ('ha').")
    if not VERSION.match(answer["software_version"]):
        raise BadAnswer("The source's software version is not a version number.")
    numbers = ("data_size_bytes", "traffic_log_files", "traffic_log_bytes")
    if any(answer[name] < 0 for name in numbers):
        raise BadAnswer("The source's sizes must not be negative.")
    for table in answer["data_tables"]:
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            raise BadAnswer("The source's list of data tables is not a list of named tables.")
        for size in ("rows", "bytes"):
            if not isinstance(table.get(size, 0), int) or isinstance(table.get(size), bool):
                raise BadAnswer(f"The source's table {table['name'][:80]!r} has no {size} count.")
    events = answer.get("data_events", [])
    if not isinstance(events, list) or not all(isinstance(name, str) for name in events):
        raise BadAnswer("The source's list of data events is not a list of names.")
    _optional_check(answer)


def _optional_check(answer: dict[str, Any]) -> None:
    """Optional fields, when present, must be of the type `stored` reads them as."""
    ha = answer.get("ha")
    if isinstance(ha, dict):
        hosts = ha.get("round_robin_hosts", [])
        if not isinstance(hosts, list) or not all(isinstance(host, str) for host in hosts):
            raise BadAnswer("The source's round-robin hosts ('ha') are not a list of names.")
    binlog = answer.get("data_binlog", {})
    if not isinstance(binlog, dict) or not all(
        isinstance(binlog.get(name, ""), str) for name in ("format", "server_version")
    ):
        raise BadAnswer("The source's description of its binary log ('data_binlog') is not valid.")
    for name in ("data_schema_version", "database_tls_fingerprint", "ssh_fingerprint"):
        if not isinstance(answer.get(name, ""), str):
            raise BadAnswer(f"The source's answer to info has '{name}' that is not a str.")
