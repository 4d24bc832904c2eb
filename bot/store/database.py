"""The SQLite store of watches, snapshots and the alert outbox (sqlite-utils over one file).

REFERENCE.md "Storage": WAL so readers never block the writer, a busy timeout so a second writer
waits instead of failing, `BEGIN IMMEDIATE` for every read-then-write (a deferred transaction that
later wants to write fails with "database is locked" when another writer got there first), and one
connection per thread (a sqlite3 connection may not cross threads). Migrations run once at start-up,
before listeners and the scheduler, through `open_store`.

Every row belongs to one team and every query here takes the team id: a workspace never reads
another's watches, snapshots or alerts. The single exception is `teams()`, which lists team ids
only, so the monitor can then work team by team.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from bot.slack.fix_plans import FixPlan
from bot.store.reports import create_report_tables
from handlers.domain.dkim_keys import MAX_SELECTORS, InvalidSelector, validate_selector

BUSY_TIMEOUT_SECONDS = 10.0
SNAPSHOTS_KEPT_PER_WATCH = 20  # enough history for the flap window; older ones are pruned


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: every stored time is UTC."""
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


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

    def to_json(self) -> dict[str, Any]:
        return {
            "team_id": self.team_id,
            "channel_id": self.channel_id,
            "domain": self.domain,
            "selectors": list(self.selectors),
            "added_by": self.added_by,
            "created_at": self.created_at,
            "last_checked_at": self.last_checked_at,
            "last_status": self.last_status,
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


@dataclass(frozen=True)
class Decision:
    """The monitor's verdict on one check: the alerts to send, and whether the channel now knows
    this state (so later diffs start from it)."""

    alerts: list[NewAlert]
    acknowledge: bool


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


@dataclass(frozen=True)
class StoredFixPlan:
    """A fix plan the monitor verifies with the watched domain's checks, and when it was posted."""

    id: int
    plan: FixPlan
    created_at: str


@dataclass(frozen=True, kw_only=True)
class FlattenedInclude:
    """A provider's include flattened into a team's domain by a verified fix, and the addresses it
    authorised when last resolved (`terms` None: not resolved yet since the fix was verified)."""

    domain: str
    include: str
    terms: tuple[str, ...] | None
    problem: str | None  # why it could not be flattened when last resolved
    since: str


# -- migrations ---------------------------------------------------------------------------------


def _create_watches(db: sqlite_utils.Database) -> None:
    db.table("watches").create(
        {
            "id": int,
            "team_id": str,
            "channel_id": str,
            "domain": str,
            "selectors": str,
            "added_by": str,
            "created_at": str,
            "last_checked_at": str,
            "last_status": str,
            "temperror_streak": int,
            "alerted_snapshot_id": int,
        },
        pk="id",
        not_null={"team_id", "channel_id", "domain", "selectors", "created_at", "temperror_streak"},
        defaults={"selectors": "[]", "temperror_streak": 0},
    )
    db.table("watches").create_index(["team_id", "domain"], unique=True)


def _create_snapshots(db: sqlite_utils.Database) -> None:
    db.table("snapshots").create(
        {
            "id": int,
            "team_id": str,
            "watch_id": int,
            "fingerprint": str,
            "records": str,
            "findings": str,
            "verdict": str,
            "first_seen_at": str,
            "last_seen_at": str,
            "checks": int,
        },
        pk="id",
        not_null={"team_id", "watch_id", "fingerprint", "records", "findings", "verdict", "checks"},
        defaults={"checks": 1},
    )
    db.table("snapshots").create_index(["team_id", "watch_id", "id"])


def _create_alerts(db: sqlite_utils.Database) -> None:
    db.table("alerts").create(
        {
            "id": int,
            "team_id": str,
            "channel_id": str,
            "domain": str,
            "kind": str,
            "dedupe_key": str,
            "text": str,
            "blocks": str,
            "digest_block": str,
            "digest_group": str,
            "digest_summary": str,
            "state": str,
            "ts": str,
            "attempts": int,
            "last_error": str,
            "created_at": str,
            "posted_at": str,
        },
        pk="id",
        not_null={
            "team_id",
            "channel_id",
            "domain",
            "kind",
            "dedupe_key",
            "text",
            "blocks",
            "state",
            "attempts",
            "created_at",
        },
        defaults={"state": "pending", "attempts": 0},
    )
    db.table("alerts").create_index(["team_id", "dedupe_key"], unique=True)
    db.table("alerts").create_index(["team_id", "state", "channel_id"])


def _create_fix_plans(db: sqlite_utils.Database) -> None:
    # `plan_key` names the plan by what it publishes and where it was posted (FixPlan.key), so a
    # replayed submission stores it once and a Verify button finds its row.
    db.table("fix_plans").create(
        {
            "id": int,
            "team_id": str,
            "domain": str,
            "plan_key": str,
            "plan": str,
            "state": str,
            "created_at": str,
            "settled_at": str,
        },
        pk="id",
        not_null={"team_id", "domain", "plan_key", "plan", "state", "created_at"},
        defaults={"state": "pending"},
    )
    db.table("fix_plans").create_index(["team_id", "plan_key"], unique=True)
    db.table("fix_plans").create_index(["team_id", "domain", "state"])


def _add_alert_threads(db: sqlite_utils.Database) -> None:
    db.table("alerts").add_column("thread_ts", str)


def _create_flattened_includes(db: sqlite_utils.Database) -> None:
    db.table("flattened_includes").create(
        {
            "id": int,
            "team_id": str,
            "domain": str,
            "include": str,
            "terms": str,
            "problem": str,
            "since": str,
            "changed_at": str,
        },
        pk="id",
        not_null={"team_id", "domain", "include", "since"},
    )
    db.table("flattened_includes").create_index(["team_id", "domain", "include"], unique=True)


# Append only: a released version is never edited, a change is a new version.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "watches", _create_watches),
    (2, "snapshots", _create_snapshots),
    (3, "alerts outbox", _create_alerts),
    (4, "aggregate reports", create_report_tables),  # issue 7: bot/store/reports.py
    (5, "fix plans", _create_fix_plans),  # issue 6: the monitor verifies them
    (6, "threaded alerts", _add_alert_threads),  # a plan's "fixed" goes in its thread
    (7, "flattened includes", _create_flattened_includes),  # watched for drift once verified
]


