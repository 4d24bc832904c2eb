"""MTA-STS and TLS-RPT through a real NSD and a real HTTPS server on 127.x.y.z:443 with a test CA."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.common import EXIT_ERROR_FINDING, EXIT_OK
from handlers.domain.check import DomainReport, check_domain
from handlers.domain.findings import Severity
from handlers.domain.mta_sts import MtaStsPolicy
from handlers.https_fetch import HttpsClient
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.httpstest import HttpsServer, LocalCa, Page


def policy(mode: str = "enforce", max_age: int = 604800, *mx: str) -> Page:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return Page(body=("\r\n".join(lines) + "\r\n").encode())


# domain -> (certificate: "good", "expired", "wrong", "expiring"; the page mta-sts.DOMAIN serves)
SITES: dict[str, tuple[str, Page]] = {
    "good": ("good", policy("enforce", 604800, "mx.good.test")),
    "wild": ("good", policy("enforce", 604800, "*.wild.test")),
    "expired": ("expired", policy("enforce", 604800, "mx.expired.test")),
    "wrongname": ("wrong", policy("enforce", 604800, "mx.wrongname.test")),
    "redirect": ("good", Page(301, b"", {"Location": "https://elsewhere.test/\x1b[31mx"})),
    "big": ("good", Page(body=b"version: STSv1\r\n" + b"#" * 70_000)),
    "notfound": ("good", Page(404, b"not here")),
    "html": (
        "good",
        Page(body=policy("enforce", 604800, "mx.html.test").body, headers={"Content-Type": "text/html"}),
    ),
    "invalid": ("good", Page(body=b"version: STSv1\r\nmode: bogus\r\nmax_age: soon\r\n")),
    "uncovered": ("good", policy("enforce", 604800, "mx.other.test")),
    "testing": ("good", policy("testing", 3600, "mx.testing.test")),
    "expiring": ("expiring", policy("enforce", 604800, "mx.expiring.test")),
}
TLS_RPT = "v=TLSRPTv1; rua=mailto:tls@good.test"


def zone(server_address: str) -> str:
    records: list[tuple[str, str, str]] = []
    for name in [*SITES, "badrecord", "noaddress", "none", "tlsbad", "tlstwo"]:
        records += [(name, "MX", f"10 mx.{name}.test."), (f"mx.{name}", "A", "192.0.2.10")]
        if name not in ("none", "tlsbad", "tlstwo"):
            records.append((f"_mta-sts.{name}", "TXT", "v=STSv1; id=20250101T000000"))
        if name in SITES:
            records.append((f"mta-sts.{name}", "A", server_address))
    records[records.index(("_mta-sts.badrecord", "TXT", "v=STSv1; id=20250101T000000"))] = (
        "_mta-sts.badrecord",
        "TXT",
        "v=STSv1; id=not-an-id!",
    )
    records += [
        ("_smtp._tls.good", "TXT", TLS_RPT),
        ("_smtp._tls.tlsbad", "TXT", "v=TLSRPTv1; rua=ftp://reports.test"),
        ("_smtp._tls.tlstwo", "TXT", TLS_RPT),
        ("_smtp._tls.tlstwo", "TXT", "v=TLSRPTv1; rua=mailto:other@good.test"),
        ("mx.wild", "A", "192.0.2.10"),
    ]
    return make_zone("test", records)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return LocalCa(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture(scope="module")
def https(ca: LocalCa) -> Iterator[HttpsServer]:
    server = HttpsServer(ca)
    certificates = {
        "good": lambda host: ca.leaf([host]),
        "expired": lambda host: ca.leaf([host], expired=True),
        "wrong": lambda host: ca.leaf(["someone-else.test"]),
        "expiring": lambda host: ca.leaf([host], days=5),
    }
    for name, (kind, page) in SITES.items():
        host = f"mta-sts.{name}.test"
        server.add(host, certificates[kind](host), page)
    with server:
        yield server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, https: HttpsServer) -> Iterator[NsdServer]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-mta-sts"))
    with server.start({"test": zone(https.address)}):
        yield server


@pytest.fixture
def proxy(world: NsdServer) -> Iterator[FaultProxy]:
    with FaultProxy((world.host, world.port)) as fault_proxy:
        yield fault_proxy


def run_check(
    make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str, ca_file: Path | None
) -> DomainReport:
    client = HttpsClient(ca_file=str(ca_file) if ca_file else None)
    return asyncio.run(check_domain(domain, make_session(server), https=client))


def transport_ids(report: DomainReport) -> list[str]:
    return sorted(f.id for f in report.findings if f.id.startswith(("mta_sts.", "tls_rpt.", "dns.")))


def test_a_good_policy_and_tls_rpt_say_nothing(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "good.test", ca.ca_file)
    assert transport_ids(report) == []
    data = report.to_json()
    assert data["mta_sts"] == {
        "record": "v=STSv1; id=20250101T000000",
        "policy": {"mode": "enforce", "max_age": 604800, "mx": ["mx.good.test"]},
    }
    assert data["tls_rpt"] == {"record": TLS_RPT, "rua": ["mailto:tls@good.test"]}


def test_a_wildcard_pattern_covers_one_label(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "wild.test", ca.ca_file)
    assert "mta_sts.mx_not_covered" not in transport_ids(report)
    assert MtaStsPolicy("enforce", 86400, ("*.wild.test",)).covers("mx.wild.test")
    assert not MtaStsPolicy("enforce", 86400, ("*.wild.test",)).covers("a.mx.wild.test")
    assert not MtaStsPolicy("enforce", 86400, ("*.wild.test",)).covers("wild.test")


def test_no_record_is_info_and_tls_rpt_missing_is_info(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "none.test", ca.ca_file)
    assert transport_ids(report) == ["mta_sts.missing", "tls_rpt.missing"]
    assert {f.severity for f in report.findings if f.id in ("mta_sts.missing", "tls_rpt.missing")} == {
        Severity.INFO
    }
    assert report.to_json()["mta_sts"] == {"record": None, "policy": None}


def test_tls_rpt_missing_is_a_warning_once_mta_sts_is_published(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "testing.test", ca.ca_file)
    (missing,) = [f for f in report.findings if f.id == "tls_rpt.missing"]
    assert missing.severity is Severity.WARNING and "MTA-STS" in missing.detail


@pytest.mark.parametrize(
    ("domain", "why"),
    [("tlsbad.test", "not a mailto: address or an https: URL"), ("tlstwo.test", "has 2 v=TLSRPTv1 records")],
)
def test_an_invalid_tls_rpt_record_is_an_error(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run_check(make_session, world, domain, ca.ca_file)
    (invalid,) = [f for f in report.findings if f.id == "tls_rpt.invalid"]
    assert invalid.severity is Severity.ERROR and why in invalid.detail
    assert "tls_rpt.missing" not in transport_ids(report)


def test_an_invalid_record_is_an_error_and_nothing_is_fetched(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "badrecord.test", ca.ca_file)
    assert transport_ids(report) == ["mta_sts.record_invalid", "tls_rpt.missing"]
    (invalid,) = [f for f in report.findings if f.id == "mta_sts.record_invalid"]
    assert "not-an-id!" in invalid.detail and invalid.record == "v=STSv1; id=not-an-id!"


@pytest.mark.parametrize(
    ("domain", "words"),
    [
        (
            "expired.test",
            ["the TLS certificate of mta-sts.expired.test has expired", "step: TLS certificate"],
        ),
        ("wrongname.test", ["does not name the host", "step: TLS certificate"]),
        (
            "redirect.test",
            ["answered HTTP 301, a redirect to https://elsewhere.test/[31mx", "step: redirect"],
        ),
        ("big.test", ["is larger than 64 KB", "step: size"]),
        ("notfound.test", ["answered HTTP 404 instead of 200", "step: HTTP status"]),
        ("noaddress.test", ["mta-sts.noaddress.test has no address", "step: DNS"]),
    ],
)
def test_every_fetch_failure_says_which_step_in_words(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str, words: list[str]
) -> None:
    report = run_check(make_session, world, domain, ca.ca_file)
    (unreachable,) = [f for f in report.findings if f.id == "mta_sts.policy_unreachable"]
    assert unreachable.severity is Severity.ERROR
    for word in words:
        assert word in unreachable.detail
    assert "\x1b" not in unreachable.detail and "Error" not in unreachable.detail
    assert report.to_json()["mta_sts"] == {"record": "v=STSv1; id=20250101T000000", "policy": None}


def test_the_certificate_is_verified_against_the_system_cas_by_default(
    world: NsdServer, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "good.test", None)
    (unreachable,) = [f for f in report.findings if f.id == "mta_sts.policy_unreachable"]
    assert "is signed by a CA that is not trusted" in unreachable.detail


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("invalid.test", 'mode is "bogus"'),
        ("html.test", '"text/html", not text/plain'),
    ],
)
def test_an_invalid_policy_is_an_error(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run_check(make_session, world, domain, ca.ca_file)
    (invalid,) = [f for f in report.findings if f.id == "mta_sts.policy_invalid"]
    assert why in invalid.detail
    assert "mta_sts.mx_not_covered" not in transport_ids(report)


def test_an_mx_host_outside_the_policy_is_an_error(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "uncovered.test", ca.ca_file)
    assert transport_ids(report) == ["mta_sts.mx_not_covered", "tls_rpt.missing"]
    (uncovered,) = [f for f in report.findings if f.id == "mta_sts.mx_not_covered"]
    assert "mx.uncovered.test" in uncovered.detail and "mx.other.test" in uncovered.detail
    assert '"mx: mx.uncovered.test"' in uncovered.fix


def test_testing_mode_and_a_short_max_age_are_warnings(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "testing.test", ca.ca_file)
    assert transport_ids(report) == ["mta_sts.max_age_short", "mta_sts.testing", "tls_rpt.missing"]
    policy_json = report.to_json()["mta_sts"]["policy"]  # type: ignore[index]
    assert policy_json == {"mode": "testing", "max_age": 3600, "mx": ["mx.testing.test"]}


def test_a_certificate_near_expiry_is_a_warning(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "expiring.test", ca.ca_file)
    assert transport_ids(report) == ["mta_sts.cert_expiring", "tls_rpt.missing"]
    (expiring,) = [f for f in report.findings if f.id == "mta_sts.cert_expiring"]
    assert "in 4 day(s)" in expiring.detail or "in 5 day(s)" in expiring.detail


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [("_mta-sts.good.test", "TXT"), ("mta-sts.good.test", "A"), ("_smtp._tls.good.test", "TXT")],
)
def test_an_outage_is_temperror_never_missing_or_unreachable(
    proxy: FaultProxy, ca: LocalCa, make_session: SessionFactory, name: str, rdtype: str
) -> None:
    proxy.add_fault(name, "servfail", rdtype)
    report = run_check(make_session, proxy, "good.test", ca.ca_file)
    assert transport_ids(report) == ["dns.temperror"]
    (outage,) = [f for f in report.findings if f.id == "dns.temperror"]
    assert name in outage.detail


def test_the_cli_reads_the_ca_file_from_the_environment(
    world: NsdServer,
    ca: LocalCa,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DMARCBOT_CA_FILE", str(ca.ca_file))
    code = main(["check", "testing.test", "--json", "--nameserver", world.address])
    data = json.loads(capsys.readouterr().out)
    assert data["mta_sts"]["policy"]["mode"] == "testing"
    assert code == EXIT_ERROR_FINDING  # testing.test has no DMARC record
    monkeypatch.setenv("DMARCBOT_CA_FILE", str(ca.ca_file.with_name("missing.pem")))
    assert main(["check", "testing.test", "--nameserver", world.address]) != EXIT_OK
    assert "DMARCBOT_CA_FILE" in capsys.readouterr().err
