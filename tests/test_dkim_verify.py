"""DKIM verification with reasons: real signatures made here with keys published in NSD zones, and
the dkimpy and mailauth vectors in tests/data/ served the same way."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.message import dkim_verify as dv
from handlers.message.dkim_verify import DkimResult, verify_message
from handlers.message.parse import parse_message
from tests.dnstest import FaultProxy, NsdServer, txt
from tests.keys import rsa_public_numbers
from tests.messages.helpers import (
    ed25519_key,
    key_record,
    message,
    rsa_key,
    sign,
    with_tags,
    worst_signature_value,
    zones,
)
from tests.testdata import TESTDATA

DKIMPY = TESTDATA / "dkim-dkimpy"
MAILAUTH_EC = TESTDATA / "dkim-mailauth-ec"

PEM, PUB = rsa_key(2048)
# dkimpy's 512-bit canonical.com key (cryptography refuses to generate keys under 1024 bits).
WEAK_PUB = (
    "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANmBe10IgY+u7h3enWTukkqtUD5PR52Tb/mPfjC0QJTocVBq6Za/"
    "PlzfV+Py92VaCak19F4WrbVTK5Gg5tW220MCAwEAAQ=="
)
ED_SEED, ED_PUB = ed25519_key()

RECORDS = {
    "s1._domainkey.example.com": [("TXT", key_record(PUB))],
    "ed._domainkey.example.com": [("TXT", key_record(ED_PUB, "ed25519"))],
    "old._domainkey.example.com": [("TXT", "v=DKIM1; k=rsa; p=")],
    "weak._domainkey.example.com": [("TXT", key_record(WEAK_PUB))],
    "junk._domainkey.example.com": [("TXT", "v=DKIM1; k=rsa; p=bm90IGEga2V5")],
    "example.com": [("MX", "10 mx.example.com.")],
    # an attacker's keys (handlers/limits.py): the largest allowed, and ones over the caps
    "max._domainkey.example.com": [("TXT", key_record(rsa_public_numbers(8192, 2**32 - 1)))],
    "huge._domainkey.example.com": [("TXT", key_record(rsa_public_numbers(40000)))],
    "bigexp._domainkey.example.com": [("TXT", key_record(rsa_public_numbers(2048, 2**40 + 1)))],
    "loop1._domainkey.example.com": [("CNAME", "loop2._domainkey.example.com.")],
    "loop2._domainkey.example.com": [("CNAME", "loop1._domainkey.example.com.")],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    nsd = NsdServer(tmp_path_factory.mktemp("nsd-dkim"))
    nsd.start(zones(RECORDS))
    try:
        yield nsd
    finally:
        nsd.stop()


def session_for(address: str) -> DnsSession:
    return DnsSession(nameservers=(parse_nameserver(address),), timeout=0.5, attempts=1)


def verify(address: str, raw: bytes) -> tuple[DkimResult, ...]:
    return asyncio.run(verify_message(session_for(address), parse_message(raw)))


SIGNED = sign(message(), "example.com", "s1", PEM)


def test_aligned_signature_passes(server: NsdServer) -> None:
    (result,) = verify(server.address, SIGNED)
    assert (result.result, result.reason, result.body_hash) == ("pass", "ok", "match")
    assert (result.domain, result.selector, result.key_bits, result.key_type) == (
        "example.com",
        "s1",
        2048,
        "rsa",
    )


def test_ed25519_signature_passes(server: NsdServer) -> None:
    raw = sign(message(), "example.com", "ed", ED_SEED, b"ed25519-sha256")
    (result,) = verify(server.address, raw)
    assert (result.result, result.key_type) == ("pass", "ed25519")


def test_list_footer_is_a_body_hash_mismatch_with_headers_intact(server: NsdServer) -> None:
    (result,) = verify(server.address, SIGNED + b"--\r\nTo unsubscribe, write to list@lists.example\r\n")
    assert (result.result, result.reason, result.body_hash) == ("fail", dv.BODY_HASH_MISMATCH, "mismatch")
    assert "headers are intact" in result.detail


def test_tagged_subject_is_a_header_signature_mismatch(server: NsdServer) -> None:
    raw = SIGNED.replace(b"Subject: Quarterly", b"Subject: [team] Quarterly")
    (result,) = verify(server.address, raw)
    assert (result.result, result.reason, result.body_hash) == ("fail", dv.HEADER_SIGNATURE_MISMATCH, "match")


def test_selector_never_published_is_key_missing(server: NsdServer) -> None:
    (result,) = verify(server.address, sign(message(), "example.com", "google", PEM))
    assert (result.result, result.reason) == ("permerror", dv.KEY_MISSING)
    assert "google._domainkey.example.com" in result.detail


@pytest.mark.parametrize(
    ("selector", "private", "reason"),
    [
        ("old", PEM, dv.KEY_REVOKED),
        ("weak", PEM, dv.KEY_WEAK),
        ("junk", PEM, dv.KEY_INVALID),
    ],
)
def test_unusable_keys(server: NsdServer, selector: str, private: bytes, reason: str) -> None:
    (result,) = verify(server.address, sign(message(), "example.com", selector, private))
    assert (result.result, result.reason) == ("permerror", reason)


def test_expired_signature(server: NsdServer) -> None:
    raw = SIGNED.replace(b"DKIM-Signature: v=1;", b"DKIM-Signature: v=1; x=1000000000;", 1)
    (result,) = verify(server.address, raw)
    assert (result.result, result.reason) == ("permerror", dv.EXPIRED)


def test_headers_only_checks_the_header_signature(server: NsdServer) -> None:
    headers = SIGNED.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    (result,) = verify(server.address, headers)
    assert (result.result, result.body_hash) == ("pass", "not checked")
    tagged = headers.replace(b"Subject: Quarterly", b"Subject: [team] Quarterly")
    (broken,) = verify(server.address, tagged)
    assert (broken.result, broken.reason, broken.body_hash) == (
        "fail",
        dv.HEADER_SIGNATURE_MISMATCH,
        "not checked",
    )


def test_empty_body_is_checked_when_it_was_signed_empty(server: NsdServer) -> None:
    raw = sign(message(body=""), "example.com", "s1", PEM)
    (result,) = verify(server.address, raw)
    assert (result.result, result.body_hash) == ("pass", "match")


@pytest.mark.parametrize("fault", ["servfail", "timeout", "refused"])
@pytest.mark.slow
def test_key_outage_is_temperror_not_missing(nsd: NsdServer, fault_proxy: FaultProxy, fault: str) -> None:
    nsd.set_zones(zones(RECORDS))
    fault_proxy.add_fault("s1._domainkey.example.com", fault)
    (result,) = verify(fault_proxy.address, SIGNED)
    assert (result.result, result.reason) == ("temperror", dv.TEMPERROR)
    assert result.outage is not None


def test_two_signatures_are_reported_one_by_one(server: NsdServer) -> None:
    raw = sign(sign(message(), "example.com", "s1", PEM), "example.com", "google", PEM)
    results = verify(server.address, raw)
    assert [(r.selector, r.result) for r in results] == [("google", "permerror"), ("s1", "pass")]


def test_dnsfunc_raises_timeout_for_an_outage(nsd: NsdServer, fault_proxy: FaultProxy) -> None:
    """dkimpy's own verify(), with our dnsfunc: an outage is DnsTimeoutError, not a missing key."""
    import dkim

    nsd.set_zones(zones(RECORDS))
    fault_proxy.add_fault("s1._domainkey.example.com", "servfail")
    session = session_for(fault_proxy.address)
    dnsfunc = dv._dnsfunc(session)
    with pytest.raises(dkim.DnsTimeoutError):
        dnsfunc(b"s1._domainkey.example.com.")
    assert dnsfunc(b"nothing._domainkey.example.com.") is None


