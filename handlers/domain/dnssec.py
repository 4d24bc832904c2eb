"""The DNSSEC part of a domain check: is the zone signed, and do the signatures on what we read verify.

The zone's DNSKEY set is read with its RRSIGs, then the records the check rests on (the domain's
TXT and MX, its `_dmarc` TXT), each asked again with the DO bit so their RRSIGs come too; every
signature by the zone's keys is verified with dnspython (RFC 4035 §5.3). A validating resolver
turns a bad signature into SERVFAIL for every receiver, so mail from the domain then fails SPF
and DMARC lookups everywhere: an error, whatever else the report says. The parent's DS record is
not compared here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import dns.dnssec
import dns.exception
import dns.name
import dns.rdtypes.ANY.RRSIG

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession, SignedLookup
from handlers.domain.findings import Finding, finding, temperror_finding


@dataclass(frozen=True, kw_only=True)
class DnssecReport:
    """Whether the zone is signed (None: unknown, DNS failed) and whether what we read verifies."""

    zone: str | None
    signed: bool | None
    valid: bool | None
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, object]:
        return {"signed": self.signed, "valid": self.valid}


async def check_dnssec(session: DnsSession, domain: str, now: float | None = None) -> DnssecReport:
    """Read the DNSKEYs of the zone holding `domain`, then verify the RRSIGs on its records."""
    keys = await session.lookup_signed(domain, "DNSKEY")
    if keys.is_outage:
        return _unknown(keys)
    zone = domain
    if keys.rrset is None and keys.zone and keys.zone != domain and domain.endswith("." + keys.zone):
        # the domain is a name inside its parent's zone: the keys are at that zone's apex
        zone = keys.zone
        keys = await session.lookup_signed(zone, "DNSKEY")
        if keys.is_outage:
            return _unknown(keys)
    questions = [(domain, "TXT"), (domain, "MX"), (f"_dmarc.{domain}", "TXT")]
    answers = await asyncio.gather(*(session.lookup_signed(n, t) for n, t in questions)) if keys.rrset else []
    signatures = [a for a in (keys, *answers) if a.rrsigs is not None]
    if keys.rrset is None or not signatures:
        why = (
            "publishes no DNSKEY record"
            if keys.rrset is None
            else "publishes DNSKEY records, but no answer carries an RRSIG"
        )
        unsigned = finding(
            "dnssec.unsigned",
            f"The zone {display_name(zone)} {why}, so resolvers cannot tell a forged answer about "
            f"{display_name(domain)} from a true one.",
        )
        return DnssecReport(zone=zone, signed=False, valid=None, findings=(unsigned,))
    failures = []
    for answer in (keys, *answers):
        if answer.rrset is None:
            continue  # nothing there (or a CNAME, validated where it points): nothing to verify
        problem = _signature_problem(answer, zone, keys, now)
        if problem:
            failures.append(problem)
    if not failures:
        return DnssecReport(zone=zone, signed=True, valid=True, findings=())
    invalid = finding(
        "dnssec.invalid",
        f"In the signed zone {display_name(zone)}, " + "; ".join(failures[:4]) + ". Validating resolvers "
        "answer SERVFAIL for these records, so receivers that validate cannot read them.",
    )
    return DnssecReport(zone=zone, signed=True, valid=False, findings=(invalid,))


def _signature_problem(answer: SignedLookup, zone: str, keys: SignedLookup, now: float | None) -> str | None:
    """Why no RRSIG by the zone's keys verifies `answer`'s records, or None when one does."""
    assert answer.rrset is not None and keys.rrset is not None
    what = f"the {answer.rdtype} records of {answer.name}"
    if answer.rrsigs is None:
        return f"{what} carry no RRSIG (RFC 4035 §2.2 requires one on every authoritative set)"
    origin = dns.name.from_text(zone)
    ours = [
        rrsig
        for rrsig in answer.rrsigs
        if isinstance(rrsig, dns.rdtypes.ANY.RRSIG.RRSIG) and rrsig.signer == origin
    ]
    if not ours:
        return None  # signed by another zone (a delegated name): that zone's keys judge it
    reasons = []
    for rrsig in ours:
        try:
            dns.dnssec.validate_rrsig(answer.rrset, rrsig, {origin: keys.rrset}, now=now or time.time())
            return None
        except (dns.exception.ValidationFailure, dns.exception.UnsupportedAlgorithm) as error:
            reasons.append(_reason(rrsig, error, now or time.time()))
    return f"the RRSIG on {what} does not verify ({reasons[0]})"


def _reason(rrsig: dns.rdtypes.ANY.RRSIG.RRSIG, error: Exception, now: float) -> str:
    if rrsig.expiration < now:
        return f"it expired on {time.strftime('%Y-%m-%d %H:%M', time.gmtime(rrsig.expiration))} UTC"
    if rrsig.inception > now:
        return "it is not valid yet"
    if isinstance(error, dns.exception.UnsupportedAlgorithm):
        return f"its algorithm {rrsig.algorithm} is not supported"
    return f"no DNSKEY with tag {rrsig.key_tag} verifies it: the records or the signature changed"


def _unknown(lookup: SignedLookup) -> DnssecReport:
    return DnssecReport(zone=None, signed=None, valid=None, findings=(temperror_finding(lookup.as_lookup()),))
