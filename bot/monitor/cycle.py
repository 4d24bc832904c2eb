"""One monitor cycle: check every watched domain once, compare, and write alerts to the outbox.

The whole cycle shares one DnsSession (one unit of freshness): a provider's include that 500
domains name is asked once per cycle, not 500 times, and no answer predates the cycle. Each
distinct (domain, selectors) is checked once however many teams watch it, all of them
concurrently up to MONITOR_CONCURRENCY. Alerts go to the outbox in the same transaction as the
new snapshot (bot.store.watches.WatchStore.apply_check); posting them is bot.monitor.alert_delivery's job,
after. Then the fixes planned on the watched domains are followed up through the same session
(bot.monitor.fix_followup).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.monitor.fix_followup import verify_pending_plans, watch_flattened_includes
from bot.monitor.watch_state import (
    CANNOT_CHECK_AFTER,
    FLAP_WINDOW,
    Change,
    Observation,
    cannot_check_change,
    decide,
    observe,
)
from bot.slack.blocks.alerts import digest_group, render_alert
from bot.store.database import utcnow
from bot.store.outbox import NewAlert
from bot.store.stores import Stores
from bot.store.watches import Decision, Watch, WatchHistory, WatchStore
from handlers.dns.resolver import DnsSession
from handlers.domain.check import DomainReport, check_domain

log = logging.getLogger("dmarcbot.monitor")

MONITOR_CONCURRENCY = 64  # domains checked at once; each runs its own lookups concurrently too


@dataclass(kw_only=True)
class CycleReport:
    """What one cycle checked and wrote."""

    watches: int = 0
    domains: int = 0
    queries: int = 0
    alerts_written: int = 0
    outages: int = 0
    fixes_verified: int = 0
    errors: list[str] = field(default_factory=list)


def alert_for(change: Change, watch: Watch, key: str) -> NewAlert:
    """The outbox row for a change; `key` identifies the decision so writing it twice is a no-op."""
    text, blocks, digest_block = render_alert(change, watch.team_id)
    group, summary = digest_group(change)
    return NewAlert(
        channel_id=watch.channel_id,
        domain=watch.domain,
        kind=change.kind,
        dedupe_key=f"w{watch.id}:{change.kind}:{key}",
        text=text,
        blocks=blocks,
        digest_block=digest_block,
        digest_group=group,
        digest_summary=summary,
    )


def record_observation(
    store: WatchStore, watch: Watch, observation: Observation, now: datetime | None = None
) -> list[Change]:
    """Store one check of one watch and write the alerts it calls for; returns their changes."""
    now = now or utcnow()
    if observation.outage:
        changes: list[Change] = []

        def outage_alert(current: Watch, streak: int) -> NewAlert:
            change = cannot_check_change(current.domain, current.selectors, streak, observation.outage_detail)
            changes.append(change)
            return alert_for(change, current, f"{now.isoformat()}")

        store.apply_outage(watch.team_id, watch.id, CANNOT_CHECK_AFTER, outage_alert, now)
        return changes

    said: list[Change] = []

    def decide_alerts(history: WatchHistory) -> Decision:
        change, acknowledge = decide(history, observation)
        if change is None:
            return Decision([], acknowledge)
        said.append(change)
        known = history.alerted.id if history.alerted else 0
        key = f"{known}>{observation.state.fingerprint[:16]}:{now.isoformat()}"
        return Decision([alert_for(change, history.watch, key)], acknowledge)

    store.apply_check(watch.team_id, watch.id, observation.state, decide_alerts, now - FLAP_WINDOW, now)
    return said


async def check_all(
    targets: Sequence[tuple[str, tuple[str, ...]]],
    session: DnsSession,
    concurrency: int = MONITOR_CONCURRENCY,
) -> dict[tuple[str, tuple[str, ...]], DomainReport | BaseException]:
    """Check each (domain, selectors) once through `session`, at most `concurrency` at a time."""
    limit = asyncio.Semaphore(concurrency)

    async def one(domain: str, selectors: tuple[str, ...]) -> DomainReport:
        async with limit:
            return await check_domain(domain, session, selectors)

    # return_exceptions: a bug hit by one domain must not cost every other watch its check;
    # the failure is logged by the caller with the domain it belongs to.
    results = await asyncio.gather(*(one(d, s) for d, s in targets), return_exceptions=True)
    return dict(zip(targets, results, strict=True))


def check_watches(
    stores: Stores,
    session: DnsSession,
    now: datetime | None = None,
    concurrency: int = MONITOR_CONCURRENCY,
) -> CycleReport:
    """Check every team's watches through one session and write the outcome (snapshots, status,
    alerts in the outbox). Posting is separate: bot.monitor.alert_delivery.deliver_pending."""
    now = now or utcnow()
    watches = [w for team in stores.watches.teams() for w in stores.watches.watches(team)]
    targets = list(dict.fromkeys((w.domain, w.selectors) for w in watches))
    results = asyncio.run(check_all(targets, session, concurrency))
    report = CycleReport(watches=len(watches), domains=len(targets))
    checked: list[Watch] = []
    for watch in watches:
        result = results[(watch.domain, watch.selectors)]
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # KeyboardInterrupt, SystemExit: stop, do not swallow
            log.error("Checking %s for team %s failed", watch.domain, watch.team_id, exc_info=result)
            report.errors.append(f"{watch.domain}: {type(result).__name__}: {result}")
            continue
        observation = observe(result)
        report.outages += observation.outage
        report.alerts_written += len(record_observation(stores.watches, watch, observation, now))
        if not observation.outage:
            checked.append(watch)
    # After the checks, through the same session: a plan is verified against the answers the
    # domain's own check just got (and never when that check hit an outage).
    report.fixes_verified = verify_pending_plans(stores.fix_plans, session, checked, now)
    report.alerts_written += report.fixes_verified
    report.alerts_written += watch_flattened_includes(stores.fix_plans, session, checked, now)
    report.queries = session.queries_sent
    return report
