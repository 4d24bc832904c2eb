"""One step of the fix-it flow, Slack-free: fresh records in, the proposal to show out.

`prepare_fix` reads the domain afresh (a new DnsSession per call: no answer older than the click),
builds the proposal for the finding from the form's values (or the finding's defaults), and has
both parsers judge it (`record_validation`); `verify_fix` says whether a planned record is live and
which findings it cleared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from handlers.dns.psl import same_organization
from handlers.dns.resolver import DnsSession, Lookup
from handlers.domain.bimi import not_enforced, record_certificate_url
from handlers.domain.bimi import parse_record as parse_bimi_record
from handlers.domain.check import DomainReport, check_domain
from handlers.domain.dmarc_record import is_dmarc_record
from handlers.domain.spf import is_spf_record
from handlers.fixes.dkim_fixes import DkimKeyChoices, key_host, propose_dkim_key, propose_dkim_testing
from handlers.fixes.providers import providers_for_selector
from handlers.fixes.readiness import AggregateStats, Readiness, assess_readiness
from handlers.fixes.records import (
    DmarcChoices,
    Proposal,
    fix_kind,
    initial_dmarc_choices,
    propose_dmarc,
    value_digest,
)
from handlers.fixes.spf_fixes import (
    AddressDrift,
    SpfChoices,
    includes_of,
    initial_spf_choices,
    merge_spf_records,
    propose_spf,
)
from handlers.fixes.transport_fixes import TransportChoices, propose_bimi, propose_mta_sts, propose_tls_rpt
from handlers.fixes.validation import dmarc_record_problems, spf_record_problems
from handlers.https_fetch import HttpsClient


@dataclass(frozen=True)
class FixForm:
    """The values the modal's inputs hold; only the one for the fix's kind is set."""

    dmarc: DmarcChoices | None = None
    spf: SpfChoices | None = None
    dkim: DkimKeyChoices | None = None
    transport: TransportChoices | None = None


@dataclass(frozen=True, kw_only=True)
class FixScreen:
    """Everything the modal shows for one finding: the proposal, the inputs' values and options."""

    finding_id: str
    domain: str
    kind: str
    proposal: Proposal
    form: FixForm
    readiness: Readiness | None
    spf_terms: tuple[str, ...] = ()
    spf_includes: tuple[str, ...] = ()
    family_findings: tuple[str, ...] = ()


def family_of(finding_id: str) -> str:
    return finding_id.split(".", 1)[0]


async def prepare_fix(
    session: DnsSession,
    finding_id: str,
    domain: str,
    selectors: Sequence[str] = (),
    selector: str | None = None,
    form: FixForm | None = None,
    stats: AggregateStats | None = None,
    drift: AddressDrift | None = None,
    provider: str | None = None,
    https: HttpsClient | None = None,
) -> FixScreen:
    """The proposal for `finding_id` on `domain`, from fresh records and `form` (None: defaults;
    `stats` judge a policy step's readiness, `drift` opens a re-flatten of a stale include,
    `provider` is a catalog sender to add to SPF)."""
    kind = fix_kind(finding_id)
    if kind is None:
        raise ValueError(f"no fix for {finding_id}")
    wanted = [selector] if selector else list(selectors)
    report = await check_domain(domain, session, wanted, https=https)
    family = tuple(dict.fromkeys(f.id for f in report.findings if family_of(f.id) == family_of(finding_id)))
    clears = family or (finding_id,)
    if kind in ("dmarc", "dmarc_progress"):
        return await _dmarc_screen(session, report, finding_id, kind, form, clears, stats)
    if kind == "spf":
        return await _spf_screen(session, report, finding_id, form, clears, drift, provider)
    if kind in TRANSPORT_KINDS:
        return await transport_screen(session, report, finding_id, kind, form, clears)
    return await _dkim_screen(session, report, finding_id, kind, selector, form, clears)


