"""check_dkim through a real NSD: every dkim.* finding present and absent, selector probing, CNAMEs to a
provider, wildcards, outages, and the dkimpy / mailauth key records served and read."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from handlers.domain.dkim_keys import (
    COMMON_SELECTORS,
    DkimReport,
    InvalidSelector,
    check_dkim,
    parse_key_record,
    validate_selector,
)
from handlers.domain.findings import Severity
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.keys import rsa_public_key, rsa_public_numbers
from tests.testdata import TESTDATA

DKIMPY = TESTDATA / "dkim-dkimpy"
MAILAUTH = TESTDATA / "dkim-mailauth-ec"


def pkcs1_key(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return base64.b64encode(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    ).decode()


def ed25519_key() -> str:
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


RSA512, RSA1023, RSA1024, RSA2048, RSA4096 = (rsa_public_key(b) for b in (512, 1023, 1024, 2048, 4096))
ED = ed25519_key()
THIRTY_ONE_BYTES = base64.b64encode(b"x" * 31).decode()

# selector -> (record at <selector>._domainkey.keys.test, finding ids, key_type, key_bits)
KEYS: dict[str, tuple[str, list[str], str | None, int | None]] = {
    "rsa2048": (f"v=DKIM1; k=rsa; p={RSA2048}", [], "rsa", 2048),
    "rsa4096": (f"v=DKIM1; k=rsa; p={RSA4096}", [], "rsa", 4096),  # several TXT strings
    "implicit-k": (f"v=DKIM1; p={RSA2048}", [], "rsa", 2048),
    "no-v": (f"k=rsa; p={RSA2048}", [], "rsa", 2048),
    "spaces": (f"v=DKIM1; k=rsa; p={RSA2048[:100]} {RSA2048[100:200]}\t{RSA2048[200:]}", [], "rsa", 2048),
    "pkcs1": (f"v=DKIM1; k=rsa; p={pkcs1_key(2048)}", [], "rsa", 2048),
    "service-email": (f"v=DKIM1; s=email; p={RSA2048}", [], "rsa", 2048),
    "service-any": (f"v=DKIM1; s=*:tlsrpt; p={RSA2048}", [], "rsa", 2048),
    "rsa1024": (f"v=DKIM1; k=rsa; p={RSA1024}", ["dkim.weak_key"], "rsa", 1024),
    "rsa1023": (f"v=DKIM1; k=rsa; p={RSA1023}", ["dkim.weak_key"], "rsa", 1023),
    "rsa512": (f"v=DKIM1; k=rsa; p={RSA512}", ["dkim.weak_key"], "rsa", 512),
    "ed": (f"v=DKIM1; k=ed25519; p={ED}", [], "ed25519", 256),
    "ed-upper": (f"v=DKIM1; k=ED25519; p={ED}", [], "ed25519", 256),
    "revoked": ("v=DKIM1; k=rsa; p=", ["dkim.key_revoked"], "rsa", None),
    "revoked-ed": ("v=DKIM1; k=ed25519; p=", ["dkim.key_revoked"], "ed25519", None),
    "bad-base64": ("v=DKIM1; k=rsa; p=!!!not*base64!!!", ["dkim.key_invalid"], "rsa", None),
    "not-a-key": (
        f"v=DKIM1; k=rsa; p={base64.b64encode(b'hello world').decode()}",
        ["dkim.key_invalid"],
        "rsa",
        None,
    ),
    "v2": (f"v=DKIM2; k=rsa; p={RSA2048}", ["dkim.key_invalid"], "rsa", 2048),
    "v-late": (f"k=rsa; v=DKIM1; p={RSA2048}", ["dkim.key_invalid"], "rsa", 2048),
    "dsa": (f"v=DKIM1; k=dsa; p={RSA2048}", ["dkim.key_invalid"], "dsa", None),
    "no-p": ("v=DKIM1; k=rsa", ["dkim.key_invalid"], "rsa", None),
    "ed-short": (f"v=DKIM1; k=ed25519; p={THIRTY_ONE_BYTES}", ["dkim.key_invalid"], "ed25519", None),
    "ed-holds-rsa": (f"v=DKIM1; k=ed25519; p={RSA2048}", ["dkim.key_invalid"], "ed25519", None),
    "rsa-holds-ed": (f"v=DKIM1; k=rsa; p={ED}", ["dkim.key_invalid"], "rsa", None),
    "service-tlsrpt": (f"v=DKIM1; s=tlsrpt; p={RSA2048}", ["dkim.key_invalid"], "rsa", 2048),
    "garbage": ("hello world", ["dkim.key_invalid"], "rsa", None),
    "testing": (f"v=DKIM1; t=y; p={RSA2048}", ["dkim.testing"], "rsa", 2048),
    "testing-both": (f"v=DKIM1; t=s:y; p={RSA2048}", ["dkim.testing"], "rsa", 2048),
    "strict-only": (f"v=DKIM1; t=s; p={RSA2048}", [], "rsa", 2048),
    "weak-testing": (f"v=DKIM1; t=y; p={RSA1024}", ["dkim.testing", "dkim.weak_key"], "rsa", 1024),
    "revoked-testing": ("v=DKIM1; t=y; p=", ["dkim.key_revoked", "dkim.testing"], "rsa", None),
    # an attacker's keys: costly to verify, so refused unverified (handlers/limits.py)
    "rsa262144": (f"v=DKIM1; p={rsa_public_numbers(262144)}", ["dkim.key_invalid"], "rsa", 262144),
    "rsa8193": (f"v=DKIM1; p={rsa_public_numbers(8193)}", ["dkim.key_invalid"], "rsa", 8193),
    "exponent-over-2-32": (
        f"v=DKIM1; p={rsa_public_numbers(2048, 2**32 + 1)}",
        ["dkim.key_invalid"],
        "rsa",
        2048,
    ),
    "largest-allowed": (f"v=DKIM1; p={rsa_public_numbers(8192, 2**32 - 1)}", [], "rsa", 8192),
    # CNAME to a provider's zone (the usual hosted-DKIM setup)
    "provider": ("", [], "rsa", 2048),
}

FOUND_SEVERITY = {
    ("rsa1024", "dkim.weak_key"): Severity.WARNING,
    ("weak-testing", "dkim.weak_key"): Severity.WARNING,
    ("rsa1023", "dkim.weak_key"): Severity.ERROR,
    ("rsa512", "dkim.weak_key"): Severity.ERROR,
}


def _keys_zone() -> str:
    records: list[tuple[str, str, str]] = [
        (f"{sel}._domainkey.keys", "TXT", value) for sel, (value, *_) in KEYS.items() if value
    ]
    records += [
        ("provider._domainkey.keys", "CNAME", "s1.keys.dkim.provider.example."),
        ("provider-gone._domainkey.keys", "CNAME", "gone.keys.dkim.provider.example."),
        ("provider-out._domainkey.keys", "CNAME", "key.outside.example."),
        ("nodata._domainkey.keys", "A", "192.0.2.1"),
        ("keys", "A", "192.0.2.1"),
        # probing
        ("google._domainkey.probe", "TXT", f"v=DKIM1; k=rsa; p={RSA2048}"),
        ("selector1._domainkey.probe", "TXT", f"v=DKIM1; k=rsa; p={RSA1024}"),
        ("selector2._domainkey.probe", "TXT", "not a key, a stray note"),
        ("probe-none", "A", "192.0.2.2"),
        ("*._domainkey.wild", "TXT", "v=spf1 -all"),
        ("*._domainkey.wild-token", "TXT", "google-site-verification=abcdef"),
        ("*._domainkey.wild-key", "TXT", "v=spf1 -all"),
        ("s1._domainkey.wild-key", "TXT", f"v=DKIM1; p={RSA2048}"),
        ("k1._domainkey.probe-cname", "CNAME", "s1.keys.dkim.provider.example."),
    ]
    return make_zone("test", records)


PROVIDER_ZONE = make_zone(
    "provider.example",
    [
        ("s1.keys.dkim", "TXT", f"v=DKIM1; k=rsa; p={RSA2048}"),
    ],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    server = NsdServer(tmp_path_factory.mktemp("nsd-dkim"))
    with server.start({"test": _keys_zone(), "provider.example": PROVIDER_ZONE}):
        yield server


@pytest.fixture
def proxy(world: NsdServer) -> Iterator[FaultProxy]:
    with FaultProxy((world.host, world.port)) as fault_proxy:
        yield fault_proxy


def run_check(
    make_session: SessionFactory,
    server: NsdServer | FaultProxy | str,
    domain: str,
    selectors: tuple[str, ...] = (),
) -> DkimReport:
    return asyncio.run(check_dkim(make_session(server), domain, selectors))


def ids(report: DkimReport) -> list[str]:
    return sorted(f.id for f in report.findings)


@pytest.mark.parametrize("selector", list(KEYS))
def test_named_selector(world: NsdServer, make_session: SessionFactory, selector: str) -> None:
    record, expected_ids, key_type, key_bits = KEYS[selector]
    report = run_check(make_session, world, "keys.test", (selector,))
    assert ids(report) == sorted(expected_ids), [f.detail for f in report.findings]
    (key,) = report.keys
    assert (key.selector, key.name) == (selector, f"{selector}._domainkey.keys.test")
    assert (key.key_type, key.key_bits) == (key_type, key_bits)
    if record:
        assert key.record == record  # TXT strings joined with no separator
    assert key.revoked == ("dkim.key_revoked" in expected_ids)
    assert key.testing == ("dkim.testing" in expected_ids)
    assert not report.probed and report.selectors_tried == (selector,)
    for found in report.findings:
        expected = FOUND_SEVERITY.get((selector, found.id))
        if expected is not None:
            assert found.severity == expected
        assert found.record == key.record
    assert key.to_json()["key_bits"] == key_bits


@pytest.mark.parametrize(
    ("selector", "needle"),
    [
        ("bad-base64", "not valid base64"),
        ("not-a-key", "does not hold an RSA public key"),
        ("v2", "v=DKIM2 is not DKIM1"),
        ("v-late", "v= must be the first tag"),
        ("dsa", "k=dsa is not a known key type"),
        ("no-p", "p= tag (the public key) is missing"),
        ("ed-short", "31 bytes"),
        ("ed-holds-rsa", "not an ed25519 key's 32"),
        ("service-tlsrpt", "s=tlsrpt"),
        ("rsa512", "512-bit"),
        ("rsa1024", "RFC 8301 recommends 2048"),
        ("revoked", "revoked"),
        ("testing", "t=y"),
        ("rsa262144", "the RSA key has 262144 bits; keys over 8192 bits are refused unverified"),
        ("rsa8193", "the RSA key has 8193 bits; keys over 8192 bits are refused unverified"),
        ("exponent-over-2-32", "public exponent has 33 bits; exponents over 2^32 are refused unverified"),
    ],
)
def test_finding_detail_names_the_cause(
    world: NsdServer, make_session: SessionFactory, selector: str, needle: str
) -> None:
    report = run_check(make_session, world, "keys.test", (selector,))
    assert any(needle in f.detail for f in report.findings), [f.detail for f in report.findings]


@pytest.mark.parametrize(
    ("selector", "needle"),
    [
        ("nosuch", "does not exist (NXDOMAIN)"),
        ("nodata", "has no TXT record"),
        ("provider-gone", "does not exist (NXDOMAIN)"),
    ],
)
def test_key_missing(world: NsdServer, make_session: SessionFactory, selector: str, needle: str) -> None:
    report = run_check(make_session, world, "keys.test", (selector,))
    assert ids(report) == ["dkim.key_missing"]
    assert report.keys == ()
    (missing,) = report.findings
    assert needle in missing.detail
    assert f"{selector}._domainkey.keys.test" in missing.detail + missing.fix


def test_cname_to_provider_resolves(world: NsdServer, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "keys.test", ("provider",))
    (key,) = report.keys
    assert key.name == "provider._domainkey.keys.test"
    assert key.record == f"v=DKIM1; k=rsa; p={RSA2048}"
    assert (key.key_type, key.key_bits) == ("rsa", 2048)


def test_several_named_selectors_each_judged(world: NsdServer, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "keys.test", ("rsa2048", "nosuch", "rsa512", "rsa2048"))
    assert report.selectors_tried == ("rsa2048", "nosuch", "rsa512")
    assert [k.selector for k in report.keys] == ["rsa2048", "rsa512"]
    assert ids(report) == ["dkim.key_missing", "dkim.weak_key"]


# -- probing ----------------------------------------------------------------------------------------


def test_probe_finds_nothing(proxy: FaultProxy, make_session: SessionFactory) -> None:
    report = run_check(make_session, proxy, "probe-none.test")
    assert ids(report) == ["dkim.no_selector"]
    assert report.probed and report.selectors_tried == COMMON_SELECTORS
    assert 30 <= len(COMMON_SELECTORS) <= 60
    (none,) = report.findings
    assert none.severity is Severity.INFO
    for selector in ("google", "selector1", "selector2", "default"):
        assert selector in none.detail
    assert f"{len(COMMON_SELECTORS)} common selectors" in none.detail
    asked = {name for name, rdtype, _ in proxy.queries if rdtype == "TXT"}
    assert asked == {f"{s}._domainkey.probe-none.test" for s in COMMON_SELECTORS}


def test_probe_finds_keys(world: NsdServer, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "probe.test")
    assert sorted(k.selector for k in report.keys) == ["google", "selector1"]  # the stray note is no key
    assert ids(report) == ["dkim.weak_key"]
    (weak,) = report.findings
    assert weak.severity is Severity.WARNING and "selector1" in weak.detail


def test_probe_follows_a_cname_to_the_provider(world: NsdServer, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "probe-cname.test")
    assert [(k.selector, k.key_bits) for k in report.keys] == [("k1", 2048)]
    assert ids(report) == []


@pytest.mark.parametrize("domain", ["wild.test", "wild-token.test"])
def test_wildcard_txt_is_not_a_key_when_probing(
    world: NsdServer, make_session: SessionFactory, domain: str
) -> None:
    report = run_check(make_session, world, domain)
    assert report.keys == ()
    assert ids(report) == ["dkim.no_selector"]


def test_wildcard_beside_a_real_key(world: NsdServer, make_session: SessionFactory) -> None:
    report = run_check(make_session, world, "wild-key.test")
    assert [k.selector for k in report.keys] == ["s1"]
    assert ids(report) == []


def test_named_selector_under_a_wildcard_is_judged(world: NsdServer, make_session: SessionFactory) -> None:
    """Named, the record at that name is what a verifier reads: an SPF string there is not a key."""
    report = run_check(make_session, world, "wild.test", ("anything",))
    assert ids(report) == ["dkim.key_invalid"]


# -- outages ------------------------------------------------------------------------------------------

OUTAGES = ["servfail", "refused", "timeout", "truncate"]


@pytest.mark.parametrize("kind", OUTAGES)
def test_named_selector_outage_is_temperror(
    proxy: FaultProxy, make_session: SessionFactory, kind: str
) -> None:
    proxy.add_fault("rsa2048._domainkey.keys.test", kind)
    report = run_check(make_session, proxy, "keys.test", ("rsa2048", "rsa512"))
    assert ids(report) == ["dkim.weak_key", "dns.temperror"]
    temperror = next(f for f in report.findings if f.id == "dns.temperror")
    assert "rsa2048._domainkey.keys.test" in temperror.detail
    assert "not missing" in temperror.detail


@pytest.mark.parametrize("kind", OUTAGES)
@pytest.mark.slow
def test_outage_at_the_provider_is_temperror(
    proxy: FaultProxy, make_session: SessionFactory, kind: str
) -> None:
    """The selector is a CNAME to a provider zone this NSD does not serve, so the resolver asks the
    provider's name itself (NSD would chase a CNAME into a zone it serves within one answer)."""
    proxy.add_fault("key.outside.example", kind)
    report = run_check(make_session, proxy, "keys.test", ("provider-out",))
    assert ids(report) == ["dns.temperror"]
    assert proxy.count("key.outside.example") >= 1
    assert "provider-out._domainkey.keys.test" in report.findings[0].detail


