"""Alerts from aggregate reports, to the channel watching the domain, through the alert outbox.

After an ingest, for each watched domain that got new reports:
- the pass rate of a day falls below the trailing 14-day baseline by more than `drop`, when
  both the day and the baseline carry at least `min_messages` (a handful of forged messages
  alert nobody);
- a source not seen in the 14 days before sends at least `new_source_min_messages` messages
  and most of them fail DMARC;
- a DKIM selector that signed the domain's passing mail in the reports has no key in DNS any
  more (NXDOMAIN or no record; a DNS outage is never taken for a removal).
Selectors seen passing in reports are added to the watch's selectors, so the monitor checks them.

Each alert has a dedupe key, so ingesting more reports for the same day, or the same file
again, never alerts twice; the outbox (bot.store.outbox) delivers them and survives restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.reports.summary import named_sources
from bot.slack.blocks.aggregate import Block, render_report_alert, sender_fix_button
from bot.store.outbox import NewAlert
from bot.store.reports import ReportStore, StoredReport, shift
from bot.store.stores import Stores
from bot.store.watches import Watch, WatchStore
from handlers.dns.resolver import DnsSession
from handlers.domain.dkim_keys import MAX_SELECTORS

log = logging.getLogger("dmarcbot.reports")


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """When report data is worth an alert."""

    drop: float = 0.10  # pass rate below baseline by more than 10 points
    min_messages: int = 100  # on the day, and in the baseline
    baseline_days: int = 14
    new_source_min_messages: int = 50
    new_source_max_pass_rate: float = 0.5  # "fails alignment": at most half its mail passes
    selector_days: int = 14  # selectors seen this recently must still have a key


DEFAULT_THRESHOLDS = Thresholds()


def review_after_ingest(
    stores: Stores,
    stored: Sequence[StoredReport],
    session: DnsSession,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    now: datetime | None = None,
) -> int:
    """Check every watched (team, domain) among the `stored` reports; returns alerts written."""
    touched: dict[tuple[str, str], set[str]] = {}
    for report in stored:
        # Duplicates too: a crash after storing a report but before its alerts were written is
        # repaired when the report comes again (IMAP re-reads it); the dedupe keys stop repeats.
        touched.setdefault((report.team_id, report.domain), set()).add(report.day)
    reports = stores.reports
    written = 0
    for (team_id, domain), days in sorted(touched.items()):
        watch = stores.watches.watch(team_id, domain)
        if watch is None:
            continue  # alerts go to the watch's channel: an unwatched domain has none
        alerts = [
            *rate_alerts(reports, watch, days, thresholds),
            *new_source_alerts(reports, watch, days, thresholds, session),
        ]
        watch = add_report_selectors(stores.watches, reports, watch, thresholds, now)
        alerts += asyncio.run(selector_alerts(reports, watch, session, thresholds, now))
        if alerts:
            written += stores.outbox.add_alerts(team_id, alerts)
    return written


def rate_alerts(
    reports: ReportStore, watch: Watch, days: set[str], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> list[NewAlert]:
    """A drop of a day's DMARC pass rate below its trailing baseline."""
    alerts = []
    for day in sorted(days):
        today = reports.totals(watch.team_id, watch.domain, day, day)
        base = reports.baseline(watch.team_id, watch.domain, day, thresholds.baseline_days)
        if today.messages < thresholds.min_messages or base.messages < thresholds.min_messages:
            continue
        assert today.pass_rate is not None and base.pass_rate is not None  # messages > 0 above
        if base.pass_rate - today.pass_rate <= thresholds.drop:
            continue
        detail = (
            f"On {day}, {today.pass_rate:.0%} of {today.messages:,} messages passed DMARC, "
            f"against {base.pass_rate:.0%} of {base.messages:,} over the "
            f"{thresholds.baseline_days} days before."
        )
        alerts.append(
            _alert(watch, "report_pass_rate_drop", f"pass-rate:{day}", "DMARC pass rate dropped", detail)
        )
    return alerts


