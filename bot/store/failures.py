"""DMARC failure reports, per team: each one's verdict and redacted headers, and their groups.

One table (`failure_reports`, created by one of bot.store.migrations' steps). A report is dated
by its Arrival-Date (else the moment it was read) as a UTC calendar day; reports of one day with
the same source IP, From domain and causes are one group, counted together. Every query takes
the team id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.store.database import Database
from bot.store.outbox import NewAlert, insert_alerts


@dataclass(frozen=True, kw_only=True)
class NewFailure:
    """What is stored of one failure report: nothing here is a body or an unredacted address
    unless the operator chose to keep addresses."""

    team_id: str
    digest: str
    domain: str  # the domain the report is about: Reported-Domain, else the From domain
    from_domain: str
    reporter: str
    source_ip: str | None
    mail_from: str | None
    arrived_at: datetime
    dmarc_result: str
    causes: tuple[str, ...]  # cause ids, in the verdict's order
    verdict: dict[str, object]
    headers: str
    source: str

    @property
    def day(self) -> str:
        return self.arrived_at.astimezone(UTC).date().isoformat()


@dataclass(frozen=True, kw_only=True)
class StoredFailure:
    """One failure report as ingest saw it; `duplicate` when the team already had it."""

    team_id: str
    domain: str
    from_domain: str
    source_ip: str | None
    day: str
    dmarc_result: str
    causes: tuple[str, ...]
    duplicate: bool


@dataclass(frozen=True, kw_only=True)
class FailureGroup:
    """Reports of one day with the same source IP, From domain and causes."""

    day: str
    source_ip: str | None
    from_domain: str
    causes: tuple[str, ...]
    count: int
    first: str
    last: str
    dmarc_result: str

    @property
    def key(self) -> str:
        """What identifies the group across reads: its day, source IP, From domain and causes."""
        return json.dumps([self.day, self.source_ip, self.from_domain, list(self.causes)])


class FailureStore:
    """Failure reports of every team over `database`; every call is scoped to one team."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, failure: NewFailure, now: datetime | None = None) -> StoredFailure:
        """Store `failure` unless the team already has the same report (by digest)."""
        when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        with self.database.write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO failure_reports (team_id, digest, domain, from_domain, reporter, "
                "source_ip, mail_from, day, arrived_at, dmarc_result, causes, verdict, headers, source, "
                "ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    failure.team_id,
                    failure.digest,
                    failure.domain,
                    failure.from_domain,
                    failure.reporter[:255],
                    failure.source_ip,
                    failure.mail_from,
                    failure.day,
                    failure.arrived_at.astimezone(UTC).isoformat(timespec="seconds"),
                    failure.dmarc_result,
                    json.dumps(list(failure.causes)),
                    json.dumps(failure.verdict, ensure_ascii=False),
                    failure.headers,
                    failure.source[:300],
                    when,
                ],
            )
        return StoredFailure(
            team_id=failure.team_id,
            domain=failure.domain,
            from_domain=failure.from_domain,
            source_ip=failure.source_ip,
            day=failure.day,
            dmarc_result=failure.dmarc_result,
            causes=failure.causes,
            duplicate=cursor.rowcount == 0,
        )

    def teams(self) -> list[str]:
        """Team ids that have failure reports."""
        rows = self.database.connection.execute(
            "SELECT DISTINCT team_id FROM failure_reports ORDER BY team_id"
        )
        return [row[0] for row in rows.fetchall()]

    def count(self, team_id: str, domain: str, first: str, last: str) -> int:
        """How many failure reports about `domain` (or with it as From domain) from `first` to `last`."""
        row = self.database.connection.execute(
            "SELECT COUNT(*) FROM failure_reports WHERE team_id = ? AND (domain = ? OR from_domain = ?) "
            "AND day BETWEEN ? AND ?",
            [team_id, domain, domain, first, last],
        ).fetchone()
        return int(row[0])

    def groups(self, team_id: str, domain: str, first: str, last: str) -> list[FailureGroup]:
        """The groups from `first` to `last` (days, inclusive), the largest first."""
        rows = self.database.connection.execute(
            "SELECT day, source_ip, from_domain, causes, COUNT(*), MIN(arrived_at), MAX(arrived_at), "
            "(SELECT r2.dmarc_result FROM failure_reports r2 WHERE r2.team_id = r.team_id AND "
            "r2.day = r.day AND r2.source_ip IS r.source_ip AND r2.from_domain = r.from_domain AND "
            "r2.causes = r.causes ORDER BY r2.arrived_at DESC LIMIT 1) "
            "FROM failure_reports r WHERE team_id = ? AND (domain = ? OR from_domain = ?) "
            "AND day BETWEEN ? AND ? GROUP BY day, source_ip, from_domain, causes "
            "ORDER BY COUNT(*) DESC, MAX(arrived_at) DESC",
            [team_id, domain, domain, first, last],
        ).fetchall()
        return [
            FailureGroup(
                day=day,
                source_ip=ip,
                from_domain=from_domain,
                causes=tuple(json.loads(causes)),
                count=int(count),
                first=first_at,
                last=last_at,
                dmarc_result=result or "fail",
            )
            for day, ip, from_domain, causes, count, first_at, last_at, result in rows
        ]

    def group_causes(self, team_id: str, group: FailureGroup) -> list[dict[str, str]]:
        """The causes, with their details and specific fixes, of the group's latest report (as the
        verdict said when it was read: the key name a missing key was looked up at, say)."""
        row = self.database.connection.execute(
            "SELECT verdict FROM failure_reports WHERE team_id = ? AND day = ? AND source_ip IS ? "
            "AND from_domain = ? AND causes = ? ORDER BY arrived_at DESC LIMIT 1",
            [team_id, group.day, group.source_ip, group.from_domain, json.dumps(list(group.causes))],
        ).fetchone()
        verdict = json.loads(row[0]) if row and row[0] else {}
        causes = verdict.get("causes") if isinstance(verdict, dict) else None
        return [
            {key: str(c.get(key) or "") for key in ("id", "title", "detail", "fix")}
            for c in (causes if isinstance(causes, list) else [])
            if isinstance(c, dict)
        ]

    # -- the groups told to a watch's channel (bot.reports.failure_alerts) ----------------------

    def recent_domains(self, first: str) -> list[tuple[str, str]]:
        """(team id, domain) pairs with failure reports on or after day `first`, both the domain
        each report is about and its From domain (a watch of either hears of it)."""
        rows = self.database.connection.execute(
            "SELECT team_id, domain FROM failure_reports WHERE day >= ? UNION "
            "SELECT team_id, from_domain FROM failure_reports WHERE day >= ? ORDER BY 1, 2",
            [first, first],
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def last_announced(self, team_id: str, domain: str) -> str | None:
        """When the domain's channel was last told about a new group (ISO time), or None."""
        row = self.database.connection.execute(
            "SELECT MAX(announced_at) FROM failure_notices WHERE team_id = ? AND domain = ?",
            [team_id, domain],
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def unannounced_groups(self, team_id: str, domain: str, first: str, last: str) -> list[FailureGroup]:
        """The groups from `first` to `last` the domain's channel has not been told about."""
        told = {
            row[0]
            for row in self.database.connection.execute(
                "SELECT group_key FROM failure_notices WHERE team_id = ? AND domain = ?", [team_id, domain]
            ).fetchall()
        }
        return [g for g in self.groups(team_id, domain, first, last) if g.key not in told]

    def announce(
        self,
        team_id: str,
        domain: str,
        groups: list[FailureGroup],
        alert: NewAlert,
        quiet_since: str,
        now: str,
    ) -> bool:
        """Write `alert` to the outbox and mark `groups` told, in one transaction, unless the
        domain's channel was told anything after `quiet_since` or any of `groups` was told
        already (another monitor got there first: its message is the one). True when written."""
        keys = [g.key for g in groups]
        with self.database.write() as db:
            row = db.execute(
                "SELECT MAX(announced_at) FROM failure_notices WHERE team_id = ? AND domain = ?",
                [team_id, domain],
            ).fetchone()
            if row and row[0] and str(row[0]) > quiet_since:
                return False
            marks = ",".join("?" * len(keys))
            told = db.execute(
                f"SELECT COUNT(*) FROM failure_notices WHERE team_id = ? AND domain = ? "
                f"AND group_key IN ({marks})",
                [team_id, domain, *keys],
            ).fetchone()
            if int(told[0]):
                return False
            for key in keys:
                db.execute(
                    "INSERT INTO failure_notices (team_id, domain, group_key, announced_at) "
                    "VALUES (?, ?, ?, ?)",
                    [team_id, domain, key, now],
                )
            insert_alerts(db, team_id, [alert], now)
        return True
