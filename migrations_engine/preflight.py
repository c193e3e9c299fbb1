"""Checks before a migration starts: is the source address acceptable, can it be reached on
every port the migration uses, does its TLS answer, is the password right, do the versions fit,
and is there room here for its data and logs. Each check says what to do when it fails.

The checks come in two parts so that the password only ever goes to a confirmed certificate:
`preflight_reach` needs no password (address, ports, TLS handshake); the administrator then
confirms the certificate's fingerprint; `preflight_login` sends the password through a client
pinned to that certificate.

Used by the wizard's Source step (with a Re-check button) and by the command line.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from appliance import SOFTWARE_VERSION
from appliance.models import Node
from migrations_engine.peer_client import (
    CERTIFICATE_CHANGED_FIX,
    BadAnswer,
    CertificateMismatch,
    PeerClient,
    PeerError,
    PeerUnreachable,
    certificate_fingerprint,
    fetch_certificate,
)
from migrations_engine.source_info import SourceInfo

PORT_TIMEOUT = 2.5
"""Seconds to wait for a port: a filtered port is reported within 3 seconds."""

PORTS = {
    80: "HTTP (redirects to HTTPS)",
    443: "HTTPS: the source's peer API",
    3306: "MySQL: the data copy",
    22: "SSH: traffic logs, certificates, reboot",
}
PASSWORD_CHECK = "Admin User password"  # noqa: S105 (the name of a check)
PASSWORD_NOT_SENT = "not sent yet"  # noqa: S105 (what a check found)
TLS_CHECK = "TLS handshake"
CERTIFICATE_CHECK = "Certificate as confirmed"
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
    pending: bool = False
    """Not run yet: it waits for the administrator (the password check, for the certificate)."""

    @property
    def refused_password(self) -> bool:
        """Whether this is the password check and the source refused the password."""
        return self.name == PASSWORD_CHECK and not self.ok and not self.pending


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


def disk_check(source: SourceInfo) -> list[Check]:
    """Room on this system for the source's data and (if copied) its traffic logs."""
    checks = []
    wanted = {
        "Disk space for the data": (source.data_size_bytes, settings.APPLIANCE_VAR_DIR),
        "Disk space for the traffic logs": (
            source.traffic_log_bytes,
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


def version_check(source: SourceInfo) -> Check:
    """The source must not run a newer version of the software than this system."""
    theirs = source.software_version or "?"
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
    """What the checks found: every check, the certificate presented, and (once the password
    went to the confirmed certificate and was accepted) the source's info."""

    checks: list[Check]
    certificate: str = ""
    fingerprint: str = ""
    source_info: SourceInfo | None = None

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def reached(self) -> bool:
        """Whether the source's HTTPS answered with a certificate (so it can be confirmed)."""
        return bool(self.certificate)


def preflight_reach(
    address: str, *, port: int = 443, ports: Iterable[int] | None = None
) -> Preflight:
    """The checks that need no password: every port at once, then the TLS handshake."""
    checks = ports_check(address, ports or list(PORTS))
    try:
        pem = fetch_certificate(address, port, timeout=PORT_TIMEOUT)
    except PeerUnreachable as error:
        checks.append(Check(TLS_CHECK, False, str(error), "Check the source's web service."))
        return Preflight(checks)
    fingerprint = certificate_fingerprint(pem)
    checks.append(Check(TLS_CHECK, True, f"certificate SHA-256 {fingerprint}"))
    return Preflight(checks, pem, fingerprint)


def password_pending() -> Check:
    """The password check before the certificate is confirmed: nothing was sent."""
    return Check(
        PASSWORD_CHECK,
        False,
        PASSWORD_NOT_SENT,
        "Compare the certificate's fingerprint with the one on the source's console and "
        "confirm it: only then is the password sent, and only to that certificate.",
        pending=True,
    )


def certificate_changed(presented: str, confirmed: str) -> Check:
    """The source now presents another certificate than the one confirmed: stop."""
    return Check(
        CERTIFICATE_CHECK,
        False,
        f"the source now presents the certificate {presented}, not the one you confirmed "
        f"({confirmed}); the password was not sent",
        CERTIFICATE_CHANGED_FIX,
    )


def preflight_login(
    address: str, certificate: str, password: str, *, port: int = 443
) -> tuple[list[Check], SourceInfo | None]:
    """The checks that need the password, sent only through a client pinned to `certificate`:
    the password itself, the versions and the disk space here."""
    client = PeerClient(address, certificate, port, timeout=10)
    try:
        client.login(password)
        info = client.source_info()
        client.logout()
    except CertificateMismatch as error:
        return [Check(CERTIFICATE_CHECK, False, str(error), CERTIFICATE_CHANGED_FIX)], None
    except PeerError as error:
        fix = "Enter the Admin User password of the source system."
        if error.retry_after:
            fix = f"Wait {error.retry_after} seconds, then try again with the right password."
        elif isinstance(error, (BadAnswer, PeerUnreachable)):
            fix = error.fix
        return [Check(PASSWORD_CHECK, False, str(error), fix)], None
    checks = [Check(PASSWORD_CHECK, True, "accepted by the source")]
    checks.append(version_check(info))
    checks.extend(disk_check(info))
    return checks, info


def preflight(
    address: str,
    password: str,
    *,
    fingerprint: str,
    port: int = 443,
    ports: Iterable[int] | None = None,
) -> Preflight:
    """Every check, in the order that keeps the password safe: reach the source, compare its
    certificate with the fingerprint the administrator confirmed, and only then log in."""
    reached = preflight_reach(address, port=port, ports=ports)
    if not reached.reached:
        return reached
    if fingerprint_normalise(reached.fingerprint) != fingerprint_normalise(fingerprint):
        checks = [*reached.checks, certificate_changed(reached.fingerprint, fingerprint)]
        return Preflight(checks, reached.certificate, reached.fingerprint)
    login_checks, info = preflight_login(address, reached.certificate, password, port=port)
    return Preflight(
        [*reached.checks, *login_checks], reached.certificate, reached.fingerprint, info
    )


def fingerprint_normalise(text: str) -> str:
    """A SHA-256 fingerprint as 64 upper-case hex digits, however it was written."""
    text = text.strip()
    if "=" in text:  # as `openssl x509 -noout -fingerprint -sha256` prints it
        text = text.split("=", 1)[1]
    return re.sub(r"[^0-9A-Fa-f]", "", text).upper()