async def _dmarc_screen(
    session: DnsSession,
    report: DomainReport,
    finding_id: str,
    kind: str,
    form: FixForm | None,
    clears: tuple[str, ...],
    stats: AggregateStats | None,
) -> FixScreen:
    domain = report.domain
    location = report.dmarc.location if report.dmarc and report.dmarc.location else domain
    if finding_id == "dmarc.missing":
        location = domain
    lookup = await session.lookup(f"_dmarc.{location}", "TXT")
    before = tuple(t for t in lookup.records if is_dmarc_record(t))
    choices = form.dmarc if form and form.dmarc else initial_dmarc_choices(finding_id, before, location)
    proposal = propose_dmarc(domain, location, before, choices, clears, kind)
    proposal = await _judged(_unless_unread(proposal, lookup), session)
    readiness = None
    if kind == "dmarc_progress" and report.spf is not None:
        selectors = report.passing_dkim_selectors()
        readiness = assess_readiness(choices.policy, stats, report.spf.senders(), selectors)
    return FixScreen(
        finding_id=finding_id,
        domain=domain,
        kind=kind,
        proposal=proposal,
        form=FixForm(dmarc=choices),
        readiness=readiness,
        family_findings=clears,
    )


async def _spf_screen(
    session: DnsSession,
    report: DomainReport,
    finding_id: str,
    form: FixForm | None,
    clears: tuple[str, ...],
    drift: AddressDrift | None = None,
    provider: str | None = None,
) -> FixScreen:
    domain = report.domain
    lookup = await session.lookup(domain, "TXT")
    records = tuple(t for t in lookup.records if is_spf_record(t))
    others = tuple(t for t in lookup.records if not is_spf_record(t))
    merged = merge_spf_records(records)
    choices = (
        form.spf
        if form and form.spf
        else initial_spf_choices(finding_id, report.spf, merged, drift, provider)
    )
    proposal = await propose_spf(session, domain, records, choices, clears, others)
    proposal = await _judged(_unless_unread(proposal, lookup), session)
    return FixScreen(
        finding_id=finding_id,
        domain=domain,
        kind="spf",
        proposal=proposal,
        form=FixForm(spf=choices),
        readiness=None,
        spf_terms=merged.terms,
        spf_includes=includes_of(merged.terms),
        family_findings=clears,
    )


async def _dkim_screen(
    session: DnsSession,
    report: DomainReport,
    finding_id: str,
    kind: str,
    selector: str | None,
    form: FixForm | None,
    clears: tuple[str, ...],
) -> FixScreen:
    domain = report.domain
    choices = form.dkim if form and form.dkim else None
    chosen = (choices.selector if choices else None) or selector
    before: tuple[str, ...] = ()
    lookup: Lookup | None = None
    if chosen:
        lookup = await session.lookup(key_host(chosen, domain), "TXT")
        before = lookup.records
    if kind == "dkim_testing" and chosen and before:
        proposal = propose_dkim_testing(domain, chosen, before[0], clears)
        return FixScreen(
            finding_id=finding_id,
            domain=domain,
            kind=kind,
            proposal=proposal,
            form=FixForm(),
            readiness=None,
            family_findings=clears,
        )
    if choices is None:
        guessed = providers_for_selector(chosen) if chosen else ()
        choices = DkimKeyChoices(guessed[0].key if guessed else None, chosen or "")
    proposal = propose_dkim_key(domain, choices, before, clears)
    if lookup is not None:
        proposal = _unless_unread(proposal, lookup)
    return FixScreen(
        finding_id=finding_id,
        domain=domain,
        kind="dkim_key",
        proposal=proposal,
        form=FixForm(dkim=choices),
        readiness=None,
        family_findings=clears,
    )


TRANSPORT_KINDS = ("mta_sts", "tls_rpt", "bimi")
_TRANSPORT_RECORDS = {
    "mta_sts": ("_mta-sts", "v=stsv1"),
    "tls_rpt": ("_smtp._tls", "v=tlsrptv1"),
    "bimi": ("default._bimi", "v=bimi1"),
}