@pytest.mark.parametrize("kind", OUTAGES)
@pytest.mark.slow
def test_probing_outage_is_temperror_not_no_selector(
    proxy: FaultProxy, make_session: SessionFactory, kind: str
) -> None:
    proxy.add_fault("*._domainkey.probe-none.test", kind)
    report = run_check(make_session, proxy, "probe-none.test")
    assert ids(report) == ["dns.temperror"]
    assert f"{len(COMMON_SELECTORS)} DKIM key lookups failed" in report.findings[0].detail


def test_partial_probing_outage_keeps_what_was_found(proxy: FaultProxy, make_session: SessionFactory) -> None:
    proxy.add_fault("selector1._domainkey.probe.test", "servfail")
    report = run_check(make_session, proxy, "probe.test")
    assert [k.selector for k in report.keys] == ["google"]
    assert ids(report) == ["dns.temperror"]


def test_truncated_with_tcp_fallback_reads_the_key(proxy: FaultProxy, make_session: SessionFactory) -> None:
    proxy.add_fault("rsa4096._domainkey.keys.test", "truncate_ok")
    report = run_check(make_session, proxy, "keys.test", ("rsa4096",))
    assert [(k.key_bits, k.problems) for k in report.keys] == [(4096, ())]
    assert proxy.count("rsa4096._domainkey.keys.test", transport="tcp") == 1


