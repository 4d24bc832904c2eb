"""Ingested DMARC aggregate reports, per team, and the questions the summary and alerts ask of them.

Three tables (created by one of bot.store.migrations' steps):
- `agg_reports`: one row per report per team. The unique index on (team, reporter, report id,
  policy domain, date range) is the dedupe: a report mailed twice, shared in Slack after arriving
  by IMAP, or re-read after a crash is stored, and counted, once.
- `agg_rows`: the report's records grouped by source IP and outcome (a million records from a few
  hundred IPs become a few hundred rows).
- `agg_selectors`: DKIM selectors the receivers saw, per report, with message counts.

Each report's messages are dated by the middle of its date range (RFC 9990 §3: ranges are
normally one UTC day), so a day is a calendar date in UTC. Every query takes the team id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from bot.store.database import Database
from handlers.reports.aggregate import AggregateReport, Record

MAX_WHY = 300  # a failure reason names at most two domains of 255 characters, clipped


# -- what a record says -------------------------------------------------------------------------


def spf_failure(record: Record) -> str | None:
    """Why SPF did not give DMARC a pass for this record, or None when it did (RFC 9989 §4.4)."""
    if record.spf_eval == "pass":
        return None
    # SPF aligns on the MAIL FROM identity, never HELO (RFC 9989 §4.4.2).
    results = [r for r in record.spf if r.scope in (None, "mfrom")] or list(record.spf)
    passed = next((r for r in results if r.result == "pass"), None)
    if passed is not None:
        return _clip(
            f"SPF passed for {passed.domain or 'an unnamed domain'} but it is not "
            f"aligned with {record.header_from or 'the From domain'}"
        )
    if results:
        first = results[0]
        return _clip(f"SPF {first.result or 'gave no result'} for {first.domain or 'the MAIL FROM'}")
    return "no SPF result"


def dkim_failure(record: Record) -> str | None:
    """Why DKIM did not give DMARC a pass for this record, or None when it did."""
    if record.dkim_eval == "pass":
        return None
    passed = next((r for r in record.dkim if r.result == "pass"), None)
    if passed is not None:
        return _clip(
            f"DKIM passed for d={passed.domain or '?'} but it is not aligned with "
            f"{record.header_from or 'the From domain'}"
        )
    if record.dkim:
        first = record.dkim[0]
        return _clip(
            f"DKIM {first.result or 'gave no result'} for d={first.domain or '?'}"
            + (f" s={first.selector}" if first.selector else "")
        )
    return "no DKIM signature"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_WHY else text[: MAX_WHY - 1] + "…"


def report_day(report: AggregateReport) -> str:
    """The UTC day a report's messages are counted on: the middle of its date range."""
    middle = report.date_begin + (report.date_end - report.date_begin) / 2
    return middle.astimezone(UTC).date().isoformat()


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StoredReport:
    """One report as ingest saw it; `duplicate` when the team already had it (not counted again)."""

    team_id: str
    domain: str
    reporter: str
    report_id: str
    day: str
    messages: int
    records: int
    duplicate: bool
    truncated: bool
    skipped_records: int


@dataclass(frozen=True)
class Totals:
    """Messages and how many passed DMARC."""

    messages: int
    passed: int

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.messages if self.messages else None


@dataclass(frozen=True, kw_only=True)
class SourceTotals:
    """One source IP over a window."""

    ip: str
    messages: int
    passed: int
    spf_aligned: int
    dkim_aligned: int


@dataclass(frozen=True)
class FailureReason:
    """Messages from one source that failed DMARC, and why SPF and DKIM did not pass."""

    ip: str
    spf_why: str | None
    dkim_why: str | None
    messages: int


@dataclass(frozen=True, kw_only=True)
class SelectorTotals:
    """A DKIM selector seen in reports: messages signed with it and how many of those passed."""

    selector: str
    dkim_domain: str
    messages: int
    passed: int
    last_day: str


@dataclass(frozen=True)
class DayTotals:
    """One day's volume and DMARC passes."""

    day: str
    messages: int
    passed: int


# -- the store ----------------------------------------------------------------------------------