# -- the vectors ---------------------------------------------------------------------------------


def _dkimpy_records(overrides: dict[str, str] | None = None) -> dict[str, list[tuple[str, str]]]:
    data = json.loads((DKIMPY / "dns_map.json").read_text())
    records: dict[str, list[tuple[str, str]]] = {}
    for name, value in data["records"].items():
        text = (DKIMPY / value["file"]).read_text().strip() if isinstance(value, dict) else value
        text = (overrides or {}).get(name, text)
        records[name.rstrip(".")] = [("TXT", txt(text))]
    return records


def _mailauth_records() -> dict[str, list[tuple[str, str]]]:
    data = json.loads((MAILAUTH_EC / "dns.json").read_text())
    return {
        name: [("TXT", " ".join(txt(chunk) for chunk in record)) for record in types["TXT"]]
        for name, types in data.items()
    }


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("dkimpy", DKIMPY / "rfc6376.signed.msg"),
        ("mailauth", MAILAUTH_EC / "signed.eml"),
    ],
)
def test_two_signature_vectors_pass_and_break_on_appended_bytes(
    nsd: NsdServer, source: str, path: Path
) -> None:
    nsd.set_zones(zones(_dkimpy_records() if source == "dkimpy" else _mailauth_records()))
    raw = path.read_bytes()
    results = verify(nsd.address, raw)
    assert [(r.result, r.algorithm) for r in results] == [("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    broken = verify(nsd.address, raw + b"appended\r\n")
    assert [(r.result, r.reason) for r in broken] == [("fail", dv.BODY_HASH_MISMATCH)] * 2


def test_exim_ed25519_vector_passes(nsd: NsdServer) -> None:
    nsd.set_zones(zones(_dkimpy_records()))
    (result,) = verify(nsd.address, (DKIMPY / "ed25519test2.msg").read_bytes())
    assert (result.domain, result.selector, result.result) == ("test.ex", "sed", "pass")


@pytest.mark.parametrize(
    ("message_file", "key_file", "selector", "domain", "algorithm"),
    [
        ("test.message", "test.private", "test", "example.com", b"rsa-sha256"),
        ("ed25519test.msg", "ed25519test.key", "test", "example.net", b"ed25519-sha256"),
        ("rfc6376.msg", "rfc8032_7_1.key", "brisbane", "football.example.com", b"ed25519-sha256"),
    ],
)
def test_dkimpy_sign_then_verify_vectors(
    nsd: NsdServer, message_file: str, key_file: str, selector: str, domain: str, algorithm: bytes
) -> None:
    nsd.set_zones(zones(_dkimpy_records()))
    raw = (DKIMPY / message_file).read_bytes()
    if not raw.lstrip().lower().startswith(b"from:") and b"\nFrom:" not in raw:
        pytest.fail("vector has no From")
    signed = sign(raw, domain, selector, (DKIMPY / key_file).read_bytes().strip(), algorithm)
    results = verify(nsd.address, signed)
    assert results[0].result == "pass"
    assert verify(nsd.address, signed + b"foo")[0].reason == dv.BODY_HASH_MISMATCH


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("test2.txt", ("pass", dv.OK)),  # no k= tag: RSA is the default
        ("badversion.txt", ("permerror", dv.KEY_INVALID)),  # "v=DKIM1:" is not v=DKIM1
        ("badk.txt", ("permerror", dv.KEY_INVALID)),  # unknown k= algorithm
        ("test_tlsrpt.txt", ("permerror", dv.SIGNATURE_INVALID)),  # s=tlsrpt key on ordinary mail
    ],
)
def test_dkimpy_key_variants(nsd: NsdServer, variant: str, expected: tuple[str, str]) -> None:
    name = "test._domainkey.example.com."
    nsd.set_zones(zones(_dkimpy_records({name: (DKIMPY / variant).read_text().strip()})))
    signed = sign(
        (DKIMPY / "test.message").read_bytes(), "example.com", "test", (DKIMPY / "test.private").read_bytes()
    )
    (result,) = verify(nsd.address, signed)
    assert (result.result, result.reason) == expected