async def transport_screen(
    session: DnsSession,
    report: DomainReport,
    finding_id: str,
    kind: str,
    form: FixForm | None,
    clears: tuple[str, ...],
) -> FixScreen:
    """MTA-STS, TLS-RPT or BIMI: the record at its name read afresh, and the proposal for it."""
    domain = report.domain
    label, version = _TRANSPORT_RECORDS[kind]
    lookup = await session.lookup(f"{label}.{domain}", "TXT")
    before = tuple(r for r in lookup.records if r.lower().startswith(version))
    typed = form.transport if form and form.transport else TransportChoices()
    if kind == "mta_sts":
        choices = typed
        proposal = _mta_sts_proposal(report, before, clears)
    elif kind == "tls_rpt":
        choices = replace(typed, tls_rua=typed.tls_rua or _team_report_address(report))
        proposal = propose_tls_rpt(domain, choices, before, clears)
    else:
        logo, certificate = _bimi_addresses(before)
        choices = replace(
            typed, logo_url=typed.logo_url or logo, certificate_url=typed.certificate_url or certificate
        )
        proposal = propose_bimi(domain, choices, before, clears, _enforcement_first(report))
    return FixScreen(
        finding_id=finding_id,
        domain=domain,
        kind=kind,
        proposal=_unless_unread(proposal, lookup),
        form=FixForm(transport=choices),
        readiness=None,
        family_findings=clears,
    )


def _mta_sts_proposal(report: DomainReport, before: tuple[str, ...], clears: tuple[str, ...]) -> Proposal:
    mx = report.mx
    hosts = tuple(h.host for h in mx.hosts) if mx is not None and not mx.null_mx else ()
    proposal = propose_mta_sts(report.domain, hosts, before, clears)
    outage = next((f for f in (mx.findings if mx else ()) if f.id == "dns.temperror"), None)
    if mx is None or outage is not None:
        # the MX hosts the policy must name are unknown: an outage is not an empty list
        why = outage.detail if outage else "the MX records were not read"
        return replace(proposal, problems=(f"the MX hosts could not be read ({why}); try again later",))
    return proposal


def _team_report_address(report: DomainReport) -> str | None:
    """The team's own report mailbox, as its DMARC record names it: TLS reports can go there too.
    None when it names none in the domain's organization (the modal then asks)."""
    record = report.dmarc.record if report.dmarc else None
    for uri in record.rua if record else ():
        address = uri.uri.removeprefix("mailto:")
        if uri.domain and "@" in address and same_organization(uri.domain, report.domain):
            return address
    return None


def _bimi_addresses(before: tuple[str, ...]) -> tuple[str | None, str | None]:
    if len(before) != 1:
        return None, None
    logo, problem = parse_bimi_record(before[0])
    return (None, None) if problem else (logo, record_certificate_url(before[0]))


def _enforcement_first(report: DomainReport) -> tuple[str, str] | None:
    """The DMARC finding whose fix must come before BIMI, and why, or None at enforcement."""
    dmarc = report.dmarc
    if dmarc is None:
        return None
    problem = not_enforced(dmarc)
    if problem is None:
        return None
    record = dmarc.record
    if record is None or not record.usable:
        return "dmarc.missing", problem
    return ("dmarc.testing" if record.testing else "dmarc.policy_none"), problem


def _unless_unread(proposal: Proposal, current: Lookup) -> Proposal:
    """Not offered when the record it replaces could not be read: an outage is not an absence,
    and a proposal built on it would overwrite a record nobody saw (FINDINGS dns.temperror)."""
    if not current.is_outage:
        return proposal
    return proposal.with_problems(
        [
            f"the current record could not be read "
            f"({current.describe_failure()}); nothing is proposed until "
            "DNS answers. Try again in a few minutes."
        ]
    )


async def _judged(proposal: Proposal, session: DnsSession) -> Proposal:
    """The proposal with both parsers' objections to each record (none: it may be offered)."""
    problems: list[str] = []
    for entry in proposal.entries:
        if is_dmarc_record(entry.value):
            check = dmarc_record_problems
        elif is_spf_record(entry.value):
            check = spf_record_problems
        else:
            continue
        problems += await asyncio.to_thread(
            check, entry.value, entry.zone, tuple(session.nameservers), session.timeout
        )
    return proposal.with_problems(problems) if problems else proposal


