"""Block Kit for a message verdict (`/dmarc why`): the result, each identifier, the causes."""

from __future__ import annotations

from typing import Any

from bot.slack.blocks.domain_report import MAX_MESSAGE_BLOCKS, context, section
from bot.slack.mrkdwn import clip, code, safe
from handlers.message.verdict import MessageVerdict

Block = dict[str, Any]

_RESULT_ICONS = {
    "pass": ":white_check_mark:",
    "fail": ":x:",
    "none": ":grey_question:",
    "temperror": ":warning:",
    "permerror": ":warning:",
}


def render_verdict(verdict: MessageVerdict) -> tuple[str, list[Block]]:
    """The message for one verdict: (fallback text, blocks)."""
    dmarc = verdict.dmarc
    headline = f"DMARC {dmarc.result} for mail from {verdict.from_domain}"
    text = f"{headline}: {dmarc.reason}"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(headline, 150)}},
        section(
            f"{_RESULT_ICONS.get(dmarc.result, '')} *{safe(dmarc.reason, 900)}*\n"
            f"From: {code(verdict.from_address, 300)}"
            + (
                f" · policy {code('_dmarc.' + dmarc.location, 300)}: *{dmarc.policy}*"
                if dmarc.location and dmarc.policy
                else ""
            )
            + (f"\n{code(dmarc.record.raw, 1000)}" if dmarc.record else "")
        ),
        {"type": "divider"},
        section(_spf_text(verdict)),
        section(_dkim_text(verdict)),
    ]
    if verdict.causes:
        blocks.append({"type": "divider"})
    room = MAX_MESSAGE_BLOCKS - len(blocks) - 3
    for cause in verdict.causes[:room]:
        blocks.append(
            section(
                f"*{safe(cause.title, 200)}*  `{cause.id}`\n{safe(cause.detail, 1200)}"
                f"\n*Fix:* {safe(cause.fix, 800)}"
            )
        )
    if len(verdict.causes) > room:
        blocks.append(context(f"…and {len(verdict.causes) - room} more causes."))
    if verdict.differences:
        lines = [
            f"• {safe(d.what, 100)}: the receiver said {code(d.receiver, 100)}, we get "
            f"{code(d.ours, 100)}: {safe(d.why, 300)}"
            for d in verdict.differences[:6]
        ]
        blocks.append(section("*Where the receiver's Authentication-Results differ*\n" + "\n".join(lines)))
    notes = []
    if verdict.headers_only:
        notes.append("headers only: DKIM body hashes were not checked")
    if verdict.forwarding:
        notes.append("forwarded or list mail: " + ", ".join(verdict.forwarding[:4]))
    if notes:
        blocks.append(context(safe("; ".join(notes), 2000)))
    return clip(text, 3000), blocks[:MAX_MESSAGE_BLOCKS]


def _spf_text(verdict: MessageVerdict) -> str:
    spf = verdict.spf
    if spf.result is None:
        return (
            f"*SPF*: not evaluated, no connecting IP known ({safe(spf.ip_detail, 300)}). "
            "Give the IP with `dmarcbot why FILE --ip ADDR`."
        )
    aligned = {True: "aligned", False: "*not aligned*", None: "alignment unknown"}[spf.aligned]
    return (
        f"*SPF*: {spf.result} for {safe(spf.identity_text(), 400)} ({aligned}) · IP "
        f"{code(spf.ip or '?', 60)} from {safe(spf.ip_source, 40)}"
        + (f"\n{safe(spf.explanation, 500)}" if spf.explanation else "")
    )


def _dkim_text(verdict: MessageVerdict) -> str:
    if not verdict.dkim:
        return "*DKIM*: the message carries no signature."
    lines = ["*DKIM*"]
    for result, alignment in list(zip(verdict.dkim, verdict.dkim_alignment, strict=True))[:8]:
        aligned = "aligned" if alignment and alignment.aligned else "not aligned"
        lines.append(
            f"• d={code(result.domain, 120)} s={code(result.selector, 60)}: "
            f"*{result.result}* ({safe(result.reason, 60)}, {aligned}) "
            f"{safe(result.detail, 300)}"
        )
    if len(verdict.dkim) > 8:
        lines.append(f"…and {len(verdict.dkim) - 8} more signatures")
    return "\n".join(lines)