def test_dkimpy_empty_key_record_is_invalid_not_revoked(nsd: NsdServer) -> None:
    nsd.set_zones(zones(_dkimpy_records()))
    signed = sign(
        (DKIMPY / "test.message").read_bytes(),
        "example.com",
        "missing",
        (DKIMPY / "test.private").read_bytes(),
    )
    (result,) = verify(nsd.address, signed)
    assert (result.result, result.reason) == ("permerror", dv.KEY_INVALID)


def test_dkimpy_512_bit_key_is_weak(nsd: NsdServer) -> None:
    """canonical.com's 512-bit key from dkimpy's table: RFC 8301 says refuse it."""
    records = _dkimpy_records()
    records["weak512._domainkey.example.com"] = records["example._domainkey.canonical.com"]
    nsd.set_zones(zones(records))
    signed = sign(message(), "example.com", "weak512", PEM)
    (result,) = verify(nsd.address, signed)
    assert (result.reason, result.key_bits) == (dv.KEY_WEAK, 512)


def test_signature_tags_are_kept(server: NsdServer) -> None:
    (result,) = verify(server.address, SIGNED)
    assert result.signed_headers == ("from", "to", "subject", "date", "message-id")
    assert re.fullmatch(r"s1\._domainkey\.example\.com", result.key_name)


