"""The opt-in STARTTLS probe (`check --smtp`): each MX host's port 25, EHLO, STARTTLS, its certificate.

Every host is probed at once, each within SMTP_TIMEOUT and MAX_SMTP_BYTES (handlers.limits). The
certificate is verified as the MTA-STS policy host's is (the same CA bundle, the MX host's name,
its dates: RFC 8461 §4.2 asks senders to check exactly this), and when the host publishes usable
DANE-EE TLSA records (RFC 7672 §3.1.1) its certificate or key must match one. A host that cannot
be reached is only info: many networks block outgoing port 25, so silence proves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass

from handlers.dns.domain_name import display_name
from handlers.domain.dane import TlsaSet
from handlers.domain.findings import Finding, finding
from handlers.domain.mx_hosts import MxHostCheck, MxHostsReport
from handlers.https_fetch import HttpsClient, certificate_problem, shown_address
from handlers.limits import MAX_SMTP_ADDRESSES_PER_HOST, MAX_SMTP_BYTES, MAX_SMTP_HOSTS_PROBED, SMTP_TIMEOUT

SMTP_PORT = 25  # RFC 5321 §4.5.4: where MX hosts receive mail from other hosts
# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; twice that is read before giving up
_MAX_LINE = 1024


class _NotSmtp(Exception):
    """The peer's bytes are not an SMTP reply (or exceed the limits): said in words by the caller."""


@dataclass(frozen=True)
class SmtpProber:
    """How to probe: the port (25, overridable for tests through DMARCBOT_SMTP_PORT), the TLS
    verification of the HTTPS client (its CA bundle), and the time allowed per host."""

    tls: HttpsClient
    port: int = SMTP_PORT
    timeout: float = SMTP_TIMEOUT
    max_bytes: int = MAX_SMTP_BYTES


@dataclass(frozen=True)
class SmtpProbeReport:
    """The probe's findings, and the hosts left unprobed past the cap."""

    findings: tuple[Finding, ...]
    not_probed: tuple[str, ...]


async def probe_mx_hosts(prober: SmtpProber, hosts: MxHostsReport) -> SmtpProbeReport:
    """Probe the first MAX_SMTP_HOSTS_PROBED hosts that have addresses, all at once."""
    reachable = [h for h in hosts.hosts if h.addresses]
    probed, rest = reachable[:MAX_SMTP_HOSTS_PROBED], reachable[MAX_SMTP_HOSTS_PROBED:]
    results = await asyncio.gather(*(_probe_host(prober, host) for host in probed))
    return SmtpProbeReport(tuple(f for f in results if f is not None), tuple(h.host for h in rest))


async def _probe_host(prober: SmtpProber, host: MxHostCheck) -> Finding | None:
    """The host's first addresses in turn until one answers in SMTP; the time limit is for them all."""
    shown = display_name(host.host)
    unreachable = where = f"{shown} (port {prober.port})"
    try:
        async with asyncio.timeout(prober.timeout):
            for address in host.addresses[:MAX_SMTP_ADDRESSES_PER_HOST]:
                where = f"{shown} ({shown_address(address)}, port {prober.port})"
                try:
                    return await _dialogue(prober, host, address, where)
                except ConnectionRefusedError:
                    unreachable = f"{where} refused the connection"
                except OSError:
                    unreachable = f"{where} could not be reached"
                except _NotSmtp as error:
                    unreachable = f"{where} {error}"
    except TimeoutError:
        unreachable = f"{where} did not finish answering within {prober.timeout:g} seconds"
    return finding(
        "smtp.unreachable",
        f"The MX host {unreachable}. The network this check ran from may block outgoing port 25, so "
        "nothing is known about STARTTLS there.",
    )


