"""Block Kit for alerts about watched domains, for digests of several, and for a new watch.

Same rules as reports (bot.slack.blocks.domain_report): everything from DNS is escaped and bounded, every
message stays inside Block Kit's limits (50 blocks, 3000 characters a section), and `text` is
always sent beside `blocks` for notifications and screen readers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from bot.monitor.watch_state import Change
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import (
    MAX_MESSAGE_BLOCKS,
    button,
    context,
    fix_button,
    fix_value,
    report_button_value,
    section,
)
from bot.slack.mrkdwn import clip, code, code_block, fit_lines, safe
from bot.store.outbox import Alert
from bot.store.watches import Watch
from handlers.dns.domain_name import display_name, first_mention
from handlers.domain.check import DomainReport
from handlers.fixes.records import fix_kind
from handlers.fixes.spf_fixes import address_drift

Block = dict[str, Any]

MAX_RECORD_CHANGES = 8  # one section each; the rest are counted
MAX_FINDINGS_LISTED = 10

HEADLINES = {
    "changed": "DNS records changed",
    "failing": "mail now fails DMARC",
    "recovered": "recovered: mail can pass DMARC again",
    "cannot_check": "cannot check (DNS failures)",
    "check_restored": "checking again after DNS failures",
    "certificate_expiring": "a certificate expires soon",
}
ICONS = {
    "changed": ":pencil2:",
    "failing": ":rotating_light:",
    "recovered": ":white_check_mark:",
    "cannot_check": ":grey_question:",
    "check_restored": ":arrows_counterclockwise:",
    "certificate_expiring": ":hourglass_flowing_sand:",
}
_SEVERITY_ICONS = {
    "error": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":information_source:",
}
STATUS_WORDS = {
    "pass": ":white_check_mark: can pass DMARC",
    "fail": ":red_circle: fails DMARC",
    "unknown": ":grey_question: unknown (DNS failed)",
    "cannot_check": ":grey_question: cannot check (DNS failures)",
    None: ":hourglass: not checked yet",
}


def render_alert(change: Change, team_id: str) -> tuple[str, list[Block], Block]:
    """One alert: (fallback text, blocks of its own message, its section in a digest); its Fix it
    button is for `team_id`, the workspace that owns the watch."""
    domain = safe(change.domain, 300)
    headline = HEADLINES[change.kind]
    text = clip(f"{change.domain}: {headline}. {change.summary}", 2900)
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(f"{change.domain}: {headline}", 150)}},
        section(f"{ICONS[change.kind]} {safe(change.summary, 2800)}"),
    ]
    for record in change.records[:MAX_RECORD_CHANGES]:
        blocks.append(section(_record_change_text(record.name, record.before, record.after)))
    if len(change.records) > MAX_RECORD_CHANGES:
        blocks.append(
            context(
                f"…and {len(change.records) - MAX_RECORD_CHANGES} more records "
                f"changed: run `dmarcbot check {domain}` for the full report."
            )
        )
    if change.spf_chain_not_compared:
        blocks.append(context(spf_chain_note(change.spf_chain_not_compared)))
    if change.appeared or change.cleared:
        blocks.append(section(_findings_text(change)))
    actions = _actions(change, team_id)
    if actions:
        blocks.append(actions)
    blocks.append(context(f"Watched domain {domain} · `/dmarc unwatch {domain}` to stop"))
    return safe(text, 2950), blocks, _digest_section(change, team_id)


def spf_chain_note(own_record: str) -> str:
    """Why an alert leaves a domain's SPF include chain out."""
    return (
        f"The include chain of {safe(own_record, 300)} is not compared: on one side of this change the "
        "domain's own SPF record cannot be evaluated (missing, doubled or not parsing), and receivers "
        "stop there with none or permerror before looking up any include (RFC 7208 §4.5, §4.6)."
    )


def _record_change_text(
    name: str,
    before: str | None,
    after: str | None,
    limit: int = 1200,
    render: Callable[[str, int], str] = code_block,
) -> str:
    """Before and after of one record, each at most `limit` characters (by default half of a
    section's room, as code blocks)."""
    what = "added" if before is None else "removed" if after is None else "changed"
    lines = [f"*{safe(name, 300)}* {what}"]
    lines.append("*Before:* " + (render(before, limit) if before is not None else "_no record_"))
    lines.append("*After:* " + (render(after, limit) if after is not None else "_no record_"))
    return "\n".join(lines)


