"""A domain's aggregate reports over N days: volume, DMARC pass share, sources, failures, selectors.

Source names come from reverse DNS (PTR on in-addr.arpa / ip6.arpa), asked concurrently, at most
`MAX_NAMED_SOURCES` per summary, within `NAME_BUDGET_SECONDS`, and cached for the process, so a
summary never waits long on a slow resolver. Ingestion never asks them: it only stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.store.reports import (
    DayTotals,
    FailureReason,
    ReportStore,
    RowKey,
    SelectorTotals,
    SourceTotals,
    window,
)
from handlers.dns.psl import registrable_domain
from handlers.dns.resolver import DnsSession
from handlers.domain.spf import check_spf
from handlers.fixes.readiness import WINDOW_DAYS, AggregateStats, FailingSource
from handlers.reports.senders import (
    CATEGORIES,
    MAX_SENDER_IPS,
    UNNAMED,
    Fix,
    RowFacts,
    SenderName,
    SpfAuthority,
    Verdict,
    judge,
    name_source,
    spf_authority,
)

MAX_NAMED_SOURCES = 50  # PTR lookups per summary: the largest sources
NAME_BUDGET_SECONDS = 4.0  # then the summary goes out with the names found so far
NAME_CONCURRENCY = 16
NAME_CACHE_SIZE = 10_000
NAME_CACHE_SECONDS = 6 * 3600  # PTR records change rarely; a day-old name is still useful
SPF_BUDGET_SECONDS = 4.0  # the domain's SPF chain, read to name senders; past it, names go without


@dataclass(frozen=True, kw_only=True)
class SourceSummary:
    """One source IP: its reverse-DNS name and provider where known, volume and alignment."""

    ip: str
    name: str | None
    provider: str | None
    messages: int
    passed: int
    spf_aligned: int
    dkim_aligned: int
    sender: SenderName = UNNAMED
    verdict: Verdict | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "name": self.name,
            "messages": self.messages,
            "dmarc_pass_rate": _rate(self.passed, self.messages),
            "spf_aligned": _rate(self.spf_aligned, self.messages),
            "dkim_aligned": _rate(self.dkim_aligned, self.messages),
            "sender": self.sender.name,
            "sender_source": self.sender.source,
            "category": self.verdict.category if self.verdict else None,
            "reason": self.verdict.reason if self.verdict else None,
        }


@dataclass(frozen=True, kw_only=True)
class SenderSummary:
    """One named sender (or the unnamed sources together): its sources' volume and verdict."""

    name: str | None
    category: str
    reason: str
    messages: int
    passed: int
    ips: tuple[str, ...]
    fix: Fix | None
    sources: int = 0  # how many source IPs in all (`ips` lists at most MAX_SENDER_IPS)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "reason": self.reason,
            "messages": self.messages,
            "dmarc_pass_rate": _rate(self.passed, self.messages),
            "ips": list(self.ips),
            "fix": self.fix.to_json() if self.fix else None,
        }


@dataclass(frozen=True)
class FromDomain:
    """One header_from value (the domain or a subdomain): its messages and DMARC passes."""

    domain: str
    messages: int
    passed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "messages": self.messages,
            "dmarc_pass_rate": _rate(self.passed, self.messages),
        }