async def _dialogue(prober: SmtpProber, host: MxHostCheck, address: str, where: str) -> Finding | None:
    reader, writer = await asyncio.open_connection(address, prober.port, limit=_MAX_LINE)
    budget = [prober.max_bytes]
    try:
        code, _ = await _reply(reader, budget)
        if code != 220:
            raise _NotSmtp(f"greeted with {code} instead of 220: it does not accept mail from here")
        own = writer.get_extra_info("sockname")
        writer.write(f"EHLO {_address_literal(own[0] if own else '127.0.0.1')}\r\n".encode())
        await writer.drain()
        code, lines = await _reply(reader, budget)
        extensions = {line[4:].split(" ", 1)[0].upper() for line in lines[1:]}
        if code != 250 or "STARTTLS" not in extensions:
            why = f"answered EHLO with {code}" if code != 250 else "does not list STARTTLS in its EHLO reply"
            return _starttls_missing(where, why)
        writer.write(b"STARTTLS\r\n")
        await writer.drain()
        code, _ = await _reply(reader, budget)
        if code != 220:
            return _starttls_missing(where, f"offers STARTTLS but answered it with {code}")
        try:
            await writer.start_tls(prober.tls.tls_context(), server_hostname=host.host)
        except ssl.SSLCertVerificationError as error:
            return finding(
                "smtp.certificate_invalid",
                f"The TLS certificate of the MX host {where} {certificate_problem(error)}. Senders "
                "that verify (MTA-STS in enforce mode, RFC 8461 §4.2) refuse to deliver to it.",
            )
        except (ssl.SSLError, ConnectionError):
            return _starttls_missing(where, "offers STARTTLS but the TLS handshake failed")
        mismatch = _dane_mismatch(writer, host.tlsa)
        writer.write(b"QUIT\r\n")
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.drain()
        if mismatch:
            return finding(
                "smtp.certificate_invalid",
                f"The TLS certificate of the MX host {where} matches none of its DANE-EE TLSA records "
                f"({mismatch}): senders that use DANE defer mail to it (RFC 7672 §2.2).",
                fix=f"Publish at {host.tlsa.name if host.tlsa else 'the TLSA name'} a record for the "
                "certificate the server presents (3 1 1 <SHA-256 of its public key>), keeping the old "
                "one until the change has spread.",
            )
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _starttls_missing(where: str, why: str) -> Finding:
    return finding(
        "smtp.starttls_missing",
        f"The MX host {where} {why}: mail to it travels unencrypted, readable by anyone on the path.",
    )


async def _reply(reader: asyncio.StreamReader, budget: list[int]) -> tuple[int, list[str]]:
    """One SMTP reply (RFC 5321 §4.2): its code and its lines, within the byte budget."""
    lines: list[str] = []
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as error:
            raise _NotSmtp("closed the connection") from error
        except (asyncio.LimitOverrunError, ValueError) as error:
            raise _NotSmtp("sent a reply line over the length limit") from error
        budget[0] -= len(raw)
        if budget[0] < 0:
            raise _NotSmtp(f"sent more than {MAX_SMTP_BYTES // 1024} KB without finishing its replies")
        line = raw.decode("latin-1").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
            raise _NotSmtp("did not answer in SMTP")
        lines.append(line)
        if len(line) == 3 or line[3] == " ":
            return int(line[:3]), lines


def _dane_mismatch(writer: asyncio.StreamWriter, tlsa: TlsaSet | None) -> str | None:
    """When the host has usable DANE-EE (usage 3) records: None if the presented certificate matches
    one (RFC 6698 §2.1: the selector picks the certificate or its public key, the matching type
    how they are compared), else the records in words. DANE-TA (2) needs the chain: not checked."""
    records = [r for r in (tlsa.usable if tlsa else ()) if r.usage == 3]
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not records or der is None:
        return None
    from cryptography import x509  # only a host with DANE-EE records needs it
    from cryptography.hazmat.primitives import serialization

    certificate = x509.load_der_x509_certificate(der)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for record in records:
        selected = der if record.selector == 0 else spki
        digest = {0: selected, 1: hashlib.sha256(selected).digest(), 2: hashlib.sha512(selected).digest()}
        if digest.get(record.matching_type) == record.data:
            return None
    return ", ".join(f'"{r.text[:40]}…"' if len(r.text) > 40 else f'"{r.text}"' for r in records[:3])


def _address_literal(address: str) -> str:
    """Our own address as an EHLO argument (RFC 5321 §4.1.3): we have no name to give."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"
