"""handlers/dns/resolver.py against a real NSD, with faults injected by the proxy in front of it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from handlers.dns.resolver import (
    MAX_CNAME_HOPS,
    DnsSession,
    DnsStatus,
    Lookup,
    Nameserver,
    NameserverError,
    SignedLookup,
    parse_nameserver,
    parse_nameservers,
)
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, free_port, make_zone, txt

LONG_TXT = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(60)) + " -all"  # > 255 bytes
# Several TXT records that together exceed the 1232-byte EDNS payload: NSD itself truncates.
HUGE_TXT = tuple(f"record-{i}-" + "x" * 290 for i in range(6))

MATRIX = make_zone(
    "matrix.test",
    [
        ("@", "MX", "10 mx.example.com."),
        ("@", "MX", "20 MX2.Example.COM."),
        ("spf", "TXT", "v=spf1 -all"),
        ("long", "TXT", LONG_TXT),
        ("quoted", "TXT", 'a "quoted" \\ value; ünïcode'),
        ("empty", "TXT", ""),
        ("two", "TXT", "first"),
        ("two", "TXT", "second"),
        ("host", "A", "192.0.2.1"),
        ("sel._domainkey", "TXT", "v=DKIM1; p=MIIB"),
        ("alias", "CNAME", "spf"),
        ("alias2", "CNAME", "alias"),
        ("away", "CNAME", "target.other.test."),
        ("away-nx", "CNAME", "missing.other.test."),
        ("dangling", "CNAME", "nothing"),
        *(("huge", "TXT", value) for value in HUGE_TXT),
        ("loop1", "CNAME", "loop2"),
        ("loop2", "CNAME", "loop1"),
        ("self", "CNAME", "self"),
        *((f"hop{i}", "CNAME", f"hop{i + 1}") for i in range(MAX_CNAME_HOPS)),
        (f"hop{MAX_CNAME_HOPS}", "TXT", "end of chain"),
        *((f"far{i}", "CNAME", f"far{i + 1}") for i in range(MAX_CNAME_HOPS + 1)),
        (f"far{MAX_CNAME_HOPS + 1}", "TXT", "too far"),
    ],
)
OTHER = make_zone("other.test", [("target", "TXT", "cross-zone value")])
T = TypeVar("T")


@pytest.fixture(scope="module")
def matrix_nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    """One NSD for the read-only matrix (tests that change zones use the function-scoped `nsd`)."""
    server = NsdServer(tmp_path_factory.mktemp("nsd-matrix"))
    with server.start({"matrix.test": MATRIX, "other.test": OTHER}):
        yield server


@pytest.fixture
def proxy(matrix_nsd: NsdServer) -> Iterator[FaultProxy]:
    with FaultProxy((matrix_nsd.host, matrix_nsd.port)) as fault_proxy:
        yield fault_proxy


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def lookup(session: DnsSession, name: str, rdtype: str = "TXT") -> Lookup:
    return asyncio.run(session.lookup(name, rdtype))


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rdtype", "records"),
    [
        ("spf.matrix.test", "TXT", ("v=spf1 -all",)),
        ("long.matrix.test", "TXT", (LONG_TXT,)),  # two strings on the wire, joined with nothing
        ("quoted.matrix.test", "TXT", ('a "quoted" \\ value; ünïcode',)),
        ("empty.matrix.test", "TXT", ("",)),
        ("two.matrix.test", "TXT", ("first", "second")),
        ("sel._domainkey.matrix.test", "TXT", ("v=DKIM1; p=MIIB",)),
        ("SPF.Matrix.Test.", "txt", ("v=spf1 -all",)),  # case and trailing dot do not matter
        ("matrix.test", "MX", ("10 mx.example.com", "20 mx2.example.com")),
        ("host.matrix.test", "A", ("192.0.2.1",)),
        ("matrix.test", "NS", ("ns.matrix.test",)),
        ("alias.matrix.test", "CNAME", ("spf.matrix.test",)),  # asking for the CNAME itself
    ],
)
def test_ok_answers(
    proxy: FaultProxy, make_session: SessionFactory, name: str, rdtype: str, records: tuple[str, ...]
) -> None:
    result = lookup(make_session(proxy), name, rdtype)
    assert result.status is DnsStatus.OK, result
    assert sorted(result.records) == sorted(records)
    assert (result.ok, result.is_void, result.is_outage) == (True, False, False)
    assert result.cname_chain == ()


def test_long_txt_really_is_split_on_the_wire(matrix_nsd: NsdServer) -> None:
    """Guards test_ok_answers: the long record must arrive as several strings to prove the join."""
    query = dns.message.make_query("long.matrix.test", "TXT", use_edns=0, payload=1232)
    response = dns.query.udp(query, matrix_nsd.host, timeout=2, port=matrix_nsd.port)
    (rdata,) = response.answer[0]
    assert len(rdata.strings) > 1 and all(len(s) <= 255 for s in rdata.strings)
    assert b"".join(rdata.strings).decode() == LONG_TXT


@pytest.mark.parametrize(
    ("name", "rdtype", "status"),
    [
        ("nope.matrix.test", "TXT", DnsStatus.NXDOMAIN),
        ("deep.nope.matrix.test", "MX", DnsStatus.NXDOMAIN),
        ("host.matrix.test", "TXT", DnsStatus.NODATA),  # exists, with an A record only
        ("matrix.test", "TXT", DnsStatus.NODATA),  # the apex has SOA, NS and MX
        ("_domainkey.matrix.test", "TXT", DnsStatus.NODATA),  # an empty non-terminal exists
        ("spf.matrix.test", "MX", DnsStatus.NODATA),
    ],
)
def test_void_answers(
    proxy: FaultProxy, make_session: SessionFactory, name: str, rdtype: str, status: DnsStatus
) -> None:
    result = lookup(make_session(proxy), name, rdtype)
    assert result.status is status
    assert result.records == ()
    assert (result.ok, result.is_void, result.is_outage) == (False, True, False)
    assert rdtype.upper() in result.describe_failure() and name in result.describe_failure()


# --- outages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("servfail", DnsStatus.SERVFAIL),
        ("refused", DnsStatus.REFUSED),
        ("timeout", DnsStatus.TIMEOUT),
        ("truncate", DnsStatus.TRUNCATED),
    ],
)
@pytest.mark.parametrize("fault_name", ["spf.matrix.test", "SPF.matrix.test.", "*.matrix.test"])
@pytest.mark.slow
def test_outages(
    proxy: FaultProxy, make_session: SessionFactory, kind: str, status: DnsStatus, fault_name: str
) -> None:
    proxy.add_fault(fault_name, kind)
    started = time.monotonic()
    result = lookup(make_session(proxy, timeout=0.3), "spf.matrix.test", "TXT")
    elapsed = time.monotonic() - started
    assert result.status is status, result
    assert result.records == ()
    assert (result.ok, result.is_void, result.is_outage) == (False, False, True)
    assert elapsed < 3  # a timeout is bounded by the session's timeout, not by the OS
    assert proxy.count("spf.matrix.test", "TXT", "udp") == 1
    # Only a truncated UDP answer is worth a TCP retry.
    assert proxy.count("spf.matrix.test", "TXT", "tcp") == (1 if kind == "truncate" else 0)


def test_fault_is_limited_to_its_name_and_type(proxy: FaultProxy, make_session: SessionFactory) -> None:
    proxy.add_fault("spf.matrix.test", "servfail", "MX")
    proxy.add_fault("*.other.test", "refused")
    session = make_session(proxy)
    assert lookup(session, "spf.matrix.test", "TXT").status is DnsStatus.OK
    assert lookup(session, "spf.matrix.test", "MX").status is DnsStatus.SERVFAIL
    assert lookup(session, "target.other.test", "TXT").status is DnsStatus.REFUSED
    assert lookup(session, "other.test", "SOA").status is DnsStatus.OK  # "*." is strictly under
    proxy.clear_faults()
    assert lookup(make_session(proxy), "target.other.test", "TXT").status is DnsStatus.OK


def test_refused_by_nsd_for_a_zone_it_does_not_serve(
    matrix_nsd: NsdServer, make_session: SessionFactory
) -> None:
    result = lookup(make_session(matrix_nsd), "example.invalid", "TXT")
    assert result.status is DnsStatus.REFUSED
    assert result.is_outage


@pytest.mark.parametrize("attempts", [1, 2, 3])
@pytest.mark.slow
def test_timeouts_are_retried_other_outages_are_not(
    proxy: FaultProxy, make_session: SessionFactory, attempts: int
) -> None:
    proxy.add_fault("spf.matrix.test", "timeout")
    proxy.add_fault("two.matrix.test", "servfail")
    session = make_session(proxy, timeout=0.2, attempts=attempts)
    assert lookup(session, "spf.matrix.test").status is DnsStatus.TIMEOUT
    assert lookup(session, "two.matrix.test").status is DnsStatus.SERVFAIL
    assert proxy.count("spf.matrix.test") == attempts
    assert proxy.count("two.matrix.test") == 1


@pytest.mark.parametrize("kind", ["timeout", "servfail", "refused", "truncate"])
def test_next_nameserver_is_asked_after_an_outage(
    proxy: FaultProxy, matrix_nsd: NsdServer, kind: str
) -> None:
    proxy.add_fault("spf.matrix.test", kind)
    session = DnsSession(
        nameservers=(parse_nameserver(proxy.address), parse_nameserver(matrix_nsd.address)),
        timeout=0.2,
        attempts=1,
    )
    result = lookup(session, "spf.matrix.test")
    assert result.status is DnsStatus.OK and result.records == ("v=spf1 -all",)
    assert proxy.count("spf.matrix.test", transport="udp") == 1


def test_unreachable_server_is_an_outage(make_session: SessionFactory) -> None:
    result = lookup(make_session(f"127.0.0.1:{free_port()}", timeout=0.2), "spf.matrix.test")
    # Loopback UDP to a closed port: dnspython reports no answer rather than the ICMP error.
    assert result.status in (DnsStatus.TIMEOUT, DnsStatus.ERROR)
    assert result.is_outage


# --- truncation and TCP -----------------------------------------------------------------------


def test_truncated_with_working_tcp_gives_complete_records(
    proxy: FaultProxy, make_session: SessionFactory
) -> None:
    proxy.add_fault("two.matrix.test", "truncate_ok")
    result = lookup(make_session(proxy), "two.matrix.test")
    assert result.status is DnsStatus.OK
    assert sorted(result.records) == ["first", "second"]
    assert proxy.count("two.matrix.test", "TXT", "udp") == 1
    assert proxy.count("two.matrix.test", "TXT", "tcp") == 1


def test_nsd_truncates_large_answers_and_tcp_gets_them(
    proxy: FaultProxy, make_session: SessionFactory
) -> None:
    result = lookup(make_session(proxy), "huge.matrix.test")
    assert result.status is DnsStatus.OK
    assert sorted(result.records) == sorted(HUGE_TXT)
    # No fault: the truncation came from NSD (the answer exceeds our 1232-byte EDNS payload).
    assert proxy.count("huge.matrix.test", "TXT", "udp") == 1
    assert proxy.count("huge.matrix.test", "TXT", "tcp") == 1


def test_answer_within_edns_payload_needs_no_tcp(proxy: FaultProxy, make_session: SessionFactory) -> None:
    result = lookup(make_session(proxy), "long.matrix.test")  # > 512 bytes, < 1232
    assert result.status is DnsStatus.OK
    assert proxy.count("long.matrix.test", transport="tcp") == 0


@pytest.mark.parametrize(
    ("name", "edns", "truncated"),
    [
        ("long.matrix.test", -1, True),  # > 512 bytes without EDNS: TC, and no records at all
        ("long.matrix.test", 0, False),  # the same with EDNS 1232: fits
        ("huge.matrix.test", 0, True),  # > 1232 bytes: TC even with EDNS
        ("spf.matrix.test", -1, False),
    ],
)
def test_nsd_udp_truncation(matrix_nsd: NsdServer, name: str, edns: int, truncated: bool) -> None:
    """NSD's own behaviour, which the TCP tests above rely on."""
    query = dns.message.make_query(name, "TXT", use_edns=edns, payload=1232)
    response = dns.query.udp(query, matrix_nsd.host, timeout=2, port=matrix_nsd.port)
    assert bool(response.flags & dns.flags.TC) is truncated
    assert (response.answer == []) is truncated
    tcp = dns.query.tcp(query, matrix_nsd.host, timeout=2, port=matrix_nsd.port)
    assert not tcp.flags & dns.flags.TC and tcp.answer


