"""DMARC failure reports ingested: each one explained by the `why` verdict, then stored redacted.

The failed message's headers go through `diagnose_message`, the verdict of `dmarcbot why`, with
the report's Source-IP as the connecting IP and its Original-Mail-From as MAIL FROM, against the
DNS of the moment the report is read (not of the moment the mail was sent: a key rotated since is
named so by the verdict's differences from the receiver's Authentication-Results). What is
stored is the verdict and the headers it read, local parts redacted unless
DMARCBOT_FAILURES_KEEP_ADDRESSES=true; the body and every other header are dropped here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.reports.owners import Owners, unowned
from bot.store.failures import FailureGroup, FailureStore, NewFailure, StoredFailure
from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.dns.resolver import DnsSession
from handlers.errors import ReportError
from handlers.message.parse import MessageError, ParsedMessage, parse_message
from handlers.message.verdict import MessageVerdict, diagnose_message
from handlers.reports.archive import DEFAULT_LIMITS, ReportInvalid, ReportLimits
from handlers.reports.failure import FailureReport, parse_failure_report, redact

if TYPE_CHECKING:
    from bot.config import Settings


DNS_OF_THE_MOMENT = (
    "Explained against the DNS of the moment the report was read, not of when the mail was sent: "
    "a record or key changed since shows as a difference from the receiver's results."
)


@dataclass(frozen=True)
class FailureReading:
    """What reading a failure report needs beside the report: DNS for the verdict, and whether
    addresses are kept whole."""

    dns: Callable[[], DnsSession] = DnsSession
    keep_addresses: bool = False

    @classmethod
    def of(cls, settings: Settings) -> FailureReading:
        """As configured: the settings' resolver, DMARCBOT_FAILURES_KEEP_ADDRESSES."""
        return cls(dns=settings.dns_session, keep_addresses=settings.failures_keep_addresses)


def failed_message(report: FailureReport) -> ParsedMessage:
    """The report's failed message, parsed, or ReportInvalid saying why it cannot be read."""
    try:
        return parse_message(report.original)
    except MessageError as error:
        raise ReportInvalid(f"the failed message in the report cannot be read: {error}") from None


def explain_failure(report: FailureReport, message: ParsedMessage, session: DnsSession) -> MessageVerdict:
    """The `why` verdict for the report's failed message, with its Source-IP and MAIL FROM."""
    return asyncio.run(
        diagnose_message(session, message, ip=report.source_ip, mail_from=report.original_mail_from)
    )


def ingest_failure_report(
    store: FailureStore,
    data: bytes,
    owners: Owners,
    source: str,
    reading: FailureReading,
    limits: ReportLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> list[StoredFailure]:
    """Parse, explain and store one failure report for each owning team; a ReportError says why not."""
    report = parse_failure_report(data, limits)
    message = failed_message(report)
    # Who owns it before the diagnosis: anyone can mail the report address, and a report nobody
    # watches must not cost a full set of DNS lookups.
    domain = _reported_domain(report) or message.from_domain
    teams = list(dict.fromkeys(owners(domain)))
    if message.from_domain != domain:
        teams = list(dict.fromkeys([*teams, *owners(message.from_domain)]))
    if not teams:
        raise ReportError(unowned([domain]))
    verdict = explain_failure(report, message, reading.dns())
    keep = reading.keep_addresses
    mail_from = report.original_mail_from
    stored_verdict = _stored_verdict(verdict, keep)
    return [
        store.add(
            NewFailure(
                team_id=team,
                digest=report.digest,
                domain=domain,
                from_domain=verdict.from_domain,
                reporter=report.reporter,
                source_ip=report.source_ip,
                mail_from=mail_from if keep or mail_from is None else redact(mail_from),
                arrived_at=report.arrival_date or now or datetime.now(UTC),
                dmarc_result=verdict.dmarc.result,
                causes=tuple(dict.fromkeys(c.id for c in verdict.causes)),
                verdict=stored_verdict,
                headers=report.kept_headers(keep),
                source=source,
            ),
            now,
        )
        for team in teams
    ]


def _reported_domain(report: FailureReport) -> str | None:
    try:
        return normalise_domain(report.reported_domain) if report.reported_domain else None
    except InvalidDomain:
        return None


def _stored_verdict(verdict: MessageVerdict, keep_addresses: bool) -> dict[str, object]:
    """The verdict's JSON as `why --json` prints it, with addresses redacted unless kept."""
    data = verdict.to_json()
    if keep_addresses:
        return data
    return _redacted(data)  # type: ignore[return-value]


def _redacted(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


# -- the groups, as the command and Slack show them -------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FailureSummary:
    """A domain's failure reports over N days, grouped."""

    domain: str
    days: int
    reports: int
    groups: tuple[FailureGroup, ...]
    senders: dict[str, str]  # source IP -> its reverse-DNS name, where one was found

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "days": self.days,
            "reports": self.reports,
            "groups": [
                {
                    "source_ip": g.source_ip,
                    "sender": self.senders.get(g.source_ip or ""),
                    "from_domain": g.from_domain,
                    "count": g.count,
                    "first": g.first,
                    "last": g.last,
                    "dmarc_result": g.dmarc_result,
                    "causes": list(g.causes),
                }
                for g in self.groups
            ],
        }


def summarise_failures(
    store: FailureStore,
    team_id: str,
    domain: str,
    days: int,
    names: Callable[[Sequence[str]], dict[str, str]] | None = None,
    now: datetime | None = None,
) -> FailureSummary:
    """The groups of the last `days` days (today included); `names` names source IPs cheaply
    (reverse DNS within a budget), as the aggregate summary does."""
    from bot.store.reports import window

    first, last = window(days, now)
    groups = store.groups(team_id, domain, first, last)
    ips = [g.source_ip for g in groups if g.source_ip]
    return FailureSummary(
        domain=domain,
        days=days,
        reports=store.count(team_id, domain, first, last),
        groups=tuple(groups),
        senders=names(ips) if names and ips else {},
    )


def render_failures_text(summary: FailureSummary) -> str:
    """The summary for a person at a terminal."""
    from handlers.message.verdict import CAUSES

    lines = [f"Failure reports for {summary.domain}, last {summary.days} days: {summary.reports}"]
    if not summary.groups:
        lines.append("No failure reports in this window.")
        return "\n".join(lines)
    for group in summary.groups:
        sender = summary.senders.get(group.source_ip or "") or "unknown sender"
        titles = "; ".join(CAUSES[c].title if c in CAUSES else c for c in group.causes) or "no cause found"
        plural = "failure" if group.count == 1 else "failures"
        lines.append(
            f"{group.day}: {group.count} {plural} from {group.source_ip or 'an unknown IP'} ({sender}), "
            f"From {group.from_domain}, DMARC {group.dmarc_result}: {titles}"
        )
        for cause_id in group.causes[:5]:
            if cause_id in CAUSES:
                lines.append(f"    {cause_id}: fix: {CAUSES[cause_id].fix}")
    lines.append(DNS_OF_THE_MOMENT)
    return "\n".join(lines)