# -- selectors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("Google", "google"), (" s1 ", "s1"), ("a.b", "a.b"), ("k-1_x", "k-1_x")]
)
def test_validate_selector(text: str, expected: str) -> None:
    assert validate_selector(text) == expected


@pytest.mark.parametrize("text", ["", "a b", "a..b", ".a", "a/b", "x" * 64, "sel;drop"])
def test_invalid_selector(text: str) -> None:
    with pytest.raises(InvalidSelector):
        validate_selector(text)


# -- third-party key records (dkimpy, mailauth) served from NSD --------------------------------------


def _dkimpy_records() -> dict[str, str]:
    data = json.loads((DKIMPY / "dns_map.json").read_text())
    records = {}
    for name, value in data["records"].items():
        text = (DKIMPY / value["file"]).read_text().strip() if isinstance(value, dict) else value
        records[name.rstrip(".")] = text
    return records


DKIMPY_RECORDS = _dkimpy_records()
# name -> (key_type, key_bits, finding ids)
DKIMPY_EXPECTED: dict[str, tuple[str | None, int | None, list[str]]] = {
    "test._domainkey.example.com": ("rsa", 1024, ["dkim.weak_key"]),
    "test._domainkey.football.example.com": ("rsa", 1024, ["dkim.weak_key"]),
    "brisbane._domainkey.football.example.com": ("ed25519", 256, []),
    "test._domainkey.example.net": ("ed25519", 256, []),
    "sed._domainkey.test.ex": ("ed25519", 256, []),
    "example._domainkey.canonical.com": ("rsa", 512, ["dkim.weak_key"]),
    # an empty TXT string where dkimpy's tests expect "no key": a record, but not a key
    "missing._domainkey.example.com": ("rsa", None, ["dkim.key_invalid"]),
}
# The variants dkimpy swaps in behind test._domainkey.example.com, and what we make of each.
DKIMPY_VARIANTS: dict[str, tuple[str | None, int | None, list[str]]] = {
    "test2.txt": ("rsa", 1024, ["dkim.weak_key"]),  # implicit k=: verifies
    "badversion.txt": ("rsa", 1024, ["dkim.key_invalid", "dkim.weak_key"]),  # "v=DKIM1: g=*"
    "badk.txt": ("ed25519-sha256", None, ["dkim.key_invalid"]),  # unknown k=
    "test_tlsrpt.txt": ("rsa", 1024, ["dkim.key_invalid", "dkim.weak_key"]),  # s=tlsrpt: not email
    "test_bad.txt": ("rsa", None, ["dkim.key_invalid"]),  # a corrupted key
    "ed25519test.dns": ("ed25519", 256, []),
    "eximtest.dns": ("ed25519", 256, []),
}