# --- CNAMEs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rdtype", "status", "records", "chain"),
    [
        ("alias.matrix.test", "TXT", DnsStatus.OK, ("v=spf1 -all",), ("spf.matrix.test",)),
        (
            "alias2.matrix.test",
            "TXT",
            DnsStatus.OK,
            ("v=spf1 -all",),
            ("alias.matrix.test", "spf.matrix.test"),
        ),
        ("away.matrix.test", "TXT", DnsStatus.OK, ("cross-zone value",), ("target.other.test",)),
        ("alias.matrix.test", "MX", DnsStatus.NODATA, (), ("spf.matrix.test",)),
        ("dangling.matrix.test", "TXT", DnsStatus.NXDOMAIN, (), ("nothing.matrix.test",)),
        ("away-nx.matrix.test", "TXT", DnsStatus.NXDOMAIN, (), ("missing.other.test",)),
        (
            "hop0.matrix.test",
            "TXT",
            DnsStatus.OK,
            ("end of chain",),
            tuple(f"hop{i}.matrix.test" for i in range(1, MAX_CNAME_HOPS + 1)),
        ),
    ],
)
def test_cname_followed(
    proxy: FaultProxy,
    make_session: SessionFactory,
    name: str,
    rdtype: str,
    status: DnsStatus,
    records: tuple[str, ...],
    chain: tuple[str, ...],
) -> None:
    result = lookup(make_session(proxy), name, rdtype)
    assert (result.status, result.records, result.cname_chain) == (status, records, chain)
    assert result.name == name