def new_source_alerts(
    reports: ReportStore,
    watch: Watch,
    days: set[str],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    session: DnsSession | None = None,
) -> list[NewAlert]:
    """A source new in the last `baseline_days` days, with real volume, failing alignment; named
    with its sender and category as `report` names them (`session` asks reverse DNS and the
    domain's SPF; without one, senders are named from DKIM alone)."""
    alerts = []
    for day in sorted(days):
        sources = [
            s
            for s in reports.sources(watch.team_id, watch.domain, day, day)
            if s.messages >= thresholds.new_source_min_messages
            and s.passed / s.messages <= thresholds.new_source_max_pass_rate
        ]
        if not sources:
            continue
        seen = reports.sources_seen_before(
            watch.team_id, watch.domain, [s.ip for s in sources], day, thresholds.baseline_days
        )
        new = [s for s in sources[:10] if s.ip not in seen]
        if not new:
            continue
        reasons = {f.ip: f for f in reports.failures(watch.team_id, watch.domain, day, day)}
        named = named_sources(reports, watch.team_id, watch.domain, day, [s.ip for s in new], session)
        for source in new:
            sender = named.get(source.ip)
            volume = (
                f"A new source, {source.ip}, sent {source.messages:,} messages as "
                f"{watch.domain} on {day}; {source.messages - source.passed:,} failed DMARC"
            )
            headline = "new source failing DMARC"
            button = None
            if sender is not None and sender.sender.name and sender.verdict is not None:
                who = f"{sender.sender.name} ({sender.verdict.category})"
                headline = f"{headline}: {who}"
                fix = sender.verdict.fix
                detail = f"{who}: {sender.verdict.reason}. {volume}." + (f" Fix: {fix.title}." if fix else "")
                button = sender_fix_button(watch.domain, fix, watch.team_id) if fix else None
            else:
                why = reasons.get(source.ip)
                because = "; ".join(p for p in (why.spf_why, why.dkim_why) if p) if why else ""
                detail = (
                    volume
                    + (f" ({because})" if because else "")
                    + ". If it is yours, align its SPF or DKIM; if not, it is spoofing the domain."
                )
            alerts.append(
                _alert(
                    watch, "report_new_failing_source", f"new-source:{source.ip}", headline, detail, button
                )
            )
    return alerts


def add_report_selectors(
    store: WatchStore,
    reports: ReportStore,
    watch: Watch,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    now: datetime | None = None,
) -> Watch:
    """Add the selectors that signed the domain's passing mail to the watch, so the monitor
    checks their keys (WatchStore.add_selectors validates and caps them: anyone can send a
    report, so only well-formed selectors that passed DKIM get that far). Returns the watch as
    stored."""
    seen = _recent_selectors(reports, watch, thresholds, now)
    return store.add_selectors(watch.team_id, watch.domain, list(seen)) or watch


def _recent_selectors(
    reports: ReportStore, watch: Watch, thresholds: Thresholds, now: datetime | None
) -> dict[str, str]:
    """Selector -> the last day it signed passing mail for the domain, within `selector_days`."""
    last = (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    first = shift(last, -thresholds.selector_days)
    return {
        s.selector: s.last_day
        for s in reports.selectors(watch.team_id, watch.domain, first, last)
        if s.passed
    }


async def selector_alerts(
    reports: ReportStore,
    watch: Watch,
    session: DnsSession,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    now: datetime | None = None,
) -> list[NewAlert]:
    """Selectors that signed passing mail in recent reports but have no key in DNS now."""
    seen = list(_recent_selectors(reports, watch, thresholds, now).items())[:MAX_SELECTORS]
    names = [f"{selector}._domainkey.{watch.domain}" for selector, _day in seen]
    lookups = await session.lookup_many((name, "TXT") for name in names)
    alerts = []
    for (selector, last_day), lookup in zip(seen, lookups, strict=True):
        if lookup.is_outage:
            log.info("Selector check for %s skipped: %s", lookup.name, lookup.describe_failure())
            continue
        if any("p=" in record.replace(" ", "").lower() for record in lookup.records):
            continue
        detail = (
            f"Receivers saw mail signed with selector {selector} (d={watch.domain}) pass "
            f"DKIM as late as {last_day}, but {lookup.describe_failure()}: mail still "
            "signed with it now fails DKIM."
        )
        # Keyed by the last day it was seen: a selector that comes back and goes again alerts again.
        alerts.append(
            _alert(
                watch,
                "report_selector_missing",
                f"selector:{selector}:{last_day}",
                f"DKIM selector {selector} disappeared from DNS",
                detail,
            )
        )
    return alerts


def _alert(
    watch: Watch, kind: str, key: str, headline: str, detail: str, fix: Block | None = None
) -> NewAlert:
    text, blocks, digest = render_report_alert(watch.domain, headline, detail, fix)
    return NewAlert(
        channel_id=watch.channel_id,
        domain=watch.domain,
        kind=kind,
        dedupe_key=f"{kind}:{watch.domain}:{key}"[:500],
        text=text,
        blocks=blocks,
        digest_block=digest,
    )
