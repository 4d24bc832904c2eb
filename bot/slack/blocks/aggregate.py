"""Block Kit for aggregate reports: a domain's summary, a shared file's answer, report alerts.

Everything that came from a report (domains, reporter names, reasons) or from reverse DNS is
escaped with bot.slack.mrkdwn.safe and bounded; messages stay inside Block Kit's limits, and `text` is
always sent beside `blocks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.reports.ingest import FileOutcome
from bot.reports.summary import (
    ReportSummary,
    SenderSummary,
    group_by_provider,
    nothing_text,
    percent,
    why_text,
)
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import button, context, fix_value, section
from bot.slack.mrkdwn import clip, code, fit_lines, safe
from handlers.reports.senders import Fix

Block = dict[str, Any]

MAX_SOURCE_GROUPS = 8
MAX_SOURCES_PER_GROUP = 5
MAX_FAILURES = 8
MAX_SELECTORS = 15
MAX_FILE_SUMMARIES = 3
# Each misconfigured sender is a section of its own, for its Fix it button; the rest of a
# summary is under 10 blocks, so the message stays well inside Block Kit's 50.
MAX_MISCONFIGURED = 12
MAX_SENDERS_LISTED = 8  # per category in one section (forwarded, compliant)
_CATEGORY_TITLES = {
    "misconfigured": ":wrench: *Misconfigured senders*: named, but their mail fails DMARC",
    "unknown": ":grey_question: *Unknown*",
    "forwarded": ":arrow_right_hook: *Forwarded* (context: nothing to fix in DNS)",
    "compliant": ":white_check_mark: *Compliant*",
}


def render_summary(
    summary: ReportSummary, team_id: str | None = None, show_senders: bool = True
) -> tuple[str, list[Block]]:
    """The summary of a domain's reports as (fallback text, blocks): with `show_senders`, who
    sends as the domain by category, each misconfigured one with its Fix it button (owned by
    `team_id`), and what the policy did."""
    domain = safe(summary.domain, 255)
    period = f"{summary.first} to {summary.last}"
    if not summary.messages:
        text = f"{summary.domain}: no aggregate reports for {period}. {nothing_text(summary)}"
        return clip(text, 2900), [
            _header(f"{summary.domain}: DMARC reports"),
            section(f"No aggregate reports for *{domain}* from {period}. {safe(nothing_text(summary), 500)}"),
        ]
    rate = percent(summary.pass_rate)
    text = clip(
        f"{summary.domain}: {summary.messages:,} messages in {summary.days} days, {rate} passed DMARC", 2900
    )
    blocks: list[Block] = [
        _header(f"{summary.domain}: DMARC reports, last {summary.days} days"),
        section(
            f"*{summary.messages:,}* messages from {len(summary.sources):,} sources "
            f"({period}); *{rate}* passed DMARC."
            + (f"\n{_dispositions_text(summary)}" if show_senders else "")
        ),
    ]
    if show_senders:
        blocks += _sender_blocks(summary, team_id)
    blocks.append(section(_sources_text(summary)))
    if summary.failures:
        blocks.append(section(_failures_text(summary)))
    blocks.append(section(_selectors_text(summary)))
    blocks.append(
        context(
            "Aligned = passed and matched the From domain (RFC 9989). "
            f"`dmarcbot report {domain} --days {summary.days}` prints every source."
        )
    )
    return text, blocks


def _dispositions_text(summary: ReportSummary) -> str:
    """What receivers did under the policy, as the reports say (rows stored before dispositions
    were kept are in no disposition)."""
    quarantined = summary.dispositions.get("quarantine", 0)
    rejected = summary.dispositions.get("reject", 0)
    return f"*What the policy did:* {quarantined:,} quarantined, {rejected:,} rejected."


def _sender_blocks(summary: ReportSummary, team_id: str | None) -> list[Block]:
    """Senders by category, misconfigured first (the order of `summary.senders`)."""
    blocks: list[Block] = []
    misconfigured = [s for s in summary.senders if s.category == "misconfigured"]
    if misconfigured:
        blocks.append(section(_CATEGORY_TITLES["misconfigured"]))
        for sender in misconfigured[:MAX_MISCONFIGURED]:
            blocks.append(_misconfigured_section(summary.domain, sender, team_id))
        if len(misconfigured) > MAX_MISCONFIGURED:
            extra = len(misconfigured) - MAX_MISCONFIGURED
            blocks.append(
                context(
                    f"…and {extra} more misconfigured senders: "
                    f"`dmarcbot report {safe(summary.domain, 255)} --json` lists them"
                )
            )
    for category in ("unknown", "forwarded", "compliant"):
        members = [s for s in summary.senders if s.category == category]
        if members:
            blocks.append(section(_category_text(category, members)))
    return blocks


def _volume(sender: SenderSummary) -> str:
    return f"{sender.messages:,} messages, {percent(_rate(sender.passed, sender.messages))} pass DMARC"


def _misconfigured_section(domain: str, sender: SenderSummary, team_id: str | None) -> Block:
    name = safe(sender.name or "no sender name", 150)
    lines = [f"*{name}* ({_volume(sender)}): {safe(sender.reason, 600)}"]
    if sender.fix is None:
        lines.append("_Not in the Fix it catalog: ask the sender how to align its SPF or DKIM._")
        return section("\n".join(lines))
    lines.append(f"*Fix:* {safe(sender.fix.title, 400)}")
    block = section("\n".join(lines))
    block["accessory"] = sender_fix_button(domain, sender.fix, team_id)
    return block


def sender_fix_button(domain: str, fix: Fix, team_id: str | None) -> Block:
    """A misconfigured sender's Fix it button: the fix-it flow opens on its finding, with the
    provider (and, for DKIM, its selector) already chosen."""
    # A DKIM fix names the provider's selector the way a dkim finding's detail names its key.
    detail = f"{fix.selector}._domainkey.{domain}" if fix.selector else ""
    value = fix_value(fix.finding, detail, domain, team_id, provider=fix.provider)
    return button("Fix it", slack_ids.ACTION_FIX, value)


def _category_text(category: str, members: list[SenderSummary]) -> str:
    lines = [_CATEGORY_TITLES[category]]
    for sender in members[:MAX_SENDERS_LISTED]:
        if sender.name is None:
            # the unnamed sources are one entry, so their failing volume is one line
            failing = sender.messages - sender.passed
            count = sender.sources or len(sender.ips)
            sources = f"{count:,} source{'s' if count != 1 else ''}"
            lines.append(
                f"• *No sender name*: {failing:,} of {sender.messages:,} messages from {sources} fail "
                f"DMARC: {safe(sender.reason, 500)}"
            )
        else:
            lines.append(f"• *{safe(sender.name, 150)}* ({_volume(sender)}): {safe(sender.reason, 400)}")
    if len(members) > MAX_SENDERS_LISTED:
        lines.append(f"…and {len(members) - MAX_SENDERS_LISTED} more")
    return fit_lines(lines)


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, 150)}}


def _sources_text(summary: ReportSummary) -> str:
    lines = ["*Sources* (messages · DMARC pass · SPF aligned · DKIM aligned)"]
    groups = group_by_provider(summary.sources)
    for provider, members in groups[:MAX_SOURCE_GROUPS]:
        lines.append(f"*{safe(provider, 120)}*")
        for s in members[:MAX_SOURCES_PER_GROUP]:
            name = f" {safe(s.name, 100)}" if s.name else ""
            lines.append(
                f"• `{s.ip}`{name}: {s.messages:,} · {percent(_rate(s.passed, s.messages))}"
                f" · {percent(_rate(s.spf_aligned, s.messages))}"
                f" · {percent(_rate(s.dkim_aligned, s.messages))}"
            )
        if len(members) > MAX_SOURCES_PER_GROUP:
            lines.append(f"  …and {len(members) - MAX_SOURCES_PER_GROUP} more")
    if len(groups) > MAX_SOURCE_GROUPS:
        lines.append(f"…and {len(groups) - MAX_SOURCE_GROUPS} more groups of sources")
    return fit_lines(lines)


def _failures_text(summary: ReportSummary) -> str:
    lines = ["*Failing DMARC*"]
    for failure in summary.failures[:MAX_FAILURES]:
        lines.append(f"• `{failure.ip}` ({failure.messages:,}): {safe(why_text(failure), 400)}")
    if len(summary.failures) > MAX_FAILURES:
        lines.append(f"…and {len(summary.failures) - MAX_FAILURES} more")
    return fit_lines(lines)


def _selectors_text(summary: ReportSummary) -> str:
    if not summary.selectors:
        return f"*DKIM selectors seen:* none with d={safe(summary.domain, 255)}"
    shown = ", ".join(f"{code(s.selector, 63)} ({s.messages:,})" for s in summary.selectors[:MAX_SELECTORS])
    extra = len(summary.selectors) - MAX_SELECTORS
    more = f" and {extra} more" if extra > 0 else ""
    return fit_lines([f"*DKIM selectors seen:* {shown}{more}"])


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def render_file_answer(outcome: FileOutcome, summaries: Sequence[ReportSummary]) -> tuple[str, list[Block]]:
    """The thread answer to a shared report file: what was stored, then each domain's summary."""
    if not outcome.ok:
        text = clip(f"I could not ingest {outcome.name}: {outcome.error}", 2900)
        return text, [
            section(
                f":warning: I could not ingest *{safe(outcome.name, 200)}*: {safe(outcome.error or '', 2000)}"
            )
        ]
    new = len(outcome.new_reports)
    again = len(outcome.reports) - new
    headline = f"Ingested {new} report{'s' if new != 1 else ''}"
    if again:
        headline += f"; {again} already ingested (counted once)"
    text = clip(f"{outcome.name}: {headline}.", 2900)
    blocks: list[Block] = [
        section(f":inbox_tray: *{safe(outcome.name, 200)}*: {headline}.\n" + safe(outcome.describe(), 2000))
    ]
    for summary in summaries[:MAX_FILE_SUMMARIES]:
        _text, summary_blocks = render_summary(summary, show_senders=False)
        blocks.extend(summary_blocks[1:])  # the file's headline stands in for the header
    if outcome.warnings:
        blocks.append(context(safe("; ".join(outcome.warnings[:3]), 1000)))
    return text, blocks[:50]


def render_report_alert(
    domain: str, headline: str, detail: str, fix: Block | None = None
) -> tuple[str, list[Block], Block]:
    """A report-based alert: (fallback text, blocks of its own message, its line in a digest).
    `detail` is plain text (escaped here); `fix`, a Fix it button, goes beside it in both."""
    text = clip(f"{domain}: {headline}. {detail}", 2900)
    body = section(f":chart_with_downwards_trend: {safe(detail, 2800)}")
    if fix is not None:
        body["accessory"] = fix
    blocks: list[Block] = [
        _header(f"{domain}: {headline}"),
        body,
        context(
            f"From DMARC aggregate reports. `/dmarc report {safe(domain, 255)}` shows the "
            "sources and why they fail."
        ),
    ]
    digest = section(
        f":chart_with_downwards_trend: *{safe(domain, 255)}*: {safe(headline, 200)}\n{safe(detail, 600)}"
    )
    if fix is not None:
        digest["accessory"] = fix
    return text, blocks, digest
