"""Ingest one report file or mail from any source (Slack, IMAP, the command line), and say how it went.

Each file is unpacked, parsed and stored.

A file is taken whole or not at all: when any XML document inside it is refused or invalid,
nothing of it is stored, so the answer about the file is one clear sentence. The file is read as a
stream, in constant memory: each document is inflated as it is parsed, and its records go to the
store's staging table a batch at a time; only once every document has been read are they stored,
in one transaction, so a refusal never leaves half a file behind. A report already stored is found
by the store's dedupe and counted once.

Anything that goes wrong with one file, whatever it is, is that file's answer: the caller (a
batch on the command line, the mailbox poller, a Slack upload) goes on with the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.store.reports import ReportStore, StagedReport, StoredReport
from handlers.reports.aggregate import (
    DEFAULT_LIMITS,
    AggregateReport,
    ReportError,
    ReportLimits,
    ReportReader,
    ReportRefused,
    iter_report_documents,
)

log = logging.getLogger("dmarcbot.ingest")

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
    """Unpack, parse and store one file (xml, xml.gz, zip or a mail carrying one). Never raises:
    whatever goes wrong is the outcome's error."""
    try:
        return _ingest(reports, data, name, owners, source, limits)
    except ReportRefused as refused:
        return FileOutcome(name=name, error=str(refused), refused_by_cap=refused.cap)
    except ReportError as error:
        return FileOutcome(name=name, error=str(error))
    except Exception as error:  # a poisoned file must not stop the batch, the poller or the bot
        log.exception("ingest of %s failed", name[:200])
        why = f"{type(error).__name__}: {str(error)[:200]}"
        return FileOutcome(name=name, error=f"it could not be ingested ({why})")


def _ingest(
    reports: ReportStore, data: bytes, name: str, owners: Owners, source: str, limits: ReportLimits
) -> FileOutcome:
    with reports.staging() as staging:
        read: list[tuple[AggregateReport, int, int]] = []  # (header, document, records staged)
        for doc, document in enumerate(iter_report_documents(data, name, limits)):
            reader = ReportReader(document, limits)
            staged = staging.add(doc, reader.records())
            read.append((reader.report(()), doc, staged))
        unowned = [report.policy.domain for report, _, _ in read if not owners(report)]
        if unowned:
            return FileOutcome(
                name=name,
                error=(
                    f"no workspace watches {', '.join(sorted(set(unowned))[:5])}: watch the domain "
                    "(`/dmarc watch DOMAIN`) so its reports have a channel, then ingest the file again"
                ),
            )
        to_store = [
            StagedReport(team_id=team_id, report=report, doc=doc, records=staged, source=f"{source}: {name}")
            for report, doc, staged in read
            for team_id in dict.fromkeys(owners(report))
        ]
        stored = staging.store(to_store)
    warnings = [warning for report, _, _ in read for warning in report.warnings[:5]]
    return FileOutcome(name=name, reports=tuple(stored), warnings=tuple(warnings[:20]))


def looks_like_report_name(filename: str) -> bool:
    """True for the file names reports arrive under (.xml, .xml.gz, .zip, .eml)."""
    return filename.lower().endswith(REPORT_SUFFIXES)