@pytest.mark.slow
def test_cname_out_of_the_served_zones_is_asked_again(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    """NSD follows CNAMEs only through zones it serves; beyond them the resolver asks the target,
    and the target's failure is the lookup's failure, never a missing record."""
    nsd.set_zones({"a.test": make_zone("a.test", [("alias", "CNAME", "b.test.")])})
    result = lookup(make_session(fault_proxy), "alias.a.test")
    assert (result.status, result.cname_chain) == (DnsStatus.REFUSED, ("b.test",))  # NSD's own
    assert fault_proxy.count("alias.a.test") == fault_proxy.count("b.test") == 1

    fault_proxy.add_fault("b.test", "servfail")
    result = lookup(make_session(fault_proxy), "alias.a.test")
    assert (result.status, result.cname_chain) == (DnsStatus.SERVFAIL, ("b.test",))

    fault_proxy.clear_faults()
    nsd.set_zone("b.test", make_zone("b.test", [("@", "TXT", "served here")]))
    fault_proxy.reset_counts()
    result = lookup(make_session(fault_proxy), "alias.a.test")
    assert (result.status, result.records, result.cname_chain) == (
        DnsStatus.OK,
        ("served here",),
        ("b.test",),
    )
    assert fault_proxy.count() == 1  # now NSD serves both zones and follows the CNAME itself


@pytest.mark.parametrize("name", ["loop1.matrix.test", "self.matrix.test"])
def test_cname_loop_is_an_error_not_a_missing_record(
    proxy: FaultProxy, make_session: SessionFactory, name: str
) -> None:
    result = lookup(make_session(proxy), name)
    assert result.status is DnsStatus.ERROR
    assert "loop" in result.detail


def test_cname_chain_too_long(proxy: FaultProxy, make_session: SessionFactory) -> None:
    result = lookup(make_session(proxy), "far0.matrix.test")
    assert result.status is DnsStatus.ERROR
    assert "too long" in result.detail
    assert len(result.cname_chain) > MAX_CNAME_HOPS


# --- sessions ---------------------------------------------------------------------------------


def test_concurrent_identical_lookups_are_sent_once(proxy: FaultProxy, make_session: SessionFactory) -> None:
    proxy.latency = 0.1
    session = make_session(proxy)
    results = run(session.lookup_many([("spf.matrix.test", "TXT")] * 5 + [("SPF.matrix.test.", "txt")] * 5))
    assert {r.records for r in results} == {("v=spf1 -all",)}
    assert proxy.count() == 1
    assert session.queries_sent == 1
    lookup(session, "spf.matrix.test")  # and again later, in another event loop
    assert proxy.count() == 1


def test_concurrent_identical_signed_lookups_are_sent_once(
    proxy: FaultProxy, make_session: SessionFactory
) -> None:
    proxy.latency = 0.1
    session = make_session(proxy)

    async def ask_five() -> list[SignedLookup]:
        asks = (session.lookup_signed("spf.matrix.test", "TXT") for _ in range(5))
        return list(await asyncio.gather(*asks))

    results = run(ask_five())
    assert {r.records for r in results} == {("v=spf1 -all",)}
    assert proxy.count() == 1 and session.queries_sent == 1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_lookup_many_keeps_order_and_runs_concurrently(
    proxy: FaultProxy, make_session: SessionFactory, transport: str
) -> None:
    proxy.latency = 0.2
    if transport == "tcp":
        proxy.add_fault("*.matrix.test", "truncate_ok")  # every answer comes over TCP
    names = [f"q{i}.matrix.test" for i in range(19)] + ["two.matrix.test"]
    started = time.monotonic()
    results = run(make_session(proxy, timeout=5).lookup_many((n, "TXT") for n in names))
    elapsed = time.monotonic() - started
    assert [r.name for r in results] == names
    assert [r.status for r in results] == [DnsStatus.NXDOMAIN] * 19 + [DnsStatus.OK]
    assert sorted(results[-1].records) == ["first", "second"]
    assert proxy.count(transport=transport) == 20
    assert elapsed < 3.0  # 20 × 0.2 s (or 40 × 0.2 s) if anything serialised them


@pytest.mark.slow
def test_bursts_of_nxdomain_answers_are_not_rate_limited(
    matrix_nsd: NsdServer, make_session: SessionFactory
) -> None:
    # NSD's response rate limiting (on by default: ~200 answers/s of one kind, and every NXDOMAIN
    # from a zone is the same kind) would drop answers or slip them to TCP; tests/dnstest/nsd.py
    # turns it off. RRL judges a second by the one before it, so a burst fills one wall-clock
    # second and a second burst follows in the next.
    session = make_session(matrix_nsd, timeout=3)
    for burst in range(2):
        _wait_for_the_next_second()
        names = [f"burst{burst}-{i}.nowhere.matrix.test" for i in range(300)]
        results = run(session.lookup_many((n, "TXT") for n in names))
        assert [r.name for r in results] == names
        wrong = [(r.name, r.status, r.detail) for r in results if r.status is not DnsStatus.NXDOMAIN]
        assert wrong == [], f"burst {burst}: {len(wrong)} of 300 not NXDOMAIN"
    assert session.queries_sent == 600  # one UDP query each: nothing dropped, nothing slipped to TCP


def _wait_for_the_next_second() -> None:
    time.sleep(1.02 - time.time() % 1.0)


def test_no_caching_across_sessions(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    nsd.set_zone("fresh.test", make_zone("fresh.test", [("_dmarc", "TXT", "v=DMARC1; p=none")]))
    first = make_session(fault_proxy)
    assert lookup(first, "_dmarc.fresh.test").records == ("v=DMARC1; p=none",)

    nsd.set_zone("fresh.test", make_zone("fresh.test", [("_dmarc", "TXT", "v=DMARC1; p=reject")]))
    # The same session keeps what it read (one check sees one state of the DNS)...
    assert lookup(first, "_dmarc.fresh.test").records == ("v=DMARC1; p=none",)
    assert fault_proxy.count("_dmarc.fresh.test") == 1
    # ...and a new session asks again and sees the change.
    second = make_session(fault_proxy)
    assert lookup(second, "_dmarc.fresh.test").records == ("v=DMARC1; p=reject",)
    assert fault_proxy.count("_dmarc.fresh.test") == 2


def test_lookup_blocking_from_a_worker_thread_while_the_loop_runs(
    proxy: FaultProxy, make_session: SessionFactory
) -> None:
    proxy.latency = 0.2
    session = make_session(proxy, timeout=5)
    worker_results: list[Lookup] = []

    async def main() -> list[Lookup]:
        warm = await session.lookup("two.matrix.test", "TXT")  # the session now knows its loop
        loop = asyncio.get_running_loop()
        pending = asyncio.ensure_future(session.lookup("spf.matrix.test", "TXT"))
        blocking = loop.run_in_executor(None, session.lookup_blocking, "spf.matrix.test", "TXT")
        other = loop.run_in_executor(None, session.lookup_blocking, "host.matrix.test", "A")
        worker_results.extend(await asyncio.gather(blocking, other))
        return [warm, await pending]

    warm, in_loop = run(main())
    from_worker, other = worker_results
    assert sorted(warm.records) == ["first", "second"]
    assert in_loop.records == from_worker.records == ("v=spf1 -all",)
    assert other.records == ("192.0.2.1",)
    # The worker's question joined the loop's identical one in flight: asked once.
    assert proxy.count("spf.matrix.test") == 1


def test_lookup_blocking_without_a_loop(proxy: FaultProxy, make_session: SessionFactory) -> None:
    session = make_session(proxy)
    result: list[Lookup] = []
    thread = threading.Thread(target=lambda: result.append(session.lookup_blocking("matrix.test", "MX")))
    thread.start()
    thread.join(10)
    assert result and result[0].records == ("10 mx.example.com", "20 mx2.example.com")
    assert session.lookup_blocking("MATRIX.test.", "mx") is result[0]  # remembered, not asked again
    assert proxy.count() == 1


# --- nameserver settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", Nameserver("1.2.3.4", 53)),
        ("1.2.3.4:5353", Nameserver("1.2.3.4", 5353)),
        (" 127.0.0.1:53 ", Nameserver("127.0.0.1", 53)),
        ("::1", Nameserver("::1", 53)),
        ("2001:db8::1", Nameserver("2001:db8::1", 53)),
        ("[::1]", Nameserver("::1", 53)),
        ("[::1]:5353", Nameserver("::1", 5353)),
        ("[2001:db8::53]:65535", Nameserver("2001:db8::53", 65535)),
        ("1.2.3.4:1", Nameserver("1.2.3.4", 1)),
    ],
)
def test_parse_nameserver(text: str, expected: Nameserver) -> None:
    parsed = parse_nameserver(text)
    assert parsed == expected
    assert parse_nameserver(str(parsed)) == parsed  # str() is a setting that parses back


