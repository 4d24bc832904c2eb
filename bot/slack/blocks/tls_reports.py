"""Block Kit for SMTP TLS reports: a domain's summary, a shared report file's answer, TLS alerts.

Everything that came from a report (domains, organizations, MX hosts, result types) is escaped with
bot.slack.mrkdwn.safe and bounded; `text` is always sent beside `blocks`.
"""

from __future__ import annotations

from typing import Any

from bot.reports.ingest import FileOutcome
from bot.reports.summary import percent
from bot.reports.tls_summary import TlsSummary, failure_line
from bot.slack.blocks.domain_report import context, section
from bot.slack.mrkdwn import clip, code, escape, fit_lines, safe

Block = dict[str, Any]

MAX_FAILURES = 10
MAX_REPORTERS = 10


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, 150)}}


def render_tls_summary(summary: TlsSummary) -> tuple[str, list[Block]]:
    """A domain's TLS report summary as (fallback text, blocks)."""
    domain = safe(summary.domain, 255)
    if not summary.sessions:
        text = f"{summary.domain}: no SMTP TLS report sessions in the last {summary.days} days."
        return clip(text, 2900), [
            _header(f"{summary.domain}: SMTP TLS reports"),
            section(
                f"No SMTP TLS report sessions for *{domain}* in the last {summary.days} days. Receivers "
                "send them to the `rua=` of the domain's `_smtp._tls` TXT record (RFC 8460 §3)."
            ),
        ]
    rate = percent(summary.success_rate)
    text = clip(
        f"{summary.domain}: {summary.sessions:,} TLS sessions in {summary.days} days, {rate} succeeded", 2900
    )
    policies = "; ".join(f"{code(k, 40)} {n:,} sessions, {f:,} failed" for k, n, f in summary.policies)
    blocks: list[Block] = [
        _header(f"{summary.domain}: SMTP TLS reports, last {summary.days} days"),
        section(
            f"*{summary.sessions:,}* sessions: {summary.successful:,} successful, {summary.failed:,} failed; "
            f"*{rate}* succeeded.\n*Policies:* {policies}"
        ),
    ]
    if summary.failures:
        lines = [f"• {safe(failure_line(f), 400)}" for f in summary.failures[:MAX_FAILURES]]
        if len(summary.failures) > MAX_FAILURES:
            lines.append(f"…and {len(summary.failures) - MAX_FAILURES} more")
        blocks.append(section(fit_lines(["*Failures*", *lines])))
    reporters = ", ".join(f"{safe(org, 100)} ({n:,})" for org, n in summary.reporters[:MAX_REPORTERS])
    blocks.append(section(f"*Reporters:* {reporters}"))  # at most MAX_REPORTERS of 110 characters
    blocks.append(context(f"`dmarcbot tls-report {domain} --days {summary.days} --json` gives every row."))
    return text, blocks


def render_tls_file_answer(outcome: FileOutcome) -> tuple[str, list[Block]]:
    """The thread answer to a shared SMTP TLS report file: what was stored."""
    new = len([r for r in outcome.tls_reports if not r.duplicate])
    again = len(outcome.tls_reports) - new
    headline = f"Ingested {new} SMTP TLS report{'s' if new != 1 else ''}"
    if again:
        headline += f"; {again} already ingested (counted once)"
    text = clip(escape(f"{outcome.name}: {headline}."), 2900)
    blocks: list[Block] = [
        section(f":inbox_tray: *{safe(outcome.name, 200)}*: {headline}.\n" + safe(outcome.describe(), 2000))
    ]
    if outcome.warnings:
        blocks.append(context(safe("; ".join(outcome.warnings[:3]), 1000)))
    return text, blocks


def render_tls_alert(domain: str, headline: str, detail: str) -> tuple[str, list[Block], Block]:
    """A TLS report alert: (fallback text, blocks of its own message, its line in a digest).
    `detail` is plain text (escaped here)."""
    text = clip(escape(f"{domain}: {headline}. {detail}"), 2900)
    blocks: list[Block] = [
        _header(f"{domain}: {headline}"),
        section(f":lock: {safe(detail, 2800)}"),
        context(
            f"From SMTP TLS reports (RFC 8460). `/dmarc tls {safe(domain, 255)}` shows the failures by "
            "type, MX host and sending IP."
        ),
    ]
    digest = section(f":lock: *{safe(domain, 255)}*: {safe(headline, 200)}\n{safe(detail, 600)}")
    return text, blocks, digest
