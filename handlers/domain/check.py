"""`check`: the whole diagnosis of one domain (DMARC, SPF, DKIM, MX, MTA-STS, TLS-RPT, BIMI, DNSSEC).

The four parts share one DnsSession, so a question two parts ask (the domain's TXT for SPF and for
the existence test) goes out once, and no answer predates the check. The wall time follows the
longest chain of dependent lookups (SPF includes nested three deep), not the sum of all lookups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from handlers.dns.domain_name import display_name
from handlers.dns.resolver import DnsSession, DnsStatus
from handlers.domain.alignment import (
    AlignedPath,
    OrganizationalIdentifiers,
    organizational_identifiers,
    organizational_paths,
    spf_can_pass,
    usable_dkim_selectors,
)
from handlers.domain.bimi import BimiReport, check_bimi
from handlers.domain.dkim_keys import DkimReport, check_dkim
from handlers.domain.dmarc import DmarcReport, check_dmarc
from handlers.domain.dmarc_record import DmarcRecord
from handlers.domain.dnssec import DnssecReport, check_dnssec
from handlers.domain.findings import Finding, Severity, finding, sort_findings, temperror_finding
from handlers.domain.mta_sts import MtaStsReport, check_mta_sts
from handlers.domain.mx import MxReport, check_mx
from handlers.domain.mx_hosts import MxHostsReport, check_mx_hosts
from handlers.domain.smtp_probe import SmtpProber, probe_mx_hosts
from handlers.domain.spf import SpfReport, check_spf
from handlers.domain.tls_rpt import TlsRptReport, check_tls_rpt
from handlers.https_fetch import HttpsClient

# Among findings of one severity, the one to fix first: a broken domain or DNS before DMARC,
# DMARC before SPF and DKIM (without DMARC nothing else is evaluated), then MX and its transport security,
# then the logo (which needs DMARC first) and the zone's signatures.
_FAMILY_ORDER = ("domain", "dns", "dmarc", "spf", "dkim", "mx", "mta_sts", "tls_rpt", "bimi", "dnssec")
# Families reported, and ranked, with the MX hosts they are about (DANE's TLSA records, the STARTTLS
# probe).
_MX_HOST_FAMILIES = ("dane", "smtp")


# The parts a report shows after DMARC, SPF, DKIM and MX, in order, with their names. Each gets its
# own section when it has something to say; the others share one "also checked" line.
TRANSPORT_PARTS = (("mta_sts", "MTA-STS"), ("tls_rpt", "TLS-RPT"), ("bimi", "BIMI"), ("dnssec", "DNSSEC"))


@dataclass(frozen=True, kw_only=True)
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
    # a subdomain's Organizational Domain and what it publishes (None for an Organizational Domain)
    organizational: OrganizationalIdentifiers | None = None
    # the MX hosts' addresses and reverse names (None when the domain does not exist)
    mx_hosts: MxHostsReport | None = None
    mta_sts: MtaStsReport | None = None
    tls_rpt: TlsRptReport | None = None
    bimi: BimiReport | None = None
    dnssec: DnssecReport | None = None

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
        return dmarc_ok and bool(self.aligned_paths())

    def aligned_paths(self) -> list[AlignedPath]:
        """Every identifier that can give mail from the domain an aligned pass today: its own SPF
        and DKIM keys, then its Organizational Domain's where relaxed alignment lets them align
        (RFC 9989 §4.4)."""
        paths = []
        if self.passing_spf():
            paths.append(AlignedPath("spf", self.domain, None, relaxed=False))
        paths += [AlignedPath("dkim", self.domain, s, relaxed=False) for s in self.passing_dkim_selectors()]
        if self.dmarc is not None and self.dmarc.record is not None:
            paths += organizational_paths(self.dmarc.record, self.organizational)
        return paths

    def part_of(self, f: Finding) -> str:
        """The record a finding belongs under: its own family, except a DNS failure, which goes
        under the part whose lookup failed (an outage of the whole DNS goes under DMARC, first)."""
        family = f.id.split(".", 1)[0]
        if family in _MX_HOST_FAMILIES:
            return "mx"
        if family != "dns":
            return family
        org = self.organizational
        parts = (
            ("dmarc", self.dmarc),
            ("spf", self.spf),
            ("dkim", self.dkim),
            ("mx", self.mx),
            ("mx", self.mx_hosts),
            ("mta_sts", self.mta_sts),
            ("tls_rpt", self.tls_rpt),
            ("bimi", self.bimi),
            ("dnssec", self.dnssec),
            ("spf", org.spf if org else None),
            ("dkim", org.dkim if org else None),
        )
        for part, report in parts:
            if report is not None and f in report.findings:
                return part
        return "dmarc"

    def part_findings(self, part: str) -> list[Finding]:
        """The findings shown under `part` (a family such as "bimi")."""
        return [f for f in self.findings if self.part_of(f) == part]

    def transport_sections(self) -> tuple[list[str], list[str]]:
        """Of the parts checked after MX (TRANSPORT_PARTS): those with findings, to show as their
        own sections, and the names of those with nothing to say, for one "also checked" line."""
        shown, quiet = [], []
        for part, name in TRANSPORT_PARTS:
            if getattr(self, part) is None:
                continue
            if self.part_findings(part):
                shown.append(part)
            else:
                quiet.append(name)
        return shown, quiet

    @property
    def dkim_unknown(self) -> bool:
        """True when no key was found and some selector lookups failed: DKIM is unknown, not absent."""
        if self.dkim is None or self.dkim.keys:
            return False
        return self.dns_unreachable or bool(self.dkim.unknown)

    def passing_spf(self) -> str | None:
        """The SPF record when it can give a pass (it exists and evaluates without permerror)."""
        return self.spf.record if self.spf is not None and spf_can_pass(self.spf) else None

    def passing_dkim_selectors(self) -> list[str]:
        """Selectors whose key at the domain itself can verify a signature today."""
        return usable_dkim_selectors(self.dkim)

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
            return f"Mail from {name} can pass DMARC today through {self._ways()}.{fix}"
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
        if not self.dmarc.record.usable:
            # RFC 9989 §4.10.1: a record with neither a valid p= nor a valid rua= is discarded, so
            # receivers apply no policy, whatever SPF and DKIM say.
            return (
                "its DMARC record is invalid, and receivers ignore an invalid record, "
                "so no DMARC policy applies"
            )
        org = self.organizational
        if org is None:
            return "neither SPF nor any DKIM key found can produce an aligned pass"
        record = self.dmarc.record
        if record.adkim == "s" and record.aspf == "s":
            beyond = (
                f"; identifiers at its organizational domain {display_name(org.domain)} do not count, "
                "since the record asks for strict alignment (adkim=s, aspf=s)"
            )
        else:
            relaxed = " and ".join(t for t in ("aspf", "adkim") if getattr(record, t) != "s")
            beyond = (
                f", nor can its organizational domain {display_name(org.domain)}'s, which would align "
                f"under relaxed {relaxed}"
            )
        return f"neither its own SPF nor any DKIM key found at it can produce an aligned pass{beyond}"

    def _ways(self) -> str:
        """The aligned paths in words: own SPF, own DKIM selectors, then the Organizational
        Domain's identifiers."""
        paths = self.aligned_paths()
        ways = ["SPF"] if any(p.via == "spf" and not p.relaxed for p in paths) else []
        own = [p.selector for p in paths if p.via == "dkim" and not p.relaxed]
        if own:
            ways.append(f"DKIM (selector {', '.join(s for s in own[:3] if s)})")
        ways += [p.describe() for p in paths if p.relaxed and p.via == "spf"]
        org_keys = [p for p in paths if p.relaxed and p.via == "dkim"]
        if org_keys:
            selectors = ", ".join(p.selector or "" for p in org_keys[:3])
            ways.append(
                f"DKIM signed d={display_name(org_keys[0].domain)} (selector {selectors}; relaxed adkim)"
            )
        return " and ".join(ways)

    def alignment_json(self) -> dict[str, object]:
        """The `alignment` object of `check --json`: the Organizational Domain, the alignment modes,
        the paths that can pass, and the keys probed at the Organizational Domain."""
        record = self.dmarc.record if self.dmarc is not None else None
        org = self.organizational
        return {
            "organizational_domain": org.domain if org else self.domain,
            "adkim": record.adkim if record else None,
            "aspf": record.aspf if record else None,
            "paths": [p.to_json() for p in self.aligned_paths()] if record and record.usable else [],
            "organizational_spf": org.spf.record if org else None,
            "organizational_dkim": [k.to_json() for k in org.dkim.keys] if org else [],
        }

    def mx_json(self) -> list[dict[str, object]]:
        """The `mx` list of `check --json`: each MX record, with its host's `addresses` and `reverse`
        names when the host was checked."""
        if self.mx is None:
            return []
        hosts = []
        for entry, host in zip(self.mx.to_json(), self.mx.hosts, strict=True):
            checked = self.mx_hosts.host(host.host) if self.mx_hosts else None
            unchecked: dict[str, object] = {"addresses": [], "reverse": {}, "tlsa": []}
            hosts.append({**entry, **(checked.to_json() if checked else unchecked)})
        return hosts

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
            "mx": self.mx_json(),
            "null_mx": self.mx.null_mx if self.mx else False,
            "mta_sts": self.mta_sts.to_json() if self.mta_sts else None,
            "tls_rpt": self.tls_rpt.to_json() if self.tls_rpt else None,
            "bimi": self.bimi.to_json() if self.bimi else None,
            "dnssec": self.dnssec.to_json() if self.dnssec else None,
            "findings": [f.to_json() for f in self.findings],
            "dns_queries": self.queries,
            "alignment": self.alignment_json(),
        }