def _connect(path: str) -> sqlite_utils.Database:
    # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE), sqlite3 must not.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    return sqlite_utils.Database(conn)


def _enable_wal(db: sqlite_utils.Database) -> None:
    """WAL is a property of the file: set once, every later connection uses it. Switching needs the
    file to itself and SQLite does not wait for that (no busy handler), so two processes starting
    on a new file retry here instead of failing."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def apply_migrations(path: str) -> list[int]:
    """Bring the database file at `path` to the latest schema; returns the versions applied."""
    db = _connect(path)
    try:
        _enable_wal(db)
        db.execute("BEGIN IMMEDIATE")  # two processes starting at once: one migrates, one waits
        try:
            if "migrations" not in db.table_names():
                db.table("migrations").create({"version": int, "name": str, "applied_at": str}, pk="version")
            done = {row["version"] for row in db.table("migrations").rows}
            applied = []
            for version, name, migrate in MIGRATIONS:
                if version in done:
                    continue
                migrate(db)
                db.table("migrations").insert(
                    {"version": version, "name": name, "applied_at": _iso(utcnow())}
                )
                applied.append(version)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return applied
    finally:
        db.close()


# -- the store ----------------------------------------------------------------------------------


class WatchStore:
    """Watches, snapshots and the alert outbox of every team, each call scoped to one team."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite_utils.Database] = []
        self._all_lock = threading.Lock()

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection (a sqlite3 connection must not be shared across threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def close(self) -> None:
        """Close this thread's connection, and the others' when their threads are gone."""
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):
                    db.close()
            self._all.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A read-then-write transaction: BEGIN IMMEDIATE takes the write lock up front."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- teams and watches -----------------------------------------------------------------------

    def teams(self) -> list[str]:
        """Team ids with watches or pending alerts (ids only: no team's rows are read here)."""
        rows = self.db.execute(
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
        when = _iso(now or utcnow())
        with self.write() as db:
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
            row = self._watch_row(team_id, domain)
        assert row is not None
        return _watch(row), existing is None

    def remove_watch(self, team_id: str, domain: str) -> bool:
        """Stop watching; its snapshots and undelivered alerts go with it. False if not watched."""
        with self.write() as db:
            row = self._watch_row(team_id, domain)
            if row is None:
                return False
            db.execute("DELETE FROM snapshots WHERE team_id = ? AND watch_id = ?", [team_id, row["id"]])
            db.execute(
                "DELETE FROM alerts WHERE team_id = ? AND domain = ? AND state = 'pending'", [team_id, domain]
            )
            db.execute("DELETE FROM watches WHERE team_id = ? AND id = ?", [team_id, row["id"]])
        return True

    def add_selectors(self, team_id: str, domain: str, selectors: Sequence[str]) -> Watch | None:
        """Add DKIM selectors to the team's watch of `domain`: malformed ones are dropped, known
        ones kept once, at most MAX_SELECTORS in all (the first come stay). Returns the watch as
        stored, None when the domain is not watched."""
        wanted = []
        for selector in selectors:
            try:
                wanted.append(validate_selector(selector))
            except InvalidSelector:
                continue  # from a report anyone can send: skipped, never an error
        # Read and written in one BEGIN IMMEDIATE: a /dmarc watch at the same moment is not lost.
        with self.write() as db:
            row = self._watch_row(team_id, domain)
            if row is None:
                return None
            current = _watch(row).selectors
            merged = list(dict.fromkeys([*current, *wanted]))[:MAX_SELECTORS]
            if merged != list(current):
                db.table("watches").update(row["id"], {"selectors": json.dumps(merged)})
                row = self._watch_row(team_id, domain)
        return _watch(row) if row else None

    def watch(self, team_id: str, domain: str) -> Watch | None:
        """The team's watch of `domain`, if any."""
        row = self._watch_row(team_id, domain)
        return _watch(row) if row else None

    def watches(self, team_id: str) -> list[Watch]:
        """The team's watches, by domain."""
        rows = self.db.table("watches").rows_where("team_id = ?", [team_id], order_by="domain")
        return [_watch(row) for row in rows]

    def _watch_row(self, team_id: str, domain: str) -> dict[str, Any] | None:
        rows = list(self.db.table("watches").rows_where("team_id = ? AND domain = ?", [team_id, domain]))
        return rows[0] if rows else None

    # -- snapshots -------------------------------------------------------------------------------

    def latest_snapshot(self, team_id: str, watch_id: int) -> Snapshot | None:
        """The most recent snapshot of a watch."""
        rows = list(
            self.db.table("snapshots").rows_where(
                "team_id = ? AND watch_id = ?", [team_id, watch_id], order_by="id desc", limit=1
            )
        )
        return _snapshot(rows[0]) if rows else None

    def fingerprints_seen_since(self, team_id: str, watch_id: int, since: datetime) -> set[str]:
        """Fingerprints of the watch's states seen at or after `since` (the flap window)."""
        rows = self.db.execute(
            "SELECT fingerprint FROM snapshots WHERE team_id = ? AND watch_id = ? AND last_seen_at >= ?",
            [team_id, watch_id, _iso(since)],
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
    ) -> Decision | None:
        """Store a good check in one BEGIN IMMEDIATE transaction: read the watch's history, let
        `decide` say what to alert, then write the snapshot, the watch's status and the alerts to
        the outbox, so a crash leaves all of it or none and two monitors cannot both alert.
        Returns the decision, or None when the watch was removed meanwhile."""
        when = _iso(now or utcnow())
        with self.write() as db:
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
            if latest is not None and latest.fingerprint == state.fingerprint:
                snapshot_id = latest.id
                db.table("snapshots").update(snapshot_id, {"last_seen_at": when, "checks": latest.checks + 1})
            else:
                snapshot_id = (
                    db.table("snapshots")
                    .insert(
                        {
                            "team_id": team_id,
                            "watch_id": watch_id,
                            "fingerprint": state.fingerprint,
                            "records": json.dumps(state.records, sort_keys=True),
                            "findings": json.dumps(state.findings),
                            "verdict": state.verdict,
                            "first_seen_at": when,
                            "last_seen_at": when,
                            "checks": 1,
                        }
                    )
                    .last_pk
                    or 0
                )
            update: dict[str, Any] = {
                "last_checked_at": when,
                "last_status": state.verdict,
                "temperror_streak": 0,
            }
            if decision.acknowledge:
                update["alerted_snapshot_id"] = snapshot_id
            db.table("watches").update(watch_id, update)
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
            self._insert_alerts(team_id, decision.alerts, when)
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
        when = _iso(now or utcnow())
        with self.write() as db:
            row = self._watch_by_id(team_id, watch_id)
            if row is None:
                return 0
            streak = int(row["temperror_streak"]) + 1
            status = "cannot_check" if streak >= alert_at_streak else row["last_status"]
            db.table("watches").update(
                watch_id, {"last_checked_at": when, "last_status": status, "temperror_streak": streak}
            )
            if streak == alert_at_streak:
                self._insert_alerts(team_id, [make_alert(_watch(row), streak)], when)
            return streak

    def _snapshot_by_id(self, team_id: str, snapshot_id: int | None) -> Snapshot | None:
        if snapshot_id is None:
            return None
        rows = list(self.db.table("snapshots").rows_where("team_id = ? AND id = ?", [team_id, snapshot_id]))
        return _snapshot(rows[0]) if rows else None

    def _watch_by_id(self, team_id: str, watch_id: int) -> dict[str, Any] | None:
        rows = list(self.db.table("watches").rows_where("team_id = ? AND id = ?", [team_id, watch_id]))
        return rows[0] if rows else None

    # -- the outbox ------------------------------------------------------------------------------

    def add_alerts(self, team_id: str, alerts: Sequence[NewAlert], now: datetime | None = None) -> int:
        """Write alerts to the outbox (an alert whose dedupe key is already there is skipped)."""
        with self.write():
            return self._insert_alerts(team_id, alerts, _iso(now or utcnow()))

    def _insert_alerts(self, team_id: str, alerts: Sequence[NewAlert], when: str) -> int:
        written = 0
        for alert in alerts:
            cursor = self.db.execute(
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

    def pending_alerts(self, team_id: str) -> list[Alert]:
        """The team's undelivered alerts, oldest first."""
        rows = self.db.table("alerts").rows_where(
            "team_id = ? AND state = 'pending'", [team_id], order_by="id"
        )
        return [_alert(row) for row in rows]

    def alerts(self, team_id: str, state: str | None = None) -> list[Alert]:
        """The team's alerts (in one state, or all), oldest first."""
        where, args = "team_id = ?", [team_id]
        if state is not None:
            where, args = where + " AND state = ?", [team_id, state]
        return [_alert(row) for row in self.db.table("alerts").rows_where(where, args, order_by="id")]

    def mark_posted(
        self, team_id: str, alert_ids: Sequence[int], ts: str | None, now: datetime | None = None
    ) -> None:
        """The message carrying these alerts was accepted by Slack with timestamp `ts`."""
        when = _iso(now or utcnow())
        with self.write() as db:
            for alert_id in alert_ids:
                db.execute(
                    "UPDATE alerts SET state = 'posted', ts = ?, posted_at = ?, "
                    "attempts = attempts + 1 WHERE team_id = ? AND id = ?",
                    [ts, when, team_id, alert_id],
                )

    def mark_attempt_failed(
        self, team_id: str, alert_ids: Sequence[int], error: str, give_up_after: int
    ) -> None:
        """A post failed: count the attempt; after `give_up_after` attempts the alert is `failed`."""
        with self.write() as db:
            for alert_id in alert_ids:
                db.execute(
                    "UPDATE alerts SET attempts = attempts + 1, last_error = ?, state = CASE "
                    "WHEN attempts + 1 >= ? THEN 'failed' ELSE state END "
                    "WHERE team_id = ? AND id = ? AND state = 'pending'",
                    [error[:500], give_up_after, team_id, alert_id],
                )

    # -- fix plans -------------------------------------------------------------------------------

    def save_fix_plan(self, plan: FixPlan, now: datetime | None = None) -> bool:
        """Remember a posted plan so the monitor verifies it with the domain's checks; False when
        it was already stored (a replayed submission)."""
        with self.write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO fix_plans (team_id, domain, plan_key, plan, state, "
                "created_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                [plan.team_id, plan.domain, plan.key(), json.dumps(plan.to_json()), _iso(now or utcnow())],
            )
            return cursor.rowcount == 1

    def pending_fix_plans(self, team_id: str, domain: str) -> list[StoredFixPlan]:
        """The team's plans for `domain` not settled yet, oldest first."""
        rows = self.db.table("fix_plans").rows_where(
            "team_id = ? AND domain = ? AND state = 'pending'", [team_id, domain], order_by="id"
        )
        return [
            StoredFixPlan(row["id"], FixPlan.from_json(json.loads(row["plan"])), row["created_at"])
            for row in rows
        ]

    def settle_fix_plan(
        self,
        team_id: str,
        plan: FixPlan,
        state: str,
        alerts: Sequence[NewAlert] = (),
        now: datetime | None = None,
    ) -> bool:
        """Close a pending plan as `verified` or `expired` and write `alerts` to the outbox in the
        same transaction: a crash leaves the plan pending with no alert, or settled with its
        alert, never one without the other. False when it was not pending (already settled)."""
        if state not in ("verified", "expired"):
            raise ValueError(f"not a settled state: {state}")
        when = _iso(now or utcnow())
        with self.write() as db:
            cursor = db.execute(
                "UPDATE fix_plans SET state = ?, settled_at = ? "
                "WHERE team_id = ? AND plan_key = ? AND state = 'pending'",
                [state, when, team_id, plan.key()],
            )
            if cursor.rowcount != 1:
                return False
            self._insert_alerts(team_id, alerts, when)
            if state == "verified":
                for include in plan.watch_includes:
                    # A re-flatten starts the include's history afresh: the next resolution
                    # is its baseline.
                    db.execute(
                        "INSERT INTO flattened_includes (team_id, domain, include, since) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (team_id, domain, include) DO UPDATE "
                        "SET terms = NULL, problem = NULL, since = excluded.since",
                        [team_id, plan.domain, include, when],
                    )
            return True

    def flattened_includes(self, team_id: str, domain: str) -> list[FlattenedInclude]:
        """The provider includes the team's verified fixes flattened into `domain`."""
        rows = self.db.table("flattened_includes").rows_where(
            "team_id = ? AND domain = ?", [team_id, domain], order_by="include"
        )
        return [
            FlattenedInclude(
                domain=row["domain"],
                include=row["include"],
                terms=None if row["terms"] is None else tuple(json.loads(row["terms"])),
                problem=row["problem"],
                since=row["since"],
            )
            for row in rows
        ]

    def update_flattened_include(
        self,
        team_id: str,
        known: FlattenedInclude,
        terms: Sequence[str],
        problem: str | None,
        alerts: Sequence[NewAlert] = (),
        now: datetime | None = None,
    ) -> bool:
        """Store what `known.include` authorises now, with the alerts about the change, in one
        transaction, only if the row still holds `known` (two monitors never both alert).
        Returns whether it was written."""
        when = _iso(now or utcnow())
        before = None if known.terms is None else json.dumps(list(known.terms))
        with self.write() as db:
            cursor = db.execute(
                "UPDATE flattened_includes SET terms = ?, problem = ?, changed_at = ? "
                "WHERE team_id = ? AND domain = ? AND include = ? AND terms IS ? AND problem IS ?",
                [
                    json.dumps(list(terms)),
                    problem,
                    when,
                    team_id,
                    known.domain,
                    known.include,
                    before,
                    known.problem,
                ],
            )
            if cursor.rowcount != 1:
                return False
            self._insert_alerts(team_id, alerts, when)
            return True


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


def open_store(path: str) -> WatchStore:
    """Apply any pending migrations to the file at `path`, then return a store over it."""
    apply_migrations(path)
    return WatchStore(path)


_shared: dict[str, WatchStore] = {}
_shared_lock = threading.Lock()


def shared_store(path: str) -> WatchStore:
    """The process's one store for the file at `path`: migrated on first use, so migrations run
    once per process, before the first listener or cycle uses it (serve calls this first)."""
    with _shared_lock:
        store = _shared.get(path)
        if store is None:
            store = _shared[path] = open_store(path)
        return store
