"""One monitor cycle: check every watched domain once, compare, and write alerts to the outbox.

The whole cycle shares one DnsSession (one unit of freshness): a provider's include that 500
domains name is asked once per cycle, not 500 times, and no answer predates the cycle. Each
distinct target (domain, selectors) is checked once however many teams watch it, all of them
concurrently up to MONITOR_CONCURRENCY, every query within the session's in-flight bound. A watch
checks the DKIM selectors it knows (named, seen in reports, found by a probe); the 59 common ones
are probed when it is added and then weekly, or again when reports show a new selector. Alerts go
to the outbox in the same transaction as the new snapshot (bot.store.watches.WatchStore.apply_check);
posting them is bot.monitor.alert_delivery's job, after. Then the fixes planned on the watched
domains are followed up through the same session (bot.monitor.fix_followup).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.config import DEFAULT_REPORTS_SILENCE_DAYS
from bot.monitor.certificate_expiry import expiry_changes
from bot.monitor.digests import write_due_digests
from bot.monitor.fix_followup import verify_pending_plans, watch_flattened_includes
from bot.monitor.report_silence import review_report_silence
from bot.monitor.watch_state import (
    CANNOT_CHECK_AFTER,
    FLAP_WINDOW,
    Change,
    Observation,
    cannot_check_change,
    carry_over,
    decide,
    observe,
)
from bot.slack.blocks.alerts import digest_group, render_alert
from bot.store.database import utcnow
from bot.store.outbox import NewAlert, alert_written
from bot.store.stores import Stores
from bot.store.watches import Decision, Watch, WatchHistory, WatchStore
from handlers.dns.resolver import DnsSession
from handlers.domain.check import DomainReport, check_domain
from handlers.https_fetch import HttpsClient

log = logging.getLogger("dmarcbot.monitor")

MONITOR_CONCURRENCY = 64  # domains checked at once; each runs its own lookups concurrently too
PROBE_EVERY = timedelta(days=7)  # the common DKIM selectors are probed again after this
WRITE_BATCH = 50  # checks written per commit
REPROBES_PER_CYCLE = 500  # weekly probes per cycle at most; the rest wait for the next cycles
CYCLE_GC_THRESHOLD = 20_000  # net allocations between garbage collections during a cycle (see below)


@dataclass(kw_only=True)
class CycleReport:
    """What one cycle checked and wrote."""

    watches: int = 0
    domains: int = 0
    queries: int = 0
    alerts_written: int = 0
    outages: int = 0
    probes: int = 0  # checks that probed the common DKIM selectors
    fixes_verified: int = 0
    digests_written: int = 0  # scheduled report digests due this cycle (bot.monitor.digests)
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
        seen = carry_over(observation, history.latest)
        change, acknowledge = decide(history, seen)
        alerts = []
        if change is not None:
            said.append(change)
            known = history.alerted.id if history.alerted else 0
            key = f"{known}>{seen.state.fingerprint[:16]}:{now.isoformat()}"
            alerts.append(alert_for(change, history.watch, key))
        for expiring, key in expiry_changes(history.watch, seen, now):
            alert = alert_for(expiring, history.watch, key)
            # said once per certificate and threshold, however many cycles see it
            if not alert_written(store.database.connection, history.watch.team_id, alert.dedupe_key):
                said.append(expiring)
                alerts.append(alert)
        return Decision(alerts, acknowledge, state=seen.state)

    store.apply_check(
        watch.team_id,
        watch.id,
        observation.state,
        decide_alerts,
        now - FLAP_WINDOW,
        now,
        found_selectors=observation.found_selectors,
    )
    return said


@dataclass(frozen=True)
class Target:
    """One distinct check of a cycle: a domain, the selectors named and found, and whether the
    common selectors are probed this time. Teams watching the same domain alike share it."""

    domain: str
    named: tuple[str, ...]
    found: tuple[str, ...]
    probe: bool

    async def check(self, session: DnsSession, https: HttpsClient | None = None) -> DomainReport:
        return await check_domain(
            self.domain, session, self.named, known=self.found, probe=self.probe, https=https
        )


def probe_due(watch: Watch, now: datetime) -> bool:
    """Probe the common selectors when a watch was never probed (added without a first check, an
    older database, a new selector seen in reports) or its last probe is PROBE_EVERY old."""
    if watch.selectors_probed_at is None:
        return True
    try:
        probed_at = datetime.fromisoformat(watch.selectors_probed_at)
    except ValueError:
        return True
    return now - probed_at >= PROBE_EVERY


def target_of(watch: Watch, now: datetime, probe: bool | None = None) -> Target:
    probe = probe_due(watch, now) if probe is None else probe
    return Target(watch.domain, watch.selectors, watch.found_selectors, probe)


def reprobes_now(watches: Sequence[Watch], now: datetime) -> set[int]:
    """The ids of the watches whose weekly probe runs this cycle: the longest waiting first, at
    most REPROBES_PER_CYCLE, so watches imported together are not all probed again in one cycle a
    week later (a cycle of 59 extra queries a domain). A watch never probed is not counted here:
    it is always probed, since its first state would otherwise lack the keys a probe finds."""
    due = [w for w in watches if w.selectors_probed_at is not None and probe_due(w, now)]
    due.sort(key=lambda w: w.selectors_probed_at or "")
    return {w.id for w in due[:REPROBES_PER_CYCLE]}


def check_watch(watch: Watch, session: DnsSession, https: HttpsClient | None = None) -> DomainReport:
    """One watch's check now, as the monitor would do it (the first check of a new watch probes
    the common selectors): from a thread with no event loop, such as a command or a worker."""
    return asyncio.run(target_of(watch, utcnow()).check(session, https))


def check_watches(
    stores: Stores,
    session: DnsSession,
    now: datetime | None = None,
    concurrency: int = MONITOR_CONCURRENCY,
    https: HttpsClient | None = None,
    reports_silence_days: int = DEFAULT_REPORTS_SILENCE_DAYS,
) -> CycleReport:
    """Check every team's watches through one session and write the outcome (snapshots, status,
    alerts in the outbox). Posting is separate: bot.monitor.alert_delivery.deliver_pending.
    Then the watches checked are reviewed for reports that stopped (bot.monitor.report_silence).

    Each check's report is reduced and written as soon as it is known, then dropped: the cycle
    keeps counters and the watches checked, never the reports, so its memory does not grow with
    the number of domains. The writes run on the event loop's thread (SQLite connections belong
    to one thread); each is one short transaction, and the checks in flight keep going around it."""
    now = now or utcnow()
    watches = [w for team in stores.watches.teams() for w in stores.watches.watches(team)]
    reprobes = reprobes_now(watches, now)
    groups: dict[Target, list[Watch]] = {}
    for watch in watches:
        probe = watch.selectors_probed_at is None or watch.id in reprobes
        groups.setdefault(target_of(watch, now, probe), []).append(watch)
    report = CycleReport(watches=len(watches), domains=len(groups))
    checked: list[Watch] = []

    unwritten: list[tuple[Watch, Observation]] = []

    def write_batch() -> None:
        # One commit for many checks: a commit waits for the disk, and one per domain was most
        # of a cycle's time. Each check is still its own savepoint: one that fails is logged and
        # the others are written.
        with stores.database.write():
            for watch, observation in unwritten:
                try:
                    report.alerts_written += len(record_observation(stores.watches, watch, observation, now))
                except Exception as error:
                    log.error("Storing the check of %s failed", watch.domain, exc_info=error)
                    report.errors.append(f"{watch.domain}: {type(error).__name__}: {error}")
                    continue
                if not observation.outage:
                    checked.append(watch)
        unwritten.clear()

    def record(target: Target, result: DomainReport | BaseException) -> None:
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # KeyboardInterrupt, SystemExit: stop, do not swallow
            for watch in groups[target]:
                # A bug hit by one domain must not cost every other watch its check.
                log.error("Checking %s for team %s failed", watch.domain, watch.team_id, exc_info=result)
                report.errors.append(f"{watch.domain}: {type(result).__name__}: {result}")
            return
        observation = observe(result)  # the report itself is dropped here
        report.probes += observation.found_selectors is not None
        for watch in groups[target]:
            report.outages += observation.outage
            unwritten.append((watch, observation))
        if len(unwritten) >= WRITE_BATCH:
            write_batch()

    _run_on_fastest_loop(check_all(list(groups), session, record, concurrency, https))
    write_batch()
    # After the checks, through the same session: a plan is verified against the answers the
    # domain's own check just got (and never when that check hit an outage).
    report.fixes_verified = verify_pending_plans(stores.fix_plans, session, checked, now, https)
    report.alerts_written += report.fixes_verified
    report.alerts_written += watch_flattened_includes(stores.fix_plans, session, checked, now)
    # Only the watches whose check worked: their snapshot is the record now, not an outage's guess.
    report.alerts_written += review_report_silence(stores, checked, timedelta(days=reports_silence_days), now)
    report.digests_written = write_due_digests(stores, session, now)
    report.alerts_written += report.digests_written
    report.queries = session.queries_sent
    return report


def _run_on_fastest_loop(work: Coroutine[Any, Any, None]) -> None:
    """Run a cycle's checks on uvloop where it is installed (not on Windows), else on asyncio's
    own loop. A cycle is a hundred thousand small queries, each a few callbacks, a socket and a
    reader: profiled over 10,000 domains, asyncio's pure-Python loop was a quarter of the CPU
    time, and uvloop's, written in C over libuv, runs the same cycle about a fifth faster."""
    try:
        import uvloop
    except ImportError:
        with _fewer_collections():
            asyncio.run(work)
        return
    with _fewer_collections(), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(work)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector, less often while a cycle runs. The checks allocate
    millions of short-lived objects that reference counting frees; the default threshold (a
    collection every 700 net allocations) ran thousands of collections a cycle, each walking
    the checks in flight: a fifth of the cycle's CPU time. Measured over 4,000 domains,
    CYCLE_GC_THRESHOLD cut the cycle's CPU by a fifth with the same peak memory: reference
    cycles are still collected, only less often."""
    before = gc.get_threshold()
    gc.set_threshold(CYCLE_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def check_all(
    targets: Sequence[Target],
    session: DnsSession,
    record: Callable[[Target, DomainReport | BaseException], None],
    concurrency: int = MONITOR_CONCURRENCY,
    https: HttpsClient | None = None,
) -> None:
    """Check each target once through `session`, at most `concurrency` at a time, handing each
    result (or the exception it raised) to `record` as soon as it is known. Workers take targets
    from one iterator, so there are never more than `concurrency` checks (and their reports)
    alive, however many targets there are."""
    pending = iter(targets)

    async def worker() -> None:
        for target in pending:
            try:
                result: DomainReport | BaseException = await target.check(session, https)
            except Exception as error:  # `record` logs it with its domains
                result = error
            record(target, result)
            del result

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(targets)))))
