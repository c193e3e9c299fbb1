"""Seeding a node: data rows, settings, licence and gzipped traffic logs."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from appliance import services
from appliance.data.models import AccountingSession, EventLog, Subscriber, Voucher

pytestmark = pytest.mark.django_db(databases=["default", "data"], transaction=True)


def seed(*args: str) -> None:
    call_command("seed_node", *args, stdout=open("/dev/null", "w"))


def test_small_seed_fills_every_table_and_writes_traffic_logs() -> None:
    seed("--size", "small")
    assert Subscriber.objects.count() == 200
    assert AccountingSession.objects.count() == 2000
    assert Voucher.objects.count() == 100
    assert EventLog.objects.count() == 500
    assert Subscriber.objects.get(username="user3").full_name == "Zoë Ñúñez-3 用户"
    logs = sorted(Path(settings.APPLIANCE_TRAFFIC_LOG_DIR).glob("traffic-*.log.gz"))
    assert len(logs) == 4
    with gzip.open(logs[0], "rt") as handle:
        assert handle.readline().count(" ") == 5


def test_seeding_again_replaces_instead_of_adding() -> None:
    seed("--size", "small")
    seed("--size", "small")
    assert Subscriber.objects.count() == 200


def test_only_if_new_keeps_a_seeded_node() -> None:
    seed("--size", "small", "--host-name", "first")
    seed("--size", "small", "--host-name", "second", "--only-if-new")
    assert services.node_get().host_name == "first"


def test_no_licence_leaves_the_node_unlicensed() -> None:
    seed("--no-data", "--no-licence")
    assert services.licence_get().state == "none"
    assert services.licence_get().guid == ""


def test_seeding_is_refused_in_maintenance_mode() -> None:
    services.maintenance_set(enabled=True)
    with pytest.raises(CommandError, match="maintenance mode"):
        seed("--size", "small")
