"""The whole domain check through a real DNS server: verdict, summary, JSON, concurrency, freshness."""

from __future__ import annotations

import asyncio
import time

import pytest

from handlers.dns.resolver import DnsSession
from handlers.domain.check import DomainReport, check_domain
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.keys import rsa_public_key


def zones(**overrides: str) -> dict[str, str]:
    """A healthy domain and a provider; a keyword replaces one record's rdata."""
    records = {
        "spf": "v=spf1 include:_spf.provider.test ip4:192.0.2.0/24 -all",
        "dmarc": "v=DMARC1; p=reject; rua=mailto:dmarc@good.test",
        **overrides,
    }
    good = [
        ("@", "TXT", records["spf"]),
        ("_dmarc", "TXT", records["dmarc"]),
        ("@", "MX", "10 mx.good.test."),
        ("mx", "A", "192.0.2.25"),
        ("sub", "A", "192.0.2.26"),
    ]
    provider = [
        ("_spf", "TXT", "v=spf1 include:_spf2.provider.test -all"),
        ("_spf2", "TXT", "v=spf1 ip4:198.51.100.0/24 -all"),
    ]
    # the TLD zone answers NXDOMAIN for _dmarc.test, as the real DNS would (NSD refuses names it
    # serves no zone for, and the tree walk would rightly call that an outage)
    return {
        "good.test": make_zone("good.test", good),
        "provider.test": make_zone("provider.test", provider),
        "test": make_zone("test", []),
    }


def run(session: DnsSession, domain: str = "good.test", selectors: tuple[str, ...] = ()) -> DomainReport:
    return asyncio.run(check_domain(domain, session, selectors))


def ids(report: DomainReport) -> set[str]:
    return {f.id for f in report.findings}


