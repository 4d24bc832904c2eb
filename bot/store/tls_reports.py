"""SMTP TLS reports (RFC 8460), per team, and the questions the summary and alerts ask of them.

Three tables (created by one of bot.store.migrations' steps): `tls_reports`, one row per report
per team, whose unique (team, report-id) index is the dedupe (RFC 8460 §4.4: the report-id is
unique); `tls_policies`, each policy's session counts; `tls_failures`, each failure detail.
A report's sessions are dated by the middle of its date range, as aggregate reports are.

A receiver may evaluate the same sessions against two policies of one domain (Microsoft reports
the MTA-STS and the DANE policy of a domain, each with all its sessions): the domain's totals take,
per report, its policy with the most sessions, so those sessions are counted once. Every query
takes the team id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.store.database import Database
from handlers.reports.tls_report import TlsReport


@dataclass(frozen=True, kw_only=True)
class StoredTlsReport:
    """One TLS report as ingest saw it for one team; `duplicate` when the team already had it."""

    team_id: str
    report_id: str
    organization: str
    domains: tuple[str, ...]
    day: str
    sessions: int
    failed: int
    duplicate: bool


@dataclass(frozen=True)
class TlsTotals:
    """Sessions and how many of them failed."""

    sessions: int
    failed: int

    @property
    def successful(self) -> int:
        return self.sessions - self.failed


@dataclass(frozen=True, kw_only=True)
class TlsFailureTotals:
    """Failed sessions of one result type at one MX host from one sending IP."""

    result_type: str
    receiving_mx: str | None
    sending_ip: str | None
    sessions: int


# Per report and domain, the policy with the most sessions (see the module's docstring).
_COUNTED = (
    "SELECT * FROM (SELECT day, org_name, successful, failed, ROW_NUMBER() OVER (PARTITION BY report_pk, "
    "domain ORDER BY successful + failed DESC, failed DESC, id) AS n FROM tls_policies "
    "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ?) WHERE n = 1"
)


class TlsReportStore:
    """TLS reports of every team over `database`; every call is scoped to one team."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(
        self,
        team_id: str,
        report: TlsReport,
        domains: Iterable[str],
        source: str,
        now: datetime | None = None,
    ) -> StoredTlsReport:
        """Store the policies of `report` about `domains` (the team's) in one transaction, unless the
        team already has a report with its report-id."""
        when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        mine = set(domains)
        policies = [p for p in report.policies if p.domain in mine]
        day = report.day
        with self.database.write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO tls_reports (team_id, report_id, org_name, contact, date_begin, "
                "date_end, day, source, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    team_id,
                    report.report_id,
                    report.organization,
                    report.contact,
                    report.date_begin.isoformat(),
                    report.date_end.isoformat(),
                    day,
                    source[:300],
                    when,
                ],
            )
            duplicate = cursor.rowcount == 0
            if not duplicate:
                report_pk = cursor.lastrowid
                for policy in policies:
                    policy_cursor = db.execute(
                        "INSERT INTO tls_policies (team_id, report_pk, domain, day, org_name, policy_type, "
                        "policy_strings, mx_hosts, successful, failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            team_id,
                            report_pk,
                            policy.domain,
                            day,
                            report.organization,
                            policy.policy_type,
                            json.dumps(list(policy.policy_strings), ensure_ascii=False),
                            json.dumps(list(policy.mx_hosts), ensure_ascii=False),
                            policy.successful,
                            policy.failed,
                        ],
                    )
                    db.conn.executemany(
                        "INSERT INTO tls_failures (team_id, report_pk, policy_pk, domain, day, result_type, "
                        "sending_ip, receiving_mx, receiving_ip, failure_code, sessions) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            [
                                team_id,
                                report_pk,
                                policy_cursor.lastrowid,
                                policy.domain,
                                day,
                                f.result_type,
                                f.sending_ip,
                                f.receiving_mx,
                                f.receiving_ip,
                                f.failure_code,
                                f.sessions,
                            ]
                            for f in policy.failures
                        ],
                    )
        counted: dict[str, tuple[int, int]] = {}
        for policy in policies:  # the same rule as _COUNTED, for the answer about this file
            total = (policy.successful + policy.failed, policy.failed)
            counted[policy.domain] = max(counted.get(policy.domain, (0, 0)), total)
        return StoredTlsReport(
            team_id=team_id,
            report_id=report.report_id,
            organization=report.organization,
            domains=tuple(dict.fromkeys(p.domain for p in policies)),
            day=day,
            sessions=sum(s for s, _ in counted.values()),
            failed=sum(f for _, f in counted.values()),
            duplicate=duplicate,
        )

    def teams(self) -> list[str]:
        """Team ids that have TLS reports."""
        rows = self.database.connection.execute("SELECT DISTINCT team_id FROM tls_reports ORDER BY team_id")
        return [row[0] for row in rows.fetchall()]

    def totals(self, team_id: str, domain: str, first: str, last: str) -> TlsTotals:
        """Sessions and failed sessions about `domain` from `first` to `last` (days, inclusive)."""
        row = self.database.connection.execute(
            f"SELECT COALESCE(SUM(successful + failed), 0), COALESCE(SUM(failed), 0) FROM ({_COUNTED})",
            [team_id, domain, first, last],
        ).fetchone()
        return TlsTotals(int(row[0]), int(row[1]))

    def policies(self, team_id: str, domain: str, first: str, last: str) -> list[tuple[str, int, int]]:
        """(policy type, sessions, failed) per policy type, the most sessions first."""
        rows = self.database.connection.execute(
            "SELECT policy_type, SUM(successful + failed), SUM(failed) FROM tls_policies "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? GROUP BY policy_type "
            "ORDER BY SUM(successful + failed) DESC, policy_type",
            [team_id, domain, first, last],
        ).fetchall()
        return [(kind, int(sessions), int(failed)) for kind, sessions, failed in rows]

    def failures(
        self, team_id: str, domain: str, first: str, last: str, limit: int = 100
    ) -> list[TlsFailureTotals]:
        """Failed sessions by result type, receiving MX and sending IP, the most first."""
        rows = self.database.connection.execute(
            "SELECT result_type, receiving_mx, sending_ip, SUM(sessions) FROM tls_failures "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? "
            "GROUP BY result_type, receiving_mx, sending_ip "
            "ORDER BY SUM(sessions) DESC, result_type, receiving_mx, sending_ip LIMIT ?",
            [team_id, domain, first, last, limit],
        ).fetchall()
        return [
            TlsFailureTotals(result_type=kind, receiving_mx=mx, sending_ip=ip, sessions=int(sessions))
            for kind, mx, ip, sessions in rows
        ]

    def result_types(self, team_id: str, domain: str, first: str, last: str) -> dict[str, int]:
        """Failed sessions per result type from `first` to `last`."""
        rows = self.database.connection.execute(
            "SELECT result_type, SUM(sessions) FROM tls_failures WHERE team_id = ? AND domain = ? "
            "AND day BETWEEN ? AND ? GROUP BY result_type ORDER BY SUM(sessions) DESC, result_type",
            [team_id, domain, first, last],
        ).fetchall()
        return {kind: int(sessions) for kind, sessions in rows}

    def failing_hosts(self, team_id: str, domain: str, day: str, result_type: str) -> list[str]:
        """The receiving MX hosts named with `result_type` on `day`, the most failed sessions first."""
        rows = self.database.connection.execute(
            "SELECT receiving_mx FROM tls_failures WHERE team_id = ? AND domain = ? AND day = ? "
            "AND result_type = ? AND receiving_mx IS NOT NULL GROUP BY receiving_mx "
            "ORDER BY SUM(sessions) DESC, receiving_mx LIMIT 10",
            [team_id, domain, day, result_type],
        ).fetchall()
        return [row[0] for row in rows]

    def reporters(self, team_id: str, domain: str, first: str, last: str) -> list[tuple[str, int]]:
        """(organization, sessions) per reporter, the most sessions first."""
        rows = self.database.connection.execute(
            f"SELECT org_name, SUM(successful + failed) FROM ({_COUNTED}) GROUP BY org_name "
            "ORDER BY SUM(successful + failed) DESC, org_name",
            [team_id, domain, first, last],
        ).fetchall()
        return [(org or "unknown", int(sessions)) for org, sessions in rows]
