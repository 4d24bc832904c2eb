"""Findings: the one vocabulary every diagnosis speaks (the ids are a public interface, listed in the README).

The ids are a public interface (JSON output, alerts, the fix-it flow and users' filters key on
them): never rename one. A new id goes in CATALOG and in the README's findings table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handlers.dns.resolver import Lookup


class Severity(enum.Enum):
    """`error`: mail will fail DMARC or the record is void; `warning`: weak or risky; `info`."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem or fact: stable id, severity, one-line title, the exact record at fault, a fix."""

    id: str
    severity: Severity
    title: str
    detail: str
    fix: str
    record: str | None = None  # the raw record at fault, shown next to the finding

    def to_json(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "title": self.title,
            "detail": self.detail,
            "fix": self.fix,
            "record": self.record,
        }


@dataclass(frozen=True)
class FindingKind:
    severity: Severity
    title: str
    fix: str


E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO

# Titles and default fixes; a check may pass a more specific fix.
CATALOG: dict[str, FindingKind] = {
    "domain.nxdomain": FindingKind(
        E,
        "The domain does not exist",
        "Check the spelling; a domain that does not exist cannot send or receive mail.",
    ),
    "domain.invalid": FindingKind(E, "Not a valid domain name", "Give a domain name such as example.com."),
    "dns.temperror": FindingKind(
        E,
        "A DNS lookup failed, so the result is unknown",
        "Retry in a few minutes; if it persists, check the domain's nameservers are answering.",
    ),
    "dns.cname_loop": FindingKind(
        E,
        "A CNAME chain loops, so the name has no record",
        "Fix the CNAME records named in the detail so the chain ends at a name with records.",
    ),
    "dmarc.missing": FindingKind(
        E,
        "No DMARC record",
        'Publish a TXT record at _dmarc.DOMAIN such as "v=DMARC1; p=none; rua=mailto:dmarc@DOMAIN".',
    ),
    "dmarc.multiple": FindingKind(
        E,
        "More than one DMARC record: DMARC is not applied",
        "Merge them into a single v=DMARC1 record and delete the others.",
    ),
    "dmarc.syntax": FindingKind(
        E,
        "The DMARC record is not valid",
        "Correct the record; it must start with v=DMARC1 and use only valid tags and values.",
    ),
    "dmarc.policy_none": FindingKind(
        W,
        "Policy p=none: spoofed mail is still delivered",
        "Once aggregate reports show your own mail passing, move to p=quarantine, then p=reject.",
    ),
    "dmarc.testing": FindingKind(
        W,
        "Test mode t=y: the policy is applied one level lower",
        "Remove t=y once reports show legitimate mail passing.",
    ),
    "dmarc.subdomain_weaker": FindingKind(
        W,
        "Subdomains get a weaker policy than the domain",
        "Raise sp= (and np=) to at least the p= policy, or remove them to inherit p=.",
    ),
    "dmarc.no_rua": FindingKind(
        W,
        "No aggregate report address: failures are invisible",
        "Add rua=mailto:dmarc-reports@DOMAIN (or a report collector's address).",
    ),
    "dmarc.rua_unauthorized": FindingKind(
        W,
        "A report address in another domain has not authorised reports",
        'Ask the receiving domain to publish "v=DMARC1" at DOMAIN._report._dmarc.THEIR-DOMAIN.',
    ),
    "dmarc.deprecated_tag": FindingKind(
        I,
        "A tag removed by RFC 9989",
        "Remove pct=, rf= and ri=; receivers ignore them. Use t=y for a gradual roll-out.",
    ),
    "dmarc.inherited": FindingKind(
        I,
        "DMARC applies through the organizational domain",
        "Nothing to do unless this name needs its own policy: publish _dmarc at this name.",
    ),
    "spf.missing": FindingKind(
        E, "No SPF record", 'Publish one TXT record such as "v=spf1 include:<your provider> -all".'
    ),
    "spf.multiple": FindingKind(
        E, "More than one SPF record: SPF permerror", "Merge all v=spf1 records into a single one."
    ),
    "spf.syntax": FindingKind(
        E,
        "The SPF record does not parse: SPF permerror",
        "Correct the term shown; see RFC 7208 §5 for each mechanism's form.",
    ),
    "spf.too_many_lookups": FindingKind(
        E,
        "More than 10 DNS lookups: SPF permerror",
        "Remove unused includes, replace a/mx with ip4/ip6, or flatten an include into its addresses.",
    ),
    "spf.void_lookups": FindingKind(
        E,
        "More than 2 void lookups: SPF permerror",
        "Remove the terms whose names do not exist or publish no record.",
    ),
    "spf.include_missing": FindingKind(
        E,
        "An include or redirect target has no SPF record: permerror",
        "Remove the term or correct the name (check your provider's documented include).",
    ),
    "spf.loop": FindingKind(
        E, "An include or redirect loop", "Remove the term that leads back to a record already included."
    ),
    "spf.pass_all": FindingKind(
        E,
        "+all: anyone may send as the domain",
        "End the record with -all (or ~all while you check every sender is listed).",
    ),
    "spf.neutral_all": FindingKind(
        W, "?all or no all: SPF says nothing about other senders", "End the record with -all (or ~all)."
    ),
    "spf.near_limit": FindingKind(
        W,
        "9 or 10 DNS lookups: one more sender breaks SPF",
        "Free lookups now: drop unused includes or flatten one into ip4/ip6 terms.",
    ),
    "spf.flattened_stale": FindingKind(
        W,
        "A flattened include's provider changed its addresses",
        "Re-flatten: drop the old addresses from the record and add the new ones.",
    ),
    "spf.sender_missing": FindingKind(
        E,
        "A sender seen in aggregate reports is not in SPF",
        "Add the sender's include to the SPF record, or set up its DKIM signing for the domain.",
    ),
    "spf.ptr": FindingKind(
        W, "The deprecated ptr mechanism", "Replace ptr with ip4/ip6 or a/mx terms (RFC 7208 §5.5)."
    ),
    "dkim.no_selector": FindingKind(
        I,
        "No DKIM key found at the probed selectors",
        "Not proof DKIM is absent: check with the selector from a message's DKIM-Signature s= tag.",
    ),
    "dkim.key_missing": FindingKind(
        E,
        "No DKIM key at the named selector",
        "Publish the key your mail provider gives you at SELECTOR._domainkey.DOMAIN.",
    ),
    "dkim.key_revoked": FindingKind(
        W,
        "The DKIM key is revoked (empty p=)",
        "Stop signing with this selector, or publish its current public key.",
    ),
    "dkim.key_invalid": FindingKind(
        E,
        "The DKIM key record is not valid",
        "Republish the record exactly as your provider gives it: v=DKIM1; k=rsa; p=<base64 key>.",
    ),
    "dkim.weak_key": FindingKind(
        E,
        "The DKIM key is too short",
        "Generate a 2048-bit RSA key (or ed25519 beside it), publish it, then switch signing to it.",
    ),
    "dkim.testing": FindingKind(
        W, "The DKIM key is in test mode (t=y)", "Remove t=y from the key record once signing works."
    ),
    "mx.missing": FindingKind(
        I,
        "No MX record",
        'Publish MX records if the domain receives mail; publish a null MX ("0 .") if it never does.',
    ),
    "mx.no_address": FindingKind(
        E,
        "An MX host has no address",
        "Publish an A or AAAA record for the host, or remove it from the MX records.",
    ),
    "mx.cname": FindingKind(
        W,
        "An MX host is an alias (CNAME)",
        "Point the MX record at the host's canonical name, or give the name its own A/AAAA records.",
    ),
    "mx.reverse_dns": FindingKind(
        W,
        "An MX host's address has no reverse name that resolves back",
        "Ask whoever runs the address to set its reverse (PTR) name to the MX host's name.",
    ),
    "tls_rpt.missing": FindingKind(
        I,
        "No TLS reporting (TLS-RPT) record",
        'Publish a TXT record at _smtp._tls.DOMAIN such as "v=TLSRPTv1; rua=mailto:tls-reports@DOMAIN".',
    ),
    "tls_rpt.invalid": FindingKind(
        E,
        "The TLS reporting (TLS-RPT) record is not valid",
        'Publish exactly one record such as "v=TLSRPTv1; rua=mailto:tls-reports@DOMAIN" (RFC 8460 §3).',
    ),
    "mta_sts.missing": FindingKind(
        I,
        "No MTA-STS policy",
        "Publish an MTA-STS policy (RFC 8461) in testing mode first, so senders report TLS failures.",
    ),
    "mta_sts.record_invalid": FindingKind(
        E,
        "The MTA-STS record is not valid",
        'Publish exactly one TXT record at _mta-sts.DOMAIN such as "v=STSv1; id=20250101T000000".',
    ),
    "mta_sts.policy_unreachable": FindingKind(
        E,
        "The MTA-STS policy file cannot be fetched",
        "Serve the policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt with a valid certificate "
        "for mta-sts.DOMAIN, status 200 and no redirect.",
    ),
    "mta_sts.policy_invalid": FindingKind(
        E,
        "The MTA-STS policy file is not valid",
        'Serve "version: STSv1", "mode:", "max_age:" and one "mx:" line per host (RFC 8461 §3.2).',
    ),
    "mta_sts.mx_not_covered": FindingKind(
        E,
        "An MX host is not covered by the MTA-STS policy",
        "Add an mx: line for the host to the policy file, then change the record's id=.",
    ),
    "mta_sts.testing": FindingKind(
        W,
        "MTA-STS is in testing mode: senders deliver even when TLS fails",
        "Once TLS reports show every sender connecting securely, change mode: to enforce and the id=.",
    ),
    "mta_sts.max_age_short": FindingKind(
        W,
        "The MTA-STS max_age is under one day",
        "Raise max_age to at least 86400 (a week, 604800, or more once the policy is stable).",
    ),
    "mta_sts.cert_expiring": FindingKind(
        W,
        "The MTA-STS policy host's certificate expires within 14 days",
        "Renew the certificate of mta-sts.DOMAIN: once it expires, senders cannot refresh the policy.",
    ),
    "bimi.missing": FindingKind(
        I,
        "No BIMI record",
        "To show your logo in inboxes, publish a TXT record at default._bimi.DOMAIN such as "
        '"v=BIMI1; l=https://DOMAIN/logo.svg" (DMARC must be at p=quarantine or p=reject first).',
    ),
    "bimi.invalid": FindingKind(
        E,
        "The BIMI record is not valid",
        'Publish exactly one TXT record at default._bimi.DOMAIN such as "v=BIMI1; l=https://DOMAIN/logo.svg".',
    ),
    "bimi.dmarc_not_enforced": FindingKind(
        E,
        "BIMI needs DMARC at enforcement, and the policy is not there",
        "Move DMARC to p=quarantine or p=reject without t=y, at this domain and at its organizational "
        "domain (see the DMARC policy-progression fix).",
    ),
    "bimi.logo_unreachable": FindingKind(
        E,
        "The BIMI logo cannot be fetched",
        "Serve the logo at the l= address over HTTPS with a valid certificate, status 200 and no redirect.",
    ),
    "bimi.logo_invalid": FindingKind(
        E,
        "The BIMI logo is not an SVG Tiny PS file",
        'Export the logo as SVG Tiny PS: an <svg> with baseProfile="tiny-ps", a <title>, a square '
        "viewBox, no scripts and no external references, at most 32 KB.",
    ),
    "bimi.certificate_invalid": FindingKind(
        E,
        "The BIMI certificate (VMC or CMC) is not usable",
        "Serve the mark certificate's PEM chain at the a= address: issued by a Mark Verifying Authority, "
        "in date, naming the domain, with the logo in its logotype extension.",
    ),
    "bimi.certificate_expiring": FindingKind(
        W,
        "The BIMI certificate (VMC or CMC) expires within 30 days",
        "Renew the mark certificate with its Mark Verifying Authority now (re-checking the mark takes "
        "time), then serve the new chain at the a= address.",
    ),
    "dnssec.unsigned": FindingKind(
        I,
        "The zone is not signed with DNSSEC",
        "Ask your DNS provider to sign the zone, then publish its DS record at your registrar.",
    ),
    "dnssec.invalid": FindingKind(
        E,
        "DNSSEC signatures do not verify: validating resolvers treat these answers as failures",
        "Re-sign the zone (or let your DNS provider re-sign it) so every record set carries a current "
        "signature by a key in its DNSKEY set; if signing was meant to stop, remove the DS record first.",
    ),
    "dane.tlsa_invalid": FindingKind(
        E,
        "An MX host's DANE TLSA records are not usable",
        "Publish a record such as 3 1 1 <SHA-256 of the server certificate's public key> at "
        "_25._tcp.MXHOST, in a zone signed with DNSSEC (RFC 7672).",
    ),
    "smtp.starttls_missing": FindingKind(
        E,
        "An MX host does not offer STARTTLS",
        "Enable STARTTLS on the mail server, with a certificate for the MX host's name.",
    ),
    "smtp.certificate_invalid": FindingKind(
        W,
        "An MX host's TLS certificate does not verify",
        "Install a certificate for the MX host's name from a public CA, and renew it before it expires.",
    ),
    "smtp.unreachable": FindingKind(
        I,
        "An MX host could not be reached on port 25",
        "Nothing to fix if the network you ran the check from blocks outgoing port 25; otherwise make "
        "sure the MX host accepts connections on port 25.",
    ),
}

