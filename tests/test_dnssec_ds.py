"""The parent's DS against the zone's DNSKEYs, with zones signed by dnssec-signzone and a parent
zone publishing the DS records, all served by a real NSD."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from bot.cli import main
from handlers.domain.dnssec import DnssecReport, check_dnssec
from handlers.domain.findings import Severity
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.dnstest.signing import ds_of, new_key, sign_with_bind

RECORDS = [
    ("@", "TXT", "v=spf1 -all"),
    ("@", "MX", "10 mx"),
    ("mx", "A", "192.0.2.10"),
    ("_dmarc", "TXT", "v=DMARC1; p=reject"),
]


def _altered(ds: str) -> str:
    """The DS line with the last hex digit of its digest changed: the key tag still names the key."""
    last = ds[-1]
    return ds[:-1] + ("0" if last != "0" else "1")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    keys = tmp_path_factory.mktemp("bind-keys")
    signed = {
        name: sign_with_bind(keys / name, f"{name}.test", make_zone(f"{name}.test", RECORDS))
        for name in ("good", "altered", "nokey", "zsk", "rollover", "island")
    }
    stray = ds_of(new_key(keys / "stray", "nokey.test", ksk=True))  # a key the zone never published
    ds = {
        "good": signed["good"].ds,
        "altered": _altered(signed["altered"].ds),
        "nokey": stray,
        "zsk": ds_of(signed["zsk"].zsk),  # the zone-signing key, which does not sign the DNSKEY set
        # a rollover: the old key's DS is still there beside the new one, and the new one suffices
        "rollover": ds_of(new_key(keys / "old", "rollover.test", ksk=True)) + "\n" + signed["rollover"].ds,
        "island": "",
    }
    delegations = [(f"{name}.test.", "NS", f"ns.{name}.test.") for name in (*signed, "plain")]
    parent = make_zone("test", delegations) + "\n".join(line for line in ds.values() if line) + "\n"
    zones = {"test": parent, **{f"{name}.test": zone.text for name, zone in signed.items()}}
    zones["plain.test"] = make_zone("plain.test", RECORDS)
    # a signed zone whose parent is not served: the "no DS" answer comes from the zone itself
    orphan = sign_with_bind(keys / "orphan", "orphan.example", make_zone("orphan.example", RECORDS))
    zones["orphan.example"] = orphan.text
    server = NsdServer(tmp_path_factory.mktemp("nsd-ds"))
    with server.start(zones):
        yield server


def run(make_session: SessionFactory, server: NsdServer | FaultProxy, domain: str) -> DnssecReport:
    return asyncio.run(check_dnssec(make_session(server), domain))


@pytest.mark.parametrize("domain", ["good.test", "rollover.test"])
def test_a_ds_matching_the_key_signing_key_says_nothing(
    world: NsdServer, make_session: SessionFactory, domain: str
) -> None:
    report = run(make_session, world, domain)
    assert report.findings == ()
    assert report.to_json() == {"signed": True, "valid": True}


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("altered.test", "the parent's DS record (key tag "),
        ("nokey.test", ", a key the zone does not publish) matches no DNSKEY of the zone"),
        ("zsk.test", "but no valid RRSIG by that key covers the zone's DNSKEY set"),
    ],
)
def test_a_ds_leading_to_no_signing_key_is_invalid(
    world: NsdServer, make_session: SessionFactory, domain: str, why: str
) -> None:
    report = run(make_session, world, domain)
    (invalid,) = report.findings
    assert invalid.id == "dnssec.invalid" and invalid.severity is Severity.ERROR
    assert why in invalid.detail
    assert "SERVFAIL for every name in the zone" in invalid.detail
    assert "DS record at your registrar" in invalid.fix
    assert report.to_json() == {"signed": True, "valid": False}
    if domain == "altered.test":
        # the tag names a key the zone publishes: only the digest is wrong
        assert "a key the zone does not publish" not in invalid.detail
        assert "matches no DNSKEY of the zone" in invalid.detail


def test_a_signed_zone_without_ds_is_an_island_reported_unsigned(
    world: NsdServer, make_session: SessionFactory
) -> None:
    report = run(make_session, world, "island.test")
    (island,) = report.findings
    assert island.id == "dnssec.unsigned" and island.severity is Severity.INFO
    assert "is signed, but its parent publishes no DS record for it" in island.detail
    assert "registrar" in island.fix
    assert report.to_json() == {"signed": True, "valid": True}


def test_no_ds_said_by_the_zone_itself_proves_nothing(world: NsdServer, make_session: SessionFactory) -> None:
    """Asked of the zone's own server, "no DS" is the child's answer, not the parent's: not an island."""
    with FaultProxy((world.host, world.port)) as proxy:
        report = run(make_session, proxy, "orphan.example")
        assert proxy.count("orphan.example", "DS") == 1
    assert report.findings == ()
    assert report.to_json() == {"signed": True, "valid": True}


def test_an_unsigned_zone_is_not_asked_for_its_ds(world: NsdServer, make_session: SessionFactory) -> None:
    with FaultProxy((world.host, world.port)) as proxy:
        report = run(make_session, proxy, "plain.test")
        assert proxy.count("plain.test", "DNSKEY") == 1
        assert proxy.count(rdtype="DS") == 0
    assert [f.id for f in report.findings] == ["dnssec.unsigned"]
    assert "publishes no DNSKEY record" in report.findings[0].detail


def test_a_ds_outage_is_temperror_never_an_island(world: NsdServer, make_session: SessionFactory) -> None:
    with FaultProxy((world.host, world.port)) as proxy:
        proxy.add_fault("good.test", "servfail", "DS")
        report = run(make_session, proxy, "good.test")
    (outage,) = report.findings
    assert outage.id == "dns.temperror" and "DS lookup for good.test" in outage.detail
    assert report.to_json() == {"signed": True, "valid": None}


def test_the_whole_check_reports_the_broken_chain(
    world: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "nokey.test", "--json", "--selector", "sel", "--nameserver", world.address]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["dnssec"] == {"signed": True, "valid": False}
    assert [f["severity"] for f in data["findings"] if f["id"] == "dnssec.invalid"] == ["error"]