def _findings_text(change: Change) -> str:
    lines = []
    for label, findings in (("Appeared", change.appeared), ("Cleared", change.cleared)):
        if not findings:
            continue
        lines.append(f"*{label}:*")
        for f in findings[:MAX_FINDINGS_LISTED]:
            lines.append(
                f"{_SEVERITY_ICONS.get(f['severity'], '')} {code(f['id'], 60)} "
                f"{safe(f['title'], 200)}: {safe(f['detail'], 300 if label == 'Cleared' else 600)}"
            )
        if len(findings) > MAX_FINDINGS_LISTED:
            lines.append(f"…and {len(findings) - MAX_FINDINGS_LISTED} more")
    return clip("\n".join(lines), 2990)


def _fix_button(change: Change, team_id: str) -> Block | None:
    """A failing alert's Fix it button, for the most important fixable finding that appeared."""
    if change.kind != "failing":
        return None
    fixable = [f for f in change.appeared if fix_kind(f["id"]) is not None]
    if not fixable:
        return None
    target = min(fixable, key=lambda f: f["severity"] != "error")
    return button(
        "Fix it",
        slack_ids.ACTION_FIX,
        fix_value(target["id"], target["detail"], change.domain, team_id, change.selectors),
        "danger",
    )


def _actions(change: Change, team_id: str) -> Block | None:
    fix = _fix_button(change, team_id)
    if fix is None:
        return None
    return {"type": "actions", "block_id": slack_ids.BLOCK_ALERT_ACTIONS, "elements": [fix]}


def _digest_section(change: Change, team_id: str) -> Block:
    """A digest's line for one alert: the headline, what changed, the Fix it button if failing."""
    appeared = ", ".join(code(f["id"], 60) for f in change.appeared[:5])
    cleared = ", ".join(code(f["id"], 60) for f in change.cleared[:5])
    lines = [f"{ICONS[change.kind]} *{safe(change.domain, 300)}*: {HEADLINES[change.kind]}"]
    # what changed, with its before and after: a name alone says nothing about the change
    for r in change.records[:3]:
        lines.append(_record_change_text(r.name, r.before, r.after, limit=200, render=code))
    if len(change.records) > 3:
        lines.append(f"…and {len(change.records) - 3} more records")
    if appeared:
        lines.append(f"Appeared: {appeared}")
    if cleared:
        lines.append(f"Cleared: {cleared}")
    if change.kind in ("cannot_check", "check_restored", "failing", "recovered", "certificate_expiring"):
        lines.append(safe(change.summary, 600))
    block = section(fit_lines(lines, 2900))
    fix = _fix_button(change, team_id)
    if fix is not None:
        block["accessory"] = fix
    return block


def digest_group(change: Change) -> tuple[str, str]:
    """The group key of a change (the same change at several domains has the same key) and its
    digest summary, which names no domain: the same before and after of a domain's own record at
    several domains (each changed to one new SPF record) is one change."""
    if change.kind in ("cannot_check", "check_restored", "certificate_expiring"):
        return "", ""
    key = json.dumps(
        [
            change.kind,
            [(_shared_name(r.name, change.domain), r.before, r.after) for r in change.records],
            sorted(f["id"] for f in change.appeared),
            sorted(f["id"] for f in change.cleared),
        ]
    )
    lines = [f"{ICONS[change.kind]} {HEADLINES[change.kind]}"]
    for r in change.records[:3]:
        name = _shared_name(r.name, change.domain)
        lines.append(_record_change_text(name, r.before, r.after, limit=200, render=code))
    if len(change.records) > 3:
        lines.append(f"…and {len(change.records) - 3} more records")
    appeared = ", ".join(f"{code(f['id'], 60)}" for f in change.appeared[:8])
    cleared = ", ".join(f"{code(f['id'], 60)}" for f in change.cleared[:8])
    if appeared:
        lines.append(f"Appeared: {appeared}")
    if cleared:
        lines.append(f"Cleared: {cleared}")
    return hashlib.sha256(key.encode()).hexdigest()[:32], fit_lines(lines, 2000)


