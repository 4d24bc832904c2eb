"""New failure groups told to the channel watching the domain, through the alert outbox.

A group (reports of one day with the same source IP, From domain and causes) that the watch's
channel has not heard of gets one message, with the Fix it button matching its causes. At most
one such message per domain per `gap` (an hour): groups that appear sooner wait and are folded
into the next one, which the next monitor cycle (or ingest) writes once the hour is over.

Exactly once: the alert and the marks of the groups it tells are written in one transaction,
which checks again, under SQLite's write lock, that no other process (a second monitor, a
restart) told the domain anything within the hour or any of these groups already. Reverse names
are looked up before that transaction, never inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.slack.blocks.failures import MAX_ALERT_GROUPS, render_new_groups
from bot.store.database import iso
from bot.store.outbox import NewAlert
from bot.store.reports import window
from bot.store.stores import Stores

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger("dmarcbot.reports")

ANNOUNCE_GAP = timedelta(hours=1)
# Groups of the last NEW_GROUP_DAYS days are news; a report dated earlier (a receiver's backlog)
# is stored and listed by `failures`, but told to nobody.
NEW_GROUP_DAYS = 3

Names = Callable[[Sequence[str]], dict[str, str]]


def announce_failure_groups(
    stores: Stores, names: Names | None = None, now: datetime | None = None, gap: timedelta = ANNOUNCE_GAP
) -> int:
    """Write one outbox alert per watched domain with failure groups its channel has not heard of,
    unless it heard of one within `gap`; `names` names source IPs (reverse DNS, bounded). Returns
    the alerts written."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    first, last = window(NEW_GROUP_DAYS, moment)
    quiet_since = iso(moment - gap)
    written = 0
    for team_id, domain in stores.failures.recent_domains(first):
        told = stores.failures.last_announced(team_id, domain)
        if told is not None and told > quiet_since:
            continue  # folded into the next message, after the hour
        watch = stores.watches.watch(team_id, domain)
        if watch is None:
            continue  # the channel is the watch's: an unwatched domain has none
        groups = stores.failures.unannounced_groups(team_id, domain, first, last)
        if not groups:
            continue
        ips = [g.source_ip for g in groups if g.source_ip]
        senders = names(ips) if names and ips else {}
        details = {g.key: stores.failures.group_causes(team_id, g) for g in groups[:MAX_ALERT_GROUPS]}
        text, blocks, digest = render_new_groups(
            domain, groups, senders, team_id, watch.checked_selectors, details
        )
        alert = NewAlert(
            channel_id=watch.channel_id,
            domain=domain,
            kind="failure_groups",
            dedupe_key=f"failure_groups:{domain}:{iso(moment)}"[:500],
            text=text,
            blocks=blocks,
            digest_block=digest,
        )
        if stores.failures.announce(team_id, domain, groups, alert, quiet_since, iso(moment)):
            written += 1
            log.info(
                "Failure groups of %s (team %s): %d new, told in one message", domain, team_id, len(groups)
            )
    return written


def announce_as_configured(stores: Stores, settings: Settings) -> int:
    """announce_failure_groups with the settings' resolver naming the sources (as `failures` does).
    A failure here is logged and costs only these messages: the cycle's other alerts still go out,
    and the groups are told by the next cycle."""
    from bot.reports.summary import resolve_names

    try:
        return announce_failure_groups(stores, lambda ips: resolve_names(ips, settings.dns_session()))
    except Exception:  # the monitor cycle's boundary: the outbox delivery after this must run
        log.exception("Telling new failure groups failed; the next cycle tries again")
        return 0
