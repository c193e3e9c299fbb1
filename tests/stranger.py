"""A stranger on a source's ports: a real TLS server with a certificate nobody confirmed, and
plain TCP listeners on the other ports, recording every byte they receive.

The tests point the wizard at it and then look for the Admin User password in what arrived.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from appliance.certificates import self_signed_certificate

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\n{}"
)


class Stranger:
    """Listens on `address` at a TLS port and some plain ports; `received` holds every byte."""

    def __init__(self, directory: Path, address: str, tls_port: int, plain_ports: list[int]):
        self.address = address
        self.fingerprint = self_signed_certificate(
            cert_path=directory / "stranger.crt",
            key_path=directory / "stranger.key",
            common_name="stranger",
            addresses=[address],
        )
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(directory / "stranger.crt", directory / "stranger.key")
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._listeners = [self._listen(tls_port, tls=True)]
        self._listeners += [self._listen(port, tls=False) for port in plain_ports]

    def _listen(self, port: int, *, tls: bool) -> socket.socket:
        listener = socket.create_server((self.address, port), reuse_port=False)
        listener.settimeout(0.2)
        threading.Thread(target=self._accept, args=(listener, tls), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket, tls: bool) -> None:
        while listener.fileno() >= 0:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection, tls), daemon=True).start()

    def _serve(self, connection: socket.socket, tls: bool) -> None:
        with self._lock:
            self.connections += 1
        connection.settimeout(5)
        try:
            if tls:
                connection = self.context.wrap_socket(connection, server_side=True)
            while data := connection.recv(65536):
                with self._lock:
                    self.received += data
                if tls and b"\r\n\r\n" in data:
                    connection.sendall(ANSWER)
        except (OSError, ssl.SSLError):
            pass
        finally:
            connection.close()

    def stop(self) -> None:
        for listener in self._listeners:
            listener.close()