@pytest.mark.slow
def test_a_healthy_domain_passes_with_no_error(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(zones())
    report = run(make_session(nsd))
    assert report.verdict == "pass"
    assert report.errors == ()
    assert report.summary.startswith("Mail from good.test can pass DMARC today through SPF")
    assert report.spf is not None and report.spf.dns_lookups == 2
    assert report.mx is not None and [h.host for h in report.mx.hosts] == ["mx.good.test"]
    # probing found nothing: info, not an error, and the summary does not blame DKIM
    assert "dkim.no_selector" in ids(report)


def test_summary_names_the_most_important_fix(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(zones(dmarc="v=DMARC1; p=none"))
    report = run(make_session(nsd))
    assert report.top_finding is not None and report.top_finding.id == "dmarc.policy_none"
    assert "Most important fix (dmarc.policy_none)" in report.summary


def test_no_dmarc_record_cannot_pass(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(zones(dmarc="not a dmarc record"))
    report = run(make_session(nsd))
    assert report.verdict == "fail"
    assert "cannot pass DMARC today: it has no usable DMARC record" in report.summary
    assert report.top_finding is not None and report.top_finding.id == "dmarc.missing"


def test_spf_permerror_without_dkim_cannot_pass(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(zones(spf="v=spf1 include:nowhere.good.test -all"))
    report = run(make_session(nsd))
    assert "spf.include_missing" in ids(report)
    assert report.verdict == "fail"
    assert "neither SPF nor any DKIM key" in report.summary


def test_a_dkim_key_at_a_named_selector_can_carry_the_pass(
    nsd: NsdServer, make_session: SessionFactory
) -> None:
    zone = zones(spf="v=spf1 include:nowhere.good.test -all")
    zone["good.test"] = make_zone(
        "good.test",
        [
            ("@", "TXT", "v=spf1 include:nowhere.good.test -all"),
            ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"),
            ("sel._domainkey", "TXT", f"v=DKIM1; k=rsa; p={rsa_public_key()}"),
        ],
    )
    nsd.set_zones(zone)
    report = run(make_session(nsd), selectors=("sel",))
    assert report.dkim is not None and [(k.selector, k.key_bits) for k in report.dkim.keys] == [("sel", 2048)]
    assert report.verdict == "pass"
    assert "through DKIM (selector sel)" in report.summary
    assert "spf.include_missing" in ids(report)  # and SPF is still reported broken


def test_nonexistent_domain_is_one_finding(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(zones())
    report = run(make_session(nsd), "missing.good.test")
    assert [f.id for f in report.findings] == ["domain.nxdomain"]
    assert report.verdict == "fail" and not report.exists
    assert "does not exist" in report.summary


def test_a_domain_that_does_not_exist_is_said_after_the_first_answers(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    nsd.set_zones(zones())
    report = run(make_session(fault_proxy), "missing.good.test")
    assert [f.id for f in report.findings] == ["domain.nxdomain"]
    asked = sorted({(name, rdtype) for name, rdtype, _ in fault_proxy.queries})
    # the existence test, then DMARC's tree walk (its np= policy applies): no SPF chain, no MX,
    # none of the DKIM probes
    assert asked == [
        ("_dmarc.good.test", "TXT"),
        ("_dmarc.missing.good.test", "TXT"),
        ("_dmarc.test", "TXT"),
        ("missing.good.test", "TXT"),
    ]
    assert report.queries == len(fault_proxy.queries) == 4
    assert report.dmarc is not None and report.dmarc.record is not None  # the walk found p=reject


def test_an_existing_subdomain_inherits_and_is_not_nxdomain(
    nsd: NsdServer, make_session: SessionFactory
) -> None:
    nsd.set_zones(zones())
    report = run(make_session(nsd), "sub.good.test")
    assert report.exists
    assert {"dmarc.inherited", "spf.missing"} <= ids(report)
    assert report.dmarc is not None and report.dmarc.location == "good.test"


@pytest.mark.parametrize("fault", ["servfail", "refused", "timeout", "truncate"])
@pytest.mark.slow
def test_an_outage_is_unknown_never_missing(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory, fault: str
) -> None:
    nsd.set_zones(zones())
    fault_proxy.add_fault("_dmarc.good.test", fault)
    fault_proxy.add_fault("good.test", fault, "TXT")
    report = run(make_session(fault_proxy, timeout=0.3))
    found = ids(report)
    assert "dns.temperror" in found
    assert not {"dmarc.missing", "spf.missing", "domain.nxdomain"} & found
    assert report.verdict == "unknown"
    assert not report.dns_unreachable  # MX and DKIM lookups still answered


def test_dns_unreachable_is_its_own_state(make_session: SessionFactory) -> None:
    from tests.dnstest import free_port

    report = run(make_session(f"127.0.0.1:{free_port()}", timeout=0.2))
    assert report.dns_unreachable
    assert [f.id for f in report.findings] == ["dns.temperror"]
    assert report.summary.startswith("Could not reach DNS")


def test_json_has_the_documented_shape(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(zones())
    data = run(make_session(nsd)).to_json()
    assert {"domain", "summary", "dmarc", "spf", "dkim", "mx", "findings"} <= set(data)
    dmarc, spf = data["dmarc"], data["spf"]
    assert isinstance(dmarc, dict) and isinstance(spf, dict)
    assert {"record", "policy", "location"} <= set(dmarc)
    assert {"record", "dns_lookups", "void_lookups", "includes"} <= set(spf)
    assert data["dmarc"]["location"] == "_dmarc.good.test"  # type: ignore[index]
    findings = data["findings"]
    assert isinstance(findings, list) and findings
    assert {"id", "severity", "title", "detail", "fix"} <= set(findings[0])


@pytest.mark.slow
def test_a_new_check_never_reads_an_answer_from_before_it(
    nsd: NsdServer, make_session: SessionFactory
) -> None:
    nsd.set_zones(zones(dmarc="v=DMARC1; p=none; rua=mailto:d@good.test"))
    assert run(make_session(nsd)).dmarc.policy == "none"  # type: ignore[union-attr]
    nsd.set_zones(zones(dmarc="v=DMARC1; p=quarantine; rua=mailto:d@good.test"))
    assert run(make_session(nsd)).dmarc.policy == "quarantine"  # type: ignore[union-attr]


@pytest.mark.slow
def test_independent_lookups_run_concurrently(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    """About 70 questions, 3 levels deep: serial would take 70 × RTT; concurrent about 3-4 × RTT.
    A generous safety bound, not a benchmark (benchmarks/check_latency.py measures speed)."""
    nsd.set_zones(zones())
    fault_proxy.latency = 0.2
    session = make_session(fault_proxy, timeout=2.0)
    started = time.monotonic()
    report = run(session)
    elapsed = time.monotonic() - started
    assert report.errors == ()
    assert session.queries_sent > 60
    assert elapsed < 10 * 0.2, f"{elapsed:.2f}s for {session.queries_sent} queries"


def test_an_invalid_dmarc_record_is_the_reason_not_spf_or_dkim(
    nsd: NsdServer, make_session: SessionFactory
) -> None:
    zone = zones()
    zone["good.test"] = make_zone(
        "good.test",
        [
            ("@", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
            ("_dmarc", "TXT", "v=DMARC1; p=bogus; rua=nonsense"),
            ("s1._domainkey", "TXT", f"v=DKIM1; k=rsa; p={rsa_public_key()}"),
        ],
    )
    nsd.set_zones(zone)
    report = run(make_session(nsd), selectors=("s1",))
    assert report.verdict == "fail"
    assert "receivers ignore an invalid record, so no DMARC policy applies" in report.summary
    assert "neither SPF nor any DKIM key" not in report.summary