@dataclass(frozen=True)
class ExpectedRecord:
    """One record a plan publishes: where, what type, and the digest of its normalised value."""

    host: str
    rdtype: str
    digest: str


@dataclass(frozen=True, kw_only=True)
class FixCheck:
    """What a fresh look found: whether every planned record is live, what differs, and which of
    the plan's findings cleared or remain."""

    live: bool
    differences: tuple[str, ...]
    cleared: tuple[str, ...]
    remaining: tuple[str, ...]
    outage: bool = False


def expected_records(proposal: Proposal) -> tuple[ExpectedRecord, ...]:
    """The records a plan expects to see live."""
    return tuple(ExpectedRecord(e.host, e.rdtype, value_digest(e.rdtype, e.value)) for e in proposal.entries)


async def verify_fix(
    session: DnsSession,
    domain: str,
    expected: Sequence[ExpectedRecord],
    clears: Sequence[str],
    selectors: Sequence[str] = (),
    https: HttpsClient | None = None,
) -> FixCheck:
    """Resolve afresh: is each expected record live (and alone, for DMARC and SPF), and which of
    `clears` are gone from a fresh check. With nothing expected (a provider-made DKIM key), the
    fix is live when the selector's key no longer has a finding in `clears`."""
    report = await check_domain(domain, session, list(selectors), https=https)
    differences: list[str] = []
    outage = False
    for item in expected:
        lookup = await session.lookup(item.host, item.rdtype)
        if lookup.is_outage:
            outage = True
            differences.append(lookup.describe_failure())
            continue
        live = list(lookup.records)
        if item.rdtype == "TXT" and item.host.startswith("_dmarc."):
            live = [r for r in live if is_dmarc_record(r)]
        elif item.rdtype == "TXT" and any(is_spf_record(r) for r in live):
            live = [r for r in live if is_spf_record(r)]
        if not any(value_digest(item.rdtype, r) == item.digest for r in live):
            shown = "; ".join(live[:3]) if live else "no record"
            differences.append(f"{item.host} {item.rdtype}: live is {shown}")
        elif len(live) > 1 and item.rdtype == "TXT":
            differences.append(
                f"{item.host}: the planned record is live, but so are "
                f"{len(live) - 1} other(s) that must be deleted"
            )
    differences += _hosted_file_differences(report, expected)
    now = {f.id for f in report.findings}
    cleared = tuple(i for i in clears if i not in now)
    remaining = tuple(i for i in clears if i in now)
    if any(f.id == "dns.temperror" for f in report.findings):
        outage = True
    live_now = not differences and not outage and (bool(expected) or not remaining)
    return FixCheck(
        live=live_now, differences=tuple(differences), cleared=cleared, remaining=remaining, outage=outage
    )


# What still keeps a published `_mta-sts` record from working: the policy file it announces.
_POLICY_FILE_FINDINGS = ("mta_sts.policy_unreachable", "mta_sts.policy_invalid", "mta_sts.mx_not_covered")


def _hosted_file_differences(report: DomainReport, expected: Sequence[ExpectedRecord]) -> list[str]:
    """An MTA-STS plan is live only once its policy file is served too: the record alone makes
    senders fetch a file that is not there."""
    if not any(item.host.startswith("_mta-sts.") for item in expected):
        return []
    return [f.detail for f in report.findings if f.id in _POLICY_FILE_FINDINGS]


def refused_reasons(screen: FixScreen) -> tuple[str, ...]:
    """Why the screen's proposal cannot be posted (empty when it can)."""
    if screen.proposal.offered:
        return ()
    return screen.proposal.problems or (
        "nothing to publish yet: follow the steps, or paste the value your provider shows",
    )


__all__ = [
    "ExpectedRecord",
    "FixCheck",
    "FixForm",
    "FixScreen",
    "expected_records",
    "prepare_fix",
    "refused_reasons",
    "verify_fix",
]
