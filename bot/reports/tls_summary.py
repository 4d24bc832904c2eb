"""A domain's SMTP TLS reports over N days: sessions, the success rate, policies, failures, reporters.

What `dmarcbot tls-report DOMAIN` and `/dmarc tls DOMAIN` show. Rates are fractions from 0 to 1,
None (JSON null) with no sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.store.reports import window
from bot.store.tls_reports import TlsFailureTotals, TlsReportStore
from handlers.reports.tls_report import RESULT_TYPES

MAX_FAILURES_SHOWN = 100  # failure rows in the JSON; the text and Slack show fewer


@dataclass(frozen=True, kw_only=True)
class TlsSummary:
    """What the stored TLS reports say about one domain over `days` days (today included)."""

    domain: str
    days: int
    sessions: int
    failed: int
    policies: tuple[tuple[str, int, int], ...]  # (type, sessions, failed)
    failures: tuple[TlsFailureTotals, ...]
    reporters: tuple[tuple[str, int], ...]  # (organization, sessions)

    @property
    def successful(self) -> int:
        return self.sessions - self.failed

    @property
    def success_rate(self) -> float | None:
        return self.successful / self.sessions if self.sessions else None

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "days": self.days,
            "sessions": self.sessions,
            "successful": self.successful,
            "failed": self.failed,
            "success_rate": self.success_rate,
            "policies": [
                {"type": kind, "sessions": sessions, "failed": failed}
                for kind, sessions, failed in self.policies
            ],
            "failures": [
                {
                    "result_type": f.result_type,
                    "receiving_mx": f.receiving_mx,
                    "sending_ip": f.sending_ip,
                    "sessions": f.sessions,
                }
                for f in self.failures
            ],
            "reporters": [{"org": org, "sessions": sessions} for org, sessions in self.reporters],
        }


def build_tls_summary(
    store: TlsReportStore, team_id: str, domain: str, days: int, now: datetime | None = None
) -> TlsSummary:
    """The summary of the last `days` UTC days, today included."""
    first, last = window(days, now)
    totals = store.totals(team_id, domain, first, last)
    return TlsSummary(
        domain=domain,
        days=days,
        sessions=totals.sessions,
        failed=totals.failed,
        policies=tuple(store.policies(team_id, domain, first, last)),
        failures=tuple(store.failures(team_id, domain, first, last, MAX_FAILURES_SHOWN)),
        reporters=tuple(store.reporters(team_id, domain, first, last)),
    )


def explain_result(result_type: str) -> str:
    """What a result type means (RFC 8460 §4.3), for a person."""
    return RESULT_TYPES.get(result_type, "a result type RFC 8460 does not define")


def failure_line(failure: TlsFailureTotals) -> str:
    """One failure row in words: type, what it means, where, from where, how many."""
    where = f" at {failure.receiving_mx}" if failure.receiving_mx else ""
    source = f" from {failure.sending_ip}" if failure.sending_ip else ""
    plural = "session" if failure.sessions == 1 else "sessions"
    return (
        f"{failure.result_type} ({explain_result(failure.result_type)}){where}{source}: "
        f"{failure.sessions:,} {plural}"
    )


def render_tls_text(summary: TlsSummary) -> str:
    """The summary for a person at a terminal."""
    lines = [f"SMTP TLS reports for {summary.domain}, last {summary.days} days"]
    if not summary.sessions:
        lines.append(
            "No TLS report sessions in this window. Receivers send them to the rua= of the domain's "
            "_smtp._tls TXT record (RFC 8460 §3)."
        )
        return "\n".join(lines)
    assert summary.success_rate is not None
    lines.append(
        f"{summary.sessions:,} sessions: {summary.successful:,} successful, {summary.failed:,} failed "
        f"({summary.success_rate:.1%} succeeded)"
    )
    lines.append(
        "Policies: " + "; ".join(f"{kind} {n:,} sessions, {f:,} failed" for kind, n, f in summary.policies)
    )
    if summary.failures:
        lines.append("Failures:")
        lines += [f"  {failure_line(f)}" for f in summary.failures[:20]]
        if len(summary.failures) > 20:
            lines.append(f"  and {len(summary.failures) - 20} more (--json lists up to {MAX_FAILURES_SHOWN})")
    lines.append("Reporters: " + "; ".join(f"{org} {n:,} sessions" for org, n in summary.reporters[:10]))
    return "\n".join(lines)
