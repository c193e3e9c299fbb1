"""A server that passes for a source's database server but is not it.

It greets like MariaDB, offers TLS (or none) with a certificate of its own choosing and records
what a client sends it: in clear text before TLS, and decrypted after the TLS handshake. A client
that checks the certificate it was handed must send nothing after the handshake, above all not
its login.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pymysql.constants import CLIENT

CAPABILITIES = (
    CLIENT.LONG_PASSWORD
    | CLIENT.PROTOCOL_41
    | CLIENT.SECURE_CONNECTION
    | CLIENT.PLUGIN_AUTH
    | CLIENT.CONNECT_WITH_DB
    | CLIENT.TRANSACTIONS
)
SSL_REQUEST_BYTES = 4 + 32


def greeting(offer_tls: bool) -> bytes:
    """MariaDB's first packet: version, salt, capabilities (TLS among them or not)."""
    capabilities = CAPABILITIES | (CLIENT.SSL if offer_tls else 0)
    salt = bytes(byte % 94 + 33 for byte in os.urandom(20))
    payload = (
        b"\x0a5.5.5-10.11.0-MariaDB\x00"
        + struct.pack("<I", 7)
        + salt[:8]
        + b"\x00"
        + struct.pack("<HBHHB", capabilities & 0xFFFF, 45, 2, capabilities >> 16, 21)
        + b"\x00" * 10
        + salt[8:]
        + b"\x00mysql_native_password\x00"
    )
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


def certificate_signed_by(
    issuer_cert: Path, issuer_key: Path, address: str, cert_path: Path, key_path: Path
) -> None:
    """A certificate for `address` issued by another certificate's key (a chain to it)."""
    issuer = x509.load_pem_x509_certificate(issuer_cert.read_bytes())
    signer = serialization.load_pem_private_key(issuer_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"not {address}")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass
class Impostor:
    """Serves one connection on `host` (a free port) until the client hangs up."""

    host: str
    certificate: Path | None = None
    """Its certificate and key (PEM); None: it offers no TLS at all."""
    key: Path | None = None
    port: int = 0
    before_tls: bytearray = field(default_factory=bytearray)
    after_handshake: bytearray = field(default_factory=bytearray)
    handshake_completed: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> Impostor:
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(10)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()

    def _serve(self) -> None:
        assert self._listener is not None
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(5)
            connection.sendall(greeting(offer_tls=self.certificate is not None))
            self._read_into(connection, self.before_tls, SSL_REQUEST_BYTES)
            if self.certificate is None or len(self.before_tls) < SSL_REQUEST_BYTES:
                return
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate, self.key)
            try:
                secure = context.wrap_socket(connection, server_side=True)
            except (OSError, ssl.SSLError):
                return  # the client refused the certificate during the handshake
            self.handshake_completed.set()
            with secure:
                self._read_into(secure, self.after_handshake, 1 << 16)

    @staticmethod
    def _read_into(connection: socket.socket, into: bytearray, limit: int) -> None:
        """Read what the client sends until it hangs up, stops talking or `limit` bytes came."""
        while len(into) < limit:
            try:
                data = connection.recv(limit - len(into))
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            into += data