def _zones_for(records: dict[str, list[str]]) -> dict[str, str]:
    """One zone per apex (the last two labels), each owner written absolute."""
    zones: dict[str, list[tuple[str, str, str]]] = {}
    for name, values in records.items():
        apex = ".".join(name.split(".")[-2:])
        zones.setdefault(apex, []).extend((f"{name}.", "TXT", v) for v in values)
    return {apex: make_zone(apex, recs) for apex, recs in zones.items()}


@pytest.fixture(scope="module")
def dkimpy_nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    records = {name: [value] for name, value in DKIMPY_RECORDS.items()}
    for index, filename in enumerate(DKIMPY_VARIANTS):
        records[f"variant{index}._domainkey.example.com"] = [(DKIMPY / filename).read_text().strip()]
    server = NsdServer(tmp_path_factory.mktemp("nsd-dkimpy"))
    with server.start(_zones_for(records)):
        yield server


def _split(name: str) -> tuple[str, str]:
    selector, domain = name.split("._domainkey.")
    return selector, domain


def test_dkimpy_table_is_complete() -> None:
    assert set(DKIMPY_EXPECTED) == set(DKIMPY_RECORDS)


@pytest.mark.parametrize("name", list(DKIMPY_EXPECTED))
def test_dkimpy_key_records(dkimpy_nsd: NsdServer, make_session: SessionFactory, name: str) -> None:
    key_type, key_bits, expected_ids = DKIMPY_EXPECTED[name]
    selector, domain = _split(name)
    report = run_check(make_session, dkimpy_nsd, domain, (selector,))
    (key,) = report.keys
    assert key.record == DKIMPY_RECORDS[name]
    assert (key.key_type, key.key_bits) == (key_type, key_bits)
    assert ids(report) == sorted(expected_ids)