def invalid_domain_json(typed: str, reason: str) -> dict[str, object]:
    """What `check --json` prints for input that is not a domain name: the documented object, with
    nothing looked up and the one finding `domain.invalid` saying what was wrong."""
    problem = finding("domain.invalid", reason)
    return {
        "domain": typed,
        "display_domain": typed,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdict": "fail",
        "summary": problem.detail,
        "dmarc": None,
        "spf": None,
        "dkim": [],
        "dkim_selectors_tried": [],
        "mx": [],
        "null_mx": False,
        "mta_sts": None,
        "tls_rpt": None,
        "bimi": None,
        "dnssec": None,
        "findings": [problem.to_json()],
        "dns_queries": 0,
        "alignment": None,
    }


def _family_rank(finding_id: str) -> int:
    family = finding_id.split(".", 1)[0]
    family = "mx" if family in _MX_HOST_FAMILIES else family
    return _FAMILY_ORDER.index(family) if family in _FAMILY_ORDER else len(_FAMILY_ORDER)


async def check_domain(
    domain: str,
    session: DnsSession,
    selectors: Sequence[str] = (),
    *,
    known: Sequence[str] | None = None,
    probe: bool | None = None,
    https: HttpsClient | None = None,
    smtp: SmtpProber | None = None,
) -> DomainReport:
    """Diagnose `domain` (already normalised by handlers.dns.domain_name) through `session`.
    `known` and `probe` choose the DKIM selectors beyond the named ones (handlers.domain.dkim_keys);
    HTTPS fetches (the MTA-STS policy) go through `https`, by default with the system's CA bundle;
    with `smtp`, each MX host's STARTTLS is probed too (`check --smtp`)."""
    # The existence test first (SPF asks the same question, and the session answers it once),
    # beside DMARC, which a name that does not exist needs too (its np= policy, RFC 9989 §4.7).
    # An NXDOMAIN means nothing exists below the name either (RFC 8020): its SPF, the dozens of
    # DKIM probes and its MX would all be asked only to be answered NXDOMAIN.
    apex_task = asyncio.ensure_future(session.lookup(domain, "TXT"))
    dmarc_task = asyncio.ensure_future(check_dmarc(session, domain))
    apex = await apex_task
    if apex.status is DnsStatus.NXDOMAIN:
        dmarc = await dmarc_task
        only = (
            finding(
                "domain.nxdomain",
                f"{domain} does not exist: the DNS answers NXDOMAIN "
                "for it, so nothing can be sent from it or to it.",
            ),
        )
        return DomainReport(
            domain=domain,
            exists=False,
            dmarc=dmarc,
            spf=None,
            dkim=None,
            mx=None,
            findings=only,
            queries=session.queries_sent,
            dns_unreachable=session.all_failed(),
        )
    client = https or HttpsClient()
    bimi_task = asyncio.ensure_future(check_bimi(session, domain, client))
    dnssec_task = asyncio.ensure_future(check_dnssec(session, domain))
    dmarc, spf, dkim, (mx, mx_hosts, mta_sts, tls_rpt), organizational = await asyncio.gather(
        dmarc_task,
        check_spf(session, domain),
        check_dkim(session, domain, selectors, known=known, probe=probe),
        _check_mail_transport(session, domain, client, smtp),
        # RFC 9989 §4.4: a subdomain's mail can align through its Organizational Domain's SPF and
        # DKIM keys; the walk that finds it is check_dmarc's, asked once
        organizational_identifiers(session, domain, selectors),
    )
    bimi, dnssec = await bimi_task, await dnssec_task
    unreachable = session.all_failed()
    findings = [*dmarc.findings, *spf.findings, *dkim.findings, *mx.findings, *mx_hosts.findings]
    findings += [*mta_sts.findings, *tls_rpt.findings, *bimi.findings, *dnssec.findings]
    if organizational is not None:
        # only its outages: they can leave the verdict unknown; its other findings are its own
        findings += [
            f
            for f in (*organizational.spf.findings, *organizational.dkim.findings)
            if f.id == "dns.temperror"
        ]
    if organizational is not None and dmarc.record is not None:
        findings = [_spf_missing_at_a_subdomain(f, dmarc.record, organizational) for f in findings]
    if unreachable:
        findings = [temperror_finding(apex)]
    return DomainReport(
        domain=domain,
        exists=True,
        dmarc=dmarc,
        spf=spf,
        dkim=dkim,
        mx=mx,
        findings=tuple(sort_findings(_dedupe(findings))),
        queries=session.queries_sent,
        dns_unreachable=unreachable,
        organizational=organizational,
        mx_hosts=mx_hosts,
        mta_sts=mta_sts,
        tls_rpt=tls_rpt,
        bimi=bimi,
        dnssec=dnssec,
    )


