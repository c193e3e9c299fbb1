"""Checks before a migration starts: is the source address acceptable, can it be reached on
every port the migration uses, does its TLS answer, is the password right, do the versions fit,
and is there room here for its data and logs. Each check says what to do when it fails.

Used by the wizard's Source step (with a Re-check button) and by the command line.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from appliance import SOFTWARE_VERSION
from appliance.models import Node
from migrations_engine.peer_client import (
    PeerClient,
    PeerError,
    PeerUnreachable,
    certificate_fingerprint,
    fetch_certificate,
)

PORT_TIMEOUT = 2.5
"""Seconds to wait for a port: a filtered port is reported within 3 seconds."""

PORTS = {
    80: "HTTP (redirects to HTTPS)",
    443: "HTTPS: the source's peer API",
    3306: "MySQL: the data copy",
    22: "SSH: traffic logs, certificates, reboot",
}
PASSWORD_CHECK = "Admin User password"  # noqa: S105 (the name of a check)
SPACE_MARGIN = 1.2
"""Room wanted here, as a multiple of what the source holds."""


class AddressRefused(ValueError):
    """The address cannot be a source; the message says why."""


@dataclass(frozen=True)
class Check:
    """One pre-flight check: its name, whether it passed, what was found, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def own_addresses() -> set[str]:
    """This system's own addresses (its identity and what its host name resolves to)."""
    addresses = {str(Node.objects.filter(id=1).values_list("ip_address", flat=True).first() or "")}
    try:
        resolved = socket.getaddrinfo(socket.gethostname(), None)
        addresses.update(str(info[4][0]) for info in resolved)
    except OSError:
        pass
    addresses.add(settings.APPLIANCE_WEB_ADDRESS)
    return {address for address in addresses if address}


def source_address_check(text: str) -> str:
    """The source's address in normal form, or AddressRefused with the reason."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise AddressRefused(f"{text!r} is not an IPv4 or IPv6 address.") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:a.b.c.d is judged as a.b.c.d
    if address.is_unspecified:
        raise AddressRefused("0.0.0.0 and :: mean 'any address', not a system.")
    if address.is_multicast:
        raise AddressRefused("A multicast address cannot be a source system.")
    if address.is_link_local:
        raise AddressRefused("Link-local addresses (such as 169.254.169.254) are not allowed.")
    if address.is_loopback and not settings.WIZARD_ALLOW_LOOPBACK:
        raise AddressRefused("A loopback address is this system itself, not a source.")
    if str(address) in own_addresses():
        raise AddressRefused("That is this system's own address: name the old system.")
    return str(address)


def port_check(address: str, port: int, timeout: float = PORT_TIMEOUT) -> Check:
    """Whether a TCP port of the source accepts connections."""
    name = f"Port {port} ({PORTS.get(port, 'TCP')})"
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return Check(name, True, "open")
    except TimeoutError:
        detail = f"no answer within {timeout:.0f} seconds (filtered by a firewall?)"
    except OSError as error:
        detail = "connection refused" if isinstance(error, ConnectionRefusedError) else str(error)
    return Check(
        name,
        False,
        detail,
        f"Open TCP port {port} from this system to {address} (firewall, security group), "
        "and check that the service runs on the source.",
    )


def ports_check(address: str, ports: Iterable[int]) -> list[Check]:
    """All port checks at once, in the order given."""
    ports = list(ports)
    with ThreadPoolExecutor(max_workers=len(ports)) as pool:
        return list(pool.map(lambda port: port_check(address, port), ports))


def disk_check(source_info: dict[str, Any]) -> list[Check]:
    """Room on this system for the source's data and (if copied) its traffic logs."""
    checks = []
    wanted = {
        "Disk space for the data": (
            int(source_info.get("data_size_bytes", 0)),
            settings.APPLIANCE_VAR_DIR,
        ),
        "Disk space for the traffic logs": (
            int(source_info.get("traffic_log_bytes", 0)),
            settings.APPLIANCE_TRAFFIC_LOG_DIR,
        ),
    }
    for name, (needed, directory) in wanted.items():
        free = shutil.disk_usage(_existing(Path(directory))).free
        ok = free >= needed * SPACE_MARGIN
        detail = f"{free / 1e9:.1f} GB free, {needed / 1e9:.2f} GB needed"
        checks.append(Check(name, ok, detail, "" if ok else f"Free space in {directory}."))
    return checks


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def version_check(source_info: dict[str, Any]) -> Check:
    """The source must not run a newer version of the software than this system."""
    theirs = str(source_info.get("software_version", "?"))
    if _version(theirs) > _version(SOFTWARE_VERSION):
        return Check(
            "Software versions",
            False,
            f"source {theirs}, this system {SOFTWARE_VERSION}",
            f"Update this system to version {theirs} or newer first.",
        )
    upgrade = (
        " (its data will be upgraded)" if _version(theirs) < _version(SOFTWARE_VERSION) else ""
    )
    return Check(
        "Software versions", True, f"source {theirs}, this system {SOFTWARE_VERSION}{upgrade}"
    )


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


@dataclass(frozen=True)
class Preflight:
    """What the checks found: every check, and (when the password was right) the source."""

    checks: list[Check]
    certificate: str = ""
    fingerprint: str = ""
    source_info: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def preflight(
    address: str, password: str, *, port: int = 443, ports: Iterable[int] | None = None
) -> Preflight:
    """Run every check against the source; later checks are skipped when earlier ones fail."""
    checks = ports_check(address, ports or list(PORTS))
    try:
        pem = fetch_certificate(address, port, timeout=PORT_TIMEOUT)
    except PeerUnreachable as error:
        checks.append(Check("TLS handshake", False, str(error), "Check the source's web service."))
        return Preflight(checks)
    fingerprint = certificate_fingerprint(pem)
    checks.append(Check("TLS handshake", True, f"certificate SHA-256 {fingerprint}"))
    client = PeerClient(address, pem, port, timeout=10)
    try:
        client.login(password)
        info = client.info()
        client.logout()
    except PeerError as error:
        fix = "Enter the Admin User password of the source system."
        if error.retry_after:
            fix = f"Wait {error.retry_after} seconds, then try again with the right password."
        checks.append(Check(PASSWORD_CHECK, False, str(error), fix))
        return Preflight(checks, pem, fingerprint)
    checks.append(Check(PASSWORD_CHECK, True, "accepted by the source"))
    checks.append(version_check(info))
    checks.extend(disk_check(info))
    return Preflight(checks, pem, fingerprint, info)
