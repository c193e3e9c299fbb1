"""Pre-flight checks that need no source: addresses, ports, versions, disk space."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from appliance import services
from migrations_engine.preflight import (
    AddressRefused,
    disk_check,
    port_check,
    ports_check,
    source_address_check,
    version_check,
)
from migrations_engine.source_info import SourceInfo

pytestmark = pytest.mark.django_db(databases=["default", "data"])


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.10", "2001:db8::7", " 10.0.0.9 "])
def test_ordinary_addresses_are_accepted(address: str) -> None:
    assert source_address_check(address) == address.strip()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "any address"),  # noqa: S104
        ("::", "any address"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("169.254.169.254", "Link-local"),
        ("fe80::1", "Link-local"),
        ("127.0.0.1", "loopback"),
        ("10.1.2", "not an IPv4 or IPv6 address"),
        ("appliance.example", "not an IPv4 or IPv6 address"),
    ],
)
def test_addresses_that_cannot_be_a_source_are_refused(address: str, reason: str) -> None:
    with pytest.raises(AddressRefused, match=reason):
        source_address_check(address)


def test_loopback_only_where_allowed_and_never_this_system(settings: Any) -> None:
    settings.WIZARD_ALLOW_LOOPBACK = True
    assert source_address_check("127.0.0.2") == "127.0.0.2"
    node = services.node_get()
    node.ip_address = "10.9.9.9"
    node.save()
    with pytest.raises(AddressRefused, match="this system's own address"):
        source_address_check("10.9.9.9")


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_an_open_port_passes_and_a_closed_one_says_how_to_fix_it(listening: int) -> None:
    assert port_check("127.0.0.1", listening).ok
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    check = port_check("127.0.0.1", closed)
    assert not check.ok
    assert check.detail == "connection refused"
    assert f"Open TCP port {closed}" in check.fix


def test_ports_are_checked_at_once_and_a_silent_port_within_three_seconds() -> None:
    started = time.monotonic()
    checks = ports_check("192.0.2.1", [80, 443, 3306, 22])  # TEST-NET-1: nobody answers
    assert time.monotonic() - started < 3.0
    assert [check.ok for check in checks] == [False] * 4
    assert [check.name.split()[1] for check in checks] == ["80", "443", "3306", "22"]


def test_versions_newer_than_ours_are_refused() -> None:
    assert version_check(SourceInfo(software_version="3.2")).ok
    older = version_check(SourceInfo(software_version="2.1"))
    assert older.ok and "upgraded" in older.detail
    newer = version_check(SourceInfo(software_version="4.0"))
    assert not newer.ok and "Update this system" in newer.fix


def test_disk_space_is_compared_with_what_the_source_holds() -> None:
    small = SourceInfo(data_size_bytes=1000, traffic_log_bytes=1000)
    assert all(check.ok for check in disk_check(small))
    huge = SourceInfo(data_size_bytes=10**18, traffic_log_bytes=0)
    data, logs = disk_check(huge)
    assert not data.ok and "Free space in" in data.fix
    assert logs.ok
