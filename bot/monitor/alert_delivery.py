"""Deliver the outbox: post pending alerts to Slack, then mark them posted.

An alert is in the outbox (committed) before any post is attempted and is marked posted only
after Slack accepted the message, so a crash, a restart, a 5xx or a 429 leaves it pending for the
next delivery pass: nothing is lost. A crash in the instant between Slack's answer and the mark
would post that one message again; no other path posts twice.

All pending alerts for one channel go out as one message per pass: a digest when there are
several (50 domains sharing an include that changed make one message, with one section naming
them all, not 50 messages), and posts to one channel are spaced at least a second apart (Slack
allows about one chat.postMessage per second per channel). A reply in a thread (a fix plan's
"fixed") is posted on its own, in its thread: a digest is a top-level message.

Any number of monitors may deliver from one database: each message's alerts are claimed (a lease
in the outbox, bot.store.outbox) just before it is posted, and a pass posts only what it claimed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.slack.blocks.alerts import render_digest
from bot.store.outbox import DIGEST_KIND, Alert, AlertOutbox

log = logging.getLogger("dmarcbot.monitor")

MAX_ATTEMPTS = 10  # failed posts of one alert before it is given up as `failed`
# Errors no retry can fix: the message or the channel itself is wrong.
PERMANENT_ERRORS = frozenset(
    {"channel_not_found", "is_archived", "invalid_blocks", "msg_too_long", "no_text", "invalid_arguments"}
)
CHANNEL_SPACING_SECONDS = 1.0
# How long a claimed alert is held by its pass. It covers one post: the wait for the channel's
# turn, the client's wait on a 429's Retry-After and its retry. A pass that dies holding a lease
# delays that alert by at most this long.
ALERT_LEASE = timedelta(minutes=5)

ClientForTeam = Callable[[str], WebClient | None]


class ChannelPacer:
    """Spaces posts to one channel at least `spacing` seconds apart, across threads."""

    def __init__(self, spacing: float = CHANNEL_SPACING_SECONDS) -> None:
        self.spacing = spacing
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_turn(self, channel_id: str) -> None:
        """Sleep until this channel may be posted to again, then claim the slot."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._last.get(channel_id, 0.0) + self.spacing)
            self._last[channel_id] = slot
        if slot > now:
            time.sleep(slot - now)


PACER = ChannelPacer()


@dataclass(kw_only=True)
class DeliveryReport:
    """What one delivery pass did."""

    messages_posted: int = 0
    alerts_posted: int = 0
    alerts_pending: int = 0
    alerts_failed: int = 0
    alerts_claimed_elsewhere: int = 0  # held by another monitor's live lease: theirs to post
    errors: list[str] = field(default_factory=list)


def client_for_team_factory(settings: Settings) -> ClientForTeam:
    """How the monitor gets a WebClient for a team: the single bot token, or with OAuth the
    token Bolt's installation store holds for that team (None when the team is not installed)."""
    from bot.slack.app import make_web_client  # here: bot.slack.app imports the listeners

    if not settings.oauth:
        client = make_web_client(settings, settings.slack_bot_token) if settings.slack_bot_token else None
        return lambda team_id: client

    from slack_sdk.oauth.installation_store.sqlite3 import SQLite3InstallationStore

    from bot.slack.installations import find_team_bot

    installations = SQLite3InstallationStore(
        database=settings.db_path, client_id=settings.slack_client_id or ""
    )

    def for_team(team_id: str) -> WebClient | None:
        bot = find_team_bot(installations, settings.db_path, team_id)
        return make_web_client(settings, bot.bot_token) if bot and bot.bot_token else None

    return for_team


def deliver_pending(
    outbox: AlertOutbox,
    client_for_team: ClientForTeam,
    pacer: ChannelPacer = PACER,
    lease: timedelta = ALERT_LEASE,
) -> DeliveryReport:
    """Post every team's pending alerts that no other monitor holds: one message per channel, a
    digest when there are several."""
    report = DeliveryReport()
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"  # this pass
    for team_id in outbox.teams():
        channels = outbox.claimable_channels(team_id)
        if not channels:
            continue
        client = client_for_team(team_id)
        if client is None:
            count = outbox.pending_count(team_id)
            log.warning("No Slack token for team %s: %d alerts stay pending", team_id, count)
            continue
        for channel in channels:
            pending = outbox.claimable_alerts(team_id, channel_id=channel)  # one channel's at a time
            # a threaded reply, and a scheduled digest, is a message of its own
            alone = [alert for alert in pending if alert.thread_ts or alert.kind == DIGEST_KIND]
            batched = [alert for alert in pending if alert not in alone]  # one message for all
            replies = [[alert] for alert in alone]
            for alerts in [batched, *replies] if batched else replies:
                claimed = set(outbox.claim(team_id, [a.id for a in alerts], owner, lease))
                mine = [a for a in alerts if a.id in claimed]
                if mine:
                    pacer.wait_turn(channel)  # within the lease, which covers the wait
                    _post_batch(outbox, client, team_id, channel, mine, report)
    report.alerts_pending = sum(outbox.pending_count(t) for t in outbox.teams())
    report.alerts_claimed_elsewhere = sum(outbox.leased_count(t, owner) for t in outbox.teams())
    return report


def _post_batch(
    outbox: AlertOutbox,
    client: WebClient,
    team_id: str,
    channel_id: str,
    batch: list[Alert],
    report: DeliveryReport,
) -> bool:
    """Post one message for `batch` (a reply in its thread when it is one threaded alert); True
    when it went out."""
    ids = [a.id for a in batch]
    thread_ts = None
    if len(batch) == 1:
        text, blocks, thread_ts = batch[0].text, batch[0].blocks, batch[0].thread_ts
    else:
        text, blocks = render_digest(batch)
    try:
        # The client's RateLimitErrorRetryHandler already waited out a 429's Retry-After.
        response = client.chat_postMessage(
            channel=channel_id,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            thread_ts=thread_ts,
        )
    except SlackApiError as error:
        code = str(error.response.get("error") or error.response.status_code)
        retry_later = code == "ratelimited" or error.response.status_code >= 500
        log.warning(
            "Posting %d alerts to %s (team %s) failed: %s%s",
            len(batch),
            channel_id,
            team_id,
            code,
            "; kept pending" if retry_later else "",
        )
        outbox.mark_attempt_failed(
            team_id, ids, code, give_up_after=1 if code in PERMANENT_ERRORS else MAX_ATTEMPTS
        )
        report.errors.append(f"{channel_id}: {code}")
        report.alerts_failed += sum(1 for a in outbox.alerts(team_id, "failed") if a.id in ids)
        return False
    except OSError as error:  # connection refused or reset, DNS of slack.com: try next pass
        log.warning(
            "Posting %d alerts to %s (team %s) failed: %s; kept pending",
            len(batch),
            channel_id,
            team_id,
            error,
        )
        outbox.mark_attempt_failed(team_id, ids, str(error), give_up_after=MAX_ATTEMPTS)
        report.errors.append(f"{channel_id}: {error}")
        return False
    outbox.mark_posted(team_id, ids, str(response.get("ts") or ""))
    report.messages_posted += 1
    report.alerts_posted += len(batch)
    return True