@pytest.mark.parametrize(
    "text",
    [
        "host_name.example",
        "-host.example:53",
        "two words",
        "",
        "1.2.3",
        "256.1.1.1",
        "[host.example]:53",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "1.2.3.4:99999",
        "1.2.3.4:port",
        "1.2.3.4:-1",
        "1.2.3.4: 53",
        "1.2.3.4:",
        "[::1]:",
        "[::1]:70000",
        "[::1]53",
        "[::1",
        "1.2.3.4:\u0665\u0663",
    ],
)
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(NameserverError, match="nameserver"):
        parse_nameserver(text)


def test_parse_nameservers_lists() -> None:
    assert parse_nameservers(["127.0.0.1:5353, [::1]:53", "", "10.0.0.1"]) == (
        Nameserver("127.0.0.1", 5353),
        Nameserver("::1"),
        Nameserver("10.0.0.1"),
    )
    with pytest.raises(NameserverError):
        parse_nameservers(["127.0.0.1, dns example"])


def test_session_reaches_nsd_through_a_setting(nsd_static: NsdServer, make_session: SessionFactory) -> None:
    """The static zones in tests/zones/ are served, and a plain "host:port" setting reaches them."""
    result = lookup(make_session(nsd_static.address), "static.harness.test")
    assert result.records == ("served from tests/zones/harness.test.zone",)


