"""The whole "why" verdict for real messages signed here, with keys, SPF and DMARC records served
by NSD: one test per cause at least, and the comparison with a receiver's Authentication-Results."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.message.parse import parse_message
from handlers.message.verdict import CAUSES, MessageVerdict, diagnose_message
from tests.dnstest import FaultProxy, NsdServer
from tests.messages.helpers import key_record, message, prepend, rsa_key, sign, zones

PEM, PUB = rsa_key(2048)
MAILER_PEM, MAILER_PUB = rsa_key(2048, "mailer")
SENDER_IP = "185.70.40.10"  # example.com's own outbound server
MAILER_IP = "151.101.1.10"  # a third-party sending service
LIST_IP = "151.101.1.20"  # a mailing list server
FORWARDER_IP = "91.198.174.2"  # a forwarding mailbox

RECORDS = {
    "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com")],
    "example.com": [("TXT", f"v=spf1 ip4:{SENDER_IP} -all"), ("MX", "10 mx.example.com.")],
    "out.example.com": [("A", SENDER_IP), ("TXT", f"v=spf1 ip4:{SENDER_IP} -all")],
    "news.example.com": [("A", SENDER_IP)],
    "s1._domainkey.example.com": [("TXT", key_record(PUB))],
    "old._domainkey.example.com": [("TXT", "v=DKIM1; k=rsa; p=")],
    "_dmarc.strictco.com": [("TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")],
    "news.strictco.com": [("A", SENDER_IP)],
    "s1._domainkey.strictco.com": [("TXT", key_record(PUB))],
    "m1._domainkey.mailer.net": [("TXT", key_record(MAILER_PUB))],
    "bounce.mailer.net": [("TXT", f"v=spf1 ip4:{MAILER_IP} -all")],
    "_dmarc.mailer.net": [("TXT", "v=DMARC1; p=none")],
    "lists.example.org": [("TXT", f"v=spf1 ip4:{LIST_IP} -all")],
    "_dmarc.example.org": [("TXT", "v=DMARC1; p=none")],
    "s1._domainkey.nodmarc.org": [("TXT", key_record(PUB))],
    "nodmarc.org": [("TXT", f"v=spf1 ip4:{SENDER_IP} -all")],
    "spfbroken.com": [("TXT", "v=spf1 include:missing.spfbroken.com -all")],
    "_dmarc.spfbroken.com": [("TXT", "v=DMARC1; p=quarantine")],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    nsd = NsdServer(tmp_path_factory.mktemp("nsd-why"))
    nsd.start(zones(RECORDS))
    try:
        yield nsd
    finally:
        nsd.stop()


def diagnose(address: str, raw: bytes, **flags: str) -> MessageVerdict:
    session = DnsSession(nameservers=(parse_nameserver(address),), timeout=0.5, attempts=1)
    return asyncio.run(diagnose_message(session, parse_message(raw), **flags))


def received(helo: str, ip: str, by: str) -> tuple[str, str]:
    return (
        "Received",
        f"from {helo} ({helo} [{ip}]) by {by} with ESMTPS id 4QX; Mon, 02 Mar 2026 10:00:01 +0000",
    )


def ids(verdict: MessageVerdict) -> list[str]:
    return [c.id for c in verdict.causes]


def direct(
    from_: str = "Alice <alice@example.com>",
    domain: str = "example.com",
    selector: str = "s1",
    return_path: str = "alice@example.com",
    ip: str = SENDER_IP,
    **kwargs: str,
) -> bytes:
    """Signed by `domain`, then delivered from `ip` straight to the receiver."""
    raw = sign(message(from_, headers=[("Return-Path", f"<{return_path}>")], **kwargs), domain, selector, PEM)
    return prepend(raw, received("out.example.com", ip, "mx.receiver.example"))


def test_every_cause_has_a_title_and_fix() -> None:
    assert set(CAUSES) == {
        "cause.spf_not_aligned",
        "cause.spf_ip_not_authorized",
        "cause.spf_error",
        "cause.dkim_not_aligned",
        "cause.dkim_body_modified",
        "cause.dkim_header_modified",
        "cause.dkim_key_missing",
        "cause.dkim_key_invalid",
        "cause.no_dkim_signature",
        "cause.forwarded",
        "cause.dns_temperror",
        "cause.no_dmarc_record",
    }


def test_aligned_pass(server: NsdServer) -> None:
    verdict = diagnose(server.address, direct())
    assert (verdict.dmarc.result, verdict.dmarc.policy) == ("pass", "reject")
    assert (verdict.spf.result, verdict.spf.aligned, verdict.spf.ip, verdict.spf.ip_source) == (
        "pass",
        True,
        SENDER_IP,
        "received",
    )
    assert [
        (r.result, a.aligned if a else None)
        for r, a in zip(verdict.dkim, verdict.dkim_alignment, strict=True)
    ] == [("pass", True)]
    assert verdict.causes == ()
    data: dict[str, Any] = verdict.to_json()
    assert set(data) >= {"from_domain", "dmarc", "spf", "dkim", "causes"}
    assert set(data["dmarc"]) >= {"result", "policy", "record", "org_domain"}
    assert set(data["spf"]) >= {"result", "domain", "aligned", "ip", "ip_source"}
    assert set(data["dkim"][0]) >= {"d", "s", "result", "aligned", "reason"}


def _through_list(raw: bytes) -> bytes:
    return prepend(
        raw,
        ("Return-Path", "<team-bounces@lists.example.org>"),
        received("lists.example.org", LIST_IP, "mx.receiver.example"),
        ("List-Id", "<team.lists.example.org>"),
    )


def _list_message(body_footer: bool = False, tag_subject: bool = False) -> bytes:
    raw = sign(message(), "example.com", "s1", PEM)
    if body_footer:
        raw += b"--\r\nteam mailing list - unsubscribe: https://lists.example.org/team\r\n"
    if tag_subject:
        raw = raw.replace(b"Subject: Quarterly", b"Subject: [team] Quarterly")
    return _through_list(raw)


def test_list_footer_modifies_the_body(server: NsdServer) -> None:
    verdict = diagnose(server.address, _list_message(body_footer=True))
    assert verdict.dmarc.result == "fail"
    assert ids(verdict) == ["cause.spf_not_aligned", "cause.dkim_body_modified", "cause.forwarded"]
    assert verdict.spf.domain == "lists.example.org"
    assert "would have made DMARC pass" in verdict.causes[1].detail


def test_tagged_subject_modifies_a_signed_header(server: NsdServer) -> None:
    verdict = diagnose(server.address, _list_message(tag_subject=True))
    assert verdict.dmarc.result == "fail"
    assert "cause.dkim_header_modified" in ids(verdict)
    assert verdict.dkim[0].body_hash == "match"


def test_selector_never_published(server: NsdServer) -> None:
    verdict = diagnose(server.address, direct(selector="google", ip=FORWARDER_IP))
    assert verdict.dmarc.result == "fail"
    assert ids(verdict) == ["cause.spf_ip_not_authorized", "cause.dkim_key_missing"]
    assert "google._domainkey.example.com" in verdict.causes[1].fix


def test_revoked_key(server: NsdServer) -> None:
    verdict = diagnose(server.address, direct(selector="old", ip=FORWARDER_IP))
    assert "cause.dkim_key_invalid" in ids(verdict)
    assert verdict.dkim[0].reason == "key_revoked"


def test_third_party_sender_with_its_own_domains(server: NsdServer) -> None:
    raw = sign(
        message(headers=[("Return-Path", "<bounce-77@bounce.mailer.net>")]), "mailer.net", "m1", MAILER_PEM
    )
    raw = prepend(raw, received("smtp.mailer.net", MAILER_IP, "mx.receiver.example"))
    verdict = diagnose(server.address, raw)
    assert verdict.dmarc.result == "fail"
    assert (verdict.spf.result, verdict.spf.aligned) == ("pass", False)
    assert ids(verdict) == ["cause.spf_not_aligned", "cause.dkim_not_aligned"]


def test_sender_ip_missing_from_spf(server: NsdServer) -> None:
    raw = message()
    verdict = diagnose(
        server.address, raw, ip="91.198.174.9", mail_from="alice@example.com", helo="mail.example.com"
    )
    assert (verdict.spf.result, verdict.spf.ip_source) == ("fail", "flag")
    assert verdict.dmarc.result == "fail"
    assert ids(verdict) == ["cause.spf_ip_not_authorized", "cause.no_dkim_signature"]


def test_forwarded_message_fails_spf_but_passes_dmarc_on_dkim(server: NsdServer) -> None:
    original = sign(message(headers=[("Return-Path", "<alice@example.com>")]), "example.com", "s1", PEM)
    hop1 = prepend(original, received("out.example.com", SENDER_IP, "mx.forwarder.example"))
    forwarded = prepend(
        hop1,
        ("ARC-Seal", "i=1; a=rsa-sha256; cv=none; d=forwarder.example; s=arc; t=1772445601; b=AAAA"),
        ("X-Forwarded-To", "bob@receiver.example"),
        received("fwd.forwarder.example", FORWARDER_IP, "mx.receiver.example"),
    )
    verdict = diagnose(server.address, forwarded)
    assert (verdict.spf.result, verdict.spf.ip, verdict.spf.ip_source) == ("fail", FORWARDER_IP, "received")
    assert verdict.dkim[0].passed
    assert verdict.dmarc.result == "pass"
    assert ids(verdict) == ["cause.spf_ip_not_authorized", "cause.forwarded"]
    assert "forwarder.example" in verdict.causes[1].detail


@pytest.mark.parametrize(
    ("org", "result", "causes"),
    [
        ("example.com", "pass", []),  # relaxed: news.example.com and example.com share an org domain
        ("strictco.com", "fail", ["cause.dkim_not_aligned"]),  # adkim=s: only identical names
    ],
)
def test_relaxed_and_strict_alignment_for_a_subdomain(
    server: NsdServer, org: str, result: str, causes: list[str]
) -> None:
    raw = sign(message(f"News <news@news.{org}>"), org, "s1", PEM)
    verdict = diagnose(server.address, raw, ip=FORWARDER_IP, mail_from=f"news@news.{org}")
    assert verdict.dmarc.result == result
    assert verdict.dmarc.location == org and verdict.dmarc.org_domain == org
    assert ids(verdict) == causes
    assert verdict.dkim_alignment[0] is not None
    assert verdict.dkim_alignment[0].mode == ("relaxed" if result == "pass" else None)


def test_no_dmarc_record(server: NsdServer) -> None:
    raw = direct("Ann <ann@nodmarc.org>", domain="nodmarc.org", return_path="ann@nodmarc.org")
    verdict = diagnose(server.address, raw)
    assert (verdict.dmarc.result, verdict.dmarc.policy) == ("none", None)
    assert ids(verdict) == ["cause.no_dmarc_record"]
    assert verdict.spf.result == "pass" and verdict.dkim[0].passed


def test_spf_permerror(server: NsdServer) -> None:
    verdict = diagnose(
        server.address,
        message("Sam <sam@spfbroken.com>"),
        ip=SENDER_IP,
        mail_from="sam@spfbroken.com",
        helo="out.example.com",
    )
    assert verdict.spf.result == "permerror"
    assert "cause.spf_error" in ids(verdict)


def test_helo_never_aligns(server: NsdServer) -> None:
    verdict = diagnose(server.address, message(), ip=SENDER_IP, mail_from="", helo="out.example.com")
    assert (verdict.spf.result, verdict.spf.identity, verdict.spf.aligned) == ("pass", "helo", False)
    assert verdict.dmarc.result == "fail"
    assert "HELO never aligns" in verdict.causes[0].detail


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault_name", "dmarc_result"),
    [
        ("_dmarc.example.com", "temperror"),
        ("s1._domainkey.example.com", "temperror"),
    ],
)
def test_dns_failure_gives_temperror(
    nsd: NsdServer, fault_proxy: FaultProxy, fault_name: str, dmarc_result: str
) -> None:
    nsd.set_zones(zones(RECORDS))
    fault_proxy.add_fault(fault_name, "servfail")
    verdict = diagnose(fault_proxy.address, direct(ip=FORWARDER_IP))
    assert verdict.dmarc.result == dmarc_result
    assert "cause.dns_temperror" in ids(verdict)
    assert "cause.dkim_key_missing" not in ids(verdict)
    assert "cause.no_dmarc_record" not in ids(verdict)


def test_receiver_results_are_used_and_compared(server: NsdServer) -> None:
    """The receiver saw a pass from a key that has since been removed (a rotation)."""
    raw = sign(message(headers=[("Return-Path", "<alice@example.com>")]), "example.com", "rotated", PEM)
    raw = prepend(
        raw,
        (
            "Authentication-Results",
            "mx.receiver.example; dkim=pass header.d=example.com "
            "header.s=rotated header.b=AAAA; spf=pass smtp.mailfrom="
            "alice@example.com; dmarc=pass header.from=example.com",
        ),
        (
            "Received-SPF",
            f"pass (mx.receiver.example: domain of alice@example.com designates "
            f"{SENDER_IP} as permitted sender) client-ip={SENDER_IP}; "
            "envelope-from=alice@example.com; helo=out.example.com;",
        ),
        received("out.example.com", SENDER_IP, "mx.receiver.example"),
    )
    verdict = diagnose(server.address, raw)
    assert (verdict.spf.result, verdict.spf.result_source, verdict.spf.ip_source) == (
        "pass",
        "receiver",
        "received-spf",
    )
    assert verdict.receiver == "mx.receiver.example"
    assert [(d.what, d.receiver, d.ours) for d in verdict.differences] == [
        ("dkim d=example.com s=rotated", "pass", "permerror")
    ]
    assert "rotation" in verdict.differences[0].why
    assert verdict.dmarc.result == "pass"  # SPF still aligns


def test_receiver_dmarc_differs_when_the_record_changed(server: NsdServer) -> None:
    raw = prepend(
        message("Ann <ann@nodmarc.org>"),
        (
            "Authentication-Results",
            "mx.receiver.example; spf=none smtp.mailfrom=x; dmarc=fail (p=reject) header.from=nodmarc.org",
        ),
    )
    verdict = diagnose(server.address, raw)
    assert [(d.what, d.receiver, d.ours) for d in verdict.differences] == [("dmarc", "fail", "none")]
    assert "changed since delivery" in verdict.differences[0].why


def test_headers_only_still_checks_signatures(server: NsdServer) -> None:
    headers = direct().split(b"\r\n\r\n", 1)[0] + b"\r\n"
    verdict = diagnose(server.address, headers)
    assert verdict.headers_only
    assert (verdict.dkim[0].result, verdict.dkim[0].body_hash) == ("pass", "not checked")
    assert verdict.dmarc.result == "pass"


def test_no_ip_anywhere_leaves_spf_unevaluated(server: NsdServer) -> None:
    verdict = diagnose(server.address, sign(message(), "example.com", "s1", PEM))
    assert (verdict.spf.result, verdict.spf.ip_source) == (None, "unknown")
    assert verdict.dmarc.result == "pass"