class ReportStore:
    """Reports of every team over `database`; every call is scoped to one team."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add_report(
        self, team_id: str, report: AggregateReport, source: str, now: datetime | None = None
    ) -> StoredReport:
        """Store `report` for `team_id` unless the team already has it (same reporter, report id,
        domain and date range), in one transaction: the report and its rows, or nothing."""
        day = report_day(report)
        rows, selectors = _group(report)
        messages = sum(count for count in rows.values())
        when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        with self.database.write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO agg_reports (team_id, reporter, report_id, domain, "
                "date_begin, date_end, day, org_name, messages, records, skipped_records, "
                "truncated, source, ingested_at, org_email, adkim, aspf, p, sp, pct, fo) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    team_id,
                    report.reporter,
                    report.report_id,
                    report.policy.domain,
                    report.date_begin.isoformat(),
                    report.date_end.isoformat(),
                    day,
                    report.org_name,
                    messages,
                    len(report.records),
                    report.skipped_records,
                    int(report.truncated),
                    source[:300],
                    when,
                    report.email,
                    report.policy.adkim,
                    report.policy.aspf,
                    report.policy.p,
                    report.policy.sp,
                    None if report.policy.pct is None else str(report.policy.pct),
                    report.policy.fo,
                ],
            )
            duplicate = cursor.rowcount == 0
            if not duplicate:
                pk = cursor.lastrowid
                domain = report.policy.domain
                db.conn.executemany(
                    f"INSERT INTO agg_rows (team_id, report_pk, domain, day, {', '.join(RowKey._fields)}, "
                    f"messages) VALUES (?, ?, ?, ?, {', '.join('?' * len(RowKey._fields))}, ?)",
                    ([team_id, pk, domain, day, *key, count] for key, count in rows.items()),
                )
                db.conn.executemany(
                    "INSERT INTO agg_selectors (team_id, report_pk, domain, day, dkim_domain, "
                    "selector, messages, passed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        [team_id, pk, domain, day, dkim_domain, selector, counts[0], counts[1]]
                        for (dkim_domain, selector), counts in selectors.items()
                    ),
                )
        return StoredReport(
            team_id=team_id,
            domain=report.policy.domain,
            reporter=report.reporter,
            report_id=report.report_id,
            day=day,
            messages=messages,
            records=len(report.records),
            duplicate=duplicate,
            truncated=report.truncated,
            skipped_records=report.skipped_records,
        )

    # -- questions --------------------------------------------------------------------------------

    def teams(self) -> list[str]:
        """Team ids that have reports (ids only: no team's rows are read here)."""
        rows = self.database.connection.execute("SELECT DISTINCT team_id FROM agg_reports ORDER BY team_id")
        return [row[0] for row in rows.fetchall()]

    def report_count(self, team_id: str, domain: str | None = None) -> int:
        """How many distinct reports the team has (for one domain, or all)."""
        sql, args = "SELECT COUNT(*) FROM agg_reports WHERE team_id = ?", [team_id]
        if domain is not None:
            sql, args = sql + " AND domain = ?", [team_id, domain]
        return int(self.database.connection.execute(sql, args).fetchone()[0])

    def latest_day(self, team_id: str, domain: str) -> str | None:
        """The most recent day with a report for the domain."""
        row = self.database.connection.execute(
            "SELECT MAX(day) FROM agg_reports WHERE team_id = ? AND domain = ?", [team_id, domain]
        ).fetchone()
        return row[0] if row else None

    def totals(self, team_id: str, domain: str, first: str, last: str) -> Totals:
        """Messages and DMARC passes for the domain from day `first` to `last` (inclusive)."""
        row = self.database.connection.execute(
            "SELECT COALESCE(SUM(messages), 0), COALESCE(SUM(messages * dmarc_pass), 0) "
            "FROM agg_rows WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ?",
            [team_id, domain, first, last],
        ).fetchone()
        return Totals(int(row[0]), int(row[1]))

    def sources(self, team_id: str, domain: str, first: str, last: str) -> list[SourceTotals]:
        """Each source IP's volume, DMARC passes and aligned SPF/DKIM, largest first."""
        rows = self.database.connection.execute(
            "SELECT source_ip, SUM(messages), SUM(messages * dmarc_pass), "
            "SUM(messages * spf_aligned), SUM(messages * dkim_aligned) FROM agg_rows "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? "
            "GROUP BY source_ip ORDER BY SUM(messages) DESC, source_ip",
            [team_id, domain, first, last],
        ).fetchall()
        return [
            SourceTotals(
                ip=r[0], messages=int(r[1]), passed=int(r[2]), spf_aligned=int(r[3]), dkim_aligned=int(r[4])
            )
            for r in rows
        ]

    def failures(self, team_id: str, domain: str, first: str, last: str) -> list[FailureReason]:
        """Messages failing DMARC grouped by source and reasons, largest first."""
        rows = self.database.connection.execute(
            "SELECT source_ip, spf_why, dkim_why, SUM(messages) FROM agg_rows "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? AND dmarc_pass = 0 "
            "GROUP BY source_ip, spf_why, dkim_why ORDER BY SUM(messages) DESC, source_ip",
            [team_id, domain, first, last],
        ).fetchall()
        return [FailureReason(r[0], r[1], r[2], int(r[3])) for r in rows]

    def selectors(self, team_id: str, domain: str, first: str, last: str) -> list[SelectorTotals]:
        """DKIM selectors seen for the domain itself (d= the domain), most used first."""
        rows = self.database.connection.execute(
            "SELECT selector, dkim_domain, SUM(messages), SUM(passed), MAX(day) FROM agg_selectors "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? AND dkim_domain = domain "
            "GROUP BY selector, dkim_domain ORDER BY SUM(messages) DESC, selector",
            [team_id, domain, first, last],
        ).fetchall()
        return [
            SelectorTotals(
                selector=r[0], dkim_domain=r[1], messages=int(r[2]), passed=int(r[3]), last_day=r[4]
            )
            for r in rows
        ]

    def daily(self, team_id: str, domain: str, first: str, last: str) -> list[DayTotals]:
        """Volume and passes per day that has reports, oldest first."""
        rows = self.database.connection.execute(
            "SELECT day, SUM(messages), SUM(messages * dmarc_pass) FROM agg_rows "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? GROUP BY day ORDER BY day",
            [team_id, domain, first, last],
        ).fetchall()
        return [DayTotals(r[0], int(r[1]), int(r[2])) for r in rows]

    def details(self, team_id: str, domain: str, first: str, last: str) -> list[tuple[RowKey, int]]:
        """Every distinct stored row over the window, summed over days and reports: what naming
        senders, dispositions, override reasons and From domains read. Largest first."""
        columns = ", ".join(RowKey._fields)
        rows = self.database.connection.execute(
            f"SELECT {columns}, SUM(messages) FROM agg_rows "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? "
            f"GROUP BY {columns} ORDER BY SUM(messages) DESC, source_ip",
            [team_id, domain, first, last],
        ).fetchall()
        width = len(RowKey._fields)
        return [(RowKey(*row[:width]), int(row[width])) for row in rows]

    def reporters(self, team_id: str, domain: str, first: str, last: str) -> list[tuple[str, int]]:
        """Messages per reporting organisation (its org_name, else its address), largest first."""
        rows = self.database.connection.execute(
            "SELECT COALESCE(org_name, reporter), SUM(messages) FROM agg_reports "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? "
            "GROUP BY COALESCE(org_name, reporter) ORDER BY SUM(messages) DESC, 1",
            [team_id, domain, first, last],
        ).fetchall()
        return [(row[0], int(row[1])) for row in rows]

    def record_rows(self, team_id: str, domain: str, first: str, last: str) -> Iterator[dict[str, Any]]:
        """Each stored row with its report's metadata and published policy, oldest report first
        (for the CSV export; read as a stream, never all at once)."""
        cursor = self.database.connection.execute(
            "SELECT r.org_name, r.org_email, r.reporter, r.report_id, r.date_begin, r.date_end, "
            "r.domain, r.adkim, r.aspf, r.p, r.sp, r.pct, r.fo, "
            f"{', '.join('w.' + f for f in RowKey._fields)}, w.messages "
            "FROM agg_rows w JOIN agg_reports r ON r.id = w.report_pk "
            "WHERE w.team_id = ? AND w.domain = ? AND w.day BETWEEN ? AND ? "
            "ORDER BY r.date_begin, r.id, w.id",
            [team_id, domain, first, last],
        )
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def baseline(self, team_id: str, domain: str, day: str, days: int = 14) -> Totals:
        """The `days` days before `day` (not including it): the trailing baseline."""
        first, last = shift(day, -days), shift(day, -1)
        return self.totals(team_id, domain, first, last)

    def sources_seen_before(
        self, team_id: str, domain: str, ips: Iterable[str], day: str, days: int = 14
    ) -> set[str]:
        """Which of `ips` sent for the domain in the `days` days before `day`."""
        wanted = list(dict.fromkeys(ips))
        seen: set[str] = set()
        for chunk in _chunks(wanted, 500):  # SQLite's bound-parameter limit
            marks = ",".join("?" * len(chunk))
            rows = self.database.connection.execute(
                f"SELECT DISTINCT source_ip FROM agg_rows WHERE team_id = ? AND domain = ? "
                f"AND day BETWEEN ? AND ? AND source_ip IN ({marks})",
                [team_id, domain, shift(day, -days), shift(day, -1), *chunk],
            ).fetchall()
            seen.update(row[0] for row in rows)
        return seen


class RowKey(NamedTuple):
    """What a stored row groups records by: the outcome, and what the summary and the CSV read.
    Field names are the agg_rows columns; lists are joined with "," as parsedmarc's CSV does."""

    source_ip: str
    dmarc_pass: int
    spf_aligned: int
    dkim_aligned: int
    spf_why: str | None
    dkim_why: str | None
    disposition: str | None
    override_reasons: str | None
    header_from: str | None
    envelope_from: str | None
    dkim_domains: str | None
    dkim_selectors: str | None
    dkim_results: str | None
    spf_domains: str | None
    spf_scopes: str | None
    spf_results: str | None


def _joined(values: Iterable[str | None]) -> str | None:
    items = [value or "" for value in values]
    return ",".join(items) if items else None


def row_key(record: Record) -> RowKey:
    """The stored row a record is counted in."""
    return RowKey(
        source_ip=str(record.source_ip),
        dmarc_pass=int(record.dmarc_pass),
        spf_aligned=int(record.spf_eval == "pass"),
        dkim_aligned=int(record.dkim_eval == "pass"),
        spf_why=spf_failure(record),
        dkim_why=dkim_failure(record),
        disposition=record.disposition,
        override_reasons=_joined(r.type for r in record.reasons),
        header_from=record.header_from,
        envelope_from=record.envelope_from,
        dkim_domains=_joined(r.domain for r in record.dkim),
        dkim_selectors=_joined(r.selector for r in record.dkim),
        dkim_results=_joined(r.result for r in record.dkim),
        spf_domains=_joined(r.domain for r in record.spf),
        spf_scopes=_joined(r.scope for r in record.spf),
        spf_results=_joined(r.result for r in record.spf),
    )


def _group(report: AggregateReport) -> tuple[dict[RowKey, int], dict[tuple[str, str], list[int]]]:
    rows: dict[RowKey, int] = {}
    selectors: dict[tuple[str, str], list[int]] = {}
    for record in report.records:
        key = row_key(record)
        rows[key] = rows.get(key, 0) + record.count
        for result in record.dkim:
            if result.selector and result.domain:
                counts = selectors.setdefault((result.domain, result.selector), [0, 0])
                counts[0] += record.count
                counts[1] += record.count if result.result == "pass" else 0
    return rows, selectors


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def shift(day: str, days: int) -> str:
    """`day` (YYYY-MM-DD) moved by `days` days."""
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def window(days: int, now: datetime | None = None) -> tuple[str, str]:
    """The first and last day of the `days` days ending today (UTC), inclusive."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()
