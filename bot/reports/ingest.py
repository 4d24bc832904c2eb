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
from dataclasses import dataclass, field

from bot.reports.failures import DNS_OF_THE_MOMENT, FailureReading, ingest_failure_report
from bot.reports.owners import Owners
from bot.reports.owners import unowned as unowned_message
from bot.reports.tls_ingest import describe_tls, ingest_tls_report
from bot.store.failures import FailureStore, StoredFailure
from bot.store.reports import ReportStore, StagedReport, StoredReport
from bot.store.tls_reports import StoredTlsReport, TlsReportStore
from handlers.reports.aggregate import (
    DEFAULT_LIMITS,
    AggregateReport,
    ReportError,
    ReportLimits,
    ReportReader,
    ReportRefused,
    iter_report_documents,
)
from handlers.reports.archive import NoReportInMail
from handlers.reports.failure import looks_like_failure_report
from handlers.reports.tls_report import TlsReportLimits, looks_like_tls_report

log = logging.getLogger("dmarcbot.ingest")

# Who owns a report about a domain: the team ids to store it for (empty: nobody, it is refused).

REPORT_SUFFIXES = (".xml", ".xml.gz", ".gz", ".zip", ".eml", ".json")  # .json: SMTP TLS reports


def one_team(team_id: str) -> Owners:
    """Owners for a source that belongs to one team (a Slack event, the command line)."""
    return lambda domain: [team_id]


@dataclass(frozen=True, kw_only=True)
class FileOutcome:
    """What happened to one file: the reports stored (or found already stored), or why not."""

    name: str
    reports: tuple[StoredReport, ...] = ()
    failures: tuple[StoredFailure, ...] = ()  # a failure report, stored once per owning team
    tls_reports: tuple[StoredTlsReport, ...] = ()  # SMTP TLS reports, once per owning team
    error: str | None = None
    refused_by_cap: str | None = None  # the ReportLimits field (or safety rule) that refused it
    no_report: bool = False  # a mail with no report attached at all: a message, not a report
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
        if self.failures:
            return f"{self.name}: {_describe_failure(self.failures[0])} {DNS_OF_THE_MOMENT}"
        if self.tls_reports:
            more = len(self.tls_reports) - 5
            clauses = [describe_tls(stored) for stored in self.tls_reports[:5]]
            return f"{self.name}: " + "; ".join(clauses + ([f"and {more} more reports"] if more > 0 else []))
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
    reading: FailureReading | None = None,
) -> FileOutcome:
    """Unpack, parse and store one file (xml, xml.gz, zip or a mail carrying one, a failure
    report, explained with `reading`'s DNS, or an SMTP TLS report, JSON or gzipped JSON). Never
    raises: whatever goes wrong is the outcome's error."""
    try:
        if looks_like_tls_report(data, name):
            # Before the failure-report test: a TLS report mail is a multipart/report too.
            tls_store = TlsReportStore(reports.database)
            tls_limits = TlsReportLimits(
                max_input_bytes=limits.max_input_bytes, max_attachments=limits.max_attachments
            )
            stored_tls, warnings = ingest_tls_report(tls_store, data, owners, f"{source}: {name}", tls_limits)
            return FileOutcome(name=name, tls_reports=tuple(stored_tls), warnings=tuple(warnings))
        if looks_like_failure_report(data, limits):
            store = FailureStore(reports.database)
            stored = ingest_failure_report(
                store, data, owners, f"{source}: {name}", reading or FailureReading()
            )
            return FileOutcome(name=name, failures=tuple(stored))
        return _ingest(reports, data, name, owners, source, limits)
    except ReportRefused as refused:
        return FileOutcome(name=name, error=str(refused), refused_by_cap=refused.cap)
    except NoReportInMail as error:
        return FileOutcome(name=name, error=str(error), no_report=True)
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
        unowned = [report.policy.domain for report, _, _ in read if not owners(report.policy.domain)]
        if unowned:
            return FileOutcome(
                name=name,
                error=unowned_message(unowned),
            )
        to_store = [
            StagedReport(team_id=team_id, report=report, doc=doc, records=staged, source=f"{source}: {name}")
            for report, doc, staged in read
            for team_id in dict.fromkeys(owners(report.policy.domain))
        ]
        stored = staging.store(to_store)
    warnings = [warning for report, _, _ in read for warning in report.warnings[:5]]
    return FileOutcome(name=name, reports=tuple(stored), warnings=tuple(warnings[:20]))


def _describe_failure(stored: StoredFailure) -> str:
    state = "already ingested, not counted again" if stored.duplicate else "ingested"
    causes = ", ".join(stored.causes) or "no cause found"
    return (
        f"failure report for {stored.from_domain} from {stored.source_ip or 'an unknown IP'} on "
        f"{stored.day}, DMARC {stored.dmarc_result} ({causes}): {state}."
    )


def looks_like_report_name(filename: str) -> bool:
    """True for the file names reports arrive under (.xml, .xml.gz, .zip, .eml, .json, .json.gz)."""
    return filename.lower().endswith(REPORT_SUFFIXES)
