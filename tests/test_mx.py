"""check_mx through a real NSD: hosts by preference, null MX, missing MX, outages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from handlers.domain.findings import Severity
from handlers.domain.mx import MxHost, MxReport, check_mx
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone

ZONE = make_zone(
    "test",
    [
        ("sorted", "MX", "30 c.mx.example."),
        ("sorted", "MX", "10 B.MX.Example."),
        ("sorted", "MX", "20 a.mx.example."),
        ("sorted", "MX", "10 a.mx.example."),
        ("one", "MX", "0 mail.one.test."),
        ("null", "MX", "0 ."),
        ("null-plus", "MX", "0 ."),
        ("null-plus", "MX", "10 mail.null-plus.test."),
        ("null-pref", "MX", "10 ."),
        ("no-mx", "A", "192.0.2.1"),
        ("no-mx", "TXT", "v=spf1 -all"),
        ("alias", "CNAME", "one"),
        *(("many", "MX", f"{i % 3} mx{i:02d}.many.test.") for i in range(12)),
    ],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-mx"))
    with server.start({"test": ZONE}):
        yield server


@pytest.fixture
def proxy(world: NsdServer) -> Iterator[FaultProxy]:
    with FaultProxy((world.host, world.port)) as fault_proxy:
        yield fault_proxy


def run_check(make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str) -> MxReport:
    return asyncio.run(check_mx(make_session(server), domain))


@pytest.mark.parametrize(
    ("domain", "hosts", "null_mx"),
    [
        (
            "sorted.test",
            [(10, "a.mx.example"), (10, "b.mx.example"), (20, "a.mx.example"), (30, "c.mx.example")],
            False,
        ),
        ("one.test", [(0, "mail.one.test")], False),
        ("alias.test", [(0, "mail.one.test")], False),  # MX read through a CNAME
        ("null.test", [(0, "")], True),
        ("null-plus.test", [(0, ""), (10, "mail.null-plus.test")], False),  # not a lone "0 ."
        ("null-pref.test", [(10, "")], False),  # RFC 7505: only preference 0 is a null MX
        ("many.test", sorted((i % 3, f"mx{i:02d}.many.test") for i in range(12)), False),
    ],
)
def test_hosts_sorted_by_preference(
    world: NsdServer, make_session: SessionFactory, domain: str, hosts: list[tuple[int, str]], null_mx: bool
) -> None:
    report = run_check(make_session, world, domain)
    assert [(h.preference, h.host) for h in report.hosts] == hosts
    assert report.null_mx is null_mx
    assert report.findings == ()
    assert report.to_json() == [{"preference": p, "host": h} for p, h in hosts]


@pytest.mark.parametrize(
    ("domain", "why"), [("no-mx.test", "has no MX record"), ("nothing.test", "does not exist (NXDOMAIN)")]
)
def test_missing_mx_is_info(world: NsdServer, make_session: SessionFactory, domain: str, why: str) -> None:
    report = run_check(make_session, world, domain)
    assert report.hosts == () and not report.null_mx
    (missing,) = report.findings
    assert missing.id == "mx.missing"
    assert missing.severity is Severity.INFO
    assert why in missing.detail and domain in missing.detail


@pytest.mark.parametrize("kind", ["servfail", "refused", "timeout", "truncate"])
@pytest.mark.parametrize("domain", ["sorted.test", "no-mx.test"])
@pytest.mark.slow
def test_outage_is_temperror(proxy: FaultProxy, make_session: SessionFactory, domain: str, kind: str) -> None:
    proxy.add_fault(domain, kind, "MX")
    report = run_check(make_session, proxy, domain)
    assert report.hosts == ()
    assert [f.id for f in report.findings] == ["dns.temperror"]
    assert domain in report.findings[0].detail


def test_truncated_with_tcp_is_read(proxy: FaultProxy, make_session: SessionFactory) -> None:
    proxy.add_fault("sorted.test", "truncate_ok", "MX")
    report = run_check(make_session, proxy, "sorted.test")
    assert report.hosts[0] == MxHost(10, "a.mx.example")
    assert len(report.hosts) == 4
    assert proxy.count("sorted.test", "MX", "tcp") == 1
