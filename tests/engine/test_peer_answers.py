"""A source that lies or stalls in its peer-API answers: a real TLS server whose answers the
tests choose. Every such answer ends in a clear PeerError within the deadline, never a crash.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from appliance.certificates import self_signed_certificate
from migrations_engine.peer_client import (
    MAX_ANSWER_BYTES,
    BadAnswer,
    PeerClient,
    PeerError,
    PeerUnreachable,
)
from migrations_engine.preflight import preflight_login
from tests.engine.runs import FULL_INFO

ADDRESS = "127.0.0.1"
Answer = Callable[[BaseHTTPRequestHandler], None]
GOOD_INFO = FULL_INFO


def json_answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        raw = json.dumps(body).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    return answer


class LyingSource:
    """An HTTPS server with its own certificate whose answers, by path, the test sets."""

    def __init__(self, directory: Path) -> None:
        self_signed_certificate(
            cert_path=directory / "c.pem", key_path=directory / "k.pem",
            common_name="liar", addresses=[ADDRESS],
        )  # fmt: skip
        self.certificate = (directory / "c.pem").read_text()
        self.answers: dict[str, Answer] = {"auth": json_answer({"token": "t"})}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                answers[self.path.rsplit("/", 1)[-1]](self)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((ADDRESS, 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(directory / "c.pem", directory / "k.pem")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self, timeout: float = 3) -> PeerClient:
        client = PeerClient(ADDRESS, self.certificate, self.port, timeout=timeout)
        client.token = "t"
        return client


@pytest.fixture
def liar(tmp_path: Path) -> Iterator[LyingSource]:
    source = LyingSource(tmp_path)
    yield source
    source.server.shutdown()


def test_a_truthful_info_answer_is_accepted(liar: LyingSource) -> None:
    liar.answers["info"] = json_answer(GOOD_INFO)
    assert liar.client().info()["host_name"] == "appliance-old"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"host_name": 7}, "host_name"),
        ({"data_size_bytes": "big"}, "data_size_bytes"),
        ({"data_size_bytes": True}, "data_size_bytes"),
        ({"licence": None}, "licence"),
        ({"licence": {"guid": "G"}}, "state"),
        ({"host_name": "../../etc/cron.d/x"}, "host name"),
        ({"server_role": "root"}, "server role"),
        ({"server_role": "ha_master"}, "high availability"),
        ({"software_version": "3.2; DROP"}, "version"),
        ({"data_tables": ["subscriber"]}, "data tables"),
        ({"commands": {"restart": "true"}}, "reboot"),
    ],
)
def test_an_info_answer_of_the_wrong_shape_is_a_clear_error(
    liar: LyingSource, change: dict[str, Any], named: str
) -> None:
    liar.answers["info"] = json_answer(GOOD_INFO | change)
    with pytest.raises(BadAnswer, match=named):
        liar.client().info()


def test_a_missing_field_is_named(liar: LyingSource) -> None:
    liar.answers["info"] = json_answer({k: v for k, v in GOOD_INFO.items() if k != "licence"})
    with pytest.raises(BadAnswer, match="lacks 'licence'"):
        liar.client().info()


def test_an_answer_that_is_not_an_object_or_not_json_is_refused(liar: LyingSource) -> None:
    liar.answers["info"] = json_answer(["a", "list"])
    with pytest.raises(BadAnswer, match="not a JSON object"):
        liar.client().info()

    def garbage(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "5")
        handler.end_headers()
        handler.wfile.write(b"<html")

    liar.answers["settings"] = garbage
    with pytest.raises(BadAnswer, match="not JSON"):
        liar.client().settings()


def test_an_answer_larger_than_the_limit_is_refused(liar: LyingSource) -> None:
    def flood(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()  # no length: the client must stop reading by itself
        block = b" " * 65536
        try:
            for _ in range(MAX_ANSWER_BYTES // len(block) + 10):
                handler.wfile.write(block)
        except OSError:
            pass

    liar.answers["info"] = flood
    with pytest.raises(BadAnswer, match="larger than"):
        liar.client(timeout=30).info()
    liar.answers["info"] = json_answer(GOOD_INFO)

    def lying_length(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(MAX_ANSWER_BYTES * 4))
        handler.end_headers()

    liar.answers["settings"] = lying_length
    with pytest.raises(BadAnswer, match="too large"):
        liar.client().settings()
    assert liar.client().info()["host_name"] == "appliance-old"


def test_a_source_that_trickles_its_answer_hits_the_deadline(liar: LyingSource) -> None:
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(1000):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.2)  # each byte well within any per-read timeout
        except OSError:
            pass

    liar.answers["info"] = trickle
    started = time.monotonic()
    with pytest.raises(PeerUnreachable, match="in time"):
        liar.client(timeout=2).info()
    assert time.monotonic() - started < 4


def test_errors_and_retry_after_of_any_shape_are_read_safely(liar: LyingSource) -> None:
    liar.answers["auth"] = json_answer(["no"], status=429, headers={"Retry-After": "soon"})
    with pytest.raises(PeerError) as refused:
        liar.client().login("pw")
    assert (refused.value.status, refused.value.retry_after) == (429, 0)
    liar.answers["auth"] = json_answer({"error": "locked"}, 429, {"Retry-After": "99999999"})
    with pytest.raises(PeerError) as refused:
        liar.client().login("pw")
    assert refused.value.retry_after == 3600
    liar.answers["auth"] = json_answer({"token": 12})
    with pytest.raises(BadAnswer, match="token"):
        liar.client().login("pw")
    liar.answers["revoke"] = json_answer({"revoked": "all"})
    with pytest.raises(BadAnswer, match="revoked"):
        liar.client().revoke("run-1")


def test_the_source_step_reports_a_lying_info_answer_as_a_failed_check(
    liar: LyingSource,
) -> None:
    liar.answers["info"] = json_answer(GOOD_INFO | {"data_size_bytes": "lots"})
    checks, info = preflight_login(ADDRESS, liar.certificate, "pw", port=liar.port)
    assert info is None
    assert not checks[-1].ok
    assert "data_size_bytes" in checks[-1].detail
    assert "appliance with this software" in checks[-1].fix
