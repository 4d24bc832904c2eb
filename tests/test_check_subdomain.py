"""`check` of a subdomain agrees with `why` for a real message from it (RFC 9989 §4.4 relaxed
alignment, §4.10 the tree walk): under relaxed adkim/aspf an identifier at the organizational
domain aligns, so its DKIM keys and SPF count; under strict alignment they do not. Real NSD zones,
messages signed by dkimpy, the Slack stand-in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from bot.cli.terminal_report import render_domain_report
from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.domain.check import DomainReport, check_domain
from handlers.message.parse import parse_message
from handlers.message.verdict import diagnose_message
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.messages.helpers import key_record, message, rsa_key, sign, zones
from tests.slackstub import SlackStandIn
from tests.test_slack_app import check, section_texts

PEM, PUB = rsa_key(2048)
FORWARDER_IP = "91.198.174.2"  # not in any SPF record: only DKIM can align
RECORDS = {
    # good.test: relaxed alignment (the default); news.good.test publishes nothing of its own
    "_dmarc.good.test": [("TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test")],
    "good.test": [("TXT", "v=spf1 ip4:192.0.2.10 -all")],
    "s1._domainkey.good.test": [("TXT", key_record(PUB))],
    "news.good.test": [("A", "192.0.2.10")],
    # strict.test: adkim=s, aspf=s, the same keys and SPF at the organizational domain
    "_dmarc.strict.test": [("TXT", "v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:dmarc@strict.test")],
    "strict.test": [("TXT", "v=spf1 ip4:192.0.2.10 -all")],
    "s1._domainkey.strict.test": [("TXT", key_record(PUB))],
    "news.strict.test": [("A", "192.0.2.10")],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    nsd = NsdServer(tmp_path_factory.mktemp("nsd-subdomain"))
    nsd.start(zones(RECORDS))
    try:
        yield nsd
    finally:
        nsd.stop()


def session_for(server: NsdServer) -> DnsSession:
    return DnsSession(nameservers=(parse_nameserver(server.address),), timeout=0.5, attempts=1)


def check_of(server: NsdServer, domain: str, selectors: tuple[str, ...] = ()) -> DomainReport:
    return asyncio.run(check_domain(domain, session_for(server), selectors))


def why_result(server: NsdServer, org: str) -> str:
    raw = sign(message(f"News <news@news.{org}>"), org, "s1", PEM)
    verdict = asyncio.run(
        diagnose_message(
            session_for(server), parse_message(raw), ip=FORWARDER_IP, mail_from=f"news@news.{org}"
        )
    )
    return verdict.dmarc.result


@pytest.mark.parametrize(("org", "verdict"), [("good.test", "pass"), ("strict.test", "fail")])
def test_check_of_a_subdomain_agrees_with_why(server: NsdServer, org: str, verdict: str) -> None:
    assert why_result(server, org) == verdict
    assert check_of(server, f"news.{org}").verdict == verdict


def test_relaxed_alignment_names_the_organizational_identifiers(server: NsdServer) -> None:
    report = check_of(server, "news.good.test")
    assert report.verdict == "pass"
    assert "d=good.test" in report.summary and "relaxed" in report.summary
    # SPF at the subdomain is needed only for a MAIL FROM there: not an error
    spf_missing = next(f for f in report.findings if f.id == "spf.missing")
    assert spf_missing.severity.value == "warning" and "MAIL FROM at good.test" in spf_missing.detail
    assert not report.errors
    data = report.to_json()
    # every field stays; the alignment is added
    assert set(data) >= {
        "domain",
        "summary",
        "verdict",
        "dmarc",
        "spf",
        "dkim",
        "mx",
        "findings",
        "dns_queries",
    }
    alignment = data["alignment"]
    assert isinstance(alignment, dict)
    assert alignment["organizational_domain"] == "good.test"
    assert (alignment["adkim"], alignment["aspf"]) == ("r", "r")
    assert {(p["via"], p["domain"], p["selector"]) for p in alignment["paths"]} == {
        ("dkim", "good.test", "s1"),
        ("spf", "good.test", None),
    }
    assert [k["selector"] for k in alignment["organizational_dkim"]] == ["s1"]


def test_strict_alignment_fails_and_says_why(server: NsdServer) -> None:
    report = check_of(server, "news.strict.test")
    assert report.verdict == "fail"
    assert "adkim=s" in report.summary and "strict.test" in report.summary
    alignment = report.to_json()["alignment"]
    assert isinstance(alignment, dict) and alignment["paths"] == []


def test_named_selectors_are_probed_at_the_organizational_domain_too(server: NsdServer) -> None:
    report = check_of(server, "news.good.test", ("s1",))
    assert report.verdict == "pass"
    assert "selector s1" in report.summary


def test_the_terminal_shows_the_alignment(server: NsdServer) -> None:
    text = render_domain_report(check_of(server, "news.good.test"))
    assert text.startswith("[PASS] ")
    lines = text.splitlines()
    start = lines.index("Alignment")
    section = "\n".join(lines[start : lines.index("", start)])
    assert "organizational domain good.test" in section
    assert "DKIM d=good.test selector s1" in section
    assert "SPF for a MAIL FROM at good.test" in section


def test_slack_shows_the_alignment(server: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    _, post = check(make_app(server), "check news.good.test")
    assert post.blocks[0]["text"]["text"] == "news.good.test: can pass DMARC"
    alignment = next(s for s in section_texts(post) if s.startswith("*Alignment*"))
    assert "`good.test`" in alignment and "`s1`" in alignment and "relaxed" in alignment
    slack.assert_no_violations()
    assert json.dumps(post.blocks).count("d=good.test") >= 1
