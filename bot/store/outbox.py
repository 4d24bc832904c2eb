"""The alert outbox: alerts waiting to be posted, and what happened when they were.

An alert is written in the same transaction as the state that called for it (a check's snapshot,
a settled fix plan, a flattened include's new addresses), so the watch and fix plan stores write
their alerts with `insert_alerts` on the transaction they hold; posting is
bot.monitor.alert_delivery's job, after, and survives restarts. Every query takes the team id.

Several processes may deliver from one file (serve, a cron `monitor --once`, two overlapping cron
runs). Before posting, a pass claims the alerts: one UPDATE sets the lease (`claimed_by`, an id of
the pass, and `claimed_until`) on the rows that are pending and not under another live lease,
under SQLite's write lock, so two passes can never both hold one alert. Posted or failed, the lease
is dropped; a pass that dies holding one leaves it to expire, and the alert goes out after that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from bot.store.database import Database, iso, utcnow

# The kind of a watch's scheduled report digest: a message of its own, never folded with alerts.
DIGEST_KIND = "report_digest"


@dataclass(frozen=True, kw_only=True)
class NewAlert:
    """An alert to write to the outbox; `dedupe_key` makes writing the same alert twice a no-op."""

    channel_id: str
    domain: str
    kind: str
    dedupe_key: str
    text: str
    blocks: list[dict[str, Any]]
    digest_block: dict[str, Any]
    # Alerts of one cycle with the same group (the same change seen at many domains, e.g. a shared
    # include) share one section of a digest, described by `digest_summary` plus the domains.
    digest_group: str = ""
    digest_summary: str = ""
    # A reply in this thread of the channel (a fix plan's "fixed"): posted on its own, never
    # folded into a digest, since a digest is a top-level message.
    thread_ts: str | None = None


@dataclass(frozen=True, kw_only=True)
class Alert:
    """An alert in the outbox."""

    id: int
    team_id: str
    channel_id: str
    domain: str
    kind: str
    dedupe_key: str
    text: str
    blocks: list[dict[str, Any]]
    digest_block: dict[str, Any]
    state: str
    attempts: int
    ts: str | None
    created_at: str
    digest_group: str = ""
    digest_summary: str = ""
    thread_ts: str | None = None


def insert_alerts(db: sqlite_utils.Database, team_id: str, alerts: Sequence[NewAlert], when: str) -> int:
    """Write alerts on `db`, inside the transaction its caller holds (an alert whose dedupe key is
    already there is skipped). Returns how many were written."""
    written = 0
    for alert in alerts:
        cursor = db.execute(
            "INSERT OR IGNORE INTO alerts (team_id, channel_id, domain, kind, dedupe_key, text, "
            "blocks, digest_block, digest_group, digest_summary, thread_ts, state, attempts, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
            [
                team_id,
                alert.channel_id,
                alert.domain,
                alert.kind,
                alert.dedupe_key,
                alert.text,
                json.dumps(alert.blocks),
                json.dumps(alert.digest_block),
                alert.digest_group,
                alert.digest_summary,
                alert.thread_ts,
                when,
            ],
        )
        written += cursor.rowcount
    return written


def alert_written(db: sqlite_utils.Database, team_id: str, dedupe_key: str) -> bool:
    """Whether an alert with this dedupe key was ever written for the team, posted or not."""
    row = db.execute(
        "SELECT 1 FROM alerts WHERE team_id = ? AND dedupe_key = ? LIMIT 1", [team_id, dedupe_key]
    ).fetchone()
    return row is not None


def discard_pending(db: sqlite_utils.Database, team_id: str, domain: str, kind: str | None = None) -> None:
    """Drop the team's undelivered alerts about `domain` (of one `kind`, or all), inside the
    caller's transaction (the domain is no longer watched, or its digest was turned off: nobody
    should hear about it)."""
    sql = "DELETE FROM alerts WHERE team_id = ? AND domain = ? AND state = 'pending'"
    if kind is None:
        db.execute(sql, [team_id, domain])
    else:
        db.execute(sql + " AND kind = ?", [team_id, domain, kind])


class AlertOutbox:
    """The outbox of every team over `database`, each call scoped to one team."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def teams(self) -> list[str]:
        """Team ids with undelivered alerts (ids only: no team's rows are read here)."""
        rows = self.database.connection.execute(
            "SELECT DISTINCT team_id FROM alerts WHERE state = 'pending' ORDER BY team_id"
        ).fetchall()
        return [row[0] for row in rows]

    def add_alerts(self, team_id: str, alerts: Sequence[NewAlert], now: datetime | None = None) -> int:
        """Write alerts to the outbox (an alert whose dedupe key is already there is skipped)."""
        with self.database.write() as db:
            return insert_alerts(db, team_id, alerts, iso(now or utcnow()))

    def has_alert(self, team_id: str, dedupe_key: str) -> bool:
        """Whether the team's outbox holds an alert with this dedupe key, in any state."""
        return alert_written(self.database.connection, team_id, dedupe_key)

    def pending_alerts(self, team_id: str) -> list[Alert]:
        """The team's undelivered alerts, oldest first."""
        rows = self.database.connection.table("alerts").rows_where(
            "team_id = ? AND state = 'pending'", [team_id], order_by="id"
        )
        return [_alert(row) for row in rows]

    def alerts(self, team_id: str, state: str | None = None) -> list[Alert]:
        """The team's alerts (in one state, or all), oldest first."""
        where, args = "team_id = ?", [team_id]
        if state is not None:
            where, args = where + " AND state = ?", [team_id, state]
        rows = self.database.connection.table("alerts").rows_where(where, args, order_by="id")
        return [_alert(row) for row in rows]

    def latest_alert(self, team_id: str, kind: str, key_prefix: str) -> Alert | None:
        """The team's latest alert of `kind` (posted or not) whose dedupe key starts `key_prefix`."""
        # A range on the key, not substr(): the (team_id, dedupe_key) index answers it.
        rows = list(
            self.database.connection.table("alerts").rows_where(
                "team_id = ? AND dedupe_key >= ? AND dedupe_key < ? AND kind = ?",
                [team_id, key_prefix, key_prefix + "\U0010ffff", kind],
                order_by="id desc",
                limit=1,
            )
        )
        return _alert(rows[0]) if rows else None

    def claimable_alerts(
        self, team_id: str, now: datetime | None = None, channel_id: str | None = None
    ) -> list[Alert]:
        """The team's undelivered alerts that no live lease holds (in one channel, or all),
        oldest first."""
        where = "team_id = ? AND state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)"
        args = [team_id, iso(now or utcnow())]
        if channel_id is not None:
            where, args = where + " AND channel_id = ?", [*args, channel_id]
        rows = self.database.connection.table("alerts").rows_where(where, args, order_by="id")
        return [_alert(row) for row in rows]

    def claimable_channels(self, team_id: str, now: datetime | None = None) -> list[str]:
        """The channels with undelivered alerts of the team that no live lease holds (ids only:
        a delivery reads one channel's alerts at a time, so a cycle of 10,000 alerts is never
        in memory at once)."""
        rows = self.database.connection.execute(
            "SELECT channel_id FROM alerts WHERE team_id = ? AND state = 'pending' AND "
            "(claimed_until IS NULL OR claimed_until <= ?) GROUP BY channel_id ORDER BY MIN(id)",
            [team_id, iso(now or utcnow())],
        ).fetchall()
        return [row[0] for row in rows]

    def pending_count(self, team_id: str) -> int:
        """How many of the team's alerts are undelivered."""
        row = self.database.connection.execute(
            "SELECT COUNT(*) FROM alerts WHERE team_id = ? AND state = 'pending'", [team_id]
        ).fetchone()
        return int(row[0])

    def leased_count(self, team_id: str, not_owner: str, now: datetime | None = None) -> int:
        """How many of the team's pending alerts a live lease of another owner holds."""
        row = self.database.connection.execute(
            "SELECT COUNT(*) FROM alerts WHERE team_id = ? AND state = 'pending' AND claimed_until > ? "
            "AND claimed_by != ?",
            [team_id, iso(now or utcnow()), not_owner],
        ).fetchone()
        return int(row[0])

    def claim(
        self,
        team_id: str,
        alert_ids: Sequence[int],
        owner: str,
        lease: timedelta,
        now: datetime | None = None,
    ) -> list[int]:
        """Take a lease on those of `alert_ids` still pending and not leased by a live owner;
        returns the ids now held by `owner` (only these may be posted)."""
        moment = now or utcnow()
        marks = ",".join("?" * len(alert_ids))
        with self.database.write() as db:
            db.execute(
                "UPDATE alerts SET claimed_by = ?, claimed_until = ? WHERE team_id = ? AND "
                f"state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?) AND id IN ({marks})",
                [owner, iso(moment + lease), team_id, iso(moment), *alert_ids],
            )
            rows = db.execute(
                f"SELECT id FROM alerts WHERE team_id = ? AND claimed_by = ? AND state = 'pending' "
                f"AND id IN ({marks}) ORDER BY id",
                [team_id, owner, *alert_ids],
            ).fetchall()
        return [int(row[0]) for row in rows]

    def mark_posted(
        self, team_id: str, alert_ids: Sequence[int], ts: str | None, now: datetime | None = None
    ) -> None:
        """The message carrying these alerts was accepted by Slack with timestamp `ts`."""
        when = iso(now or utcnow())
        with self.database.write() as db:
            for alert_id in alert_ids:
                db.execute(
                    "UPDATE alerts SET state = 'posted', ts = ?, posted_at = ?, claimed_by = NULL, "
                    "claimed_until = NULL, attempts = attempts + 1 WHERE team_id = ? AND id = ?",
                    [ts, when, team_id, alert_id],
                )

    def mark_attempt_failed(
        self, team_id: str, alert_ids: Sequence[int], error: str, give_up_after: int
    ) -> None:
        """A post failed: count the attempt; after `give_up_after` attempts the alert is `failed`."""
        with self.database.write() as db:
            for alert_id in alert_ids:
                db.execute(
                    "UPDATE alerts SET attempts = attempts + 1, last_error = ?, claimed_by = NULL, "
                    "claimed_until = NULL, state = CASE "
                    "WHEN attempts + 1 >= ? THEN 'failed' ELSE state END "
                    "WHERE team_id = ? AND id = ? AND state = 'pending'",
                    [error[:500], give_up_after, team_id, alert_id],
                )


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(
        id=row["id"],
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        domain=row["domain"],
        kind=row["kind"],
        dedupe_key=row["dedupe_key"],
        text=row["text"],
        blocks=json.loads(row["blocks"]),
        digest_block=json.loads(row["digest_block"] or "{}"),
        state=row["state"],
        attempts=int(row["attempts"]),
        ts=row["ts"],
        created_at=row["created_at"],
        digest_group=row["digest_group"] or "",
        digest_summary=row["digest_summary"] or "",
        thread_ts=row.get("thread_ts") or None,
    )
