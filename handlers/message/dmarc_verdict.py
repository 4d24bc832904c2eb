"""The DMARC result for one message (RFC 9989 §4.8): policy discovery, alignment, result, policy.

Inputs are what the receiver authenticated: the From domain, the SPF result for the MAIL FROM
domain, and the d= domains of the DKIM signatures that verified. Everything else is DNS, asked
through one DnsSession: the DNS Tree Walk for the From domain's record and Organizational Domain
(§4.10), the walk for each authenticated domain (relaxed alignment compares Organizational
Domains, §4.4.1), and an A query for the From domain when `np=` could apply (§4.7, §4.10.1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.dns.resolver import DnsSession, DnsStatus, Lookup, normalise_name
from handlers.domain.dmarc import applied_policy
from handlers.domain.dmarc_discovery import OrgDomain, organizational_domain, tree_walk
from handlers.domain.dmarc_record import DmarcRecord

RESULTS = ("pass", "fail", "none", "temperror", "permerror")


@dataclass(frozen=True, kw_only=True)
class Alignment:
    """Whether one authenticated identifier aligns with the From domain (RFC 9989 §4.4)."""

    identifier: str  # "spf" or "dkim"
    domain: str  # the MAIL FROM domain or the DKIM d=
    authenticated: bool  # SPF pass / DKIM signature verified
    strict: bool  # aspf=s / adkim=s in force
    aligned: bool | None  # None: an outage left the Organizational Domain unknown
    mode: str | None  # "strict" (identical names) or "relaxed" (same Org Domain) when aligned
    org_domain: str | None
    outage: Lookup | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "authenticated": self.authenticated,
            "aligned": self.aligned,
            "mode": self.mode,
            "strict": self.strict,
            "org_domain": self.org_domain,
        }


@dataclass(frozen=True, kw_only=True)
class DmarcVerdict:
    """The DMARC result for one From domain and its authenticated identifiers."""

    from_domain: str
    result: str  # one of RESULTS
    reason: str  # one sentence: why this result
    record: DmarcRecord | None  # the policy record that applies (None: no DMARC processing)
    location: str | None  # the name whose _dmarc record applies (the "policy domain")
    org_domain: str | None  # the From domain's Organizational Domain (§4.10.2)
    policy: str | None  # the policy for this From domain after sp=/np=/t=y; None without a record
    from_exists: bool | None  # None when not asked (own record) or unknown (outage)
    spf: Alignment | None
    dkim: tuple[Alignment, ...]
    walked: tuple[str, ...]  # the _dmarc names asked, most specific first
    ignored_records: tuple[str, ...] = ()  # DMARC records found but not applied (several, unusable)
    outage: Lookup | None = None

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    @property
    def disposition(self) -> str:
        """What a receiver does with this message: the policy when DMARC fails, else none."""
        return self.policy if self.result == "fail" and self.policy else "none"

    @property
    def error(self) -> str | None:
        return self.outage.describe_failure() if self.outage else None

    def auth_results(self) -> str:
        """This verdict as an Authentication-Results method (RFC 8601 §2.7.1 style)."""
        tags = ""
        if self.record is not None:
            tags = (
                f" (p={self.record.effective_policy} sp={self.record.subdomain_policy}"
                f" dis={self.disposition})"
            )
        return f"dmarc={self.result}{tags} header.from={self.from_domain}"

    def to_json(self) -> dict[str, object]:
        return {
            "result": self.result,
            "policy": self.policy,
            "record": self.record.raw if self.record else None,
            "org_domain": self.org_domain,
            "policy_domain": self.location,
            "disposition": self.disposition,
            "reason": self.reason,
            "adkim": self.record.adkim if self.record else None,
            "aspf": self.record.aspf if self.record else None,
            "testing": self.record.testing if self.record else None,
            "from_exists": self.from_exists,
            "tree_walk": [f"_dmarc.{name}" for name in self.walked],
        }


async def domain_exists(session: DnsSession, domain: str) -> tuple[bool | None, Lookup | None]:
    """RFC 9989 §4.10.1's existence test: NXDOMAIN for an A query means the name does not exist;
    any other answer (records, NODATA) means it does; an outage leaves it unknown (None)."""
    lookup = await session.lookup(domain, "A")
    if lookup.is_outage:
        return None, lookup
    return lookup.status is not DnsStatus.NXDOMAIN, lookup


async def align(
    session: DnsSession,
    identifier: str,
    from_domain: str,
    from_org: OrgDomain,
    domain: str,
    authenticated: bool,
    strict: bool,
) -> Alignment:
    """Compare one identifier with the From domain: identical names align in both modes;
    relaxed mode (§4.4.1) also accepts the same Organizational Domain, found by tree walk."""
    domain = normalise_name(domain)
    if domain == from_domain:
        return Alignment(
            identifier=identifier,
            domain=domain,
            authenticated=authenticated,
            strict=strict,
            aligned=True,
            mode="strict",
            org_domain=from_org.name,
        )
    org = await organizational_domain(session, domain)
    if strict:
        return Alignment(
            identifier=identifier,
            domain=domain,
            authenticated=authenticated,
            strict=strict,
            aligned=False,
            mode=None,
            org_domain=org.name,
        )
    if not _could_share_org_domain(domain, from_domain, from_org):
        # Certain, whatever any lookup answers: not a failed lookup's temperror.
        return Alignment(
            identifier=identifier,
            domain=domain,
            authenticated=authenticated,
            strict=strict,
            aligned=False,
            mode=None,
            org_domain=org.name,
        )
    outage = org.outage or from_org.outage
    if outage is not None:
        return Alignment(
            identifier=identifier,
            domain=domain,
            authenticated=authenticated,
            strict=strict,
            aligned=None,
            mode=None,
            org_domain=org.name,
            outage=outage,
        )
    aligned = org.name is not None and org.name == from_org.name
    return Alignment(
        identifier=identifier,
        domain=domain,
        authenticated=authenticated,
        strict=strict,
        aligned=aligned,
        mode="relaxed" if aligned else None,
        org_domain=org.name,
    )


def _could_share_org_domain(domain: str, from_domain: str, from_org: OrgDomain) -> bool:
    """Whether some DNS answer could make `domain` and `from_domain` share an Organizational Domain.

    RFC 9989 §4.10.2: a name's Organizational Domain is the name itself or one of its ancestors
    (the tree walk only ever climbs). So relaxed alignment (§4.4.1) needs a common ancestor-or-self;
    and once the From domain's walk has answered, its Organizational Domain must be `domain` or an
    ancestor of it. When neither holds, the result is certain and a failed lookup cannot change it
    (only a lookup whose answer could change the result makes it temperror, §4.8)."""
    if from_org.outage is None and from_org.name is not None:
        return domain == from_org.name or domain.endswith("." + from_org.name)
    return domain.rsplit(".", 1)[-1] == from_domain.rsplit(".", 1)[-1]


async def evaluate_dmarc(
    session: DnsSession, from_domain: str, spf: tuple[str, str] | None, dkim_passes: Sequence[str]
) -> DmarcVerdict:
    """The DMARC result, record, policy and alignment for mail from `from_domain`, given the SPF
    (MAIL FROM domain, result) and the d= of each verified DKIM signature."""
    from_domain = normalise_name(from_domain)
    walk = await tree_walk(session, from_domain)
    walked = tuple(step.name for step in walk.steps)
    found = walk.policy()
    from_org = walk.organizational_domain()
    record, location = found.record, found.location
    strict_spf = record is not None and record.aspf == "s"
    strict_dkim = record is not None and record.adkim == "s"

    checks = []
    if spf is not None:
        checks.append(align(session, "spf", from_domain, from_org, spf[0], spf[1] == "pass", strict_spf))
    checks += [
        align(session, "dkim", from_domain, from_org, d, True, strict_dkim)
        for d in dict.fromkeys(normalise_name(d) for d in dkim_passes)
    ]
    exists_check = record is not None and location is not None and location != from_domain
    existence = asyncio.ensure_future(domain_exists(session, from_domain) if exists_check else _not_asked())
    alignments: list[Alignment] = list(await asyncio.gather(*checks))
    exists: bool | None
    exists_lookup: Lookup | None
    exists, exists_lookup = await existence
    spf_alignment = alignments.pop(0) if spf is not None else None

    def verdict(
        result: str, reason: str, policy: str | None = None, outage: Lookup | None = None
    ) -> DmarcVerdict:
        return DmarcVerdict(
            from_domain=from_domain,
            result=result,
            reason=reason,
            record=record,
            location=location,
            org_domain=from_org.name,
            policy=policy,
            from_exists=exists,
            spf=spf_alignment,
            dkim=tuple(alignments),
            walked=walked,
            ignored_records=found.ignored,
            outage=outage,
        )

    if found.outage is not None:
        return verdict("temperror", found.reason, outage=found.outage)
    if record is None or location is None:
        return verdict("none", found.reason)

    if exists is None and exists_check and record.nonexistent_policy != record.subdomain_policy:
        # np= differs from sp=, so the policy depends on an answer we could not get.
        failure = exists_lookup.describe_failure() if exists_lookup else "DNS failed"
        return verdict(
            "temperror",
            f"could not tell whether {from_domain} exists ({failure}), and np= decides the policy",
            outage=exists_lookup,
        )
    policy = applied_policy(record, from_domain, location, exists is not False)
    passing = [a for a in (spf_alignment, *alignments) if a is not None and a.authenticated and a.aligned]
    if passing:
        names = ", ".join(f"{a.identifier.upper()} ({a.domain}, {a.mode})" for a in passing)
        return verdict("pass", f"aligned and authenticated: {names}", policy)
    unknown = [
        a for a in (spf_alignment, *alignments) if a is not None and a.authenticated and a.aligned is None
    ]
    if unknown:
        outage = unknown[0].outage
        return verdict(
            "temperror",
            f"alignment of {unknown[0].domain} is unknown: "
            f"{outage.describe_failure() if outage else 'DNS failed'}",
            policy,
            outage,
        )
    return verdict("fail", "no authenticated identifier is aligned with the From domain", policy)


async def _not_asked() -> tuple[bool | None, Lookup | None]:
    return None, None


__all__ = ["RESULTS", "Alignment", "DmarcVerdict", "align", "domain_exists", "evaluate_dmarc"]
