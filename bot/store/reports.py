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

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from bot.store.database import Database
from bot.store.row_hashes import row_hash
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
        with self.staging() as staging:
            staging.add(0, report.records)
            staged = StagedReport(
                team_id=team_id, report=report, doc=0, records=len(report.records), source=source
            )
            return staging.store([staged], now)[0]

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        """A place for one file's records while the file is read: a TEMP table of this thread's
        connection (on disk, outside the database file; SQLite's page cache bounds the memory),
        emptied when the block ends. Nothing in it is visible to anyone until `Staging.store`."""
        staging = Staging(self.database)
        staging.clear()
        try:
            yield staging
        finally:
            staging.clear()

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

    def last_ingested_at(self, team_id: str, domain: str) -> str | None:
        """When the latest report for the domain arrived (any source), None when none ever did."""
        row = self.database.connection.execute(
            "SELECT MAX(ingested_at) FROM agg_reports WHERE team_id = ? AND domain = ?", [team_id, domain]
        ).fetchone()
        return row[0] if row else None

    def latest_day(self, team_id: str, domain: str) -> str | None:
        """The most recent day with a report for the domain."""
        row = self.database.connection.execute(
            "SELECT MAX(day) FROM agg_reports WHERE team_id = ? AND domain = ?", [team_id, domain]
        ).fetchone()
        return row[0] if row else None

    def totals(self, team_id: str, domain: str, first: str, last: str) -> Totals:
        """Messages and DMARC passes for the domain from day `first` to `last` (inclusive)."""
        row = self.database.connection.execute(
            "SELECT TOTAL(messages), TOTAL(messages * dmarc_pass) "
            "FROM agg_rows WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ?",
            [team_id, domain, first, last],
        ).fetchone()
        return Totals(int(row[0]), int(row[1]))

    def sources(self, team_id: str, domain: str, first: str, last: str) -> list[SourceTotals]:
        """Each source IP's volume, DMARC passes and aligned SPF/DKIM, largest first."""
        rows = self.database.connection.execute(
            "SELECT source_ip, TOTAL(messages), TOTAL(messages * dmarc_pass), "
            "TOTAL(messages * spf_aligned), TOTAL(messages * dkim_aligned) FROM agg_rows "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? "
            "GROUP BY source_ip ORDER BY TOTAL(messages) DESC, source_ip",
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
            "SELECT source_ip, spf_why, dkim_why, TOTAL(messages) FROM agg_rows "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? AND dmarc_pass = 0 "
            "GROUP BY source_ip, spf_why, dkim_why ORDER BY TOTAL(messages) DESC, source_ip",
            [team_id, domain, first, last],
        ).fetchall()
        return [FailureReason(r[0], r[1], r[2], int(r[3])) for r in rows]

    def selectors(self, team_id: str, domain: str, first: str, last: str) -> list[SelectorTotals]:
        """DKIM selectors seen for the domain itself (d= the domain), most used first."""
        rows = self.database.connection.execute(
            "SELECT selector, dkim_domain, TOTAL(messages), TOTAL(passed), MAX(day) FROM agg_selectors "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? AND dkim_domain = domain "
            "GROUP BY selector, dkim_domain ORDER BY TOTAL(messages) DESC, selector",
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
            "SELECT day, TOTAL(messages), TOTAL(messages * dmarc_pass) FROM agg_rows "
            "WHERE team_id = ? AND domain = ? AND day BETWEEN ? AND ? GROUP BY day ORDER BY day",
            [team_id, domain, first, last],
        ).fetchall()
        return [DayTotals(r[0], int(r[1]), int(r[2])) for r in rows]

    def details(self, team_id: str, domain: str, first: str, last: str) -> list[tuple[RowKey, int]]:
        """Every distinct stored row over the window, summed over days and reports: what naming
        senders, dispositions, override reasons and From domains read. Largest first.

        Two steps: the window's rows are grouped by their key's hash (bot.store.row_hashes) from
        the `agg_rows_window` index alone, then one row of each group is read for the key itself.
        Grouping by the sixteen key columns instead sorts every row of the window by them."""
        groups = self.database.connection.execute(
            "SELECT MIN(id), SUM(messages) FROM agg_rows WHERE team_id = ? AND domain = ? "
            # A row without a hash (written by something other than Staging) is a group of its own.
            "AND day BETWEEN ? AND ? GROUP BY COALESCE(row_hash, -id)",
            [team_id, domain, first, last],
        ).fetchall()
        totals = dict(groups)
        ids = sorted(totals)
        out: list[tuple[RowKey, int]] = []
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            rows = self.database.connection.execute(
                f"SELECT id, {_ROW_COLUMNS} FROM agg_rows WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            out.extend((RowKey(*row[1:]), int(totals[row[0]])) for row in rows)
        out.sort(key=lambda item: (-item[1], item[0].source_ip))
        return out

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


_ROW_COLUMNS = ", ".join(RowKey._fields)  # a fixed list of identifiers, never outside text


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


@dataclass(frozen=True, kw_only=True)
class StagedReport:
    """A report read into the staging table as document `doc`, to store for `team_id`."""

    team_id: str
    report: AggregateReport  # its header; its records are the staged ones
    doc: int
    records: int
    source: str


_STAGE_BATCH = 5_000  # records per insert: a batch is all a file's records cost in Python memory


class Staging:
    """One file's records, staged per document (see ReportStore.staging), then stored at once."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.connection = database.connection.conn
        self.connection.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_rows "
            f"(doc INTEGER, {_ROW_COLUMNS}, row_hash INTEGER, messages INTEGER)"
        )
        self.connection.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_selectors (doc INTEGER, dkim_domain TEXT, "
            "selector TEXT, messages INTEGER, passed INTEGER)"
        )

    def clear(self) -> None:
        self.connection.execute("DELETE FROM temp.staged_rows")
        self.connection.execute("DELETE FROM temp.staged_selectors")

    def add(self, doc: int, records: Iterable[Record]) -> int:
        """Stage `records` as document `doc`, a batch at a time; returns how many were staged."""
        staged = 0
        rows: list[tuple[object, ...]] = []
        selectors: list[tuple[object, ...]] = []
        for record in records:
            staged += 1
            key = row_key(record)
            rows.append((doc, *key, row_hash(key), record.count))
            for result in record.dkim:
                if result.selector and result.domain:
                    passed = record.count if result.result == "pass" else 0
                    selectors.append((doc, result.domain, result.selector, record.count, passed))
            if len(rows) >= _STAGE_BATCH:
                self._flush(rows, selectors)
        self._flush(rows, selectors)
        return staged

    def _flush(self, rows: list[tuple[object, ...]], selectors: list[tuple[object, ...]]) -> None:
        self.connection.execute("BEGIN")  # one transaction per batch, on the TEMP tables only
        try:
            self.connection.executemany(
                f"INSERT INTO temp.staged_rows (doc, {_ROW_COLUMNS}, row_hash, messages) "
                f"VALUES (?, {', '.join('?' * len(RowKey._fields))}, ?, ?)",
                rows,
            )
            self.connection.executemany("INSERT INTO temp.staged_selectors VALUES (?, ?, ?, ?, ?)", selectors)
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")
        rows.clear()
        selectors.clear()

    def store(self, staged: Iterable[StagedReport], now: datetime | None = None) -> list[StoredReport]:
        """Store every staged report for its team in one transaction (all of them or none); a report
        the team already has is not stored again. The staged records are grouped by source and
        outcome here, in SQL: a million records from a few hundred IPs become a few hundred rows.
        A record's count fits in 32 bits (ReportLimits.max_record_count) and a report holds at most
        max_records of them, so a report's sums fit SQLite's 64-bit integers."""
        when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        results: list[StoredReport] = []
        with self.database.write() as db:
            for entry in staged:
                report, team_id = entry.report, entry.team_id
                day = report_day(report)
                messages = int(
                    db.execute(
                        "SELECT COALESCE(SUM(messages), 0) FROM temp.staged_rows WHERE doc = ?", [entry.doc]
                    ).fetchone()[0]
                )
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
                        entry.records,
                        report.skipped_records,
                        int(report.truncated),
                        entry.source[:300],
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
                    pk, domain = cursor.lastrowid, report.policy.domain
                    # GROUP BY treats NULLs as equal, so records missing the same fields share a row.
                    db.execute(
                        f"INSERT INTO agg_rows (team_id, report_pk, domain, day, {_ROW_COLUMNS}, row_hash, "
                        f"messages) SELECT ?, ?, ?, ?, {_ROW_COLUMNS}, row_hash, SUM(messages) FROM "
                        f"temp.staged_rows WHERE doc = ? GROUP BY {_ROW_COLUMNS}, row_hash "
                        "ORDER BY MIN(rowid)",
                        [team_id, pk, domain, day, entry.doc],
                    )
                    db.execute(
                        "INSERT INTO agg_selectors (team_id, report_pk, domain, day, dkim_domain, "
                        "selector, messages, passed) SELECT ?, ?, ?, ?, dkim_domain, selector, "
                        "SUM(messages), SUM(passed) FROM temp.staged_selectors WHERE doc = ? "
                        "GROUP BY dkim_domain, selector ORDER BY MIN(rowid)",
                        [team_id, pk, domain, day, entry.doc],
                    )
                results.append(
                    StoredReport(
                        team_id=team_id,
                        domain=report.policy.domain,
                        reporter=report.reporter,
                        report_id=report.report_id,
                        day=day,
                        messages=messages,
                        records=entry.records,
                        duplicate=duplicate,
                        truncated=report.truncated,
                        skipped_records=report.skipped_records,
                    )
                )
        return results


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