async def _check_mail_transport(
    session: DnsSession, domain: str, https: HttpsClient, smtp: SmtpProber | None = None
) -> tuple[MxReport, MxHostsReport, MtaStsReport, TlsRptReport]:
    """Where the domain receives mail and how securely: the MX records then their hosts, beside the
    MTA-STS record and policy and the TLS-RPT record; the policy's coverage of the MX hosts and
    the weight of a missing TLS-RPT record are decided once all are known."""
    (mx, mx_hosts), mta_sts, tls_rpt = await asyncio.gather(
        _check_mail_hosts(session, domain, smtp),
        check_mta_sts(session, domain, https),
        check_tls_rpt(session, domain),
    )
    mta_sts = mta_sts.covering(mx)
    policies = [
        name
        for name, used in (("an MTA-STS policy", mta_sts.published), ("DANE TLSA records", mx_hosts.dane))
        if used
    ]
    tls_rpt = tls_rpt.with_transport_policy(" and ".join(policies) or None)
    return mx, mx_hosts, mta_sts, tls_rpt


async def _check_mail_hosts(
    session: DnsSession, domain: str, smtp: SmtpProber | None
) -> tuple[MxReport, MxHostsReport]:
    mx = await check_mx(session, domain)
    hosts = await check_mx_hosts(session, mx)
    if smtp is None:
        return mx, hosts
    # the probe needs each host's addresses and TLSA records: it starts once they are known
    probe = await probe_mx_hosts(smtp, hosts)
    return mx, replace(hosts, findings=(*hosts.findings, *probe.findings))


def _spf_missing_at_a_subdomain(
    f: Finding, record: DmarcRecord, organizational: OrganizationalIdentifiers
) -> Finding:
    """A subdomain without SPF is a warning, not an error, when its Organizational Domain's SPF can
    pass and aspf=r: mail sent with a MAIL FROM at the Organizational Domain aligns (RFC 9989
    §4.4.2); only mail with a MAIL FROM at the subdomain itself needs a record there."""
    if f.id != "spf.missing" or record.aspf == "s" or not spf_can_pass(organizational.spf):
        return f
    org = display_name(organizational.domain)
    return replace(
        f,
        severity=Severity.WARNING,
        detail=f"{f.detail} Mail sent with a MAIL FROM at {org} still aligns under relaxed aspf, "
        f"through the SPF record of {org}.",
        fix="Only if mail uses a MAIL FROM at this subdomain: publish a TXT record such as "
        '"v=spf1 include:<your provider> -all" here; otherwise publish "v=spf1 -all" so no one '
        "can pass SPF with it.",
    )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """The same outage reached through two parts is one finding."""
    return list(dict.fromkeys(findings))
