"""Fixtures for the apply tests: PowerDNS (written through dns-lexicon) and BIND (RFC 2136), with the
zone settings that point dmarcbot at them, and DNS reads straight from each server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import dns.message
import dns.query
import pytest

from bot.apply.providers import RFC2136, Secret, ZoneProvider
from handlers.dns.resolver import DnsSession, Nameserver
from tests.dnstest.bind import BindServer
from tests.dnstest.pdns import PdnsServer
from tests.dnstest.zones import make_zone

_names = itertools.count(1)


def fresh_zone(prefix: str = "apply") -> str:
    """A zone name no other test of this process uses."""
    return f"{prefix}{next(_names)}.test"


@pytest.fixture(scope="module")
def pdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdnsServer]:
    """PowerDNS for this module's tests; each test loads zones of its own (fresh_zone)."""
    server = PdnsServer(tmp_path_factory.mktemp("pdns"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def pdns_zone(
    server: PdnsServer, zone: str, records: Sequence[tuple[str, str, str]], **extra: object
) -> ZoneProvider:
    """Load `zone` with `records` into `server`, and the providers-file entry that writes to it."""
    server.load_zone(zone, make_zone(zone, records))
    return ZoneProvider(
        zone=zone,
        provider="powerdns",
        options={"pdns_server": server.api_url},
        secrets={"auth_token": Secret("PDNS_API_KEY", server.api_key)},
        nameservers=(Nameserver(server.host, server.port),),
        ttl=300,
        propagation_timeout=float(str(extra.get("propagation_timeout", 5.0))),
    )


def bind_zone(
    tmp_path: Path, zone: str, records: Sequence[tuple[str, str, str]]
) -> tuple[BindServer, ZoneProvider]:
    """BIND serving `zone` with `records`, and the providers-file entry that updates it (stop the server)."""
    server = BindServer(tmp_path / "bind").start({zone: make_zone(zone, records)})
    provider = ZoneProvider(
        zone=zone,
        provider=RFC2136,
        options={"server": server.address, "tsig_name": server.key_name, "tsig_algorithm": server.algorithm},
        secrets={"tsig_secret": Secret("TSIG_SECRET", server.secret)},
        nameservers=(Nameserver(server.host, server.port),),
        ttl=300,
        propagation_timeout=5.0,
    )
    return server, provider


def session_for(servers: Sequence[Nameserver]) -> DnsSession:
    """A fresh session asking `servers`, as the apply flow makes one per round."""
    return DnsSession(nameservers=tuple(servers), timeout=1.0)


def served(server: PdnsServer | BindServer, name: str, rdtype: str = "TXT") -> list[str]:
    """What `server` answers for `name`/`rdtype` right now: TXT strings joined, names without the dot."""
    response = dns.query.tcp(dns.message.make_query(name, rdtype), server.host, port=server.port, timeout=2)
    values = []
    for rrset in response.answer:
        if rrset.rdtype != dns.rdatatype.from_text(rdtype):
            continue
        for rdata in rrset:
            strings = getattr(rdata, "strings", None)
            values.append(b"".join(strings).decode() if strings is not None else rdata.to_text().rstrip("."))
    return sorted(values)
