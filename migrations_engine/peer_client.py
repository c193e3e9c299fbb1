"""Client of a source's peer API over HTTPS with its certificate pinned.

The source's certificate is usually self-signed: the administrator confirms its SHA-256
fingerprint once (trust on first use) and from then on only that exact certificate is accepted.

The source may be old, compromised or lying, so its answers are bounded: each request has an
overall deadline and a size limit, and an answer of the wrong shape is a clear `BadAnswer`,
never a crash further on.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from migrations_engine.peer_errors import (
    CERTIFICATE_CHANGED_FIX,
    BadAnswer,
    CertificateMismatch,
    PeerError,
    PeerUnreachable,
    answer_field,
    answer_object,
)
from migrations_engine.source_info import SourceInfo

__all__ = [
    "CERTIFICATE_CHANGED_FIX",
    "BadAnswer",
    "CertificateMismatch",
    "PeerClient",
    "PeerError",
    "PeerUnreachable",
    "answer_field",
    "answer_object",
]

API_PREFIX = "/api/peer/v1/"
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""The largest answer read from a source (its info with thousands of tables is well below)."""
READ_BLOCK = 64 * 1024
MAX_RETRY_AFTER = 3600


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
        self.watched: socket.socket | None = None
        """The socket in use, for a deadline to cut whatever phase the exchange is in."""

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.watched = raw
        name = _tls_name(self._pem, self.host)
        try:
            self.sock = self.watched = self._context.wrap_socket(raw, server_hostname=name)
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


def _read_bounded(response: http.client.HTTPResponse) -> bytes:
    """The answer's body, refused as soon as it grows past MAX_ANSWER_BYTES."""
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise BadAnswer(f"The source's answer is too large ({int(declared)} bytes).")
    parts: list[bytes] = []
    size = 0
    while block := response.read1(READ_BLOCK):
        size += len(block)
        if size > MAX_ANSWER_BYTES:
            raise BadAnswer(f"The source's answer is larger than {MAX_ANSWER_BYTES} bytes.")
        parts.append(block)
    return b"".join(parts)


class Deadline:
    """Cuts a connection once its time is up, whatever it is waiting for (a source that
    trickles its answer a byte at a time never hits a per-read timeout)."""

    def __init__(self, connection: PinnedHTTPSConnection, seconds: float) -> None:
        self.connection = connection
        self.passed = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.passed = True
        sock = self.connection.watched  # the answer may hold it after the connection let go
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


def _retry_after(value: str | None) -> int:
    """Seconds from a Retry-After header, within reason (0 when absent or not a number)."""
    if not value or not value.strip().isdigit():
        return 0
    return min(int(value.strip()), MAX_RETRY_AFTER)


class PeerClient:
    """Talks to one source's peer API: log in, then read and change its state."""

    def __init__(self, address: str, certificate_pem: str, port: int = 443, timeout: float = 15):
        self.address = address
        self.port = port
        self.certificate_pem = certificate_pem
        self.timeout = timeout
        self.token = ""

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request and return its JSON answer; raise PeerError with the reason.

        The whole exchange (connect, send, answer) must end within `timeout` seconds.
        """
        connection = PinnedHTTPSConnection(
            self.address, self.port, self.certificate_pem, self.timeout
        )
        deadline = Deadline(connection, self.timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = json.dumps(body).encode() if body is not None else None
        try:
            connection.request(method, API_PREFIX + path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = _read_bounded(response)
            if deadline.passed:
                raise PeerUnreachable("cut at the deadline")
        except PeerError as error:
            if not deadline.passed:
                raise
            raise self._late() from error
        except (OSError, http.client.HTTPException, ssl.SSLError) as error:
            if deadline.passed:
                raise self._late() from None
            raise PeerUnreachable(
                f"The source {self.address}:{self.port} did not answer ({error})."
            ) from None
        finally:
            deadline.cancel()
            connection.close()
        return self._decode(response, raw, path)

    def _late(self) -> PeerUnreachable:
        return PeerUnreachable(
            f"The source {self.address}:{self.port} did not finish its answer in time "
            f"({self.timeout:.0f} s)."
        )

    def _decode(self, response: http.client.HTTPResponse, raw: bytes, path: str) -> Any:
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            data = None
        if response.status >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            message = error if isinstance(error, str) and error else f"HTTP {response.status}"
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise PeerError(message[:500], response.status, retry_after)
        if data is None:
            raise BadAnswer(f"The source's answer to {path} is not JSON (HTTP {response.status}).")
        return data

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request whose answer must be a JSON object."""
        return answer_object(self.request(method, path, body), path)

    def login(self, password: str) -> None:
        """Trade the Admin User password for a token (kept in this client only)."""
        self.token = ""
        answer = self.call("POST", "auth", {"password": password})
        self.token = answer_field(answer, "token", str, "auth")

    def logout(self) -> None:
        if self.token:
            self.request("DELETE", "auth")
            self.token = ""

    def info(self) -> dict[str, Any]:
        """Who the source is, as it answered, once checked field by field (`SourceInfo.parse`)."""
        answer = self.call("GET", "info")
        SourceInfo.parse(answer)
        return answer

    def source_info(self) -> SourceInfo:
        """Who the source is, as typed facts (BadAnswer naming the first wrong field)."""
        return SourceInfo.parse(self.call("GET", "info"))

    def settings(self) -> dict[str, Any]:
        answer = self.call("GET", "settings")
        groups = answer_field(answer, "settings", dict, "settings")
        if not all(isinstance(pairs, dict) for pairs in groups.values()):
            raise BadAnswer("The source's settings are not groups of key/value pairs.")
        return answer

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
        return self.call("POST", "configuration", body)

    def database_account(self, run: str, *, replication: bool = False) -> dict[str, Any]:
        """The run's read-only account on the source's data database (with replication rights
        only when the run replicates)."""
        return dict(
            self.request("POST", "credentials/database", {"run": run, "replication": replication})
        )

    def ssh_key(self, run: str, public_key: str) -> dict[str, Any]:
        return self.call("POST", "credentials/ssh-key", {"run": run, "public_key": public_key})

    def revoke(self, run: str, kind: str | None = None) -> int:
        body: dict[str, Any] = {"run": run} if kind is None else {"run": run, "kind": kind}
        return int(
            answer_field(self.call("POST", "credentials/revoke", body), "revoked", int, "revoke")
        )