def test_a_host_name_setting_is_resolved_once_and_reaches_nsd(
    nsd_static: NsdServer, make_session: SessionFactory
) -> None:
    """`localhost:PORT` is resolved through the system resolver (here /etc/hosts) when it is read."""
    setting = f"localhost:{nsd_static.port}"
    assert parse_nameserver(setting) == Nameserver("127.0.0.1", nsd_static.port)
    result = lookup(make_session(setting), "static.harness.test")
    assert result.records == ("served from tests/zones/harness.test.zone",)


# --- the harness itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "presentation"),
    [
        ("", '""'),
        ("v=spf1 -all", '"v=spf1 -all"'),
        ('say "hi" \\o/', '"say \\"hi\\" \\\\o/"'),
        ("a" * 255 + "b", '"' + "a" * 255 + '" "b"'),
        ("é", '"\\195\\169"'),
    ],
)
def test_txt_presentation(value: str, presentation: str) -> None:
    assert txt(value) == presentation


def test_make_zone_quotes_unquoted_txt_only() -> None:
    zone = make_zone("q.test", [("a", "TXT", "plain"), ("b", "txt", txt("pre")), ("c", "TXT", '"raw" "two"')])
    assert 'a IN TXT "plain"' in zone
    assert 'b IN TXT "pre"' in zone
    assert 'c IN TXT "raw" "two"' in zone
    assert zone.startswith("$ORIGIN q.test.\n$TTL 300\n")