def _shared_name(name: str, domain: str) -> str:
    """A record's name with the watched domain taken out (`SPF example.com` → `SPF of each
    domain`), so the same change at several domains has one name and groups in a digest."""
    if name.endswith(f" {domain}"):
        return f"{name.removesuffix(domain)}of each domain"
    if name.endswith(f".{domain}"):
        return f"{name.removesuffix(domain)}<each domain>"
    return name


def render_digest(alerts: Sequence[Alert]) -> tuple[str, list[Block]]:
    """Every alert of one delivery pass for one channel as one message: the same change at many
    domains (a shared include) is one section listing them; the rest one section per alert."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.digest_group or f"alert-{alert.id}", []).append(alert)
    ordered = sorted(groups.values(), key=len, reverse=True)
    room = MAX_MESSAGE_BLOCKS - 3  # header, the closing context, "…and N more"
    domains = sorted({a.domain for a in alerts})
    listed = ", ".join(domains[:10]) + (f" and {len(domains) - 10} more" if len(domains) > 10 else "")
    text = safe(f"{len(alerts)} alerts for watched domains: {listed}", 2950)
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(f"{len(alerts)} alerts for watched domains", 150)},
        }
    ]
    for group in ordered[:room]:
        blocks.append(group[0].digest_block if len(group) == 1 else _group_section(group))
    if len(ordered) > room:
        hidden = sum(len(g) for g in ordered[room:])
        blocks.append(
            context(
                f"…and {hidden} more alerts: `/dmarc list` shows every watched "
                "domain's status, `/dmarc check DOMAIN` its records."
            )
        )
    blocks.append(context("One message for every change seen in this check of the watched domains."))
    return text, blocks


def _group_section(group: Sequence[Alert]) -> Block:
    # in name order, not the order the checks finished in: the same change reads the same way
    names = sorted(safe(a.domain, 253) for a in group)
    shown: list[str] = []
    for name in names:
        if len(", ".join([*shown, name])) > 800:
            break
        shown.append(name)
    more = f" and {len(names) - len(shown)} more" if len(shown) < len(names) else ""
    return section(f"{group[0].digest_summary}\n*{len(group)} domains:* {', '.join(shown)}{more}")


def render_include_drift(
    domain: str,
    include: str,
    team_id: str,
    selectors: Sequence[str],
    before: Sequence[str],
    after: Sequence[str],
    problem: str | None,
) -> tuple[str, list[Block], Block, str]:
    """A flattened include whose provider changed its addresses: (fallback text, blocks, digest
    section, digest summary naming no domain). The Fix it button re-flattens: the provider's old
    addresses out of the record, its new ones in."""
    drift = address_drift(include, before, after)
    what = (
        f"include:{include}, flattened into this domain's SPF, cannot be flattened any more ({problem})"
        if problem
        else f"The provider changed the addresses of include:{include}, which a verified fix "
        "flattened into this domain's SPF"
    )
    summary = f"{what}: the flattened SPF is stale, and mail from the provider's new addresses fails SPF."
    lines = [f":warning: {safe(summary, 1200)}"]
    if drift.added:
        lines.append("*New addresses:* " + code(" ".join(drift.added), 700))
    if drift.removed:
        lines.append("*No longer the provider's:* " + code(" ".join(drift.removed), 700))
    body = "\n".join(lines)
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(f"{domain}: flattened SPF is stale", 150)},
        },
        section(body),
    ]
    value = json.dumps(
        {
            "f": "spf.flattened_stale",
            "d": domain,
            "o": team_id,
            "s": list(selectors)[:20],
            "i": include,
            "r": list(drift.removed),
            "a": list(drift.added),
        },
        separators=(",", ":"),
    )
    fix = None
    if problem is None and len(value) <= 2000:
        fix = button("Fix it", slack_ids.ACTION_FIX, value, "danger")
        blocks.append({"type": "actions", "block_id": slack_ids.BLOCK_ALERT_ACTIONS, "elements": [fix]})
    elif problem is None:
        blocks.append(
            context(
                "Too many addresses changed for a button: open Fix it for "
                f"`spf.too_many_lookups` from `/dmarc check {safe(domain, 300)}`."
            )
        )
    blocks.append(context(f"Watched domain {safe(domain, 300)} · flattened include {code(include, 300)}"))
    digest_block = section(f"{ICONS['changed']} *{safe(domain, 300)}*: flattened SPF is stale\n" + body)
    if fix is not None:
        digest_block["accessory"] = fix
    text = clip(f"{domain}: flattened SPF is stale. {summary}", 2900)
    return safe(text, 2950), blocks, digest_block, clip(body, 2000)


def render_watch_started(
    report: DomainReport, watch: Watch, newly: bool, selectors: Sequence[str]
) -> tuple[str, list[Block]]:
    """The message a new watch posts in its channel: what is watched and the first check."""
    name = display_name(watch.domain)
    a_label = f" ({code(watch.domain, 300)})" if name != watch.domain else ""
    verb = "Now watching" if newly else "Still watching"
    intro = (
        f"{verb} *{safe(name, 300)}*{a_label} for this channel: I check it every cycle and post here when "
        "its DMARC, SPF (and every include), DKIM or MX records change, when mail starts "
        "failing DMARC, and when it recovers."
    )
    if selectors:
        intro += " DKIM selectors: " + ", ".join(f"{code(s, 63)}" for s in selectors[:20]) + "."
    status = STATUS_WORDS.get(report.verdict, report.verdict)
    blocks: list[Block] = [
        section(intro),
        section(f"*First check:* {status}\n{safe(report.summary, 2500)}"),
    ]
    problems = [f for f in report.findings if f.severity.value != "info"][:8]
    if problems:
        lines = [f"{_SEVERITY_ICONS[f.severity.value]} `{f.id}` {safe(f.title, 200)}" for f in problems]
        blocks.append(section("\n".join(lines)))
    value = report_button_value(watch.domain, list(selectors))
    actions = [button("Re-check", slack_ids.ACTION_RECHECK, value)]
    fixes = [
        b for f in problems if (b := fix_button(f, watch.domain, watch.team_id, list(selectors))) is not None
    ]
    actions += fixes[:1]
    blocks.append({"type": "actions", "block_id": slack_ids.BLOCK_WATCH_ACTIONS, "elements": actions})
    text = clip(f"{verb} {first_mention(watch.domain)} in this channel. First check: {report.summary}", 2900)
    return safe(text, 2950), blocks


def watch_lines(watches: Sequence[Watch]) -> list[str]:
    """One mrkdwn line per watch: domain, channel, last check, status."""
    lines = []
    for w in watches:
        checked = "never" if not w.last_checked_at else w.last_checked_at.replace("T", " ")[:16] + " UTC"
        selectors = f" · selectors {', '.join(w.selectors[:5])}" if w.selectors else ""
        digest = f" · {w.digest} digest" if w.digest else ""
        lines.append(
            f"• *{safe(w.domain, 300)}* → <#{w.channel_id}> · last check {checked} · "
            f"{STATUS_WORDS.get(w.last_status, safe(w.last_status or '', 40))}"
            f"{safe(selectors, 200)}{safe(digest, 40)}"
        )
    return lines


def render_watch_list(
    watches: Sequence[Watch], limit_blocks: int = MAX_MESSAGE_BLOCKS
) -> tuple[str, list[Block]]:
    """This workspace's watches, packed into sections of at most 3000 characters."""
    if not watches:
        text = (
            "No domain is watched in this workspace yet. Start with "
            "`/dmarc watch example.com` in the channel that should get the alerts."
        )
        return text, [section(text)]
    blocks: list[Block] = [section(f"*Watched domains ({len(watches)})*")]
    chunk: list[str] = []
    lines = watch_lines(watches)
    shown = 0
    for line in lines:
        if len("\n".join([*chunk, line])) > 2900:
            if len(blocks) >= limit_blocks - 2:
                break
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
        shown += 1
    if chunk:
        blocks.append(section("\n".join(chunk)))
    if shown < len(lines):
        blocks.append(context(f"…and {len(lines) - shown} more: `dmarcbot list` shows them all."))
    text = f"{len(watches)} watched domains: " + ", ".join(w.domain for w in watches[:20])
    return clip(text, 2900), blocks
