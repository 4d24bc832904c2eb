"""The BIMI mark certificate (a=) through a real NSD and a real HTTPS server on 127.x.y.z:443 (test CA)."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.cli import main
from bot.cli.terminal_report import render_domain_report
from bot.slack.blocks.domain_report import render_report
from handlers.domain.bimi_certificate import LOGOTYPE_OID
from handlers.domain.check import DomainReport, check_domain
from handlers.domain.findings import Severity
from handlers.https_fetch import HttpsClient
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.httpstest import HttpsServer, LocalCa, Page
from tests.test_bimi import GOOD_SVG

# id-kp-BrandIndicatorforMessageIdentification: what a real VMC's extendedKeyUsage holds
BIMI_EKU = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.31")
# a minimal DER LogotypeExtn stand-in (an empty SEQUENCE): the check asks only that the extension be there
LOGOTYPE_DER = b"\x30\x00"

# domain label -> how its certificate is made
CASES = ("good", "expired", "wrongname", "nologotype", "untrusted", "expiring", "notfound")


class Issuer:
    """A CA key and certificate that signs mark certificates: the test CA, or an intermediate under it."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate

    def intermediate(self, name: str) -> Issuer:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=300))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issuer(key, certificate)

    def mark(
        self, names: list[str], *, days: float = 365, expired: bool = False, logotype: bool = True
    ) -> bytes:
        """A VMC-shaped leaf for `names`, as PEM followed by this issuer's certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        not_after = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Brands"),
                        x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=60))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([BIMI_EKU]), critical=False)
        )
        if logotype:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(LOGOTYPE_OID, LOGOTYPE_DER), critical=False
            )
        leaf = builder.sign(self.key, hashes.SHA256())
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, self.certificate))


def zone(server_address: str) -> str:
    records: list[tuple[str, str, str]] = []
    for name in CASES:
        records += [
            (name, "TXT", "v=spf1 -all"),
            (f"_dmarc.{name}", "TXT", "v=DMARC1; p=reject"),
            (
                f"default._bimi.{name}",
                "TXT",
                f"v=BIMI1; l=https://logo.{name}.test/logo.svg; a=https://vmc.{name}.test/vmc.pem",
            ),
            (f"logo.{name}", "A", server_address),
            (f"vmc.{name}", "A", server_address),
        ]
    # a record with no a=: no certificate is fetched, and nothing is said of one
    records += [
        ("noa", "TXT", "v=spf1 -all"),
        ("_dmarc.noa", "TXT", "v=DMARC1; p=reject"),
        ("default._bimi.noa", "TXT", "v=BIMI1; l=https://logo.good.test/logo.svg"),
    ]
    return make_zone("test", records)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return LocalCa(tmp_path_factory.mktemp("vmc-ca"))


@pytest.fixture(scope="module")
def https(ca: LocalCa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    authority = Issuer(ca.key, ca.certificate).intermediate("dmarcbot test Mark Verifying Authority")
    stranger = LocalCa(tmp_path_factory.mktemp("vmc-other-ca"))
    marks = {
        "good": authority.mark(["good.test"]),
        "expired": authority.mark(["expired.test"], expired=True),
        "wrongname": authority.mark(["other.test"]),
        "nologotype": authority.mark(["nologotype.test"], logotype=False),
        "untrusted": Issuer(stranger.key, stranger.certificate).mark(["untrusted.test"]),
        "expiring": authority.mark(["expiring.test"], days=10),
    }
    server = HttpsServer(ca)
    for name in CASES:
        logo = f"logo.{name}.test"
        server.add(logo, ca.leaf([logo]), Page(body=GOOD_SVG, headers={"Content-Type": "image/svg+xml"}))
        vmc = f"vmc.{name}.test"
        pem = marks.get(name)
        page = Page(body=pem, headers={"Content-Type": "application/pem-certificate-chain"}) if pem else None
        server.add(vmc, ca.leaf([vmc]), page or Page(404, b"not here"))
    with server:
        yield server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, https: HttpsServer) -> Iterator[NsdServer]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-vmc"))
    with server.start({"test": zone(https.address)}):
        yield server


def run_check(
    make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str, ca: LocalCa
) -> DomainReport:
    client = HttpsClient(ca_file=str(ca.ca_file))
    return asyncio.run(check_domain(domain, make_session(server), ["sel"], https=client))


def bimi_ids(report: DomainReport) -> list[str]:
    return sorted(f.id for f in report.findings if f.id.startswith(("bimi.", "dns.")))


def test_a_good_certificate_says_nothing_and_is_shown(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "good.test", ca)
    assert bimi_ids(report) == []
    certificate = report.to_json()["bimi"]["certificate"]  # type: ignore[index]
    assert certificate["subject"] == "CN=good.test,O=Example Brands"
    assert certificate["issuer"] == "CN=dmarcbot test Mark Verifying Authority"
    not_after = datetime.datetime.strptime(certificate["not_after"], "%Y-%m-%dT%H:%M:%SZ")
    days = (not_after.replace(tzinfo=datetime.UTC) - datetime.datetime.now(datetime.UTC)).days
    assert 363 <= days <= 365


def test_the_reports_show_the_certificate(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "expiring.test", ca)
    lines = render_domain_report(report).splitlines()
    bimi = lines[lines.index("BIMI") + 1 :]
    expiry = report.bimi.certificate.not_after  # type: ignore[union-attr]
    assert (
        f"  VMC:      expires {expiry:%Y-%m-%d}, issued by CN=dmarcbot test Mark Verifying Authority" in bimi
    )
    _, blocks = render_report(report, ["sel"], "T1")
    assert (
        f"VMC: expires {expiry:%Y-%m-%d}, issued by `CN=dmarcbot test Mark Verifying Authority`"
        in json.dumps(blocks, ensure_ascii=False)
    )


def test_no_a_tag_means_no_certificate_and_no_finding(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "noa.test", ca)
    assert bimi_ids(report) == []
    assert report.to_json()["bimi"]["certificate"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("expired.test", "it expired on "),
        ("wrongname.test", "its subjectAltName names other.test, not wrongname.test"),
        ("nologotype.test", "it has no logotype extension (id-pe-logotype, 1.3.6.1.5.5.7.1.12)"),
        ("untrusted.test", "its chain does not lead to a trusted Mark Verifying Authority root"),
        ("notfound.test", "could not be fetched: vmc.notfound.test answered HTTP 404 instead of 200"),
    ],
)
def test_an_unusable_certificate_is_an_error_saying_why(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run_check(make_session, world, domain, ca)
    assert bimi_ids(report) == ["bimi.certificate_invalid"]
    (invalid,) = [f for f in report.findings if f.id == "bimi.certificate_invalid"]
    assert invalid.severity is Severity.ERROR
    assert why in invalid.detail
    assert f"https://vmc.{domain}/vmc.pem" in invalid.detail
    # only the problem found: an expired certificate is not also called untrusted, and so on
    assert invalid.detail.count(";") == 0


def test_a_certificate_expiring_in_10_days_is_a_warning(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    report = run_check(make_session, world, "expiring.test", ca)
    assert bimi_ids(report) == ["bimi.certificate_expiring"]
    (expiring,) = [f for f in report.findings if f.id == "bimi.certificate_expiring"]
    assert expiring.severity is Severity.WARNING
    assert "day(s)" in expiring.detail and (
        "in 9 day(s)" in expiring.detail or "in 10 day(s)" in expiring.detail
    )


def test_an_outage_at_the_certificate_host_is_temperror_never_invalid(
    world: NsdServer, ca: LocalCa, make_session: SessionFactory
) -> None:
    with FaultProxy((world.host, world.port)) as proxy:
        proxy.add_fault("vmc.good.test", "servfail", "A")
        report = run_check(make_session, proxy, "good.test", ca)
    assert bimi_ids(report) == ["dns.temperror"]
    (outage,) = [f for f in report.findings if f.id == "dns.temperror"]
    assert "vmc.good.test" in outage.detail


def test_the_cli_json_has_the_certificate(
    world: NsdServer, ca: LocalCa, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DMARCBOT_CA_FILE", str(ca.ca_file))
    main(["check", "expiring.test", "--json", "--selector", "sel", "--nameserver", world.address])
    data = json.loads(capsys.readouterr().out)
    assert set(data["bimi"]["certificate"]) == {"not_after", "issuer", "subject"}
    assert "bimi.certificate_expiring" in [f["id"] for f in data["findings"]]
