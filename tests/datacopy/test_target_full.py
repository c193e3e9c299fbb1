"""A target that runs out of space stops the copy with a clear error and claims nothing false.

The full target is real, not simulated: a private MariaDB whose InnoDB system tablespace may
grow to 32 MB only, with every table stored in it (no file per table). Past that size InnoDB
refuses to write ("The table is full"), exactly as it does on a full disk.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.env import parse_mysql_url
from migrations_engine.datacopy import TargetFullError, copy_database

from .conftest import SOURCE_HOST, PrivateServer, Scratch, query, quote, run_sql

LIMITED_HOST = SOURCE_HOST
LIMITED_PORT = 3307


SMALL_TABLESPACE = (
    "--innodb-file-per-table=0",
    "--innodb-data-file-path=ibdata1:12M:autoextend:max:32M",
    "--innodb-buffer-pool-size=64M",
)
"""A MariaDB server whose data may not grow beyond a small system tablespace."""


@pytest.fixture
def small_target() -> Iterator[PrivateServer]:
    base = Path(tempfile.mkdtemp(prefix="datacopy-small-"))
    server = PrivateServer(
        datadir=base / "mariadb",
        host=LIMITED_HOST,
        port=LIMITED_PORT,
        server_id=5,
        options=SMALL_TABLESPACE,
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_a_full_target_stops_the_copy_and_reports_only_what_is_there(
    scratch: Scratch, small_target: PrivateServer
) -> None:
    with scratch.source() as source:
        run_sql(
            source,
            "CREATE TABLE files (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB",
            "INSERT INTO files SELECT seq, RANDOM_BYTES(1024) FROM seq_1_to_60000",
            "ANALYZE TABLE files",
        )
    target = parse_mysql_url(small_target.url(scratch.name))

    with pytest.raises(TargetFullError) as caught:
        copy_database(scratch.source_url, target, chunk_bytes=1 << 20)

    message = str(caught.value)
    assert "ran out of space" in message
    assert "Free disk space" in message
    with small_target.connect() as connection:
        recorded = query(
            connection,
            "SELECT IFNULL(SUM(row_count), 0) FROM appliance_copy_state.copy_chunk "
            "WHERE target_database = %s",
            (scratch.name,),
        )[0][0]
        present = query(connection, f"SELECT COUNT(*) FROM {quote(scratch.name)}.files")[0][0]
    assert present == recorded
    assert present < 60000
