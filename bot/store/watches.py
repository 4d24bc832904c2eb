"""Watched domains, the snapshots of what their checks saw, and their state.

The state is the last check, the status, the outage streak and what the channel was last told.

A check's snapshot, the watch's status and the alerts they call for are one transaction
(`apply_check`, `apply_outage`): the alerts go to the outbox through bot.store.outbox.insert_alerts
on the connection this store's transaction holds, so a crash leaves all of it or none and two
monitors cannot both alert. Every query takes the team id: a workspace never reads another's
watches or snapshots. The single exception is `teams()`, which lists team ids only, so the
monitor can then work team by team.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.store.database import Database, iso, utcnow
from bot.store.outbox import DIGEST_KIND, NewAlert, discard_pending, insert_alerts
from handlers.domain.dkim_keys import MAX_SELECTORS, InvalidSelector, validate_selector

SNAPSHOTS_KEPT_PER_WATCH = 20  # enough history for the flap window; older ones are pruned
DIGEST_CADENCES = ("daily", "weekly")  # a watch's scheduled report digest; NULL is off


@dataclass(frozen=True, kw_only=True)
class Watch:
    """One watched domain of one team, and where its alerts go."""

    id: int
    team_id: str
    channel_id: str
    domain: str
    selectors: tuple[str, ...]
    added_by: str | None
    created_at: str
    last_checked_at: str | None
    last_status: str | None  # pass / fail / unknown / cannot_check, None before the first check
    temperror_streak: int
    found_selectors: tuple[str, ...] = ()  # found by the last probe of the common selectors
    selectors_probed_at: str | None = None  # None: never probed
    digest: str | None = None  # the scheduled report digest: "daily", "weekly", None (off)

    @property
    def checked_selectors(self) -> tuple[str, ...]:
        """The selectors each cycle checks: named (by a user or seen in reports), then found."""
        return tuple(dict.fromkeys([*self.selectors, *self.found_selectors]))

    def to_json(self) -> dict[str, Any]:
        return {
            "team_id": self.team_id,
            "channel_id": self.channel_id,
            "domain": self.domain,
            "selectors": list(self.checked_selectors),
            "selectors_probed_at": self.selectors_probed_at,
            "added_by": self.added_by,
            "created_at": self.created_at,
            "last_checked_at": self.last_checked_at,
            "last_status": self.last_status,
            "digest": self.digest,
        }


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What one good check of a watch saw: normalised records, finding keys and the verdict."""

    id: int
    watch_id: int
    fingerprint: str
    records: dict[str, str | None]
    findings: list[dict[str, str]]
    verdict: str
    first_seen_at: str
    last_seen_at: str
    checks: int  # good checks in a row that saw this state

    def dmarc_record(self, domain: str) -> str | None:
        """The DMARC record this state saw for `domain`, without the note saying where a record the
        tree walk found is inherited from (None: there was none)."""
        raw = self.records.get(dmarc_record_name(domain))
        return raw.split(INHERITED_NOTE, 1)[0] if raw else None


# How a state names the domain's DMARC record, and marks one inherited through the tree walk
# (written by bot.monitor.watch_state, read back by Snapshot.dmarc_record).
INHERITED_NOTE = "  (inherited from "


def dmarc_record_name(domain: str) -> str:
    return f"DMARC _dmarc.{domain}"


@dataclass(frozen=True)
class ObservedState:
    """What a good check saw, as stored: normalised records, findings and the verdict."""

    fingerprint: str
    records: dict[str, str | None]
    findings: list[dict[str, str]]
    verdict: str


@dataclass(frozen=True)
class WatchHistory:
    """What the monitor needs to decide on alerts: the watch, the state the channel was last told
    about, the latest state seen, and the fingerprints seen within the flap window."""

    watch: Watch
    alerted: Snapshot | None
    latest: Snapshot | None
    recent_fingerprints: set[str]


@dataclass(frozen=True)
class Decision:
    """The monitor's verdict on one check: the alerts to send, and whether the channel now knows
    this state (so later diffs start from it)."""

    alerts: list[NewAlert]
    acknowledge: bool
    # the state to store instead of the one observed, when deciding completed it from the history
    # (a part whose host could not be reached, taken from the last good check)
    state: ObservedState | None = None


# A watch to add: (team id, channel id, domain, selectors, added by).
NewWatch = tuple[str, str, str, Sequence[str], str | None]


