"""Scheduled report digests written to the outbox: each watch's due digest, once per period.

A watch set to `daily` or `weekly` (`/dmarc digest`, `dmarcbot digest`) gets one digest per period
in its channel (what it covers and says: bot.reports.digest). It goes through the outbox like every
alert, under a dedupe key naming the domain, the cadence and the period: the outbox's unique index
on that key is what makes it go out once per period, across restarts and with several monitors on
one database, whichever writes it first. It is posted as a message of its own, never folded into
a message of alerts (bot.monitor.alert_delivery).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from bot.reports.digest import DigestPeriod, build_digest, period_due
from bot.slack.blocks.report_digest import render_report_digest
from bot.store.database import iso
from bot.store.outbox import DIGEST_KIND, NewAlert, insert_alerts
from bot.store.stores import Stores
from bot.store.watches import Watch
from handlers.dns.resolver import DnsSession

log = logging.getLogger("dmarcbot.monitor")


def digest_key(domain: str, period: DigestPeriod) -> str:
    """The outbox dedupe key of a digest: one per domain, cadence and period."""
    return f"digest:{domain}:{period.every}:{period.key}"


def write_due_digests(stores: Stores, session: DnsSession, now: datetime) -> int:
    """Write every digest due at `now` to the outbox (each watch with a digest, once per period);
    returns how many were written. One that fails is logged, and the others are still written."""
    written = 0
    for team in stores.watches.teams():
        for watch in stores.watches.watches(team):
            period = period_due(watch.digest, now) if watch.digest else None
            if period is None or stores.outbox.has_alert(team, digest_key(watch.domain, period)):
                continue
            try:
                written += write_digest(stores, watch, period, session, now)
            except Exception as error:  # one domain's bad data must not cost the others their digest
                log.error("The %s digest of %s failed", watch.digest, watch.domain, exc_info=error)
    return written


def write_digest(
    stores: Stores, watch: Watch, period: DigestPeriod, session: DnsSession, now: datetime
) -> int:
    """Build one watch's digest for `period` and write it to the outbox, unless its digest was
    turned off or changed meanwhile, or another monitor wrote it first. Returns 1 when written."""
    digest = build_digest(stores, watch, period, session, now)
    text, blocks = render_report_digest(digest)
    alert = NewAlert(
        channel_id=watch.channel_id,
        domain=watch.domain,
        kind=DIGEST_KIND,
        dedupe_key=digest_key(watch.domain, period),
        text=text,
        blocks=blocks,
        digest_block=blocks[1] if len(blocks) > 1 else blocks[0],
    )
    with stores.database.write() as db:
        row = db.execute(
            "SELECT digest, channel_id FROM watches WHERE team_id = ? AND id = ?", [watch.team_id, watch.id]
        ).fetchone()
        if row is None or row[0] != period.every:
            return 0
        if row[1] != watch.channel_id:  # moved by /dmarc watch meanwhile: the digest follows it
            alert = replace(alert, channel_id=row[1])
        return insert_alerts(db, watch.team_id, [alert], iso(now))