@pytest.mark.parametrize("filename", list(DKIMPY_VARIANTS))
def test_dkimpy_key_variants(dkimpy_nsd: NsdServer, make_session: SessionFactory, filename: str) -> None:
    key_type, key_bits, expected_ids = DKIMPY_VARIANTS[filename]
    index = list(DKIMPY_VARIANTS).index(filename)
    report = run_check(make_session, dkimpy_nsd, "example.com", (f"variant{index}",))
    (key,) = report.keys
    assert key.record == (DKIMPY / filename).read_text().strip()
    assert (key.key_type, key.key_bits) == (key_type, key_bits)
    assert ids(report) == sorted(expected_ids)


def _mailauth_records() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MAILAUTH / "dns.json").read_text())
    return {name: value for name, value in data.items() if "._domainkey." in name}


@pytest.fixture(scope="module")
def mailauth_nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    from tests.dnstest import txt

    records: dict[str, list[str]] = {}
    for name, value in json.loads((MAILAUTH / "dns.json").read_text()).items():
        # each TXT record is a list of strings: publish them as separate strings of one record
        records[name] = [" ".join(txt(chunk) for chunk in chunks) for chunks in value["TXT"]]
    server = NsdServer(tmp_path_factory.mktemp("nsd-mailauth"))
    with server.start(_zones_for(records)):
        yield server


