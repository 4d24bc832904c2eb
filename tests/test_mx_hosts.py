"""The MX hosts through a real NSD: addresses, aliases, reverse names that resolve back, outages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from handlers.domain.check import DomainReport, check_domain
from handlers.domain.findings import Severity
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone

DMARC = ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:d@good.test")
SPF = ("@", "TXT", "v=spf1 -all")

ZONE = make_zone(
    "test",
    [
        # good: two hosts, each with forward-confirmed reverse names, one with IPv6 too
        ("good", "MX", "10 mx1.good.test."),
        ("good", "MX", "20 mx2.good.test."),
        ("mx1.good", "A", "192.0.2.10"),
        ("mx1.good", "AAAA", "2001:db8::10"),
        ("mx2.good", "A", "192.0.2.11"),
        # no address at all
        ("noaddr", "MX", "10 mx.noaddr.test."),
        ("noaddr", "MX", "20 mx1.good.test."),
        ("mx.noaddr", "TXT", "not an address"),
        ("gone", "MX", "10 nowhere.gone.test."),
        # an alias
        ("alias", "MX", "10 mail.alias.test."),
        ("mail.alias", "CNAME", "mx1.good.test."),
        # reverse names: none, and one that does not resolve back
        ("noptr", "MX", "10 mx.noptr.test."),
        ("mx.noptr", "A", "192.0.2.20"),
        ("badptr", "MX", "10 mx.badptr.test."),
        ("mx.badptr", "A", "192.0.2.21"),
        ("null", "MX", "0 ."),
    ],
)
REVERSE_V4 = make_zone(
    "2.0.192.in-addr.arpa",
    [("10", "PTR", "mx1.good.test."), ("11", "PTR", "mx2.good.test."), ("21", "PTR", "mx1.good.test.")],
)
REVERSE_V6 = make_zone(
    "8.b.d.0.1.0.0.2.ip6.arpa",
    [("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", "PTR", "mx1.good.test.")],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-mx-hosts"))
    zones = {"test": ZONE, "2.0.192.in-addr.arpa": REVERSE_V4, "8.b.d.0.1.0.0.2.ip6.arpa": REVERSE_V6}
    with server.start(zones):
        yield server


@pytest.fixture
def proxy(world: NsdServer) -> Iterator[FaultProxy]:
    with FaultProxy((world.host, world.port)) as fault_proxy:
        yield fault_proxy


def run_check(make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str) -> DomainReport:
    return asyncio.run(check_domain(domain, make_session(server)))


def mx_ids(report: DomainReport) -> list[str]:
    return [f.id for f in report.findings if f.id.startswith(("mx.", "dns."))]


def test_good_hosts_have_addresses_and_confirmed_reverse_names(
    world: NsdServer, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "good.test")
    assert mx_ids(report) == []
    assert report.to_json()["mx"] == [
        {
            "preference": 10,
            "host": "mx1.good.test",
            "addresses": ["192.0.2.10", "2001:db8::10"],
            "reverse": {"192.0.2.10": "mx1.good.test", "2001:db8::10": "mx1.good.test"},
            "tlsa": [],
        },
        {
            "preference": 20,
            "host": "mx2.good.test",
            "addresses": ["192.0.2.11"],
            "reverse": {"192.0.2.11": "mx2.good.test"},
            "tlsa": [],
        },
    ]


@pytest.mark.parametrize(
    ("domain", "host", "why"),
    [
        ("noaddr.test", "mx.noaddr.test", "has no A record"),
        ("gone.test", "nowhere.gone.test", "does not exist (NXDOMAIN)"),
    ],
)
def test_a_host_without_address_is_an_error(
    world: NsdServer, make_session: SessionFactory, domain: str, host: str, why: str
) -> None:
    report = run_check(make_session, world, domain)
    (problem,) = [f for f in report.findings if f.id == "mx.no_address"]
    assert problem.severity is Severity.ERROR
    assert host in problem.detail and why in problem.detail
    assert mx_ids(report) == ["mx.no_address"]  # the other host of noaddr.test is fine


def test_an_alias_is_a_warning(world: NsdServer, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "alias.test")
    (alias,) = [f for f in report.findings if f.id == "mx.cname"]
    assert alias.severity is Severity.WARNING
    assert "mail.alias.test" in alias.detail and "mx1.good.test" in alias.detail
    # the alias's target has addresses and confirmed reverse names: nothing else to say
    assert mx_ids(report) == ["mx.cname"]
    assert report.to_json()["mx"][0]["addresses"] == ["192.0.2.10", "2001:db8::10"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("noptr.test", "192.0.2.20 has no reverse name"),
        ("badptr.test", "192.0.2.21 has the reverse name mx1.good.test, which does not resolve back"),
    ],
)
def test_reverse_name_missing_or_not_resolving_back_is_a_warning(
    world: NsdServer, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run_check(make_session, world, domain)
    (reverse,) = [f for f in report.findings if f.id == "mx.reverse_dns"]
    assert reverse.severity is Severity.WARNING
    assert why in reverse.detail
    assert mx_ids(report) == ["mx.reverse_dns"]


def test_null_mx_has_no_hosts_to_check(world: NsdServer, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "null.test")
    assert mx_ids(report) == []
    assert report.to_json()["mx"] == [
        {"preference": 0, "host": "", "addresses": [], "reverse": {}, "tlsa": []}
    ]


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [("mx1.good.test", "A"), ("10.2.0.192.in-addr.arpa", "PTR"), ("mx2.good.test", "A")],
)
@pytest.mark.parametrize("kind", ["servfail", "timeout"])
@pytest.mark.slow
def test_an_outage_at_any_step_is_temperror_never_missing(
    proxy: FaultProxy, make_session: SessionFactory, name: str, rdtype: str, kind: str
) -> None:
    proxy.add_fault(name, kind, rdtype)
    report = run_check(make_session, proxy, "good.test")
    assert mx_ids(report) == ["dns.temperror"]
    (outage,) = [f for f in report.findings if f.id == "dns.temperror"]
    assert name in outage.detail
    assert report.part_of(outage) == "mx"
    assert report.verdict == "unknown"  # p=reject with SPF -all: no way to pass, and a part unknown
