"""Client of a source's peer API over HTTPS with its certificate pinned.

The source's certificate is usually self-signed: the administrator confirms its SHA-256
fingerprint once (trust on first use) and from then on only that exact certificate is accepted.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

API_PREFIX = "/api/peer/v1/"


class PeerError(Exception):
    """The source refused or failed a request; the message is meant for the administrator."""

    def __init__(self, message: str, status: int = 0, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PeerUnreachable(PeerError):
    """The source did not answer on its HTTPS port."""


class CertificateMismatch(PeerError):
    """The source presented a certificate other than the pinned one."""


def certificate_fingerprint(pem: str) -> str:
    """SHA-256 fingerprint of a PEM certificate as colon-separated hex."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def fetch_certificate(address: str, port: int = 443, timeout: float = 5) -> str:
    """The certificate a server presents, unverified: only to show its fingerprint for trust."""
    try:
        return ssl.get_server_certificate((address, port), timeout=timeout)
    except (OSError, ssl.SSLError) as error:
        raise PeerUnreachable(f"No TLS answer from {address}:{port}: {error}") from None


def _tls_name(pem: str, address: str) -> str:
    """The name to check the pinned certificate against: its first DNS name, else the address."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    try:
        alt_names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return address
    names = alt_names.value.get_values_for_type(x509.DNSName)
    return names[0] if names else address


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection that trusts exactly one certificate."""

    def __init__(self, address: str, port: int, pem: str, timeout: float) -> None:
        context = ssl.create_default_context(cadata=pem)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        super().__init__(address, port, timeout=timeout, context=context)
        self._pem = pem
        self._context = context

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        name = _tls_name(self._pem, self.host)
        try:
            self.sock = self._context.wrap_socket(raw, server_hostname=name)
        except ssl.SSLCertVerificationError:
            raw.close()
            raise CertificateMismatch(
                f"{self.host} presented a certificate other than the one you confirmed. "
                "Stop here unless you know why it changed; then confirm the new fingerprint."
            ) from None
        presented = ssl.DER_cert_to_PEM_cert(self.sock.getpeercert(binary_form=True) or b"")
        if certificate_fingerprint(presented) != certificate_fingerprint(self._pem):
            self.sock.close()
            raise CertificateMismatch(f"{self.host} presented an unexpected certificate.")


class PeerClient:
    """Talks to one source's peer API: log in, then read and change its state."""

    def __init__(self, address: str, certificate_pem: str, port: int = 443, timeout: float = 15):
        self.address = address
        self.port = port
        self.certificate_pem = certificate_pem
        self.timeout = timeout
        self.token = ""

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request and return its JSON answer; raise PeerError with the reason."""
        connection = PinnedHTTPSConnection(
            self.address, self.port, self.certificate_pem, self.timeout
        )
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = json.dumps(body).encode() if body is not None else None
        try:
            connection.request(method, API_PREFIX + path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except PeerError:
            raise
        except (OSError, http.client.HTTPException) as error:
            raise PeerUnreachable(
                f"The source {self.address}:{self.port} did not answer ({error})."
            ) from None
        finally:
            connection.close()
        return self._decode(response, raw)

    def _decode(self, response: http.client.HTTPResponse, raw: bytes) -> Any:
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = {"error": f"unexpected answer (HTTP {response.status})"}
        if response.status >= 400:
            retry_after = int(response.headers.get("Retry-After", "0") or 0)
            raise PeerError(str(data.get("error", "")), response.status, retry_after)
        return data

    def login(self, password: str) -> None:
        """Trade the Admin User password for a token (kept in this client only)."""
        self.token = ""
        self.token = str(self.request("POST", "auth", {"password": password})["token"])

    def logout(self) -> None:
        if self.token:
            self.request("DELETE", "auth")
            self.token = ""

    def info(self) -> dict[str, Any]:
        return dict(self.request("GET", "info"))

    def settings(self) -> dict[str, Any]:
        return dict(self.request("GET", "settings"))

    def maintenance(self, *, enabled: bool, reason: str = "") -> None:
        self.request("POST", "maintenance", {"enabled": enabled, "reason": reason})

    def round_robin_hosts(self, hosts: list[str]) -> None:
        self.request("POST", "ha/round-robin", {"hosts": hosts})

    def replication(self, *, running: bool) -> None:
        self.request("POST", "ha/replication", {"running": running})

    def licence_release(self, *, guid: str, transferred_to: str) -> None:
        self.request("POST", "licence/release", {"guid": guid, "transferred_to": transferred_to})

    def configuration(
        self,
        settings: dict[str, Any],
        *,
        identity: dict[str, str] | None = None,
        migrated_to: str | None = None,
    ) -> dict[str, Any]:
        """Replace setting groups; optionally a new identity and the migrated mark ('' clears)."""
        body: dict[str, Any] = {"settings": settings}
        if identity is not None:
            body["identity"] = identity
        if migrated_to is not None:
            body["migrated_to"] = migrated_to
        return dict(self.request("POST", "configuration", body))

    def database_account(self, run: str) -> dict[str, Any]:
        return dict(self.request("POST", "credentials/database", {"run": run}))

    def ssh_key(self, run: str, public_key: str) -> dict[str, Any]:
        return dict(
            self.request("POST", "credentials/ssh-key", {"run": run, "public_key": public_key})
        )

    def revoke(self, run: str, kind: str | None = None) -> int:
        body: dict[str, Any] = {"run": run} if kind is None else {"run": run, "kind": kind}
        return int(self.request("POST", "credentials/revoke", body)["revoked"])
