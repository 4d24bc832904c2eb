"""The DMARC part of a domain check: the record that applies, what it means, and its findings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from handlers.dns.psl import same_organization
from handlers.dns.resolver import DnsSession
from handlers.domain.dmarc_discovery import TreeWalk, tree_walk
from handlers.domain.dmarc_record import POLICIES, DmarcRecord, is_dmarc_record, parse_dmarc_record
from handlers.domain.findings import Finding, finding, temperror_finding
from handlers.limits import MAX_REPORT_AUTHORIZATION_LOOKUPS


@dataclass(frozen=True, kw_only=True)
class DmarcReport:
    """The record that applies to `domain` (its own or inherited), its policy, and the findings."""

    domain: str
    record: DmarcRecord | None
    location: str | None  # the name whose _dmarc record applies
    policy: str | None  # the policy applied to mail from `domain` (after sp=/t=y)
    findings: tuple[Finding, ...]
    walked: tuple[str, ...]  # the _dmarc names asked

    def to_json(self) -> dict[str, object]:
        return {
            "record": self.record.raw if self.record else None,
            "policy": self.policy,
            "location": f"_dmarc.{self.location}" if self.location else None,
            "inherited": self.location is not None and self.location != self.domain,
            "tags": self.record.to_json() if self.record else None,
            "tree_walk": [f"_dmarc.{name}" for name in self.walked],
        }


def applied_policy(record: DmarcRecord, domain: str, location: str, exists: bool = True) -> str:
    """The policy a receiver applies to mail from `domain` under `record` found at `location`:
    p= for the domain itself, sp= for subdomains, np= for names that do not exist (RFC 9989 §4.7),
    then one level lower under t=y (§4.7 't')."""
    if domain == location:
        policy = record.effective_policy
    elif not exists:
        policy = record.nonexistent_policy
    else:
        policy = record.subdomain_policy
    if record.testing:
        policy = POLICIES[max(POLICIES.index(policy) - 1, 0)]
    return policy


async def check_dmarc(session: DnsSession, domain: str) -> DmarcReport:
    """Find the DMARC record for `domain` by tree walk and report every problem with it."""
    walk = await tree_walk(session, domain)
    walked = tuple(step.name for step in walk.steps)
    discovery = walk.policy()

    def ends_with(
        *findings: Finding, record: DmarcRecord | None = None, location: str | None = None
    ) -> DmarcReport:
        return DmarcReport(
            domain=domain, record=record, location=location, policy=None, findings=findings, walked=walked
        )

    if discovery.outage is not None:
        return ends_with(temperror_finding(discovery.outage))
    where = "" if discovery.location == domain else f"{domain} has no record of its own, and "
    if len(discovery.ignored) > 1:
        return ends_with(
            finding(
                "dmarc.multiple",
                f"{where}_dmarc.{discovery.location} has {len(discovery.ignored)} records that start "
                "with v=DMARC1; receivers then apply no DMARC policy at all (RFC 9989 §4.10).",
                record="\n".join(discovery.ignored),
            )
        )
    if discovery.ignored and discovery.location:
        unusable = parse_dmarc_record(discovery.ignored[0])
        return ends_with(
            *_syntax_findings(unusable, discovery.location), record=unusable, location=discovery.location
        )
    if discovery.record is None or discovery.location is None:
        return ends_with(_missing(domain, walk))

    record, location = discovery.record, discovery.location
    policy = applied_policy(record, domain, location)
    findings = _syntax_findings(record, location)
    if discovery.inherited:
        findings.append(
            finding(
                "dmarc.inherited",
                f"{domain} has no record of its own; the record at _dmarc.{location} applies, "
                f"and its {'sp=' if record.sp else 'p='} policy for subdomains is {policy}.",
                record=record.raw,
            )
        )
    findings += _policy_findings(record, location, policy)
    findings += await _report_authorization_findings(session, record, location)
    return DmarcReport(
        domain=domain,
        record=record,
        location=location,
        policy=policy,
        findings=tuple(findings),
        walked=walked,
    )


def _syntax_findings(record: DmarcRecord, domain: str) -> list[Finding]:
    problems = [p for p in record.problems if not p.startswith("the required p= tag")]
    if record.p is None and record.usable:
        # RFC 9989 §4.10.1: no valid p= but a valid rua is applied as p=none; still worth fixing.
        problems.append("no valid p= tag: receivers treat the record as p=none")
    elif not record.usable:
        problems.append("no valid p= tag and no valid rua=: receivers ignore the record entirely")
    if not problems:
        return []
    return [finding("dmarc.syntax", f"_dmarc.{domain}: " + "; ".join(problems) + ".", record=record.raw)]


def _policy_findings(record: DmarcRecord, location: str, policy: str) -> list[Finding]:
    findings = []
    if record.effective_policy == "none" or policy == "none":
        findings.append(
            finding(
                "dmarc.policy_none",
                f"The policy applied is none (p={record.p or 'none'}"
                f"{', t=y' if record.testing else ''}): receivers deliver mail that fails DMARC, "
                "so anyone can still send as this domain.",
                record=record.raw,
            )
        )
    if record.testing:
        findings.append(
            finding(
                "dmarc.testing",
                f"t=y: receivers apply {policy} instead of {record.effective_policy} to failing mail.",
                record=record.raw,
            )
        )
    rank = POLICIES.index(record.effective_policy)
    weaker = [
        f"{tag}={value}"
        for tag, value in (("sp", record.sp), ("np", record.np))
        if value is not None and POLICIES.index(value) < rank
    ]
    if weaker:
        findings.append(
            finding(
                "dmarc.subdomain_weaker",
                f"{' and '.join(weaker)} is weaker than p={record.effective_policy}: mail from "
                f"subdomains of {location} is treated more leniently.",
                record=record.raw,
            )
        )
    if not record.rua:
        findings.append(
            finding(
                "dmarc.no_rua",
                "The record has no rua= address, so no receiver sends aggregate reports: "
                "failing senders stay invisible.",
                fix=f"Add rua=mailto:dmarc-reports@{location} (or your report collector's address).",
                record=record.raw,
            )
        )
    for tag in record.deprecated:
        findings.append(
            finding(
                "dmarc.deprecated_tag",
                f"{tag}={record.tags[tag]} was removed by RFC 9989; receivers ignore it.",
                record=record.raw,
            )
        )
    return findings


_UNCHECKED_NAMED = 20  # destinations named in the detail; the rest are counted


async def _report_authorization_findings(
    session: DnsSession, record: DmarcRecord, location: str
) -> list[Finding]:
    """RFC 9990 §3: an address in another organization must publish
    `<policy domain>._report._dmarc.<its domain>` with v=DMARC1, or receivers send it nothing."""
    external = sorted(
        {
            uri.domain
            for uri in (*record.rua, *record.ruf)
            if uri.domain and not same_organization(uri.domain, location)
        }
    )
    if not external:
        return []
    unchecked = external[MAX_REPORT_AUTHORIZATION_LOOKUPS:]
    external = external[:MAX_REPORT_AUTHORIZATION_LOOKUPS]
    names = [f"{location}._report._dmarc.{host}" for host in external]
    lookups = await asyncio.gather(*(session.lookup(name, "TXT") for name in names))
    findings = []
    if unchecked:
        shown = ", ".join(unchecked[:_UNCHECKED_NAMED])
        more = f" and {len(unchecked) - _UNCHECKED_NAMED} more" if len(unchecked) > _UNCHECKED_NAMED else ""
        findings.append(
            finding(
                "dmarc.rua_unauthorized",
                f"The record sends reports to {len(external) + len(unchecked)} other organizations; "
                f"only the first {MAX_REPORT_AUTHORIZATION_LOOKUPS} were checked for authorization. "
                f"Not checked: {shown}{more}. Receivers may limit how many destinations they send "
                "reports to (RFC 7489 §6.2 only requires two).",
                fix="Send reports to one or two addresses: your own, or your report collector's.",
                record=record.raw,
            )
        )
    for host, name, lookup in zip(external, names, lookups, strict=True):
        if lookup.is_outage:
            findings.append(temperror_finding(lookup))
        elif not any(is_dmarc_record(t) for t in lookup.records):
            findings.append(
                finding(
                    "dmarc.rua_unauthorized",
                    f"Reports go to {host}, another organization, which has not published "
                    f'"v=DMARC1" at {name}; receivers will not send reports there.',
                    fix=f'Ask {host} to publish a TXT record "v=DMARC1" at {name}, '
                    "or send reports to an address in your own domain.",
                    record=record.raw,
                )
            )
    return findings


def _missing(domain: str, walk: TreeWalk) -> Finding:
    asked = ", ".join(f"_dmarc.{step.name}" for step in walk.steps)
    return finding(
        "dmarc.missing",
        f"No DMARC record at _dmarc.{domain}, nor anywhere up the DNS tree walk ({asked}).",
        fix=f'Publish a TXT record at _dmarc.{domain}: "v=DMARC1; p=none; '
        f'rua=mailto:dmarc-reports@{domain}", then tighten the policy as reports come in.',
    )
