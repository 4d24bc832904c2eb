"""What the monitor does, after a watched domain's good check, for the fixes planned on it.

Pending fix plans of the watch's team for the domain are verified through the cycle's DnsSession
(the answers the check just got: no second query for them, none older than the cycle). A plan
whose records are live gets "fixed" posted in its own thread and is marked verified, both in one
transaction (FixPlanStore.settle_fix_plan): a crash leaves it pending to be verified again, never
announced twice (the alert's dedupe key is the plan's row). A plan not live keeps waiting, for
PLAN_WAIT after it was posted, then expires quietly; its Verify button still works.

A verified plan that flattened a provider's includes into the SPF record (`watch_includes`)
starts their drift watch: each cycle resolves every such include's tree (its SPF record and every
record in its own include chain, a/mx names too) in the same session, and when the addresses it
authorises differ from the last resolution, the watch's channel is told the flattened SPF is
stale, with a Fix it button that re-flattens (`spf.flattened_stale`). The first resolution after
the plan is verified is the baseline.

The outage rule is the watches' own (bot.monitor.watch_state): a check that hit a DNS outage verifies
nothing and resolves no include (the monitor does not call this for it); a verification or an
include resolution that hits one changes nothing and says nothing. An outage is never taken for
"not live" or for "the provider changed".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.slack.blocks.alerts import render_include_drift
from bot.slack.blocks.domain_report import context
from bot.slack.blocks.fixit import verification_message
from bot.slack.fix_plans import FixPlan
from bot.store.database import utcnow
from bot.store.fix_plans import FixPlanStore, FlattenedInclude, StoredFixPlan
from bot.store.outbox import NewAlert
from bot.store.watches import Watch
from handlers.dns.resolver import DnsSession
from handlers.fixes.session import FixCheck, verify_fix
from handlers.fixes.spf_fixes import Flattened, flatten_include
from handlers.https_fetch import HttpsClient

log = logging.getLogger("dmarcbot.monitor")

PLAN_WAIT = timedelta(days=30)  # long past any TTL: a plan still not live by then was abandoned


def fixed_alert(stored: StoredFixPlan, check: FixCheck) -> NewAlert:
    """The "fixed" reply for the plan's thread, keyed by the plan's row so it is written once."""
    plan = stored.plan
    text, blocks = verification_message(plan, check, None)
    blocks.append(context("Seen by this watched domain's scheduled check: no need to press Verify."))
    return NewAlert(
        channel_id=plan.channel_id,
        domain=plan.domain,
        kind="fixed",
        dedupe_key=f"fix-plan:{stored.id}",
        text=text,
        blocks=blocks,
        digest_block=blocks[0],
        thread_ts=plan.thread_ts,
    )


def settle_verified(
    store: FixPlanStore, plan: FixPlan, alerts: Sequence[NewAlert] = (), now: datetime | None = None
) -> bool:
    """Mark a plan verified (with its "fixed" alert, if any, in the same transaction); False
    when it was not pending (never stored, or already settled)."""
    return store.settle_fix_plan(plan.team_id, plan, "verified", alerts, now)


def verify_pending_plans(
    store: FixPlanStore,
    session: DnsSession,
    watches: Sequence[Watch],
    now: datetime | None = None,
    https: HttpsClient | None = None,
) -> int:
    """Verify the pending plans of each watch's team for its domain (each watch just had a good
    check through `session`); returns how many were found live and written as "fixed"."""
    now = now or utcnow()
    due: list[StoredFixPlan] = []
    for watch in watches:
        for stored in store.pending_fix_plans(watch.team_id, watch.domain):
            if datetime.fromisoformat(stored.created_at) + PLAN_WAIT < now:
                store.settle_fix_plan(watch.team_id, stored.plan, "expired", now=now)
            else:
                due.append(stored)
    if not due:
        return 0
    checks = asyncio.run(_verify_all(session, due, https))
    fixed = 0
    for stored, check in zip(due, checks, strict=True):
        if isinstance(check, BaseException):
            if not isinstance(check, Exception):
                raise check  # KeyboardInterrupt, SystemExit: stop, do not swallow
            log.error(
                "Verifying a fix plan for %s (team %s) failed",
                stored.plan.domain,
                stored.plan.team_id,
                exc_info=check,
            )
            continue
        if check.live:
            fixed += settle_verified(store, stored.plan, [fixed_alert(stored, check)], now)
    return fixed


async def _verify_all(
    session: DnsSession, due: Sequence[StoredFixPlan], https: HttpsClient | None = None
) -> list[FixCheck | BaseException]:
    # return_exceptions: one plan's bug must not cost the others their verification.
    return list(
        await asyncio.gather(
            *(
                verify_fix(session, s.plan.domain, s.plan.expected, s.plan.clears, s.plan.selectors, https)
                for s in due
            ),
            return_exceptions=True,
        )
    )


def watch_flattened_includes(
    store: FixPlanStore, session: DnsSession, watches: Sequence[Watch], now: datetime | None = None
) -> int:
    """Resolve the includes verified fixes flattened into each watch's domain (each watch just
    had a good check through `session`) and alert the watch's channel about those whose addresses
    changed; returns the alerts written."""
    now = now or utcnow()
    tracked = [
        (watch, known) for watch in watches for known in store.flattened_includes(watch.team_id, watch.domain)
    ]
    if not tracked:
        return 0
    names = sorted({known.include for _, known in tracked})
    resolved = dict(zip(names, asyncio.run(_flatten_all(session, names)), strict=True))
    written = 0
    for watch, known in tracked:
        now_seen = resolved[known.include]
        if isinstance(now_seen, BaseException):
            if not isinstance(now_seen, Exception):
                raise now_seen
            log.error("Resolving include:%s for %s failed", known.include, watch.domain, exc_info=now_seen)
            continue
        if now_seen.outage:
            continue  # unknown, not changed: the stored addresses stay as they were
        problem = now_seen.problem
        if known.terms is not None and (known.terms, known.problem) == (now_seen.terms, problem):
            continue
        alerts = [] if known.terms is None else [drift_alert(watch, known, now_seen)]
        if store.update_flattened_include(watch.team_id, known, now_seen.terms, problem, alerts, now):
            written += len(alerts)
    return written


def drift_alert(watch: Watch, known: FlattenedInclude, now_seen: Flattened) -> NewAlert:
    """The alert for a flattened include whose addresses changed since `known`."""
    before = list(known.terms or ())
    text, blocks, digest_block, summary = render_include_drift(
        watch.domain,
        known.include,
        watch.team_id,
        watch.selectors,
        before,
        list(now_seen.terms),
        now_seen.problem,
    )
    change = json.dumps([known.include, before, known.problem, list(now_seen.terms), now_seen.problem])
    digest = hashlib.sha256(change.encode()).hexdigest()[:32]
    return NewAlert(
        channel_id=watch.channel_id,
        domain=watch.domain,
        kind="include_drift",
        dedupe_key=f"w{watch.id}:include_drift:{known.include}:{digest}",
        text=text,
        blocks=blocks,
        digest_block=digest_block,
        digest_group=f"include_drift:{digest}",
        digest_summary=summary,
    )


async def _flatten_all(session: DnsSession, names: Sequence[str]) -> list[Flattened | BaseException]:
    # Each distinct include once, however many watches flattened it (the session caches answers).
    return list(await asyncio.gather(*(flatten_include(session, n) for n in names), return_exceptions=True))