@pytest.mark.slow
def test_bad_zone_raises_with_nsd_log_and_keeps_serving(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zone("good.test", make_zone("good.test", [("@", "TXT", "ok")]))
    port = nsd.port
    with pytest.raises(RuntimeError, match=r"bad\.test(.|\n)*syntax error"):
        nsd.set_zone("bad.test", "$ORIGIN bad.test.\n@ IN SOA nonsense\n")
    assert nsd.port == port and "bad.test" not in nsd.zones
    assert lookup(make_session(nsd), "good.test").records == ("ok",)


def test_nsd_stop_leaves_no_process(tmp_path: Path) -> None:
    server = NsdServer(tmp_path)
    server.start({"gone.test": make_zone("gone.test", [])})
    assert len(_processes_mentioning(str(tmp_path))) >= 2  # NSD forks: main, xfrd, server
    query = dns.message.make_query("gone.test", "SOA")
    assert dns.query.udp(query, server.host, timeout=2, port=server.port).rcode() == dns.rcode.NOERROR
    address = (server.host, server.port)
    server.stop()
    server.stop()  # twice is fine
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, address[0], timeout=0.2, port=address[1])
    assert _processes_mentioning(str(tmp_path)) == []  # xfrd and the server child are gone too


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("name", ["a..b.example.com", "x" * 64 + ".example.com", "." * 3])
def test_a_malformed_name_is_an_error_result_not_an_exception(
    make_session: SessionFactory, name: str
) -> None:
    from tests.dnstest import free_port

    lookup = asyncio.run(make_session(f"127.0.0.1:{free_port()}").lookup(name, "TXT"))
    assert lookup.status is DnsStatus.ERROR
    assert "not a valid DNS question" in lookup.detail


