"""DANE TLSA records of MX hosts (RFC 7672) through a real NSD: a zone signed by dnssec-signzone and an
unsigned one, usable and unusable records, an outage, and the cap on questions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from bot.cli import main
from handlers.domain.check import check_domain
from handlers.domain.findings import Finding, Severity
from handlers.domain.mx import check_mx
from handlers.domain.mx_hosts import MxHostsReport, check_mx_hosts
from handlers.limits import MAX_MX_HOSTS_CHECKED
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.dnstest.signing import sign_with_bind

SHA256 = "ab" * 32
SHA512 = "cd" * 64

# name -> the TLSA records at _25._tcp.mx.<name>.signed.test
CASES = {
    "ee": [f"3 1 1 {SHA256}"],
    "ta": [f"2 0 2 {SHA512}"],
    "pkix": [f"1 1 1 {SHA256}"],
    "short": ["3 1 1 abcdef"],
    "selector": [f"3 7 1 {SHA256}"],
    "mtype": [f"3 1 9 {SHA256}"],
    "mixed": [f"3 1 1 {SHA256}", f"0 0 1 {SHA256}"],
    "none": [],
}


def _host_records(name: str, tlsa: list[str]) -> list[tuple[str, str, str]]:
    records = [(name, "MX", f"10 mx.{name}"), (f"mx.{name}", "A", "192.0.2.25")]
    return records + [(f"_25._tcp.mx.{name}", "TLSA", record) for record in tlsa]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    records = [r for name, tlsa in CASES.items() for r in _host_records(name, tlsa)]
    records += [("many", "MX", f"{i} mx{i}.many") for i in range(MAX_MX_HOSTS_CHECKED + 2)]
    records += [(f"mx{i}.many", "A", "192.0.2.26") for i in range(MAX_MX_HOSTS_CHECKED + 2)]
    signed = sign_with_bind(
        tmp_path_factory.mktemp("bind-dane"), "signed.test", make_zone("signed.test", records)
    )
    zones = {
        "signed.test": signed.text,
        "plain.test": make_zone("plain.test", _host_records("ee", CASES["ee"])),
    }
    server = NsdServer(tmp_path_factory.mktemp("nsd-dane"))
    with server.start(zones):
        yield server


def hosts(make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str) -> MxHostsReport:
    async def run() -> MxHostsReport:
        session = make_session(server)
        return await check_mx_hosts(session, await check_mx(session, domain))

    return asyncio.run(run())


def dane(report: MxHostsReport) -> list[Finding]:
    return [f for f in report.findings if f.id == "dane.tlsa_invalid"]


def dane_ids(report: MxHostsReport) -> list[str]:
    """The findings of TLSA and of DNS: the test addresses have no reverse names, which is mx's business."""
    return [f.id for f in report.findings if f.id.startswith(("dane.", "dns."))]


@pytest.mark.parametrize("name", ["ee", "ta"])
def test_usable_tlsa_in_a_signed_zone_says_nothing(
    world: NsdServer, make_session: SessionFactory, name: str
) -> None:
    report = hosts(make_session, world, f"{name}.signed.test")
    assert dane_ids(report) == []
    (host,) = report.hosts
    assert host.to_json()["tlsa"] == [{"record": CASES[name][0], "usable": True}]


def test_no_tlsa_is_no_finding(world: NsdServer, make_session: SessionFactory) -> None:
    report = hosts(make_session, world, "none.signed.test")
    assert dane_ids(report) == [] and report.hosts[0].to_json()["tlsa"] == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("pkix", "usage 1 (PKIX-EE): SMTP senders use only DANE-TA (2) and DANE-EE (3)"),
        ("short", "the SHA-256 digest is 3 bytes long, not 32"),
        ("selector", "selector 7 is not defined"),
        ("mtype", "matching type 9 is not defined"),
    ],
)
def test_unusable_tlsa_is_an_error_with_the_reason(
    world: NsdServer, make_session: SessionFactory, name: str, why: str
) -> None:
    report = hosts(make_session, world, f"{name}.signed.test")
    (invalid,) = dane(report)
    assert invalid.severity is Severity.ERROR
    assert f"The MX host mx.{name}.signed.test publishes TLSA records senders cannot use" in invalid.detail
    assert why in invalid.detail and "No record is usable" in invalid.detail
    assert invalid.record == CASES[name][0]
    assert report.hosts[0].to_json()["tlsa"] == [{"record": CASES[name][0], "usable": False}]