# -- the store ----------------------------------------------------------------------------------


class WatchStore:
    """Watches and their snapshots of every team over `database`, each call scoped to one team."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def teams(self) -> list[str]:
        """Team ids with watches or pending alerts (ids only: no team's rows are read here). The
        outbox is read too: a team whose last watch is gone may still have alerts to deliver, and
        the command line's choice of workspace has always counted it."""
        rows = self.database.connection.execute(
            "SELECT team_id FROM watches UNION SELECT team_id FROM alerts WHERE state = 'pending' "
            "ORDER BY team_id"
        ).fetchall()
        return [row[0] for row in rows]

    def add_watch(
        self,
        team_id: str,
        channel_id: str,
        domain: str,
        selectors: Sequence[str],
        added_by: str | None,
        now: datetime | None = None,
    ) -> tuple[Watch, bool]:
        """Watch `domain` for `team_id`, alerts to `channel_id`; a domain already watched by the
        team moves to this channel and takes these selectors. Returns (watch, newly added)."""
        with self.database.write() as db:
            newly = self._upsert(db, team_id, channel_id, domain, selectors, added_by, iso(now or utcnow()))
            row = self._watch_row(team_id, domain)
        assert row is not None
        return _watch(row), newly

    def add_watches(self, entries: Sequence[NewWatch], now: datetime | None = None) -> int:
        """Add or update every watch of `entries` (team, channel, domain, selectors, added by) in one
        transaction: all of them or, on any failure or a kill, none. Returns how many were new."""
        when = iso(now or utcnow())
        with self.database.write() as db:
            return sum(self._upsert(db, *entry, when) for entry in entries)

    def _upsert(
        self,
        db: sqlite_utils.Database,
        team_id: str,
        channel_id: str,
        domain: str,
        selectors: Sequence[str],
        added_by: str | None,
        when: str,
    ) -> bool:
        existing = self._watch_row(team_id, domain)
        values = {"channel_id": channel_id, "selectors": json.dumps(list(selectors))}
        if existing is None:
            db.table("watches").insert(
                {
                    "team_id": team_id,
                    "domain": domain,
                    "added_by": added_by,
                    "created_at": when,
                    "temperror_streak": 0,
                    **values,
                }
            )
        else:
            db.table("watches").update(existing["id"], values)
        return existing is None

    def remove_watch(self, team_id: str, domain: str) -> bool:
        """Stop watching; its snapshots and undelivered alerts go with it. False if not watched."""
        with self.database.write() as db:
            row = self._watch_row(team_id, domain)
            if row is None:
                return False
            db.execute("DELETE FROM snapshots WHERE team_id = ? AND watch_id = ?", [team_id, row["id"]])
            discard_pending(db, team_id, domain)
            db.execute("DELETE FROM watches WHERE team_id = ? AND id = ?", [team_id, row["id"]])
        return True

    def add_selectors(self, team_id: str, domain: str, selectors: Sequence[str]) -> Watch | None:
        """Add DKIM selectors to the team's watch of `domain`: malformed ones are dropped, known
        ones kept once, at most MAX_SELECTORS in all (the first come stay). A new one makes the
        next cycle probe the common selectors again: the domain may have a new sender. Returns the
        watch as stored, None when the domain is not watched."""
        wanted = []
        for selector in selectors:
            try:
                wanted.append(validate_selector(selector))
            except InvalidSelector:
                continue  # from a report anyone can send: skipped, never an error
        # Read and written in one BEGIN IMMEDIATE: a /dmarc watch at the same moment is not lost.
        with self.database.write() as db:
            row = self._watch_row(team_id, domain)
            if row is None:
                return None
            current = _watch(row).selectors
            merged = list(dict.fromkeys([*current, *wanted]))[:MAX_SELECTORS]
            if merged != list(current):
                db.table("watches").update(
                    row["id"], {"selectors": json.dumps(merged), "selectors_probed_at": None}
                )
                row = self._watch_row(team_id, domain)
        return _watch(row) if row else None

    def set_digest(self, team_id: str, domain: str, every: str | None) -> Watch | None:
        """Set the team's watch of `domain` to a digest `every` day or week ("daily", "weekly"),
        or none (None: its digests not yet posted are dropped too). Returns the watch as stored,
        None when the domain is not watched."""
        if every not in DIGEST_CADENCES and every is not None:
            raise ValueError(f"digest cadence {every!r}")
        with self.database.write() as db:
            row = self._watch_row(team_id, domain)
            if row is None:
                return None
            db.execute("UPDATE watches SET digest = ? WHERE id = ?", [every, row["id"]])
            if every is None:
                discard_pending(db, team_id, domain, kind=DIGEST_KIND)
            row = self._watch_row(team_id, domain)
        return _watch(row) if row else None

    def watch(self, team_id: str, domain: str) -> Watch | None:
        """The team's watch of `domain`, if any."""
        row = self._watch_row(team_id, domain)
        return _watch(row) if row else None

    def watches(self, team_id: str) -> list[Watch]:
        """The team's watches, by domain."""
        rows = self.database.connection.table("watches").rows_where(
            "team_id = ?", [team_id], order_by="domain"
        )
        return [_watch(row) for row in rows]

    def _watch_row(self, team_id: str, domain: str) -> dict[str, Any] | None:
        rows = list(
            self.database.connection.table("watches").rows_where(
                "team_id = ? AND domain = ?", [team_id, domain]
            )
        )
        return rows[0] if rows else None

    # -- snapshots -------------------------------------------------------------------------------

    def latest_snapshot(self, team_id: str, watch_id: int) -> Snapshot | None:
        """The most recent snapshot of a watch."""
        rows = list(
            self.database.connection.table("snapshots").rows_where(
                "team_id = ? AND watch_id = ?", [team_id, watch_id], order_by="id desc", limit=1
            )
        )
        return _snapshot(rows[0]) if rows else None

    def snapshot_at(self, team_id: str, watch_id: int, moment: str) -> Snapshot | None:
        """The watch's state as it stood at `moment` (an ISO time): the last snapshot first seen
        by then, else the oldest one kept."""
        table = self.database.connection.table("snapshots")
        rows = list(
            table.rows_where(
                "team_id = ? AND watch_id = ? AND first_seen_at <= ?",
                [team_id, watch_id, moment],
                order_by="first_seen_at desc, id desc",
                limit=1,
            )
        )
        if not rows:
            rows = list(
                table.rows_where("team_id = ? AND watch_id = ?", [team_id, watch_id], order_by="id", limit=1)
            )
        return _snapshot(rows[0]) if rows else None

    def fingerprints_seen_since(self, team_id: str, watch_id: int, since: datetime) -> set[str]:
        """Fingerprints of the watch's states seen at or after `since` (the flap window)."""
        rows = self.database.connection.execute(
            "SELECT fingerprint FROM snapshots WHERE team_id = ? AND watch_id = ? AND last_seen_at >= ?",
            [team_id, watch_id, iso(since)],
        ).fetchall()
        return {row[0] for row in rows}

    def apply_check(
        self,
        team_id: str,
        watch_id: int,
        state: ObservedState,
        decide: Callable[[WatchHistory], Decision],
        flap_since: datetime,
        now: datetime | None = None,
        found_selectors: Sequence[str] | None = None,
    ) -> Decision | None:
        """Store a good check in one BEGIN IMMEDIATE transaction: read the watch's history, let
        `decide` say what to alert, then write the snapshot, the watch's status and the alerts to
        the outbox, so a crash leaves all of it or none and two monitors cannot both alert.
        `found_selectors`, when the check probed the common selectors, is what it found.
        Returns the decision, or None when the watch was removed meanwhile."""
        when = iso(now or utcnow())
        with self.database.write() as db:
            row = self._watch_by_id(team_id, watch_id)
            if row is None:
                return None
            latest = self.latest_snapshot(team_id, watch_id)
            history = WatchHistory(
                watch=_watch(row),
                latest=latest,
                alerted=self._snapshot_by_id(team_id, row["alerted_snapshot_id"]),
                recent_fingerprints=self.fingerprints_seen_since(team_id, watch_id, flap_since),
            )
            decision = decide(history)
            state = decision.state or state
            if latest is not None and latest.fingerprint == state.fingerprint:
                snapshot_id = latest.id
                db.execute(
                    "UPDATE snapshots SET last_seen_at = ?, checks = ? WHERE id = ?",
                    [when, latest.checks + 1, snapshot_id],
                )
            else:
                cursor = db.execute(
                    "INSERT INTO snapshots (team_id, watch_id, fingerprint, records, findings, verdict, "
                    "first_seen_at, last_seen_at, checks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    [
                        team_id,
                        watch_id,
                        state.fingerprint,
                        json.dumps(state.records, sort_keys=True),
                        json.dumps(state.findings),
                        state.verdict,
                        when,
                        when,
                    ],
                )
                snapshot_id = cursor.lastrowid or 0
            update: dict[str, Any] = {
                "last_checked_at": when,
                "last_status": state.verdict,
                "temperror_streak": 0,
            }
            if decision.acknowledge:
                update["alerted_snapshot_id"] = snapshot_id
            if found_selectors is not None:
                update["found_selectors"] = json.dumps(list(found_selectors))
                update["selectors_probed_at"] = when
            # Plain SQL, as above: sqlite_utils' update reads the table's schema and the row
            # again, three statements more per domain of every monitor cycle.
            columns = ", ".join(f"{column} = ?" for column in update)
            db.execute(f"UPDATE watches SET {columns} WHERE id = ?", [*update.values(), watch_id])
            # Prune old states, but never the one the channel was last told about.
            db.execute(
                "DELETE FROM snapshots WHERE team_id = ? AND watch_id = ? AND id NOT IN "
                "(SELECT id FROM snapshots WHERE team_id = ? AND watch_id = ? "
                "ORDER BY id DESC LIMIT ?) AND id != ?",
                [
                    team_id,
                    watch_id,
                    team_id,
                    watch_id,
                    SNAPSHOTS_KEPT_PER_WATCH,
                    update.get("alerted_snapshot_id", row["alerted_snapshot_id"]) or 0,
                ],
            )
            insert_alerts(db, team_id, decision.alerts, when)
            return decision

    def apply_outage(
        self,
        team_id: str,
        watch_id: int,
        alert_at_streak: int,
        make_alert: Callable[[Watch, int], NewAlert],
        now: datetime | None = None,
    ) -> int:
        """Count a cycle whose check hit DNS failures; the snapshots are left as they were. When
        the streak reaches `alert_at_streak`, `make_alert(watch, streak)` goes to the outbox in
        the same transaction. Returns the new streak (0 when the watch was removed meanwhile)."""
        when = iso(now or utcnow())
        with self.database.write() as db:
            row = self._watch_by_id(team_id, watch_id)
            if row is None:
                return 0
            streak = int(row["temperror_streak"]) + 1
            status = "cannot_check" if streak >= alert_at_streak else row["last_status"]
            db.table("watches").update(
                watch_id, {"last_checked_at": when, "last_status": status, "temperror_streak": streak}
            )
            if streak == alert_at_streak:
                insert_alerts(db, team_id, [make_alert(_watch(row), streak)], when)
            return streak

    def _snapshot_by_id(self, team_id: str, snapshot_id: int | None) -> Snapshot | None:
        if snapshot_id is None:
            return None
        rows = list(
            self.database.connection.table("snapshots").rows_where(
                "team_id = ? AND id = ?", [team_id, snapshot_id]
            )
        )
        return _snapshot(rows[0]) if rows else None

    def _watch_by_id(self, team_id: str, watch_id: int) -> dict[str, Any] | None:
        rows = list(
            self.database.connection.table("watches").rows_where(
                "team_id = ? AND id = ?", [team_id, watch_id]
            )
        )
        return rows[0] if rows else None


def _watch(row: dict[str, Any]) -> Watch:
    return Watch(
        id=row["id"],
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        domain=row["domain"],
        selectors=tuple(json.loads(row["selectors"] or "[]")),
        added_by=row["added_by"],
        created_at=row["created_at"],
        last_checked_at=row["last_checked_at"],
        last_status=row["last_status"],
        temperror_streak=int(row["temperror_streak"] or 0),
        found_selectors=tuple(json.loads(row.get("found_selectors") or "[]")),
        selectors_probed_at=row.get("selectors_probed_at"),
        digest=row.get("digest"),
    )


def _snapshot(row: dict[str, Any]) -> Snapshot:
    return Snapshot(
        id=row["id"],
        watch_id=row["watch_id"],
        fingerprint=row["fingerprint"],
        records=json.loads(row["records"]),
        findings=json.loads(row["findings"]),
        verdict=row["verdict"],
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
        checks=int(row["checks"] or 1),
    )
