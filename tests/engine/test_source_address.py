"""The source's database and SSH service are reached at the run's source address, whatever host
the source's answers name, and a replicating run asks once for an account that may replicate."""

from __future__ import annotations

from typing import Any

import pytest

from migrations_engine import executor
from migrations_engine.context import RunContext, source_database_url
from migrations_engine.datacopy.sql import SourceDatabase
from migrations_engine.models import MigrationRun
from migrations_engine.remote.connection import SSHGrant

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
ELSEWHERE = "203.0.113.7"


def account(**fields: Any) -> dict[str, Any]:
    """A `credentials/database` answer naming a host other than the source."""
    return {
        "user": "mig_run1_abc123",
        "password": "pw",
        "host": ELSEWHERE,
        "port": 3306,
        "database": "appliance_data",
        "tls_certificate": PEM,
        **fields,
    }


def test_the_database_is_reached_at_the_runs_address_with_the_certificate_pinned() -> None:
    run = MigrationRun(source_address="10.0.0.5")
    for named in (ELSEWHERE, "127.0.0.1", "localhost", ""):
        url = source_database_url(run, account(host=named))
        assert (url.host, url.port, url.database) == ("10.0.0.5", 3306, "appliance_data")
        assert isinstance(url, SourceDatabase)
        assert url.certificate == PEM


def test_ssh_is_reached_at_the_runs_address() -> None:
    answer = {"user": "root", "host": ELSEWHERE, "port": 2222, "host_key": "ssh-ed25519 AAAA"}
    grant = SSHGrant.from_peer(answer, host="10.0.0.5")
    assert (grant.host, grant.port) == ("10.0.0.5", 2222)


@pytest.mark.django_db(databases=["default", "data"], transaction=True)
def test_a_replicating_run_asks_once_for_an_account_that_may_replicate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = MigrationRun.objects.create(
        source_address="10.0.0.5", source_info={"server_role": "ha_master"}
    )
    executor.run_plan(run)
    state = run.operations.order_by("position").first()
    assert state is not None
    asked: list[bool] = []

    def database_account(context: RunContext, method: str, ref: str, **options: Any) -> Any:
        asked.append(options["replication"])
        return account(user=f"mig_{len(asked)}", replication=options["replication"])

    monkeypatch.setattr(RunContext, "peer_call", database_account)
    context = RunContext(run, state, run.fence)

    assert context.source_database().user == "mig_1"
    assert context.source_database().user == "mig_1"  # kept
    assert context.source_database(replication=True).user == "mig_2"  # one that may replicate
    assert context.source_database(replication=True).user == "mig_2"
    assert context.source_database().user == "mig_2"
    assert asked == [False, True]