# Raised by the monitor (bot.monitor.fix_followup), never by a check: a flattened record's address terms
# look like any others, and only the provider's addresses remembered since the fix tell them apart.
MONITOR_FINDINGS = frozenset({"spf.flattened_stale"})
# Read from aggregate reports (handlers.reports.senders), never from a check: DNS alone cannot say
# which hosts send as the domain.
REPORT_FINDINGS = frozenset({"spf.sender_missing"})


def finding(
    finding_id: str,
    detail: str,
    *,
    fix: str | None = None,
    record: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding from the catalog; `severity` overrides the default only where it varies."""
    kind = CATALOG[finding_id]
    return Finding(
        id=finding_id,
        severity=severity or kind.severity,
        title=kind.title,
        detail=detail,
        fix=fix or kind.fix,
        record=record,
    )


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; stable within a severity."""
    return sorted(findings, key=lambda f: f.severity.rank)


def temperror_finding(lookup: Lookup) -> Finding:
    """`dns.temperror` for a failed lookup: it names the name and the failure, and never claims
    that anything is missing. A CNAME loop is the zone's error, not an outage: `dns.cname_loop`."""
    if lookup.is_cname_loop:
        return cname_loop_finding(lookup)
    return finding("dns.temperror", lookup.describe_failure() + "; the result is unknown, not missing.")


def cname_loop_finding(lookup: Lookup) -> Finding:
    """`dns.cname_loop`: the chain named, since a loop fails the same way at every retry."""
    chain = " → ".join((lookup.name, *lookup.cname_chain))
    return finding(
        "dns.cname_loop",
        f"The {lookup.rdtype} lookup for {lookup.name} follows CNAMEs in a loop ({chain}: "
        f"{lookup.detail}); "
        "every resolver fails on it the same way, so retrying does not help.",
    )


def absence_words(lookup: Lookup) -> str:
    """Why a lookup found no record of the kind wanted, in words that name no name: the caller names
    the place in its display form (a name with an underscore label has no Unicode form to take)."""
    if lookup.records:
        return f"its {lookup.rdtype} records are of another kind"
    return (
        "the name does not exist"
        if lookup.status.value == "nxdomain"
        else f"the name has no {lookup.rdtype} record"
    )