@dataclass(frozen=True, kw_only=True)
class ReportSummary:
    """What the team's reports say about `domain` from `first` to `last` (UTC days)."""

    domain: str
    days: int
    first: str
    last: str
    messages: int
    passed: int
    reports: int
    sources: tuple[SourceSummary, ...]
    failures: tuple[FailureReason, ...]
    selectors: tuple[SelectorTotals, ...]
    daily: tuple[DayTotals, ...]
    latest_day: str | None = None  # the last day with reports at all, for "nothing recent"
    names: Mapping[str, str] = field(default_factory=dict)
    senders: tuple[SenderSummary, ...] = ()
    dispositions: Mapping[str, int] = field(default_factory=dict)
    override_reasons: Mapping[str, int] = field(default_factory=dict)
    from_domains: tuple[FromDomain, ...] = ()
    reporters: Mapping[str, int] = field(default_factory=dict)
    spf_known: bool = False  # whether the domain's SPF chain was read to name senders

    @property
    def pass_rate(self) -> float | None:
        return _rate(self.passed, self.messages)

    def to_json(self) -> dict[str, Any]:
        """The `--json` shape: rates are fractions from 0 to 1 (null when there were no messages)."""
        return {
            "domain": self.domain,
            "days": self.days,
            "messages": self.messages,
            "dmarc_pass_rate": self.pass_rate,
            "sources": [s.to_json() for s in self.sources],
            "selectors": [s.selector for s in self.selectors],
            "senders": [s.to_json() for s in self.senders],
            "dispositions": dict(self.dispositions),
            "override_reasons": dict(self.override_reasons),
            "from_domains": [f.to_json() for f in self.from_domains],
            "reporters": dict(self.reporters),
        }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def build_summary(
    reports: ReportStore,
    team_id: str,
    domain: str,
    days: int,
    names: Mapping[str, str] | None = None,
    now: datetime | None = None,
    first: str | None = None,
    last: str | None = None,
    authority: SpfAuthority | None = None,
    name_sources: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
) -> ReportSummary:
    """Summarise the team's reports for `domain` over the last `days` days (or first..last).
    `names` are reverse-DNS names by IP (or `name_sources` finds them for the largest sources'
    IPs, once those are known) and `authority` the domain's SPF chain (`read_spf_authority`):
    without them, senders are named from DKIM alone.

    The window's rows are read once (`ReportStore.details`); the sources, failures and totals are
    summed from them here rather than asked of the database again, each a pass over every row."""
    with _collector_paused():
        return _build_summary(
            reports, team_id, domain, days, names, now, first, last, authority, name_sources
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one summary: a month of rows makes hundreds of
    thousands of small objects, none of them in a cycle, and the collector's passes over them took
    a quarter of the summary's time. Reference counting still frees them. With summaries in two
    threads at once, the first to finish turns the collector back on: the other is merely slower."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _build_summary(
    reports: ReportStore,
    team_id: str,
    domain: str,
    days: int,
    names: Mapping[str, str] | None,
    now: datetime | None,
    first: str | None,
    last: str | None,
    authority: SpfAuthority | None,
    name_sources: Callable[[Sequence[str]], Mapping[str, str]] | None,
) -> ReportSummary:
    if first is None or last is None:
        first, last = window(days, now)
    authority = authority or SpfAuthority(known=False)
    details = reports.details(team_id, domain, first, last)
    rows_by_ip: dict[str, list[RowFacts]] = {}
    for key, messages in details:
        rows_by_ip.setdefault(key.source_ip, []).append(_facts(key, messages))
    totals = _source_totals(details)
    names = dict(names or {})
    if name_sources is not None:
        names.update(name_sources([s.ip for s in totals[:MAX_NAMED_SOURCES]]))
    sources = tuple(_source(domain, s, names.get(s.ip), rows_by_ip.get(s.ip, []), authority) for s in totals)
    return ReportSummary(
        domain=domain,
        days=days,
        first=first,
        last=last,
        messages=sum(s.messages for s in totals),
        passed=sum(s.passed for s in totals),
        reports=reports.report_count(team_id, domain),
        sources=sources,
        failures=_failures(details),
        selectors=tuple(reports.selectors(team_id, domain, first, last)),
        daily=tuple(reports.daily(team_id, domain, first, last)),
        latest_day=reports.latest_day(team_id, domain),
        names=names,
        senders=_senders(domain, sources, rows_by_ip, authority),
        dispositions=_dispositions(details),
        override_reasons=_override_reasons(details),
        from_domains=_from_domains(details),
        reporters=dict(reports.reporters(team_id, domain, first, last)),
        spf_known=authority.known,
    )


def named_sources(
    reports: ReportStore,
    team_id: str,
    domain: str,
    day: str,
    ips: Sequence[str],
    session: DnsSession | None = None,
) -> dict[str, SourceSummary]:
    """These sources of `domain` on `day`, named and judged as `report` names and judges them
    (reverse DNS and the domain's SPF chain asked through `session`; without one, from DKIM
    alone). Call from a thread with no event loop."""
    names: dict[str, str] = {}
    authority = SpfAuthority(known=False)
    if session is not None:
        names = resolve_names(ips, session)
        authority = read_spf_authority(domain, session)
    summary = build_summary(reports, team_id, domain, 1, names, first=day, last=day, authority=authority)
    wanted = set(ips)
    return {s.ip: s for s in summary.sources if s.ip in wanted}


