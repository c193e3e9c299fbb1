"""The source's info as typed facts (a peer answer parsed strictly, a stored one with defaults),
and the hand-offs between operations."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from migrations_engine.handoffs import (
    BACKUP_FROM,
    ROUND_ROBIN_FROM,
    SETTINGS_FROM,
    KeptSettings,
    RunHandoffs,
)
from migrations_engine.models import MigrationRun
from migrations_engine.operations import OPERATION_BY_NAME
from migrations_engine.peer_client import BadAnswer
from migrations_engine.source_info import HAInfo, LicenceInfo, SourceInfo, TableInfo
from tests.engine.runs import FULL_INFO

HA_ANSWER: dict[str, Any] = FULL_INFO | {
    "server_role": "ha_master",
    "server_role_label": "HA Master",
    "ha": {
        "replication_peer": "10.0.0.3",
        "round_robin_hosts": ["10.0.0.2", "10.0.0.3"],
        "load_balancing_domain": "lb.mycompany.test",
    },
}


def test_a_full_answer_becomes_typed_facts() -> None:
    source = SourceInfo.parse(FULL_INFO | {"data_events": ["purge"], "ha": None})
    assert (source.host_name, source.fqdn) == ("appliance-old", "appliance-old.mycompany.test")
    assert not source.is_ha and not source.is_ha_master
    assert source.role_label == "Standalone"
    assert source.licence == LicenceInfo("G-1", "active", has_active_maintenance=True)
    assert source.licence.is_active
    assert source.data_tables == (TableInfo("subscriber", 3, 1000),)
    assert source.table_names == {"subscriber"}
    assert source.data_events == ("purge",)
    assert source.commands.reboot == "true"
    assert source.certificate_files.key == "/etc/k.pem"
    assert source.ha == HAInfo()
    assert source.identity == {
        "host_name": "appliance-old",
        "domain_name": "mycompany.test",
        "ip_address": "192.0.2.10",
    }


def test_an_ha_answer_says_how_and_its_role_is_read_in_one_place() -> None:
    source = SourceInfo.parse(HA_ANSWER)
    assert source.is_ha and source.is_ha_master
    assert source.ha.round_robin_hosts == ("10.0.0.2", "10.0.0.3")
    assert source.ha.load_balancing_domain == "lb.mycompany.test"
    slave = SourceInfo.parse(HA_ANSWER | {"server_role": "ha_slave", "server_role_label": ""})
    assert slave.is_ha and not slave.is_ha_master
    assert slave.role_label == "HA Slave"


def test_the_stored_form_reads_back_the_same_facts() -> None:
    source = SourceInfo.parse(HA_ANSWER)
    assert SourceInfo.stored(source.as_dict()) == source
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.host_name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"host_name": 7}, "host_name"),
        ({"domain_name": None}, "domain_name"),
        ({"data_size_bytes": "big"}, "data_size_bytes"),
        ({"data_size_bytes": True}, "data_size_bytes"),
        ({"traffic_log_bytes": -1}, "negative"),
        ({"licence": None}, "licence"),
        ({"licence": {"guid": "G"}}, "state"),
        ({"licence": {"guid": "G", "state": "active", "has_active_maintenance": 1}}, "maint"),
        ({"host_name": "../../etc/cron.d/x"}, "host name"),
        ({"domain_name": "a b"}, "domain name"),
        ({"server_role": "root"}, "server role"),
        ({"server_role": "ha_master"}, "high availability"),
        ({"software_version": "3.2; DROP"}, "version"),
        ({"data_tables": ["subscriber"]}, "data tables"),
        ({"data_tables": [{"name": "t", "rows": "many"}]}, "rows"),
        ({"data_events": "purge"}, "data events"),
        ({"commands": {"restart": "true"}}, "reboot"),
        ({"commands": []}, "commands"),
        ({"certificate_files": {"certificate": "/c"}}, "key"),
        ({"ha": {"round_robin_hosts": "10.0.0.2"}}, "round-robin"),
        ({"ssh_fingerprint": 5}, "ssh_fingerprint"),
    ],
)
def test_each_wrong_field_is_named(change: dict[str, Any], named: str) -> None:
    with pytest.raises(BadAnswer, match=named):
        SourceInfo.parse(FULL_INFO | change)


def test_a_missing_field_is_named() -> None:
    answer = {name: value for name, value in FULL_INFO.items() if name != "traffic_log_dir"}
    with pytest.raises(BadAnswer, match="lacks 'traffic_log_dir'"):
        SourceInfo.parse(answer)


def test_an_older_stored_row_gets_defaults_for_what_it_lacks() -> None:
    old = SourceInfo.stored({"server_role": "ha_master", "host_name": "old", "ha": None})
    assert old.is_ha and old.role_label == "HA Master"
    assert old.ha.round_robin_hosts == ()
    assert (old.licence.guid, old.licence.is_active) == ("", False)
    assert (old.data_tables, old.traffic_log_bytes, old.commands.reboot) == ((), 0, "")
    assert old.fqdn == "old"
    empty = SourceInfo.stored({})
    assert not empty.is_ha and empty.role_label == "Standalone" and empty.fqdn == ""


def test_a_run_reads_its_stored_info_as_typed_facts() -> None:
    run = MigrationRun(source_info=HA_ANSWER)
    assert run.source == SourceInfo.parse(HA_ANSWER)
    assert run.source_is_ha and run.source_name == "appliance-old.mycompany.test"
    assert not MigrationRun().source_is_ha


def test_the_hand_offs_are_read_from_the_operations_that_produce_them() -> None:
    assert {SETTINGS_FROM, ROUND_ROBIN_FROM, BACKUP_FROM} <= set(OPERATION_BY_NAME)
    handoffs = RunHandoffs.from_memories(
        {
            SETTINGS_FROM: {"previous": {"dns": {"server": "10.0.0.1"}}, "identity": {"a": "b"}},
            ROUND_ROBIN_FROM: {"round_robin_hosts": ["10.0.0.2"]},
            BACKUP_FROM: {"backup": "20260101-1"},
        }
    )
    assert handoffs.settings_kept_for_swap == KeptSettings(
        {"dns": {"server": "10.0.0.1"}}, {"a": "b"}
    )
    assert handoffs.round_robin_hosts_removed == ("10.0.0.2",)
    assert handoffs.backup == "20260101-1"
    assert RunHandoffs.from_memories({}) == RunHandoffs()
