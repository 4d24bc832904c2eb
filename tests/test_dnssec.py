"""DNSSEC through a real NSD serving zones signed in the test with dnspython's own signer."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Iterator

import dns.dnssec
import dns.dnssectypes
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bot.cli import main
from handlers.domain.dnssec import DnssecReport, check_dnssec
from handlers.domain.findings import Severity
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone

RECORDS = [
    ("@", "TXT", "v=spf1 -all"),
    ("@", "MX", "10 mx"),
    ("mx", "A", "192.0.2.10"),
    ("_dmarc", "TXT", "v=DMARC1; p=reject"),
    ("news", "TXT", "v=spf1 -all"),
]


def signed(origin: str, *, expired: bool = False) -> tuple[str, str]:
    """The zone signed with a fresh ECDSA P-256 key (RFC 6605), valid now unless `expired`, and the
    DS record its parent publishes for that key."""
    zone = dns.zone.from_text(make_zone(origin, RECORDS), origin, relativize=False)
    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssectypes.Algorithm.ECDSAP256SHA256, flags=257)
    now = datetime.datetime.now(datetime.UTC)
    inception, expiration = (
        (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
        if expired
        else (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=7))
    )
    with zone.writer() as txn:
        dns.dnssec.sign_zone(zone, txn, keys=[(key, dnskey)], inception=inception, expiration=expiration)
    ds = dns.dnssec.make_ds(origin + ".", dnskey, "SHA256")
    return zone.to_text(), f"{origin.split('.')[0]} IN DS {ds}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    (good, good_ds), (expired, expired_ds) = signed("signed.test"), signed("expired.test", expired=True)
    tampered, tampered_ds = signed("tampered.test")
    assert '"v=spf1 -all"' in tampered
    # the data changed after signing: its RRSIG no longer matches (the MX, _dmarc and DNSKEY still do)
    tampered = tampered.replace('"v=spf1 -all"', '"v=spf1 +all"', 1)
    children = ("signed", "expired", "tampered", "plain")
    # the parent delegates each zone, with the DS of each signed one (the chain of trust)
    delegations = [(child, "NS", f"ns.{child}.test.") for child in children]
    zones = {
        "test": make_zone("test", delegations) + "\n".join((good_ds, expired_ds, tampered_ds)) + "\n",
        "signed.test": good,
        "expired.test": expired,
        "tampered.test": tampered,
        "plain.test": make_zone("plain.test", RECORDS),
    }
    server = NsdServer(tmp_path_factory.mktemp("nsd-dnssec"))
    with server.start(zones):
        yield server


def run(make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str) -> DnssecReport:
    return asyncio.run(check_dnssec(make_session(server), domain))


@pytest.mark.parametrize("domain", ["signed.test", "news.signed.test"])
def test_a_signed_zone_whose_signatures_verify_says_nothing(
    world: NsdServer, make_session: SessionFactory, domain: str
) -> None:
    report = run(make_session, world, domain)
    assert report.findings == ()
    assert report.zone == "signed.test"
    assert report.to_json() == {"signed": True, "valid": True}


@pytest.mark.parametrize("domain", ["plain.test", "news.plain.test"])
def test_an_unsigned_zone_is_info(world: NsdServer, make_session: SessionFactory, domain: str) -> None:
    report = run(make_session, world, domain)
    (unsigned,) = report.findings
    assert unsigned.id == "dnssec.unsigned" and unsigned.severity is Severity.INFO
    assert "The zone plain.test publishes no DNSKEY record" in unsigned.detail
    assert report.to_json() == {"signed": False, "valid": None}


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        (
            "tampered.test",
            "the RRSIG on the TXT records of tampered.test does not verify (no DNSKEY with tag",
        ),
        ("expired.test", "the RRSIG on the DNSKEY records of expired.test does not verify (it expired on"),
    ],
)
def test_signatures_that_do_not_verify_are_an_error(
    world: NsdServer, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run(make_session, world, domain)
    (invalid,) = report.findings
    assert invalid.id == "dnssec.invalid" and invalid.severity is Severity.ERROR
    assert why in invalid.detail
    assert report.to_json() == {"signed": True, "valid": False}
    if domain == "tampered.test":
        assert "MX records" not in invalid.detail and "_dmarc" not in invalid.detail


@pytest.mark.parametrize("name", ["signed.test", "_dmarc.signed.test"])
def test_an_outage_is_temperror_never_unsigned_nor_invalid(
    world: NsdServer, make_session: SessionFactory, name: str
) -> None:
    with FaultProxy((world.host, world.port)) as proxy:
        proxy.add_fault(name, "servfail", "DNSKEY" if name == "signed.test" else "TXT")
        report = run(make_session, proxy, "signed.test")
    if name == "signed.test":
        (outage,) = report.findings
        assert outage.id == "dns.temperror" and "DNSKEY lookup for signed.test" in outage.detail
        assert report.to_json() == {"signed": None, "valid": None}
    else:
        # a record that could not be read is not judged: what was read verifies
        assert report.findings == () and report.to_json() == {"signed": True, "valid": True}


def test_the_whole_check_reports_dnssec(world: NsdServer, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", "tampered.test", "--json", "--selector", "sel", "--nameserver", world.address])
    data = json.loads(capsys.readouterr().out)
    assert data["dnssec"] == {"signed": True, "valid": False}
    assert "dnssec.invalid" in [f["id"] for f in data["findings"]]
    main(["check", "plain.test", "--json", "--selector", "sel", "--nameserver", world.address])
    data = json.loads(capsys.readouterr().out)
    assert data["dnssec"] == {"signed": False, "valid": None}
    assert [f["severity"] for f in data["findings"] if f["id"] == "dnssec.unsigned"] == ["info"]
