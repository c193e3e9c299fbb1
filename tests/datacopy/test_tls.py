"""The copy reads the source only over TLS, from a server presenting the certificate it was given.

What the source's server sees of a copy's sessions (their TLS cipher), and what a server with
another certificate, or without TLS, gets from the copier: nothing, not even the login.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.certificates import self_signed_certificate
from config.env import MySQLURL
from devtools.mariadb import MariaDBServer
from migrations_engine.datacopy import ProgressEvent, copy_database
from migrations_engine.datacopy.sql import SourceDatabase, SourceTrustError, connect_source

from .conftest import (
    SOURCE_HOST,
    Scratch,
    query,
    quote,
    run_sql,
    session_ciphers,
    source_database,
    target_connection,
)
from .impostor import Impostor, certificate_signed_by

PASSWORD = "tls-Only-pw1"


@pytest.fixture
def tls_account(scratch: Scratch) -> Iterator[str]:
    """An account on the source that may read the scratch database, and only over TLS."""
    user = f"tls_{scratch.name[-8:]}"
    with scratch.source_server.connect() as connection:
        run_sql(
            connection,
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL",
            f"GRANT SELECT, SHOW VIEW, TRIGGER ON {quote(scratch.name)}.* TO '{user}'@'%'",
        )
    yield user
    with scratch.source_server.connect() as connection:
        run_sql(connection, f"DROP USER IF EXISTS '{user}'@'%'")


def fill(scratch: Scratch, rows: int = 4000) -> None:
    with scratch.source() as source:
        run_sql(
            source,
            "CREATE TABLE readings (id INT PRIMARY KEY, label VARCHAR(40), value DOUBLE)",
            f"INSERT INTO readings SELECT seq, CONCAT('reading ', seq), seq / 7 "
            f"FROM seq_1_to_{rows}",
        )


def other_certificate(directory: Path) -> str:
    """A certificate for the source's address that is not its server's."""
    cert, key = directory / "other.crt", directory / "other.key"
    self_signed_certificate(
        cert_path=cert, key_path=key, common_name=SOURCE_HOST, addresses=[SOURCE_HOST]
    )
    return cert.read_text()


def logins(server: MariaDBServer, user: str) -> int:
    """How often `user` has logged in to `server` (performance_schema counts every session)."""
    with server.connect() as connection:
        rows = query(
            connection,
            "SELECT COALESCE(SUM(TOTAL_CONNECTIONS), 0) FROM performance_schema.accounts "
            "WHERE USER = %s",
            (user,),
        )
    return int(rows[0][0])


def test_every_session_of_a_copy_on_the_source_is_encrypted(
    scratch: Scratch, tls_account: str
) -> None:
    fill(scratch)
    seen: dict[int, str] = {}

    def watch(event: ProgressEvent) -> None:
        seen.update(session_ciphers(scratch.source_server, tls_account))

    source = source_database(scratch.source_server, scratch.name, tls_account, PASSWORD)
    result = copy_database(source, scratch.target_url, workers=2, chunk_bytes=16384, progress=watch)

    assert result.rows == 4000
    assert len(seen) >= 2, seen  # the copier's own session and its workers'
    assert all(cipher for cipher in seen.values()), seen
    scratch.assert_identical()


def test_a_wrong_database_certificate_stops_the_copy_before_any_row_moves(
    scratch: Scratch, tls_account: str, tmp_path: Path
) -> None:
    fill(scratch)
    events: list[ProgressEvent] = []
    source = source_database(scratch.source_server, scratch.name, tls_account, PASSWORD)
    impersonated = replace(source, certificate=other_certificate(tmp_path))

    started = time.monotonic()
    with pytest.raises(SourceTrustError) as refused:
        copy_database(impersonated, scratch.target_url, progress=events.append)

    assert time.monotonic() - started < 10  # refused at once, not waited for as a lost server
    message = str(refused.value)
    assert "presented a certificate other than the one the source's peer API handed out" in message
    assert f"{SOURCE_HOST}:3306" in message
    assert PASSWORD not in message
    assert events == []
    with target_connection() as target:
        assert query(target, "SHOW DATABASES LIKE %s", (scratch.name,)) == []
    assert logins(scratch.source_server, tls_account) == 0  # the login never reached it


def test_an_impostor_whose_certificate_chains_to_the_pinned_one_gets_nothing(
    source_server: MariaDBServer, tmp_path: Path
) -> None:
    pinned_cert, pinned_key = tmp_path / "pinned.crt", tmp_path / "pinned.key"
    self_signed_certificate(
        cert_path=pinned_cert, key_path=pinned_key, common_name=SOURCE_HOST, addresses=[]
    )
    leaf_cert, leaf_key = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    certificate_signed_by(pinned_cert, pinned_key, SOURCE_HOST, leaf_cert, leaf_key)

    with Impostor(SOURCE_HOST, leaf_cert, leaf_key) as impostor:
        url = SourceDatabase("mig_x", PASSWORD, SOURCE_HOST, impostor.port, "appliance_data")
        with pytest.raises(SourceTrustError) as refused:
            connect_source(replace(url, certificate=pinned_cert.read_text()))

    assert impostor.handshake_completed.is_set()  # the chain was valid, the certificate not it
    assert bytes(impostor.after_handshake) == b""
    assert b"mig_x" not in impostor.before_tls
    assert "presented a certificate (fingerprint" in str(refused.value)


def test_the_pinned_certificate_must_name_the_address_it_is_reached_at(
    source_server: MariaDBServer, tmp_path: Path
) -> None:
    cert, key = tmp_path / "elsewhere.crt", tmp_path / "elsewhere.key"
    self_signed_certificate(
        cert_path=cert, key_path=key, common_name="db.elsewhere.test", addresses=["192.0.2.7"]
    )
    with Impostor(SOURCE_HOST, cert, key) as impostor:
        url = SourceDatabase("mig_x", PASSWORD, SOURCE_HOST, impostor.port, "appliance_data")
        with pytest.raises(SourceTrustError) as refused:
            connect_source(replace(url, certificate=cert.read_text()))

    assert bytes(impostor.after_handshake) == b""
    assert b"mig_x" not in impostor.before_tls
    assert f"does not name {SOURCE_HOST}:{impostor.port}" in str(refused.value)


def test_a_server_that_offers_no_tls_is_refused_before_the_login(
    source_server: MariaDBServer,
) -> None:
    with Impostor(SOURCE_HOST) as impostor:
        url = SourceDatabase(
            "mig_x",
            PASSWORD,
            SOURCE_HOST,
            impostor.port,
            "appliance_data",
            certificate=source_server.certificate_pem(),
        )
        with pytest.raises(SourceTrustError) as refused:
            connect_source(url)

    assert bytes(impostor.before_tls) == b""
    assert "does not offer TLS" in str(refused.value)


def test_a_source_without_a_certificate_is_read_only_on_this_machine(
    scratch: Scratch,
) -> None:
    handed_out = replace(scratch.source_url, certificate="")
    with pytest.raises(SourceTrustError, match="No certificate is known"):
        connect_source(handed_out)
    started = time.monotonic()
    elsewhere = MySQLURL("mig_x", PASSWORD, "192.0.2.1", 3306, scratch.name)
    with pytest.raises(SourceTrustError, match="--source-certificate"):
        connect_source(elsewhere)
    assert time.monotonic() - started < 1  # refused without trying to connect
    here = MySQLURL("root", "", SOURCE_HOST, 3306, scratch.name)
    with connect_source(here) as connection:
        assert query(connection, "SELECT DATABASE()") == [(scratch.name,)]