# -- the in-flight bound ---------------------------------------------------------------------------

BURST_ZONE = "burst.test"


def burst_world(nsd: NsdServer, names: int) -> list[tuple[str, str]]:
    """`names` TXT records (and the questions that ask them): more than any bound in these tests."""
    nsd.set_zone(BURST_ZONE, make_zone(BURST_ZONE, [(f"n{i}", "TXT", f"value {i}") for i in range(names)]))
    return [(f"n{i}.{BURST_ZONE}", "TXT") for i in range(names)]


def test_queries_in_flight_never_exceed_the_bound_counted_at_the_proxy(
    nsd: NsdServer, fault_proxy: FaultProxy
) -> None:
    questions = burst_world(nsd, 300)
    fault_proxy.latency = 0.02  # answers take a while, so unbounded queries would pile up
    session = DnsSession(
        nameservers=(parse_nameserver(fault_proxy.address),), timeout=2.0, attempts=1, max_inflight=12
    )
    lookups = asyncio.run(session.lookup_many(questions))
    assert [lookup.records for lookup in lookups] == [(f"value {i}",) for i in range(300)]
    assert fault_proxy.count() == 300 and fault_proxy.dropped == 0
    # The proxy saw the bound reached (so the bound is what limited it) and never passed.
    assert fault_proxy.peak_in_flight == 12
    assert session.peak_inflight == 12


