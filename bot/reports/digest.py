"""What a watched domain's scheduled report digest covers and says: its period, senders, policy step.

A digest covers the last whole period: a day is a UTC day, a week an ISO week (Monday to Sunday,
UTC). Receivers send a day's reports during the next day, so a digest is due from DIGEST_HOUR UTC
of the day after its period (for a week, from that Monday on). Senders are named and sorted as
`dmarcbot report` names them (bot.reports.summary), and readiness for the next policy step is the
Fix it flow's (handlers.fixes.readiness).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.reports.summary import (
    ReportSummary,
    SenderSummary,
    build_summary,
    read_spf_authority,
    readiness_stats,
    resolve_names,
)
from bot.store.reports import Totals
from bot.store.stores import Stores
from bot.store.watches import Watch
from handlers.dns.resolver import DnsSession
from handlers.fixes.readiness import Readiness, assess_readiness
from handlers.fixes.records import dmarc_choices_from, next_policy_step

# Most reporters send a day's reports within the next morning (UTC); a digest written at midnight
# would find most of its day still missing.
DIGEST_HOUR = 12
NEW_SENDER_DAYS = 30  # a sender is new when none of its IPs sent for the domain in these days before


@dataclass(frozen=True)
class DigestPeriod:
    """The period a digest covers (`first`..`last`, UTC days) and the one before it."""

    every: str  # daily / weekly
    key: str  # the period's name in the dedupe key: 2026-11-29, 2026-W48
    first: str
    last: str
    previous_first: str
    previous_last: str
    label: str  # for people: "Sunday 29 November 2026", "week 48 (23 November to 29 November 2026)"

    @property
    def days(self) -> int:
        return (date.fromisoformat(self.last) - date.fromisoformat(self.first)).days + 1

    @property
    def unit(self) -> str:
        return "day" if self.every == "daily" else "week"


@dataclass(frozen=True, kw_only=True)
class Digest:
    """What one digest says: the period's summary, the period before, the senders worth a look
    (those whose name is in `new` first appeared in the period) and the policy's next step."""

    domain: str
    period: DigestPeriod
    summary: ReportSummary
    previous: Totals
    senders: tuple[SenderSummary, ...]
    new: frozenset[str | None]
    policy: str | None  # the published p= (None: no DMARC record seen), "(t=y)" noted in `next_step`
    next_step: str | None  # e.g. "p=quarantine", None when at p=reject already or no record
    readiness: Readiness | None


def period_due(every: str, now: datetime) -> DigestPeriod | None:
    """The period whose digest is due at `now` (UTC) for a watch set to `every`, or None before
    DIGEST_HOUR on the day after it."""
    today = now.date()
    if every == "daily":
        if now.hour < DIGEST_HOUR:
            return None
        day = today - timedelta(days=1)
        before = day - timedelta(days=1)
        return DigestPeriod(
            every,
            day.isoformat(),
            day.isoformat(),
            day.isoformat(),
            before.isoformat(),
            before.isoformat(),
            f"{day:%A} {day.day} {day:%B %Y}",
        )
    if every == "weekly":
        monday = today - timedelta(days=today.weekday())
        if today == monday and now.hour < DIGEST_HOUR:
            return None
        first, last = monday - timedelta(days=7), monday - timedelta(days=1)
        year, week, _ = first.isocalendar()
        return DigestPeriod(
            every,
            f"{year}-W{week:02d}",
            first.isoformat(),
            last.isoformat(),
            (first - timedelta(days=7)).isoformat(),
            (first - timedelta(days=1)).isoformat(),
            f"week {week} ({first.day} {first:%B} to {last.day} {last:%B %Y})",
        )
    return None


def schedule_sentence(every: str) -> str:
    """When a digest of this cadence goes out, for people."""
    if every == "daily":
        return f"each day's aggregate reports, posted after {DIGEST_HOUR}:00 UTC the next day."
    return f"each ISO week's aggregate reports, posted after {DIGEST_HOUR}:00 UTC on the Monday after."


def build_digest(
    stores: Stores, watch: Watch, period: DigestPeriod, session: DnsSession, now: datetime
) -> Digest:
    """What the team's reports say about the watch's domain over `period`, senders named as in
    `dmarcbot report` (reverse DNS of the largest sources and the domain's SPF chain)."""
    reports, team, domain = stores.reports, watch.team_id, watch.domain
    summary = build_summary(
        reports,
        team,
        domain,
        period.days,
        first=period.first,
        last=period.last,
        authority=read_spf_authority(domain, session),
        name_sources=lambda ips: resolve_names(ips, session),
    )
    new = _new_senders(stores, watch, period, summary.senders)
    worth = tuple(s for s in summary.senders if s.name in new or s.category in ("misconfigured", "unknown"))
    policy, next_step, readiness = _readiness(stores, watch, now)
    return Digest(
        domain=domain,
        period=period,
        summary=summary,
        previous=reports.totals(team, domain, period.previous_first, period.previous_last),
        senders=worth,
        new=new,
        policy=policy,
        next_step=next_step,
        readiness=readiness,
    )


def _new_senders(
    stores: Stores, watch: Watch, period: DigestPeriod, senders: Sequence[SenderSummary]
) -> frozenset[str | None]:
    """The senders none of whose IPs sent for the domain in the NEW_SENDER_DAYS before the period."""
    new: set[str | None] = set()
    for sender in senders:
        seen = stores.reports.sources_seen_before(
            watch.team_id, watch.domain, sender.ips, period.first, NEW_SENDER_DAYS
        )
        if sender.ips and not seen:
            new.add(sender.name)
    return frozenset(new)


def _readiness(
    stores: Stores, watch: Watch, now: datetime
) -> tuple[str | None, str | None, Readiness | None]:
    """The published policy (from the watch's last good check), its next step (RFC 9989:
    none → quarantine → reject, t=y lifted first) and readiness for it, as Fix it judges it."""
    snapshot = stores.watches.latest_snapshot(watch.team_id, watch.id)
    raw = snapshot.dmarc_record(watch.domain) if snapshot else None
    if snapshot is None or not raw:
        return None, None, None
    choices = dmarc_choices_from(raw.splitlines(), watch.domain)
    policy = choices.policy + (" (t=y)" if choices.testing else "")
    step = next_policy_step(choices)
    if step == choices:
        return policy, None, None
    next_step = f"p={step.policy}" + (" without t=y" if choices.testing else "")
    includes = [name.split(":", 1)[1] for name in snapshot.records if name.startswith("SPF include:")]
    stats = readiness_stats(stores.reports, watch.team_id, watch.domain, now)
    return policy, next_step, assess_readiness(next_step, stats, includes)
