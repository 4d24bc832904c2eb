"""Block Kit for a watched domain's scheduled report digest (bot.reports.digest).

Sender names, reasons and the domain come from reports and DNS: each is escaped with
bot.slack.mrkdwn.safe and bounded. The message has at most 7 blocks and every section stays under
3,000 characters however many senders there are; `text` goes beside `blocks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.reports.summary import nothing_text, percent
from bot.slack.blocks.domain_report import context, section
from bot.slack.mrkdwn import clip, fit_lines, safe
from handlers.dns.domain_name import display_name

if TYPE_CHECKING:
    from bot.reports.digest import Digest
    from bot.reports.summary import SenderSummary

Block = dict[str, Any]

MAX_SENDERS_LISTED = 10  # the rest are counted: `/dmarc report` lists them all
_CATEGORY_ICONS = {
    "misconfigured": ":warning:",
    "unknown": ":question:",
    "forwarded": ":arrows_counterclockwise:",
    "compliant": ":white_check_mark:",
}
_READINESS_ICONS = {"ready": ":white_check_mark:", "not_ready": ":warning:", "unknown": ":grey_question:"}


def rate_change(digest: Digest) -> str:
    """The pass rate's change from the period before, in percentage points, for people."""
    unit = digest.period.unit
    now, before = digest.summary.pass_rate, digest.previous.pass_rate
    if before is None:
        return f"no reports the {unit} before"
    if now is None:
        return f"{percent(before)} the {unit} before"
    points = round((now - before) * 100, 1)
    if points == 0:
        return f"unchanged from the {unit} before"
    return f"{points:+.1f} points from {percent(before)} the {unit} before"


def render_report_digest(digest: Digest) -> tuple[str, list[Block]]:
    """The digest as (fallback text, blocks)."""
    summary, period = digest.summary, digest.period
    name = display_name(digest.domain)
    title = f"{period.every.capitalize()} DMARC digest: {name}"
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": clip(title, 150)}}]
    if summary.messages:
        change = rate_change(digest)
        arrow = {"+": ":arrow_up_small: ", "-": ":arrow_down_small: "}.get(change[0], "")
        headline = (
            f"*{period.label}*: {summary.messages:,} messages, *{percent(summary.pass_rate)}* passed "
            f"DMARC ({arrow}{change})."
        )
        text = (
            f"{title}: {summary.messages:,} messages on {period.label}, {percent(summary.pass_rate)} passed "
            f"DMARC ({change})"
        )
    else:
        headline = f"*{period.label}*: no aggregate report covers it. {safe(nothing_text(summary), 500)}"
        text = f"{title}: no aggregate report covers {period.label}."
    blocks.append(section(headline))
    if summary.messages:
        blocks.append(section(_senders_text(digest)))
        blocks.append(section(_dispositions_text(digest)))
    blocks.append(section(_readiness_text(digest)))
    blocks.append(
        context(
            f"Aggregate reports for {period.first} to {period.last} (UTC) · `/dmarc report "
            f"{safe(digest.domain, 255)}` has every sender · "
            f"`/dmarc digest {safe(digest.domain, 255)} off` stops this digest"
        )
    )
    return safe(text, 2950), blocks


def _senders_text(digest: Digest) -> str:
    if not digest.senders:
        return ":white_check_mark: *Senders:* none new, misconfigured or unknown."
    lines = ["*Senders to look at* (new, misconfigured or unknown):"]
    for sender in digest.senders[:MAX_SENDERS_LISTED]:
        lines.append(_sender_line(sender, sender.name in digest.new))
    hidden = len(digest.senders) - MAX_SENDERS_LISTED
    if hidden > 0:
        lines.append(f"…and {hidden} more")
    return fit_lines(lines, 2900)


def _sender_line(sender: SenderSummary, new: bool) -> str:
    label = safe(sender.name, 120) if sender.name else "Unnamed sources"
    icon = _CATEGORY_ICONS.get(sender.category, "")
    rate = percent(sender.passed / sender.messages if sender.messages else None)
    tag = " · *new*" if new else ""
    return (
        f"{icon} *{label}*{tag} · {sender.category}: {safe(sender.reason, 300)} · "
        f"{sender.messages:,} messages, {rate} passed"
    )


def _dispositions_text(digest: Digest) -> str:
    counts = digest.summary.dispositions
    quarantined, rejected = counts.get("quarantine", 0), counts.get("reject", 0)
    return (
        f"*What the policy did:* {counts.get('none', 0):,} delivered as usual, {quarantined:,} quarantined, "
        f"{rejected:,} rejected."
    )


def _readiness_text(digest: Digest) -> str:
    if digest.policy is None:
        return ":grey_question: *Next policy step:* no DMARC record was seen at the last check."
    if digest.next_step is None or digest.readiness is None:
        return f":white_check_mark: *Policy:* p={safe(digest.policy, 40)}, the last step: nothing further."
    readiness = digest.readiness
    icon = _READINESS_ICONS.get(readiness.verdict, "")
    return (
        f"{icon} *Next policy step* (p={safe(digest.policy, 40)} → {safe(digest.next_step, 60)}): "
        f"{safe(readiness.summary, 1500)}"
    )
