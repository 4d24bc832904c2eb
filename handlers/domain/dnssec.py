"""The DNSSEC part of a domain check: is the zone signed, and do the signatures on what we read verify.

The zone's DNSKEY set is read with its RRSIGs, then the records the check rests on (the domain's
TXT and MX, its `_dmarc` TXT), each asked again with the DO bit so their RRSIGs come too; every
signature by the zone's keys is verified with dnspython (RFC 4035 §5.3). A validating resolver
turns a bad signature into SERVFAIL for every receiver, so mail from the domain then fails SPF
and DMARC lookups everywhere: an error, whatever else the report says.

The parent's DS set, asked beside them, is the chain of trust into the zone (RFC 4035 §5.2): one DS
must be the digest of a DNSKEY that signs the zone's DNSKEY set. A DS set that matches no key makes
the whole zone bogus; a signed zone with no DS at all is an island, which no resolver can validate,
so to receivers it is unsigned.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import dns.dnssec
import dns.exception
import dns.name
import dns.rdtypes.ANY.DS
import dns.rdtypes.ANY.RRSIG
import dns.rrset

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
    # the DS set is the parent's: asked of the zone's apex, beside the records to verify
    questions = [(domain, "TXT"), (domain, "MX"), (f"_dmarc.{domain}", "TXT"), (zone, "DS")]
    answers = await asyncio.gather(*(session.lookup_signed(n, t) for n, t in questions)) if keys.rrset else []
    ds = answers.pop() if answers else None
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
    assert ds is not None
    failures = []
    for answer in (keys, *answers):
        if answer.rrset is None:
            continue  # nothing there (or a CNAME, validated where it points): nothing to verify
        problem = _signature_problem(answer, zone, keys, now)
        if problem:
            failures.append(problem)
    findings = []
    broken_chain = None
    if ds.is_outage:
        findings.append(temperror_finding(ds.as_lookup()))
    elif ds.rrset is None and ds.zone == zone:
        # The "no DS" came from the zone itself, not its parent (RFC 4035 §3.1.4.1: the DS lives
        # in the parent): the server asked is the zone's own, not a resolver, so nothing is known.
        pass
    elif ds.rrset is None:
        findings.append(
            finding(
                "dnssec.unsigned",
                f"The zone {display_name(zone)} is signed, but its parent publishes no DS record for it "
                "(an island of trust), so no resolver can validate its signatures: to receivers it is "
                "as unsigned as a zone without keys.",
                fix=f"Publish the DS record of {display_name(zone)}'s key-signing key at your registrar "
                "(your DNS provider shows it; dnssec-dsfromkey makes it from the key).",
            )
        )
    else:
        broken_chain = _ds_problem(ds.rrset, keys, zone, now)
    if broken_chain:
        failures.insert(0, broken_chain)
    if failures:
        consequence = (
            "Validating resolvers answer SERVFAIL for every name in the zone, so receivers that validate "
            "cannot read any of its records."
            if broken_chain
            else "Validating resolvers answer SERVFAIL for these records, so receivers that validate cannot "
            "read them."
        )
        fix = (
            "Replace the DS record at your registrar with the one made from the zone's current key-signing "
            "key (your DNS provider shows it), or remove the DS record if signing was meant to stop."
            if broken_chain
            else None
        )
        findings.insert(
            0,
            finding(
                "dnssec.invalid",
                f"In the signed zone {display_name(zone)}, " + "; ".join(failures[:4]) + ". " + consequence,
                fix=fix,
            ),
        )
    # `valid`: whether what was read verifies; unknown when the parent's DS could not be read
    valid = False if failures else (None if ds.is_outage else True)
    return DnssecReport(zone=zone, signed=True, valid=valid, findings=tuple(findings))


def _ds_problem(ds_set: dns.rrset.RRset, keys: SignedLookup, zone: str, now: float | None) -> str | None:
    """Why the parent's DS set leads to no key that signs the zone's DNSKEY set (RFC 4035 §5.2),
    or None when one DS does. A DS whose digest type we cannot compute is skipped, as validators
    skip it; a set of only such records says nothing either way."""
    assert keys.rrset is not None
    origin = dns.name.from_text(zone)
    matched, judged = [], []
    for ds in ds_set:
        if not isinstance(ds, dns.rdtypes.ANY.DS.DS):
            continue
        for key in keys.rrset:
            try:
                digest = dns.dnssec.make_ds(origin, key, ds.digest_type, validating=True)
            except (dns.exception.UnsupportedAlgorithm, dns.exception.DeniedByPolicy, ValueError):
                break
            if ds not in judged:
                judged.append(ds)
            if digest == ds:
                matched.append(key)
    if not judged:
        return None
    if not matched:
        tags = {dns.dnssec.key_id(key) for key in keys.rrset}
        described = [
            f"key tag {ds.key_tag}, algorithm {ds.algorithm}"
            + ("" if ds.key_tag in tags else ", a key the zone does not publish")
            for ds in judged[:3]
        ]
        return (
            f"the parent's DS record{'s' if len(judged) > 1 else ''} ({'; '.join(described)}) "
            f"match{'' if len(judged) > 1 else 'es'} no DNSKEY of the zone"
        )
    signers = dns.rrset.from_rdata_list(origin, keys.rrset.ttl, matched)
    for rrsig in keys.rrsigs or ():
        try:
            dns.dnssec.validate_rrsig(keys.rrset, rrsig, {origin: signers}, now=now or time.time())
            return None
        except (dns.exception.ValidationFailure, dns.exception.UnsupportedAlgorithm):
            continue
    named = ", ".join(str(dns.dnssec.key_id(key)) for key in matched)
    return (
        f"the parent's DS record points at the DNSKEY with tag {named}, but no valid RRSIG by that key "
        "covers the zone's DNSKEY set"
    )


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
