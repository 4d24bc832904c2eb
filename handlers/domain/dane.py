"""DANE for SMTP (RFC 7672): the TLSA records at `_25._tcp.MXHOST`, and whether senders can use them.

One question per MX host, asked with the DO bit so the answer's RRSIGs show whether the set is
signed: RFC 7672 §2.2 has senders use TLSA records only when DNSSEC validates them, so a TLSA set
in an unsigned zone is ignored by every sender. Each record is judged as RFC 7672 §3.1 and RFC
6698 §2.1 judge it: only DANE-TA(2) and DANE-EE(3) apply to SMTP, the selector must be Cert(0) or
SPKI(1), the matching type Full(0), SHA2-256(1) or SHA2-512(2), and the digest of its length.
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession
from handlers.domain.findings import Finding, finding, temperror_finding
from handlers.limits import MAX_TLSA_RECORDS

# RFC 6698 §7.2-7.4 and RFC 7218's mnemonics
_USAGES = {0: "PKIX-TA", 1: "PKIX-EE", 2: "DANE-TA", 3: "DANE-EE"}
_SELECTORS = {0: "Cert", 1: "SPKI"}
_DIGEST_BYTES = {1: 32, 2: 64}  # SHA2-256, SHA2-512; Full(0) holds the whole certificate or key


@dataclass(frozen=True)
class TlsaRecord:
    """One TLSA record as published, and why a sender cannot use it (None: it can)."""

    text: str
    problem: str | None
    usage: int
    selector: int
    matching_type: int
    data: bytes

    @property
    def usable(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, object]:
        return {"record": self.text, "usable": self.usable}


@dataclass(frozen=True)
class TlsaSet:
    """The TLSA records of one MX host's port 25, and whether the set was signed."""

    name: str
    signed: bool
    records: tuple[TlsaRecord, ...]
    not_read: int = 0  # records past MAX_TLSA_RECORDS, neither shown nor judged

    @property
    def usable(self) -> tuple[TlsaRecord, ...]:
        return tuple(r for r in self.records if r.usable)


def tlsa_name(host: str) -> str:
    """Where a sender looks for an MX host's TLSA records (RFC 7672 §2.2.1: port 25, TCP)."""
    return f"_25._tcp.{host}"


async def check_tlsa(session: DnsSession, host: str) -> tuple[TlsaSet | None, list[Finding]]:
    """The host's TLSA set (None when it publishes none, or the lookup failed) and its findings."""
    answer = await session.lookup_signed(tlsa_name(host), "TLSA")
    if answer.is_outage:
        return None, [temperror_finding(answer.as_lookup())]
    if not answer.records:
        return None, []  # no TLSA: the host does not use DANE, which is no problem of its own
    tlsa = judge_tlsa(tlsa_name(host), answer.records, signed=answer.has_rrsig)
    problem = tlsa_finding(host, tlsa)
    return tlsa, [problem] if problem else []


def judge_tlsa(name: str, texts: tuple[str, ...], *, signed: bool) -> TlsaSet:
    """Each record (as the wire reader prints it: `usage selector matching-type hex`) with the reason
    a sender cannot use it, if any."""
    records = []
    for text in texts[:MAX_TLSA_RECORDS]:
        usage, selector, matching, data = _fields(text)
        problem = _record_problem(usage, selector, matching, data)
        if problem is None and not signed:
            problem = "the set is not signed with DNSSEC"
        records.append(TlsaRecord(text, problem, usage, selector, matching, data))
    return TlsaSet(name, signed, tuple(records), max(0, len(texts) - MAX_TLSA_RECORDS))


def _fields(text: str) -> tuple[int, int, int, bytes]:
    usage, selector, matching, *data = text.split()
    return int(usage), int(selector), int(matching), bytes.fromhex("".join(data))


def _record_problem(usage: int, selector: int, matching: int, data: bytes) -> str | None:
    if usage not in (2, 3):
        known = _USAGES.get(usage)
        what = f"usage {usage} ({known})" if known else f"usage {usage}, which is not defined"
        # RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not for SMTP, where no CA list is shared
        return f"{what}: SMTP senders use only DANE-TA (2) and DANE-EE (3) (RFC 7672 §3.1)"
    if selector not in _SELECTORS:
        return f"selector {selector} is not defined (0: the certificate, 1: its public key)"
    if matching == 0:
        return None if data else "the data is empty"
    wanted = _DIGEST_BYTES.get(matching)
    if wanted is None:
        return f"matching type {matching} is not defined (0: full, 1: SHA-256, 2: SHA-512)"
    if len(data) != wanted:
        kind = "SHA-256" if matching == 1 else "SHA-512"
        return f"the {kind} digest is {len(data)} bytes long, not {wanted}"
    return None


def tlsa_finding(host: str, tlsa: TlsaSet) -> Finding | None:
    """`dane.tlsa_invalid` naming each record a sender cannot use and why, or None when all are usable."""
    bad = [r for r in tlsa.records if not r.usable]
    if not bad:
        return None
    shown = display_name(host)
    if not tlsa.signed:
        # RFC 7672 §2.2: only a validated ("secure") TLSA set is used; an unsigned one is ignored
        detail = (
            f"The MX host {shown} publishes TLSA records at {tlsa.name}, but the zone holding them is not "
            "signed with DNSSEC, so senders ignore them (RFC 7672 §2.2): DANE does not protect this host."
        )
        fix = (
            f"Sign the zone holding {tlsa.name} with DNSSEC (and publish its DS), or remove the TLSA records."
        )
    else:
        reasons = "; ".join(f'"{r.text}": {r.problem}' for r in bad[:4])
        rest = (
            f" The other {len(tlsa.usable)} record(s) remain usable."
            if tlsa.usable
            else " No record is usable, so senders that do DANE cannot authenticate this host and "
            "defer mail to it (RFC 7672 §2.2)."
        )
        detail = f"The MX host {shown} publishes TLSA records senders cannot use: {reasons}.{rest}"
        fix = (
            f"Publish at {tlsa.name} a record such as 3 1 1 <SHA-256 of the server certificate's public "
            "key> (DANE-EE, SPKI, SHA-256), and remove the others."
        )
    return finding("dane.tlsa_invalid", detail, fix=fix, record="\n".join(r.text for r in bad[:4]))
