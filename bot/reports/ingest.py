"""Ingest one report file or mail from any source (Slack, IMAP, the command line), and say how it went.

Each file is unpacked, parsed and stored.

A file is taken whole or not at all: when any XML document inside it is refused or invalid,
nothing of it is stored, so the answer about the file is one clear sentence. Parsing happens
before any database write, so a refusal never leaves half a file behind; a report already stored
is found by the store's dedupe and counted once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.store.reports import ReportStore, StoredReport
from handlers.reports.aggregate import (
    DEFAULT_LIMITS,
    AggregateReport,
    ReportError,
    ReportLimits,
    ReportRefused,
    parse_report,
    unpack_report,
)

# Who owns a report: the team ids to store it for (empty: nobody, the file is refused).
Owners = Callable[[AggregateReport], Sequence[str]]

REPORT_SUFFIXES = (".xml", ".xml.gz", ".gz", ".zip", ".eml")


def one_team(team_id: str) -> Owners:
    """Owners for a source that belongs to one team (a Slack event, the command line)."""
    return lambda report: [team_id]


@dataclass(frozen=True, kw_only=True)
class FileOutcome:
    """What happened to one file: the reports stored (or found already stored), or why not."""

    name: str
    reports: tuple[StoredReport, ...] = ()
    error: str | None = None
    refused_by_cap: str | None = None  # the ReportLimits field (or safety rule) that refused it
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def new_reports(self) -> list[StoredReport]:
        return [r for r in self.reports if not r.duplicate]

    def describe(self) -> str:
        """One line for a person: what was stored, or why the file was refused."""
        if self.error is not None:
            return f"{self.name}: refused: {self.error}"
        parts = []
        for stored in self.reports[:5]:
            state = "already ingested, not counted again" if stored.duplicate else "ingested"
            extra = " (the XML ended early: partial)" if stored.truncated else ""
            if stored.skipped_records:
                extra += f" ({stored.skipped_records} unreadable records skipped)"
            parts.append(
                f"{stored.domain} from {stored.reporter} for {stored.day}, "
                f"{stored.messages:,} messages: {state}{extra}"
            )
        if len(self.reports) > 5:
            parts.append(f"and {len(self.reports) - 5} more reports")
        return f"{self.name}: " + "; ".join(parts)


def ingest_bytes(
    reports: ReportStore,
    data: bytes,
    name: str,
    owners: Owners,
    source: str,
    limits: ReportLimits = DEFAULT_LIMITS,
) -> FileOutcome:
    """Unpack, parse and store one file (xml, xml.gz, zip or a mail carrying one)."""
    try:
        parsed = [parse_report(xml, limits) for xml in unpack_report(data, name, limits)]
    except ReportRefused as refused:
        return FileOutcome(name=name, error=str(refused), refused_by_cap=refused.cap)
    except ReportError as error:
        return FileOutcome(name=name, error=str(error))
    stored: list[StoredReport] = []
    warnings: list[str] = []
    unowned = [report.policy.domain for report in parsed if not owners(report)]
    if unowned:
        return FileOutcome(
            name=name,
            error=(
                f"no workspace watches {', '.join(sorted(set(unowned))[:5])}: watch the domain "
                "(`/dmarc watch DOMAIN`) so its reports have a channel, then ingest the file again"
            ),
        )
    for report in parsed:
        warnings.extend(report.warnings[:5])
        for team_id in dict.fromkeys(owners(report)):
            stored.append(reports.add_report(team_id, report, f"{source}: {name}"))
    return FileOutcome(name=name, reports=tuple(stored), warnings=tuple(warnings[:20]))


def looks_like_report_name(filename: str) -> bool:
    """True for the file names reports arrive under (.xml, .xml.gz, .zip, .eml)."""
    return filename.lower().endswith(REPORT_SUFFIXES)