def test_one_unusable_record_beside_a_usable_one_is_named(
    world: NsdServer, make_session: SessionFactory
) -> None:
    report = hosts(make_session, world, "mixed.signed.test")
    (invalid,) = dane(report)
    assert "usage 0 (PKIX-TA)" in invalid.detail and "The other 1 record(s) remain usable" in invalid.detail
    tlsa = report.hosts[0].tlsa
    assert tlsa is not None and sorted(r.usable for r in tlsa.records) == [False, True]


def test_tlsa_in_an_unsigned_zone_is_not_usable(world: NsdServer, make_session: SessionFactory) -> None:
    report = hosts(make_session, world, "ee.plain.test")
    (invalid,) = dane(report)
    assert "the zone holding them is not signed with DNSSEC, so senders ignore them" in invalid.detail
    assert report.hosts[0].to_json()["tlsa"] == [{"record": CASES["ee"][0], "usable": False}]


def test_a_tlsa_outage_is_temperror_never_invalid(world: NsdServer, make_session: SessionFactory) -> None:
    with FaultProxy((world.host, world.port)) as proxy:
        proxy.add_fault("_25._tcp.mx.pkix.signed.test", "servfail", "TLSA")
        report = hosts(make_session, proxy, "pkix.signed.test")
    assert dane_ids(report) == ["dns.temperror"]
    assert "TLSA lookup for _25._tcp.mx.pkix.signed.test" in report.findings[0].detail
    assert report.hosts[0].to_json()["tlsa"] == []


def test_one_tlsa_question_per_mx_host_capped_as_hosts_are(
    world: NsdServer, make_session: SessionFactory
) -> None:
    with FaultProxy((world.host, world.port)) as proxy:
        report = hosts(make_session, proxy, "many.signed.test")
        assert proxy.count(rdtype="TLSA") == MAX_MX_HOSTS_CHECKED
        assert proxy.count("_25._tcp.mx0.many.signed.test", "TLSA") == 1
    assert len(report.not_checked) == 2


def test_usable_dane_makes_a_missing_tls_rpt_a_warning(
    world: NsdServer, make_session: SessionFactory
) -> None:
    with_dane = asyncio.run(check_domain("ee.signed.test", make_session(world), ["sel"]))
    (missing,) = [f for f in with_dane.findings if f.id == "tls_rpt.missing"]
    assert missing.severity is Severity.WARNING and "DANE TLSA records" in missing.detail
    unusable = asyncio.run(check_domain("ee.plain.test", make_session(world), ["sel"]))
    (missing,) = [f for f in unusable.findings if f.id == "tls_rpt.missing"]
    assert missing.severity is Severity.INFO


def test_check_json_gives_each_mx_its_tlsa(world: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", "mixed.signed.test", "--json", "--selector", "sel", "--nameserver", world.address])
    data = json.loads(capsys.readouterr().out)
    (mx,) = data["mx"]
    assert sorted(mx["tlsa"], key=lambda r: r["record"]) == [
        {"record": f"0 0 1 {SHA256}", "usable": False},
        {"record": f"3 1 1 {SHA256}", "usable": True},
    ]
    assert "dane.tlsa_invalid" in [f["id"] for f in data["findings"]]
    main(["check", "ee.signed.test", "--selector", "sel", "--nameserver", world.address])
    text = capsys.readouterr().out
    assert "dane.tlsa_invalid" not in text