def test_the_largest_allowed_key_and_longest_b_verify_at_once(server: NsdServer) -> None:
    raw = with_tags(sign(message(), "example.com", "max", PEM), b=worst_signature_value())
    started = time.perf_counter()
    (result,) = verify(server.address, raw)
    elapsed = time.perf_counter() - started
    # dkimpy did the whole RSA operation (the body hash matched) and the signature did not verify
    assert (result.result, result.reason, result.key_bits) == ("fail", dv.HEADER_SIGNATURE_MISMATCH, 8192)
    assert elapsed < 2, elapsed  # a safety bound: it takes milliseconds


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        ("huge", "the RSA key has 40000 bits; keys over 8192 bits are refused unverified"),
        ("bigexp", "the RSA key's public exponent has 41 bits; exponents over 2^32 are refused unverified"),
    ],
)
def test_an_outsized_key_is_refused_unverified(server: NsdServer, selector: str, why: str) -> None:
    (result,) = verify(server.address, sign(message(), "example.com", selector, PEM))
    assert (result.result, result.reason) == ("permerror", dv.KEY_INVALID)
    assert why in result.detail


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({"b": worst_signature_value() + "AAAA"}, "b= is 1372 characters long, over the 1368 allowed"),
        ({"bh": "A" * 88}, "bh= is 88 characters long, over the 44 allowed"),
        ({"s": "../../etc"}, "s='../../etc' is not a selector"),
        ({"s": "a" * 64}, "is not a selector"),
        ({"d": "a" * 64 + ".example.com"}, "is not a domain name"),
        ({"d": "example.com/../x"}, "is not a domain name"),
    ],
)
def test_a_malformed_signature_is_a_permanent_failure(
    server: NsdServer, tags: dict[str, str], why: str
) -> None:
    # RFC 6376 §6.1.1: a signature that does not parse fails for good; it is never "retry later"
    (result,) = verify(server.address, with_tags(SIGNED, **tags))
    assert (result.result, result.reason) == ("permerror", dv.SIGNATURE_INVALID)
    assert why in result.detail


def test_only_the_first_signatures_are_verified(server: NsdServer) -> None:
    raw = message()
    for _ in range(7):
        raw = sign(raw, "example.com", "s1", PEM)
    results = verify(server.address, raw)
    assert [r.result for r in results] == ["pass"] * 5 + ["policy"] * 2
    assert results[-1].reason == dv.NOT_VERIFIED
    assert "carries 7 DKIM-Signatures and only the first 5 are verified" in results[-1].detail


def test_a_cname_loop_at_the_key_is_permanent(server: NsdServer) -> None:
    (result,) = verify(server.address, sign(message(), "example.com", "loop1", PEM))
    assert (result.result, result.reason) == ("permerror", dv.KEY_MISSING)
    assert "is a CNAME chain that loops" in result.detail
