"""BIMI through a real NSD and a real HTTPS server on 127.x.y.z:443 serving the logos, with a test CA."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from bot.cli import main
from bot.cli.terminal_report import render_domain_report
from handlers.domain.bimi import logo_problems
from handlers.domain.check import DomainReport, check_domain
from handlers.domain.findings import Severity
from handlers.https_fetch import HttpsClient
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.httpstest import HttpsServer, LocalCa, Page

GOOD_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" viewBox="0 0 100 100">'
    b'<title>Example</title><rect width="100" height="100" fill="#036"/></svg>'
)


def svg(body: bytes = b"", **attributes: str) -> Page:
    shown = {"baseProfile": "tiny-ps", "viewBox": "0 0 100 100", **attributes}
    attrs = " ".join(f'{k}="{v}"' for k, v in shown.items() if v)
    text = f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" {attrs}>'
    return Page(body=text.encode() + b"<title>Example</title>" + body + b"</svg>", headers={})


# domain -> (DMARC record, the logo page or None for no logo host)
SITES: dict[str, tuple[str, Page | None]] = {
    "good": ("v=DMARC1; p=reject", Page(body=GOOD_SVG, headers={"Content-Type": "image/svg+xml"})),
    "quarantine": ("v=DMARC1; p=quarantine", Page(body=GOOD_SVG)),
    "weak": ("v=DMARC1; p=none", Page(body=GOOD_SVG)),
    "testing": ("v=DMARC1; p=reject; t=y", Page(body=GOOD_SVG)),
    "script": ("v=DMARC1; p=reject", svg(b"<script>alert(1)</script>")),
    "external": ("v=DMARC1; p=reject", svg(b'<image xlink:href="https://tracker.test/p.png"/>')),
    "oblong": ("v=DMARC1; p=reject", svg(viewBox="0 0 200 100")),
    "tiny": ("v=DMARC1; p=reject", svg(baseProfile="tiny")),
    "big": ("v=DMARC1; p=reject", svg(b"<desc>" + b"x" * 40_000 + b"</desc>")),
    "notfound": ("v=DMARC1; p=reject", Page(404, b"not here")),
    "expired": ("v=DMARC1; p=reject", Page(body=GOOD_SVG)),
    "noaddress": ("v=DMARC1; p=reject", None),
}


def zone(server_address: str) -> str:
    records: list[tuple[str, str, str]] = []
    for name, (dmarc, page) in SITES.items():
        records += [
            (name, "TXT", "v=spf1 -all"),
            (f"_dmarc.{name}", "TXT", dmarc),
            (f"default._bimi.{name}", "TXT", f"v=BIMI1; l=https://logo.{name}.test/logo.svg"),
        ]
        if page is not None:
            records.append((f"logo.{name}", "A", server_address))
    records += [
        ("none", "TXT", "v=spf1 -all"),
        ("_dmarc.none", "TXT", "v=DMARC1; p=reject"),
        ("badrecord", "TXT", "v=spf1 -all"),
        ("default._bimi.badrecord", "TXT", "v=BIMI1; l=http://logo.good.test/logo.svg"),
        ("declined", "TXT", "v=spf1 -all"),
        ("default._bimi.declined", "TXT", "v=BIMI1; l=;"),
        # a subdomain at enforcement under an organizational domain that is not
        ("weakorg", "TXT", "v=spf1 -all"),
        ("_dmarc.weakorg", "TXT", "v=DMARC1; p=none; sp=reject"),
        ("mail.weakorg", "TXT", "v=spf1 -all"),
        ("_dmarc.mail.weakorg", "TXT", "v=DMARC1; p=reject"),
        ("default._bimi.mail.weakorg", "TXT", "v=BIMI1; l=https://logo.good.test/logo.svg"),
    ]
    return make_zone("test", records)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return LocalCa(tmp_path_factory.mktemp("bimi-ca"))


@pytest.fixture(scope="module")
def https(ca: LocalCa) -> Iterator[HttpsServer]:
    server = HttpsServer(ca)
    for name, (_, page) in SITES.items():
        if page is not None:
            host = f"logo.{name}.test"
            server.add(host, ca.leaf([host], expired=name == "expired"), page)
    with server:
        yield server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, https: HttpsServer) -> Iterator[NsdServer]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-bimi"))
    with server.start({"test": zone(https.address)}):
        yield server


def run_check(
    make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str, ca: LocalCa
) -> DomainReport:
    client = HttpsClient(ca_file=str(ca.ca_file))
    return asyncio.run(check_domain(domain, make_session(server), ["sel"], https=client))


def bimi_ids(report: DomainReport) -> list[str]:
    return sorted(f.id for f in report.findings if f.id.startswith(("bimi.", "dns.")))


@pytest.mark.parametrize("domain", ["good.test", "quarantine.test"])
def test_a_good_record_and_logo_under_enforcement_say_nothing(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str
) -> None:
    report = run_check(make_session, world, domain, ca)
    assert bimi_ids(report) == []
    assert report.to_json()["bimi"] == {
        "record": f"v=BIMI1; l=https://logo.{domain}/logo.svg",
        "logo_url": f"https://logo.{domain}/logo.svg",
        "certificate": None,
    }


def test_no_record_is_info(world: NsdServer, ca: LocalCa, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "none.test", ca)
    (missing,) = [f for f in report.findings if f.id.startswith("bimi.")]
    assert missing.id == "bimi.missing" and missing.severity is Severity.INFO
    assert "default._bimi.none.test" in missing.detail
    assert report.to_json()["bimi"] == {"record": None, "logo_url": None, "certificate": None}


def test_an_invalid_record_is_an_error_and_nothing_is_fetched(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "badrecord.test", ca)
    assert bimi_ids(report) == ["bimi.invalid"]
    (invalid,) = [f for f in report.findings if f.id == "bimi.invalid"]
    assert "not an https:// URL" in invalid.detail
    assert invalid.record == "v=BIMI1; l=http://logo.good.test/logo.svg"


def test_a_declination_record_asks_for_no_logo(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "declined.test", ca)
    assert bimi_ids(report) == []
    assert report.to_json()["bimi"]["logo_url"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("weak.test", "the DMARC policy is none, not quarantine or reject"),
        ("testing.test", "t=y (testing)"),
        ("mail.weakorg.test", "its organizational domain weakorg.test: the DMARC policy is none"),
    ],
)
def test_dmarc_below_enforcement_is_an_error(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run_check(make_session, world, domain, ca)
    assert bimi_ids(report) == ["bimi.dmarc_not_enforced"]
    (weak,) = [f for f in report.findings if f.id == "bimi.dmarc_not_enforced"]
    assert weak.severity is Severity.ERROR
    assert why in weak.detail


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("script.test", "holds a <script>"),
        ("external.test", 'refers to an external resource ("https://tracker.test/p.png")'),
        ("oblong.test", "viewBox is 200×100, not square"),
        ("tiny.test", 'baseProfile="tiny", not "tiny-ps"'),
        ("big.test", "larger than 32 KB"),
    ],
)
def test_a_logo_that_is_not_svg_tiny_ps_is_an_error(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run_check(make_session, world, domain, ca)
    assert bimi_ids(report) == ["bimi.logo_invalid"]
    (invalid,) = [f for f in report.findings if f.id == "bimi.logo_invalid"]
    assert why in invalid.detail
    assert f"https://logo.{domain}/logo.svg" in invalid.detail


@pytest.mark.parametrize(
    ("domain", "words"),
    [
        ("notfound.test", ["answered HTTP 404 instead of 200", "step: HTTP status"]),
        ("expired.test", ["certificate of logo.expired.test has expired", "step: TLS certificate"]),
        ("noaddress.test", ["logo.noaddress.test has no address", "step: DNS"]),
    ],
)
def test_every_logo_fetch_failure_says_which_step_in_words(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str, words: list[str]
) -> None:
    report = run_check(make_session, world, domain, ca)
    assert bimi_ids(report) == ["bimi.logo_unreachable"]
    (unreachable,) = [f for f in report.findings if f.id == "bimi.logo_unreachable"]
    for word in words:
        assert word in unreachable.detail
    assert "Error" not in unreachable.detail


@pytest.mark.parametrize(("name", "rdtype"), [("default._bimi.good.test", "TXT"), ("logo.good.test", "A")])
def test_an_outage_is_temperror_never_missing_or_unreachable(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, name: str, rdtype: str
) -> None:
    with FaultProxy((world.host, world.port)) as proxy:
        proxy.add_fault(name, "servfail", rdtype)
        report = run_check(make_session, proxy, "good.test", ca)
    assert bimi_ids(report) == ["dns.temperror"]
    (outage,) = [f for f in report.findings if f.id == "dns.temperror"]
    assert name in outage.detail


def test_hostile_xml_is_refused_without_expanding_it() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg" baseProfile="tiny-ps" viewBox="0 0 1 1">'
        b"<title>&b;</title></svg>"
    )
    assert logo_problems(laughs) == ["it declares XML entities or external references, which a logo must not"]
    assert logo_problems(b"<svg") == ["it is not well-formed XML"]
    assert logo_problems(b"<html/>") == ["its root element is not <svg> in the SVG namespace"]
    assert logo_problems(GOOD_SVG) == []


def test_the_cli_json_has_bimi(
    world: NsdServer, ca: LocalCa, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DMARCBOT_CA_FILE", str(ca.ca_file))
    main(["check", "weak.test", "--json", "--selector", "sel", "--nameserver", world.address])
    data = json.loads(capsys.readouterr().out)
    assert data["bimi"]["logo_url"] == "https://logo.weak.test/logo.svg"
    assert "bimi.dmarc_not_enforced" in [f["id"] for f in data["findings"]]


def test_the_terminal_report_shows_bimi_as_its_own_section_or_in_the_also_checked_line(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    weak = render_domain_report(run_check(make_session, world, "weak.test", ca)).splitlines()
    titles = [line for line in weak if line and not line.startswith((" ", "["))]
    assert titles[:8] == ["DMARC", "SPF", "DKIM", "MX", "MTA-STS", "TLS-RPT", "BIMI", "DNSSEC"]
    bimi = weak[weak.index("BIMI") + 1 : weak.index("DNSSEC")]
    assert bimi[:2] == [
        "  record:   v=BIMI1; l=https://logo.weak.test/logo.svg",
        "  logo:     https://logo.weak.test/logo.svg",
    ]
    assert any("bimi.dmarc_not_enforced" in line for line in bimi)
    good = render_domain_report(run_check(make_session, world, "good.test", ca)).splitlines()
    assert "BIMI" not in good
    assert "Also checked, nothing to report: BIMI." in good
