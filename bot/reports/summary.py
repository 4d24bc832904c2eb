"""A domain's aggregate reports over N days: volume, DMARC pass share, sources, failures, selectors.

Source names come from reverse DNS (PTR on in-addr.arpa / ip6.arpa), asked concurrently, at most
`MAX_NAMED_SOURCES` per summary, within `NAME_BUDGET_SECONDS`, and cached for the process, so a
summary never waits long on a slow resolver. Ingestion never asks them: it only stores.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.store.reports import (
    DayTotals,
    FailureReason,
    ReportStore,
    SelectorTotals,
    SourceTotals,
    window,
)
from handlers.dns.psl import registrable_domain
from handlers.dns.resolver import DnsSession
from handlers.fixes.readiness import WINDOW_DAYS, AggregateStats, FailingSource

MAX_NAMED_SOURCES = 50  # PTR lookups per summary: the largest sources
NAME_BUDGET_SECONDS = 4.0  # then the summary goes out with the names found so far
NAME_CONCURRENCY = 16
NAME_CACHE_SIZE = 10_000
NAME_CACHE_SECONDS = 6 * 3600  # PTR records change rarely; a day-old name is still useful


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

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "name": self.name,
            "messages": self.messages,
            "dmarc_pass_rate": _rate(self.passed, self.messages),
            "spf_aligned": _rate(self.spf_aligned, self.messages),
            "dkim_aligned": _rate(self.dkim_aligned, self.messages),
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
) -> ReportSummary:
    """Summarise the team's reports for `domain` over the last `days` days (or first..last)."""
    if first is None or last is None:
        first, last = window(days, now)
    names = names or {}
    sources = tuple(_source(s, names.get(s.ip)) for s in reports.sources(team_id, domain, first, last))
    totals = reports.totals(team_id, domain, first, last)
    return ReportSummary(
        domain=domain,
        days=days,
        first=first,
        last=last,
        messages=totals.messages,
        passed=totals.passed,
        reports=reports.report_count(team_id, domain),
        sources=sources,
        failures=tuple(reports.failures(team_id, domain, first, last)),
        selectors=tuple(reports.selectors(team_id, domain, first, last)),
        daily=tuple(reports.daily(team_id, domain, first, last)),
        latest_day=reports.latest_day(team_id, domain),
        names=dict(names),
    )


def _source(totals: SourceTotals, name: str | None) -> SourceSummary:
    return SourceSummary(
        ip=totals.ip,
        name=name,
        provider=registrable_domain(name) if name else None,
        messages=totals.messages,
        passed=totals.passed,
        spf_aligned=totals.spf_aligned,
        dkim_aligned=totals.dkim_aligned,
    )


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


def top_source_ips(
    reports: ReportStore, team_id: str, domain: str, days: int, now: datetime | None = None
) -> list[str]:
    """The largest sources' IPs: the ones worth a reverse lookup."""
    first, last = window(days, now)
    return [s.ip for s in reports.sources(team_id, domain, first, last)[:MAX_NAMED_SOURCES]]


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
