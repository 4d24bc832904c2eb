"""`check --smtp`: real SMTP servers (aiosmtpd) on loopback addresses, with certificates from a test CA,
reached through MX records served by NSD in a zone signed by dnssec-signzone (for DANE)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bot.cli import main
from handlers.domain.findings import Finding, Severity
from handlers.domain.mx import check_mx
from handlers.domain.mx_hosts import check_mx_hosts
from handlers.domain.smtp_probe import SmtpProber, SmtpProbeReport, probe_mx_hosts
from handlers.https_fetch import HttpsClient
from tests.conftest import SessionFactory
from tests.dnstest import NsdServer, make_zone
from tests.dnstest.signing import sign_with_bind
from tests.httpstest import LocalCa
from tests.smtptest import SmtpServers, free_tcp_port, loopback_addresses

CASES = (
    "good",
    "expired",
    "wrongname",
    "plain",
    "silent",
    "chatty",
    "nothing",
    "danegood",
    "danebad",
    "refuses",
    "nottls",
    "busy",
)
EHLO_WITH_STARTTLS = b"250-mx.test\r\n250 STARTTLS\r\n"


@dataclass
class World:
    dns: NsdServer
    ca_file: Path
    port: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ca = LocalCa(tmp_path_factory.mktemp("smtp-ca"))
    addresses = dict(zip(CASES, loopback_addresses(len(CASES)), strict=True))
    port = free_tcp_port(list(addresses.values()))
    tls = {
        "good": ca.leaf(["mx.good.smtp.test"]),
        "expired": ca.leaf(["mx.expired.smtp.test"], expired=True),
        "wrongname": ca.leaf(["mail.elsewhere.test"]),
        "danebad": ca.leaf(["mx.danebad.smtp.test"]),
        "danegood": ca.leaf(["mx.danegood.smtp.test"]),
    }
    assert ca.last_leaf is not None
    spki = ca.last_leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    records = []
    for name, address in addresses.items():
        records += [(name, "MX", f"10 mx.{name}"), (f"mx.{name}", "A", address)]
    records.append(("_25._tcp.mx.danegood", "TLSA", f"3 1 1 {hashlib.sha256(spki).hexdigest()}"))
    records.append(("_25._tcp.mx.danebad", "TLSA", f"3 1 1 {'ab' * 32}"))
    records.append(("two", "MX", "10 mx.good"))
    records.append(("two", "MX", "20 mx.nothing"))
    signed = sign_with_bind(
        tmp_path_factory.mktemp("bind-smtp"), "smtp.test", make_zone("smtp.test", records)
    )
    dns = NsdServer(tmp_path_factory.mktemp("nsd-smtp"))
    with dns.start({"smtp.test": signed.text}), SmtpServers(port) as servers:
        for name in ("good", "expired", "wrongname", "danegood", "danebad"):
            servers.smtp(addresses[name], tls[name])
        servers.smtp(addresses["plain"], None)
        servers.silent(addresses["silent"])
        servers.chatty(addresses["chatty"])
        servers.scripted(
            addresses["refuses"], b"220 mx\r\n", [EHLO_WITH_STARTTLS, b"454 TLS not available\r\n"]
        )
        servers.scripted(
            addresses["nottls"], b"220 mx\r\n", [EHLO_WITH_STARTTLS, b"220 go\r\n", b"HTTP/1.0 400\r\n"]
        )
        servers.scripted(addresses["busy"], b"421 too busy, try later\r\n", [])
        yield World(dns, ca.ca_file, port)


def probe(world: World, make_session: SessionFactory, domain: str, timeout: float = 5.0) -> SmtpProbeReport:
    async def run() -> SmtpProbeReport:
        session = make_session(world.dns)
        hosts = await check_mx_hosts(session, await check_mx(session, domain))
        prober = SmtpProber(HttpsClient(ca_file=str(world.ca_file)), port=world.port, timeout=timeout)
        return await probe_mx_hosts(prober, hosts)

    return asyncio.run(run())


def only(report: SmtpProbeReport) -> Finding:
    (one,) = report.findings
    return one


@pytest.mark.parametrize("name", ["good", "danegood"])
def test_starttls_with_a_valid_certificate_says_nothing(
    world: World, make_session: SessionFactory, name: str
) -> None:
    report = probe(world, make_session, f"{name}.smtp.test")
    assert report.findings == () and report.not_probed == ()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("plain", "does not list STARTTLS in its EHLO reply"),
        ("refuses", "offers STARTTLS but answered it with 454"),
        ("nottls", "offers STARTTLS but the TLS handshake failed"),
    ],
)
def test_no_starttls_is_an_error(world: World, make_session: SessionFactory, name: str, why: str) -> None:
    missing = only(probe(world, make_session, f"{name}.smtp.test"))
    assert missing.id == "smtp.starttls_missing" and missing.severity is Severity.ERROR
    assert f"The MX host mx.{name}.smtp.test (" in missing.detail
    assert f"{why}: mail to it travels unencrypted" in missing.detail


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("expired", "has expired"),
        ("wrongname", "does not name the host"),
        ("danebad", "matches none of its DANE-EE TLSA records"),
    ],
)
def test_a_certificate_that_does_not_verify_is_a_warning(
    world: World, make_session: SessionFactory, name: str, why: str
) -> None:
    invalid = only(probe(world, make_session, f"{name}.smtp.test"))
    assert invalid.id == "smtp.certificate_invalid" and invalid.severity is Severity.WARNING
    assert f"The TLS certificate of the MX host mx.{name}.smtp.test (" in invalid.detail
    assert why in invalid.detail
    assert "Error" not in invalid.detail and "SSL" not in invalid.detail  # words, not exception text


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("nothing", "refused the connection"),
        ("silent", "did not finish answering within 0.5 seconds"),
        ("chatty", "sent more than 16 KB without finishing its replies"),
        ("busy", "greeted with 421 instead of 220"),
    ],
)
def test_an_unreachable_host_is_info_never_an_error(
    world: World, make_session: SessionFactory, name: str, why: str
) -> None:
    unreachable = only(probe(world, make_session, f"{name}.smtp.test", timeout=0.5))
    assert unreachable.id == "smtp.unreachable" and unreachable.severity is Severity.INFO
    assert why in unreachable.detail and "may block outgoing port 25" in unreachable.detail


def test_check_smtp_is_opt_in_and_uses_the_port_setting(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DMARCBOT_CA_FILE", str(world.ca_file))
    monkeypatch.setenv("DMARCBOT_SMTP_PORT", str(world.port))
    argv = ["check", "two.smtp.test", "--json", "--selector", "sel", "--nameserver", world.dns.address]
    main(argv)
    ids = [f["id"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert ids and not [i for i in ids if i.startswith("smtp.")]  # without --smtp: no probe
    main([*argv, "--smtp"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    smtp = [(f["id"], f["severity"]) for f in findings if f["id"].startswith("smtp.")]
    assert smtp == [("smtp.unreachable", "info")]  # the good host says nothing, the other is unreachable
    main(["check", "expired.smtp.test", "--smtp", "--selector", "sel", "--nameserver", world.dns.address])
    text = capsys.readouterr().out
    assert "WARN  smtp.certificate_invalid" in text
    assert "has expired." in " ".join(text.split())  # the terminal report wraps long lines
