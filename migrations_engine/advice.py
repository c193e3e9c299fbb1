"""The DNS advice for a source in high availability, filled with the real names and addresses.

Before the run, the source leaves production: its name must point to its HA peer and its address
must leave the load-balancing domain. After the run, this system takes the source's place.
Shown by the wizard (Source Info and Result) and written into the report.
"""

from __future__ import annotations

from migrations_engine.models import MigrationRun


def _ha_names(run: MigrationRun) -> tuple[str, str, str, str]:
    source = run.source
    return (
        source.fqdn,
        source.ip_address or str(run.source_address or ""),
        source.ha.replication_peer or "its high-availability peer",
        source.ha.load_balancing_domain or "the load-balancing domain",
    )


def dns_advice_before(run: MigrationRun) -> list[str]:
    """The DNS changes to make before an HA source is migrated ([] for a standalone one)."""
    if not run.source_is_ha:
        return []
    name, address, peer, balancing = _ha_names(run)
    return [
        f"The domain {name} points to the IP address {peer} and no longer to {address}.",
        f"The IP address {address} is no longer defined for the domain {balancing}.",
    ]


def dns_advice_after(run: MigrationRun) -> list[str]:
    """The DNS changes that put this system where the HA source was ([] when standalone)."""
    if not run.source_is_ha:
        return []
    name, _, _, balancing = _ha_names(run)
    here = str(run.current_info.get("ip_address") or "this system's address")
    return [
        f"The domain {name} is resolved with the IP address {here}.",
        f"The domain {balancing} is also resolved with the IP address {here}.",
    ]
