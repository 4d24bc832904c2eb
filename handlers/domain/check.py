"""`check`: the whole diagnosis of one domain (DMARC, SPF, DKIM, MX), every lookup concurrent.

The four parts share one DnsSession, so a question two parts ask (the domain's TXT for SPF and for
the existence test) goes out once, and no answer predates the check. The wall time follows the
longest chain of dependent lookups (SPF includes nested three deep), not the sum of all lookups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession, DnsStatus
from handlers.domain.dkim_keys import DkimReport, check_dkim
from handlers.domain.dmarc import DmarcReport, check_dmarc
from handlers.domain.findings import Finding, Severity, finding, sort_findings, temperror_finding
from handlers.domain.mx import MxReport, check_mx
from handlers.domain.spf import SpfReport, check_spf

# Among findings of one severity, the one to fix first: a broken domain or DNS before DMARC,
# DMARC before SPF and DKIM (without DMARC nothing else is evaluated), MX last.
_FAMILY_ORDER = ("domain", "dns", "dmarc", "spf", "dkim", "mx")


@dataclass(frozen=True)
class DomainReport:
    """Everything `check` learned about one domain."""

    domain: str
    exists: bool
    dmarc: DmarcReport | None
    spf: SpfReport | None
    dkim: DkimReport | None
    mx: MxReport | None
    findings: tuple[Finding, ...]
    queries: int
    dns_unreachable: bool
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def display_domain(self) -> str:
        return display_name(self.domain)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def top_finding(self) -> Finding | None:
        """The single most important thing to fix: errors first, then warnings, never info."""
        actionable = [f for f in self.findings if f.severity is not Severity.INFO]
        if not actionable:
            return None
        return min(actionable, key=lambda f: (f.severity.rank, _family_rank(f.id)))

    @property
    def verdict(self) -> str:
        """`pass` (mail can pass DMARC today), `fail`, or `unknown` (DNS failed)."""
        if not self.exists:
            return "fail"
        if self._can_pass():
            return "pass"
        if any(f.id == "dns.temperror" for f in self.findings):
            return "unknown"
        return "fail"

    def _can_pass(self) -> bool:
        dmarc_ok = self.dmarc is not None and self.dmarc.record is not None and self.dmarc.record.usable
        return dmarc_ok and (bool(self.passing_spf()) or bool(self.passing_dkim_selectors()))

    def passing_spf(self) -> str | None:
        """The SPF record when it can give a pass (it exists and evaluates without permerror)."""
        if self.spf is None or self.spf.record is None:
            return None
        if any(f.severity is Severity.ERROR and f.id != "spf.pass_all" for f in self.spf.findings):
            return None
        return self.spf.record

    def passing_dkim_selectors(self) -> list[str]:
        """Selectors whose key can verify a signature today."""
        if self.dkim is None:
            return []
        return [
            k.selector
            for k in self.dkim.keys
            if not k.revoked and not k.problems and (k.key_type == "ed25519" or (k.key_bits or 0) >= 1024)
        ]

    @property
    def summary(self) -> str:
        """The first line of a report: can mail pass DMARC today, and the single most important fix."""
        name = self.display_domain
        top = self.top_finding
        fix = f" Most important fix ({top.id}): {top.fix}" if top else ""
        if not self.exists:
            return f"{name} does not exist in DNS (NXDOMAIN): check the spelling."
        if self.dns_unreachable:
            return f"Could not reach DNS to check {name}: every lookup failed. Nothing is known."
        if self.verdict == "pass":
            ways = []
            if self.passing_spf():
                ways.append("SPF")
            selectors = self.passing_dkim_selectors()
            if selectors:
                ways.append(f"DKIM (selector {', '.join(selectors[:3])})")
            return f"Mail from {name} can pass DMARC today through {' and '.join(ways)}.{fix}"
        if self.verdict == "unknown":
            failed = sum(1 for f in self.findings if f.id == "dns.temperror")
            return (
                f"Could not tell whether mail from {name} passes DMARC: {failed} part(s) of "
                f"the check hit DNS failures.{fix}"
            )
        return f"Mail from {name} cannot pass DMARC today: {self._why_not()}.{fix}"

    def _why_not(self) -> str:
        if self.dmarc is None or self.dmarc.record is None:
            return "it has no usable DMARC record"
        return "neither SPF nor any DKIM key found can produce an aligned pass"

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "display_domain": self.display_domain,
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "verdict": self.verdict,
            "summary": self.summary,
            "dmarc": self.dmarc.to_json() if self.dmarc else None,
            "spf": self.spf.to_json() if self.spf else None,
            "dkim": [k.to_json() for k in self.dkim.keys] if self.dkim else [],
            "dkim_selectors_tried": list(self.dkim.selectors_tried) if self.dkim else [],
            "mx": self.mx.to_json() if self.mx else [],
            "null_mx": self.mx.null_mx if self.mx else False,
            "findings": [f.to_json() for f in self.findings],
            "dns_queries": self.queries,
        }


def _family_rank(finding_id: str) -> int:
    family = finding_id.split(".", 1)[0]
    return _FAMILY_ORDER.index(family) if family in _FAMILY_ORDER else len(_FAMILY_ORDER)


async def check_domain(
    domain: str,
    session: DnsSession,
    selectors: Sequence[str] = (),
    *,
    known: Sequence[str] | None = None,
    probe: bool | None = None,
) -> DomainReport:
    """Diagnose `domain` (already normalised by handlers.dns.domain_name) through `session`.
    `known` and `probe` choose the DKIM selectors beyond the named ones (handlers.domain.dkim_keys)."""
    apex, dmarc, spf, dkim, mx = await asyncio.gather(
        session.lookup(domain, "TXT"),  # the existence test; SPF asks the same question
        check_dmarc(session, domain),
        check_spf(session, domain),
        check_dkim(session, domain, selectors, known=known, probe=probe),
        check_mx(session, domain),
    )
    unreachable = session.all_failed()
    if apex.status is DnsStatus.NXDOMAIN:
        only = (
            finding(
                "domain.nxdomain",
                f"{domain} does not exist: the DNS answers NXDOMAIN "
                "for it, so nothing can be sent from it or to it.",
            ),
        )
        return DomainReport(domain, False, dmarc, None, None, None, only, session.queries_sent, unreachable)
    findings = [*dmarc.findings, *spf.findings, *dkim.findings, *mx.findings]
    if unreachable:
        findings = [temperror_finding(apex)]
    return DomainReport(
        domain,
        True,
        dmarc,
        spf,
        dkim,
        mx,
        tuple(sort_findings(_dedupe(findings))),
        session.queries_sent,
        unreachable,
    )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """The same outage reached through two parts is one finding."""
    return list(dict.fromkeys(findings))
