"""`manage.py copy_data` from a shell: passwords stay off the command line and out of output, and
a source is read over TLS from the server with the certificate given."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.certificates import self_signed_certificate

from .conftest import PROJECT_ROOT, SOURCE_HOST, Scratch, query, run_sql, target_connection

PASSWORD = "s3cret-Pw!"


@pytest.fixture
def migration_account(scratch: Scratch) -> Iterator[str]:
    """A password-protected account on the source that may only read the scratch database."""
    user = f"mig_{scratch.name[-8:]}"
    with scratch.source_server.connect() as connection:
        run_sql(
            connection,
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'",
            f"GRANT SELECT, SHOW VIEW, TRIGGER ON `{scratch.name}`.* TO '{user}'@'%'",
        )
    yield user
    with scratch.source_server.connect() as connection:
        run_sql(connection, f"DROP USER IF EXISTS '{user}'@'%'")


def copy_data(
    *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "copy_data", *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_copy_data_takes_the_password_from_a_file_and_never_shows_it(
    scratch: Scratch, migration_account: str, tmp_path: Path
) -> None:
    scratch.make_dataset(0.005)
    password_file = tmp_path / "source-password"
    password_file.write_text(PASSWORD + "\n")

    finished = copy_data(
        f"mysql://{migration_account}@{SOURCE_HOST}:3306/{scratch.name}",
        f"mysql://root@127.0.0.1:3306/{scratch.name}",
        f"--source-password-file={password_file}",
        "--workers=2",
    )

    assert finished.returncode == 0, finished.stderr
    assert "Copied and verified 3 tables (10,000 rows" in finished.stdout
    assert "users: 1000 rows, checksum" in finished.stdout
    assert PASSWORD not in finished.stdout + finished.stderr
    scratch.assert_identical()


def test_copy_data_with_a_wrong_password_exits_with_a_clear_message(
    scratch: Scratch, migration_account: str
) -> None:
    finished = copy_data(
        f"mysql://{migration_account}@{SOURCE_HOST}:3306/{scratch.name}",
        f"mysql://root@127.0.0.1:3306/{scratch.name}",
        env={"SOURCE_DB_PASSWORD": "wrong-" + PASSWORD},
    )

    assert finished.returncode != 0
    assert "Cannot connect to the source database server" in finished.stderr
    assert "Access denied" in finished.stderr
    assert PASSWORD not in finished.stdout + finished.stderr


def test_copy_data_refuses_an_address_that_is_not_mysql(scratch: Scratch) -> None:
    finished = copy_data("postgres://x@h/db", f"mysql://root@127.0.0.1:3306/{scratch.name}")

    assert finished.returncode != 0
    assert "source URL must start with mysql://" in finished.stderr


def require_tls(scratch: Scratch, user: str) -> None:
    with scratch.source_server.connect() as connection:
        run_sql(connection, f"ALTER USER '{user}'@'%' REQUIRE SSL")


def test_copy_data_reads_over_tls_from_the_server_with_the_certificate_given(
    scratch: Scratch, migration_account: str
) -> None:
    scratch.make_dataset(0.005)
    require_tls(scratch, migration_account)

    finished = copy_data(
        f"mysql://{migration_account}@{SOURCE_HOST}:3306/{scratch.name}",
        f"mysql://root@127.0.0.1:3306/{scratch.name}",
        f"--source-certificate={scratch.source_server.certificate_file}",
        env={"SOURCE_DB_PASSWORD": PASSWORD},
    )

    assert finished.returncode == 0, finished.stderr
    assert "Copied and verified 3 tables" in finished.stdout
    scratch.assert_identical()


def test_copy_data_with_another_certificate_copies_nothing(
    scratch: Scratch, migration_account: str, tmp_path: Path
) -> None:
    scratch.make_dataset(0.005)
    other = tmp_path / "other.crt"
    self_signed_certificate(
        cert_path=other, key_path=tmp_path / "other.key", common_name="x", addresses=[SOURCE_HOST]
    )

    finished = copy_data(
        f"mysql://{migration_account}@{SOURCE_HOST}:3306/{scratch.name}",
        f"mysql://root@127.0.0.1:3306/{scratch.name}",
        f"--source-certificate={other}",
        env={"SOURCE_DB_PASSWORD": PASSWORD},
    )

    assert finished.returncode != 0
    assert "presented a certificate other than the one" in finished.stderr
    assert PASSWORD not in finished.stdout + finished.stderr
    with target_connection() as target:
        assert query(target, "SHOW DATABASES LIKE %s", (scratch.name,)) == []


def test_copy_data_refuses_a_source_elsewhere_without_its_certificate(scratch: Scratch) -> None:
    finished = copy_data(
        f"mysql://mig@192.0.2.1:3306/{scratch.name}",
        f"mysql://root@127.0.0.1:3306/{scratch.name}",
        env={"SOURCE_DB_PASSWORD": PASSWORD},
    )

    assert finished.returncode != 0
    assert "give its TLS certificate with --source-certificate FILE" in finished.stderr
