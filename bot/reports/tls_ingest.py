"""SMTP TLS reports (RFC 8460) ingested: parsed within the caps, stored for each owning team.

Each report is stored for every team that owns one of its policy domains (only those domains'
policies), de-duplicated by report-id.

A file is taken whole or not at all, as aggregate reports are: when any report in it is refused
or about a domain no workspace owns, nothing of it is stored.
"""

from __future__ import annotations

from datetime import datetime

from bot.reports.owners import Owners
from bot.reports.owners import unowned as unowned_message
from bot.store.tls_reports import StoredTlsReport, TlsReportStore
from handlers.errors import ReportError
from handlers.reports.tls_report import DEFAULT_TLS_LIMITS, TlsReportLimits, read_tls_reports

# Who owns a report about a domain: the team ids to store it for (empty: nobody).


def ingest_tls_report(
    store: TlsReportStore,
    data: bytes,
    owners: Owners,
    source: str,
    limits: TlsReportLimits = DEFAULT_TLS_LIMITS,
    now: datetime | None = None,
) -> tuple[list[StoredTlsReport], list[str]]:
    """Parse and store every TLS report in `data` for the teams owning its policy domains:
    (what was stored, the reports' warnings); a ReportError says why nothing was."""
    reports = read_tls_reports(data, limits, now)
    unowned = sorted({domain for report in reports for domain in report.domains if not owners(domain)})
    if unowned:
        raise ReportError(unowned_message(unowned))
    stored = []
    for report in reports:
        teams: dict[str, list[str]] = {}
        for domain in report.domains:
            for team in owners(domain):
                teams.setdefault(team, []).append(domain)
        stored += [store.add(team, report, domains, source, now) for team, domains in teams.items()]
    warnings = [warning for report in reports for warning in report.warnings[:5]]
    return stored, warnings[:20]


def describe_tls(stored: StoredTlsReport) -> str:
    """One clause for a person: the report, its sessions, and whether it was new."""
    state = "already ingested, not counted again" if stored.duplicate else "ingested"
    failed = f", {stored.failed:,} failed" if stored.failed else ""
    return (
        f"SMTP TLS report for {', '.join(stored.domains)} from {stored.organization} for {stored.day}, "
        f"{stored.sessions:,} session{'' if stored.sessions == 1 else 's'}{failed}: {state}"
    )