@pytest.mark.slow
def test_without_a_low_bound_the_same_burst_goes_out_at_once(nsd: NsdServer, fault_proxy: FaultProxy) -> None:
    """The counterpart of the test above: the proxy's count can see a burst, so the bound is real."""
    questions = burst_world(nsd, 300)
    fault_proxy.latency = 0.05
    session = DnsSession(
        nameservers=(parse_nameserver(fault_proxy.address),), timeout=2.0, attempts=1, max_inflight=300
    )
    asyncio.run(session.lookup_many(questions))
    assert fault_proxy.peak_in_flight > 12


@pytest.mark.slow
def test_a_resolver_dropping_past_a_burst_size_costs_retries_not_outages(
    nsd: NsdServer, fault_proxy: FaultProxy
) -> None:
    questions = burst_world(nsd, 400)
    fault_proxy.latency = 0.02
    fault_proxy.burst_limit = 25  # like dnsmasq's dns-forward-max, far below our bound
    session = DnsSession(
        nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.3, attempts=1, max_inflight=100
    )
    lookups = asyncio.run(session.lookup_many(questions))
    assert fault_proxy.dropped > 0  # the drops happened...
    assert session.congestion_retries > 0
    assert [lookup.status for lookup in lookups] == [DnsStatus.OK] * 400  # ...and none became an outage


def test_a_lone_timeout_is_not_taken_for_congestion(nsd: NsdServer, fault_proxy: FaultProxy) -> None:
    """One query, nothing queueing: a timeout is the domain's DNS and counts after `attempts`."""
    burst_world(nsd, 1)
    fault_proxy.add_fault(f"n0.{BURST_ZONE}", "timeout")
    session = DnsSession(
        nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.2, attempts=2, max_inflight=4
    )
    lookup = asyncio.run(session.lookup(f"n0.{BURST_ZONE}", "TXT"))
    assert lookup.status is DnsStatus.TIMEOUT
    assert fault_proxy.count(f"n0.{BURST_ZONE}") == 2 and session.congestion_retries == 0


def test_a_session_forgets_its_least_recently_used_answers_past_its_bound(
    nsd: NsdServer, fault_proxy: FaultProxy
) -> None:
    questions = burst_world(nsd, 3)
    session = DnsSession(
        nameservers=(parse_nameserver(fault_proxy.address),), timeout=2.0, attempts=1, max_answers=2
    )

    async def scenario() -> None:
        await session.lookup(*questions[0])
        await session.lookup(*questions[1])
        await session.lookup(*questions[0])  # remembered, and now the most recently used
        await session.lookup(*questions[2])  # over the bound: questions[1] is forgotten
        await session.lookup(*questions[0])
        await session.lookup(*questions[1])

    asyncio.run(scenario())
    assert [fault_proxy.count(name) for name, _ in questions] == [1, 2, 1]