def _source_totals(details: Sequence[tuple[RowKey, int]]) -> list[SourceTotals]:
    """Each source IP's volume, DMARC passes and aligned SPF/DKIM, largest first (as
    ReportStore.sources gives them)."""
    sums: dict[str, list[int]] = {}
    for key, messages in details:
        counts = sums.setdefault(key.source_ip, [0, 0, 0, 0])
        counts[0] += messages
        counts[1] += messages * key.dmarc_pass
        counts[2] += messages * key.spf_aligned
        counts[3] += messages * key.dkim_aligned
    ranked = sorted(sums.items(), key=lambda item: (-item[1][0], item[0]))
    return [
        SourceTotals(ip=ip, messages=c[0], passed=c[1], spf_aligned=c[2], dkim_aligned=c[3])
        for ip, c in ranked
    ]


def _failures(details: Sequence[tuple[RowKey, int]]) -> tuple[FailureReason, ...]:
    """Messages failing DMARC by source and reasons, largest first (as ReportStore.failures)."""
    sums: dict[tuple[str, str | None, str | None], int] = {}
    for key, messages in details:
        if not key.dmarc_pass:
            group = (key.source_ip, key.spf_why, key.dkim_why)
            sums[group] = sums.get(group, 0) + messages
    ranked = sorted(sums.items(), key=lambda item: (-item[1], item[0][0]))
    return tuple(FailureReason(ip, spf_why, dkim_why, n) for (ip, spf_why, dkim_why), n in ranked)


def _facts(key: RowKey, messages: int) -> RowFacts:
    def split(text: str | None) -> list[str]:
        return text.split(",") if text else []

    dkim = tuple(
        zip(split(key.dkim_domains), split(key.dkim_selectors), split(key.dkim_results), strict=False)
    )
    spf_pairs = list(zip(split(key.spf_domains), split(key.spf_scopes), split(key.spf_results), strict=False))
    # SPF aligns on the MAIL FROM identity (RFC 9989 §4.4.2): it comes first; HELO only without it.
    spf_pairs.sort(key=lambda item: item[1] not in ("mfrom", ""))
    return RowFacts(
        ip=key.source_ip,
        messages=messages,
        dmarc_pass=bool(key.dmarc_pass),
        spf_aligned=bool(key.spf_aligned),
        dkim_aligned=bool(key.dkim_aligned),
        override_reasons=tuple(split(key.override_reasons)),
        envelope_from=key.envelope_from,
        dkim=dkim,
        spf=tuple((d, r) for d, _scope, r in spf_pairs),
    )


def _source(
    domain: str, totals: SourceTotals, name: str | None, rows: list[RowFacts], authority: SpfAuthority
) -> SourceSummary:
    sender = name_source(totals.ip, rows, authority, name)
    return SourceSummary(
        ip=totals.ip,
        name=name,
        provider=registrable_domain(name) if name else None,
        messages=totals.messages,
        passed=totals.passed,
        spf_aligned=totals.spf_aligned,
        dkim_aligned=totals.dkim_aligned,
        sender=sender,
        verdict=judge(domain, sender, rows, authority) if rows else None,
    )


def _senders(
    domain: str,
    sources: Sequence[SourceSummary],
    rows_by_ip: Mapping[str, list[RowFacts]],
    authority: SpfAuthority,
) -> tuple[SenderSummary, ...]:
    """One entry per named sender and one for the unnamed sources, misconfigured first."""
    groups: dict[str | None, list[SourceSummary]] = {}
    for source in sources:
        groups.setdefault(source.sender.name, []).append(source)
    out: list[SenderSummary] = []
    for name, members in groups.items():
        rows = [row for s in members for row in rows_by_ip.get(s.ip, [])]
        if not rows:
            continue
        verdict = judge(domain, members[0].sender, rows, authority)
        out.append(
            SenderSummary(
                name=name,
                category=verdict.category,
                reason=verdict.reason,
                messages=sum(s.messages for s in members),
                passed=sum(s.passed for s in members),
                ips=tuple(s.ip for s in members[:MAX_SENDER_IPS]),
                fix=verdict.fix,
                sources=len(members),
            )
        )
    return tuple(sorted(out, key=lambda s: (CATEGORIES.index(s.category), -s.messages, s.name or "")))


def _dispositions(details: Sequence[tuple[RowKey, int]]) -> dict[str, int]:
    """What the receivers did: messages per disposition (rows stored before dispositions were
    kept are counted nowhere here)."""
    out = {"none": 0, "quarantine": 0, "reject": 0}
    for key, messages in details:
        if key.disposition in out:
            out[key.disposition] += messages
    return out