@pytest.mark.parametrize(
    ("name", "key_type", "key_bits", "expected_ids"),
    [
        ("brisbane._domainkey.football.example.com", "ed25519", 256, []),
        ("test._domainkey.football.example.com", "rsa", 1024, ["dkim.weak_key"]),
    ],
)
def test_mailauth_key_records(
    mailauth_nsd: NsdServer,
    make_session: SessionFactory,
    name: str,
    key_type: str,
    key_bits: int,
    expected_ids: list[str],
) -> None:
    assert name in _mailauth_records()
    selector, domain = _split(name)
    report = run_check(make_session, mailauth_nsd, domain, (selector,))
    (key,) = report.keys
    chunks = _mailauth_records()[name]["TXT"][0]
    assert key.record == "".join(chunks)  # the strings of one record, joined with no separator
    assert (key.key_type, key.key_bits) == (key_type, key_bits)
    assert ids(report) == expected_ids


@pytest.mark.parametrize(
    ("record", "problems"),
    [
        ("v=DKIM1; p=", ()),
        ("v=DKIM1;p=;", ()),
        ("v=DKIM1; h=sha256; k=rsa; n=notes; p=", ()),
        ("v=DKIM1; k=rsa; p; x=y", ("“p” is not a tag=value pair", "the p= tag (the public key) is missing")),
    ],
)
def test_parse_key_record_shapes(record: str, problems: tuple[str, ...]) -> None:
    key = parse_key_record("s", "s._domainkey.example.test", record)
    assert key.problems == problems