def _override_reasons(details: Sequence[tuple[RowKey, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, messages in details:
        for reason in dict.fromkeys((key.override_reasons or "").split(",")):
            if reason:
                out[reason] = out.get(reason, 0) + messages
    return dict(sorted(out.items(), key=lambda item: (-item[1], item[0])))


def _from_domains(details: Sequence[tuple[RowKey, int]]) -> tuple[FromDomain, ...]:
    volume: dict[str, list[int]] = {}
    for key, messages in details:
        if key.header_from:
            counts = volume.setdefault(key.header_from, [0, 0])
            counts[0] += messages
            counts[1] += messages if key.dmarc_pass else 0
    ranked = sorted(volume.items(), key=lambda item: (-item[1][0], item[0]))
    return tuple(FromDomain(d, counts[0], counts[1]) for d, counts in ranked)


def summarise_named(
    reports: ReportStore,
    team_id: str,
    domain: str,
    days: int,
    session: DnsSession,
    now: datetime | None = None,
) -> ReportSummary:
    """`build_summary` with senders named from DNS: the domain's SPF chain, and the reverse names
    of the largest sources, looked up once the summary's one read of the rows has found them.
    Call from a thread with no event loop."""
    authority = read_spf_authority(domain, session)
    return build_summary(
        reports,
        team_id,
        domain,
        days,
        now=now,
        authority=authority,
        name_sources=lambda ips: resolve_names(ips, session),
    )


def read_spf_authority(domain: str, session: DnsSession, budget: float = SPF_BUDGET_SECONDS) -> SpfAuthority:
    """The domain's SPF chain as `SpfAuthority`, within `budget` seconds (unknown past it).
    Call from a thread with no event loop."""

    async def bounded() -> SpfAuthority:
        try:
            return spf_authority(await asyncio.wait_for(check_spf(session, domain), budget))
        except TimeoutError:
            return SpfAuthority(known=False)

    return asyncio.run(bounded())


def readiness_stats(
    reports: ReportStore, team_id: str, domain: str, now: datetime | None = None
) -> AggregateStats | None:
    """What the fix-it flow's policy readiness reads (handlers.fixes.readiness): the last WINDOW_DAYS
    of the team's reports for `domain`, or None when they hold no messages."""
    first, last = window(WINDOW_DAYS, now)
    totals = reports.totals(team_id, domain, first, last)
    if not totals.messages:
        return None
    failing: dict[str, int] = {}
    for failure in reports.failures(team_id, domain, first, last):
        failing[failure.ip] = failing.get(failure.ip, 0) + failure.messages
    ranked = sorted(failing.items(), key=lambda item: (-item[1], item[0]))[:20]
    return AggregateStats(
        messages=totals.messages,
        aligned_pass_share=totals.passed / totals.messages,
        failing_sources=tuple(FailingSource(ip, n) for ip, n in ranked),
        window_days=WINDOW_DAYS,
    )


# -- reverse DNS --------------------------------------------------------------------------------


class NameCache:
    """(resolver, IP) -> reverse-DNS name (or None: looked up, no name), bounded and expiring,
    thread-safe. Keyed by the nameservers asked too: another resolver may know other names."""

    def __init__(self, size: int = NAME_CACHE_SIZE, seconds: float = NAME_CACHE_SECONDS) -> None:
        self.size, self.seconds = size, seconds
        self._items: OrderedDict[tuple[str, str], tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, str | None]:
        """(known, name) for (resolver, ip)."""
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < time.monotonic():
                return False, None
            self._items.move_to_end(key)
            return True, item[1]

    def put(self, key: tuple[str, str], name: str | None) -> None:
        """Remember the name (None: no PTR record) for (resolver, ip)."""
        with self._lock:
            self._items[key] = (time.monotonic() + self.seconds, name)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


NAMES = NameCache()


def resolve_names(
    ips: Sequence[str], session: DnsSession, cache: NameCache = NAMES, budget: float = NAME_BUDGET_SECONDS
) -> dict[str, str]:
    """Reverse-DNS names for `ips` (the first MAX_NAMED_SOURCES), concurrently, within `budget`
    seconds; names not found in time are simply absent. Call from a thread with no event loop."""
    names: dict[str, str] = {}
    missing: list[str] = []
    for ip in list(dict.fromkeys(ips))[:MAX_NAMED_SOURCES]:
        known, name = cache.get((_resolver(session), ip))
        if known:
            if name:
                names[ip] = name
        else:
            missing.append(ip)
    if missing:
        names.update(asyncio.run(_lookup_names(missing, session, cache, budget)))
    return names


def _resolver(session: DnsSession) -> str:
    return ",".join(str(server) for server in session.nameservers)


async def _lookup_names(
    ips: list[str], session: DnsSession, cache: NameCache, budget: float
) -> dict[str, str]:
    found: dict[str, str] = {}
    gate = asyncio.Semaphore(NAME_CONCURRENCY)

    async def one(ip: str) -> None:
        try:
            pointer = ipaddress.ip_address(ip).reverse_pointer
        except ValueError:
            return
        async with gate:
            lookup = await session.lookup(pointer, "PTR")
        if lookup.is_outage:
            return  # unknown, not "no name": ask again next time
        name = lookup.records[0][:253] if lookup.ok and lookup.records else None
        cache.put((_resolver(session), ip), name)
        if name:
            found[ip] = name

    tasks = [asyncio.ensure_future(one(ip)) for ip in ips]
    _done, pending = await asyncio.wait(tasks, timeout=budget)
    for task in pending:
        task.cancel()
    return found


# -- plain text (the command line) ---------------------------------------------------------------


def render_text(summary: ReportSummary, max_sources: int = 20) -> str:
    """The summary as plain text for a terminal."""
    lines = [
        f"{summary.domain}: aggregate reports for the last {summary.days} days "
        f"({summary.first} to {summary.last})"
    ]
    if not summary.messages:
        lines.append(nothing_text(summary))
        return "\n".join(lines)
    lines.append(f"{summary.messages:,} messages, {percent(summary.pass_rate)} passed DMARC")
    lines.append("")
    lines.append("Sources (by messages):")
    for group, members in group_by_provider(summary.sources[:max_sources]):
        lines.append(f"  {group}")
        for s in members:
            lines.append(
                f"    {s.ip:<39} {s.messages:>10,}  DMARC {percent(_rate(s.passed, s.messages)):>5}"
                f"  SPF aligned {percent(_rate(s.spf_aligned, s.messages)):>5}"
                f"  DKIM aligned {percent(_rate(s.dkim_aligned, s.messages)):>5}"
                + (f"  {s.name}" if s.name else "")
            )
    if len(summary.sources) > max_sources:
        lines.append(f"  …and {len(summary.sources) - max_sources} more sources")
    if summary.failures:
        lines.append("")
        lines.append("Failing DMARC (source: why):")
        for failure in summary.failures[:15]:
            lines.append(f"  {failure.ip} ({failure.messages:,} messages): {why_text(failure)}")
    lines.append("")
    if summary.selectors:
        lines.append(
            "DKIM selectors seen: "
            + ", ".join(f"{s.selector} ({s.messages:,} messages)" for s in summary.selectors[:20])
        )
    else:
        lines.append("DKIM selectors seen: none for d=" + summary.domain)
    return "\n".join(lines)


def why_text(failure: FailureReason) -> str:
    """SPF's and DKIM's reasons for one failing group, as one sentence."""
    return "; ".join(part for part in (failure.spf_why, failure.dkim_why) if part) or "no reason given"


def group_by_provider(sources: Sequence[SourceSummary]) -> list[tuple[str, list[SourceSummary]]]:
    """Sources under their provider (the registrable domain of their reverse-DNS name), largest
    group first; sources without a name go under "no reverse DNS name"."""
    groups: dict[str, list[SourceSummary]] = {}
    for source in sources:
        groups.setdefault(source.provider or "no reverse DNS name", []).append(source)
    return sorted(groups.items(), key=lambda item: -sum(s.messages for s in item[1]))


def nothing_text(summary: ReportSummary) -> str:
    """The sentence for a window with no reports."""
    if summary.latest_day is None:
        return "No aggregate reports for this domain yet."
    return (
        f"No report covers these days; the most recent one is for {summary.latest_day} "
        f"({summary.reports} reports in all)."
    )


def percent(rate: float | None) -> str:
    """A fraction as a percentage for people ("97.5%", "100%", "n/a")."""
    if rate is None:
        return "n/a"
    return f"{rate * 100:.1f}".removesuffix(".0") + "%"
