"""Block Kit for failure reports: a domain's groups, a shared report's answer, a new group's alert.

Everything that came from a report (IPs, domains, reporter names) or from reverse DNS is escaped
with bot.slack.mrkdwn and bounded; every message stays inside Block Kit's limits and `text` is
always sent beside `blocks`. A cause that a DNS change at the domain fixes carries the Fix it
button of that fix, for the workspace that owns the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.reports.failures import DNS_OF_THE_MOMENT, FailureSummary
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import MAX_MESSAGE_BLOCKS, button, context, fix_value, section
from bot.slack.mrkdwn import clip, code, fit_lines, safe
from bot.store.failures import FailureGroup, StoredFailure
from handlers.message.verdict import CAUSES
from handlers.reports.failure_causes import fixing_cause, short_causes

Block = dict[str, Any]

MAX_GROUPS_LISTED = 25  # lines of the summary's group list (one section, within 3000 characters)
MAX_CAUSES_EXPLAINED = 12  # every cause id there is
MAX_ALERT_GROUPS = 20  # sections of one new-groups message


def group_line(group: FailureGroup, sender: str | None, domain: str | None = None) -> str:
    """'14 failures from `203.0.113.7` (unknown sender): not in SPF, no DKIM signature', escaped;
    the From domain is named when it is not `domain` (a subdomain's mail)."""
    plural = "failure" if group.count == 1 else "failures"
    ip = code(group.source_ip, 60) if group.source_ip else "an unknown IP"
    line = f"*{group.count:,}* {plural} from {ip} ({safe(sender or 'unknown sender', 200)})"
    if domain is None or group.from_domain != domain:
        line += f", From {safe(group.from_domain, 255)}"
    return f"{line}: {safe(short_causes(group.causes), 400)}"


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, 150)}}


# A cause as a stored verdict gives it: {"id", "title", "detail", "fix"} (the report's own details).
StoredCause = Mapping[str, str]


def fix_button_for(
    causes: Sequence[str],
    domain: str,
    team_id: str | None,
    selectors: Sequence[str],
    details: Sequence[StoredCause] = (),
) -> Block | None:
    """The Fix it button that answers the most important of `causes`, or None. A DKIM key's
    button names the selector when the verdict's `details` name the key at `domain` itself."""
    found = fixing_cause(causes)
    if found is None:
        return None
    cause_id, finding = found
    said = " ".join(f"{d.get('detail', '')} {d.get('fix', '')}" for d in details if d.get("id") == cause_id)
    key_named = f"._domainkey.{domain}".lower() in said.lower()
    value = fix_value(finding, said if key_named else "", domain, team_id, selectors)
    return button("Fix it", slack_ids.ACTION_FIX, value)


def _cause_sections(
    cause_ids: Sequence[str],
    domain: str,
    team_id: str | None,
    selectors: Sequence[str],
    room: int,
    details: Sequence[StoredCause] = (),
) -> list[Block]:
    """One section per cause: its title and fix (the verdict's own detail and fix when `details`
    has them), and the Fix it button that answers it."""
    blocks = []
    for cause_id in list(dict.fromkeys(cause_ids))[: min(room, MAX_CAUSES_EXPLAINED)]:
        kind = CAUSES.get(cause_id)
        if kind is None:
            continue
        own = next((d for d in details if d.get("id") == cause_id), None)
        detail = f"\n{safe(own['detail'], 1000)}" if own and own.get("detail") else ""
        fix_text = own["fix"] if own and own.get("fix") else kind.fix
        block = section(f"*{safe(kind.title, 200)}*  `{cause_id}`{detail}\n*Fix:* {safe(fix_text, 1200)}")
        fix = fix_button_for([cause_id], domain, team_id, selectors, details)
        if fix is not None:
            block["accessory"] = fix
        blocks.append(block)
    return blocks


def render_failure_summary(
    summary: FailureSummary, team_id: str | None, selectors: Sequence[str] = ()
) -> tuple[str, list[Block]]:
    """`/dmarc failures`: the groups of the window, then each cause with its fix (the content of
    `dmarcbot failures`)."""
    domain = summary.domain
    title = f"{domain}: DMARC failure reports, last {summary.days} days"
    if not summary.groups:
        text = f"{domain}: no failure reports in the last {summary.days} days."
        return clip(text, 2900), [
            _header(title),
            section(
                f"No failure reports for *{safe(domain, 255)}* in the last {summary.days} days. "
                "Receivers send them to the `ruf=` address of the DMARC record, when they send them "
                "at all; share one here, or have the bot read the mailbox (IMAP)."
            ),
        ]
    groups = f"{len(summary.groups):,} group{'s' if len(summary.groups) != 1 else ''}"
    text = clip(f"{domain}: {summary.reports:,} failure reports in {groups}, last {summary.days} days", 2900)
    lines = [
        f"*{summary.reports:,}* failure reports in {groups} (same day, source IP, From domain and causes):"
    ]
    for group in summary.groups[:MAX_GROUPS_LISTED]:
        sender = summary.senders.get(group.source_ip or "")
        lines.append(
            f"• {group.day}: {group_line(group, sender, domain)} · DMARC {safe(group.dmarc_result, 20)}"
        )
    if len(summary.groups) > MAX_GROUPS_LISTED:
        lines.append(f"…and {len(summary.groups) - MAX_GROUPS_LISTED} more groups")
    blocks: list[Block] = [_header(title), section(fit_lines(lines)), {"type": "divider"}]
    causes = [c for g in summary.groups for c in g.causes]
    blocks += _cause_sections(causes, domain, team_id, selectors, MAX_MESSAGE_BLOCKS - len(blocks) - 1)
    blocks.append(
        context(
            f"{DNS_OF_THE_MOMENT} `dmarcbot failures {safe(domain, 255)} --days {summary.days}` "
            "prints every group."
        )
    )
    return text, blocks[:MAX_MESSAGE_BLOCKS]


def render_failure_answer(
    name: str,
    stored: StoredFailure,
    group: FailureGroup | None,
    team_id: str | None,
    details: Sequence[StoredCause] = (),
) -> tuple[str, list[Block]]:
    """The thread answer to a shared failure report: what failed and why, each cause's fix, and
    how many like it the day has seen."""
    state = "already ingested, counted once" if stored.duplicate else "stored"
    ip = code(stored.source_ip, 60) if stored.source_ip else "an unknown IP"
    headline = (
        f"A failure report: mail from {stored.from_domain} sent from {stored.source_ip or 'an unknown IP'}"
    )
    text = clip(
        f"{headline} on {stored.day}, DMARC {stored.dmarc_result}: {short_causes(stored.causes)}", 2900
    )
    lines = [
        f":incoming_envelope: *{safe(name, 200)}*: a DMARC failure report ({state}).",
        f"Mail from *{safe(stored.from_domain, 255)}* sent from {ip} on {stored.day}: "
        f"DMARC *{safe(stored.dmarc_result, 20)}*, {safe(short_causes(stored.causes), 400)}.",
    ]
    if group is not None and group.count > 1:
        lines.append(
            f"{group.count:,} reports like it that day (same source IP, From domain and causes): "
            f"`/dmarc failures {safe(stored.domain, 255)}` lists them."
        )
    blocks: list[Block] = [section("\n".join(lines))]
    if not stored.causes:
        blocks.append(section("No cause found: the message passes DMARC against today's DNS."))
    blocks += _cause_sections(stored.causes, stored.from_domain, team_id, (), MAX_MESSAGE_BLOCKS - 2, details)
    blocks.append(context(DNS_OF_THE_MOMENT))
    return text, blocks[:MAX_MESSAGE_BLOCKS]


def render_new_groups(
    domain: str,
    groups: Sequence[FailureGroup],
    senders: Mapping[str, str],
    team_id: str,
    selectors: Sequence[str],
    details: Mapping[str, Sequence[StoredCause]] | None = None,
) -> tuple[str, list[Block], Block]:
    """The channel message about failure groups new since the last one: (fallback text, blocks,
    its section in a digest). Each group carries the Fix it button matching its causes; `details`
    (by group key) are its latest report's causes as the verdict gave them."""
    total = sum(g.count for g in groups)
    first = groups[0]
    first_line = group_line(first, senders.get(first.source_ip or ""), domain)
    if len(groups) == 1:
        plural = "failure" if first.count == 1 else "failures"
        sender = senders.get(first.source_ip or "") or "unknown sender"
        summary = (
            f"{first.count:,} {plural} from {first.source_ip or 'an unknown IP'} ({sender}): "
            f"{short_causes(first.causes)}"
        )
        headline = f"{domain}: new DMARC failures"
    else:
        summary = f"{total:,} failures in {len(groups)} new groups"
        headline = f"{domain}: {len(groups)} new groups of DMARC failures"
    text = clip(f"{domain}: {summary}", 2900)
    blocks: list[Block] = [_header(headline)]
    for group in groups[:MAX_ALERT_GROUPS]:
        line = group_line(group, senders.get(group.source_ip or ""), domain)
        block = section(f":incoming_envelope: {group.day}: {line}")
        own = (details or {}).get(group.key, ())
        fix = fix_button_for(group.causes, group.from_domain, team_id, selectors, own)
        if fix is not None:
            fix["style"] = "danger"
            block["accessory"] = fix
        blocks.append(block)
    if len(groups) > MAX_ALERT_GROUPS:
        blocks.append(context(f"…and {len(groups) - MAX_ALERT_GROUPS} more groups."))
    blocks.append(
        context(
            f"From DMARC failure reports, at most one message an hour per domain. "
            f"`/dmarc failures {safe(domain, 255)}` explains each cause and its fix."
        )
    )
    digest_lines = [f":incoming_envelope: *{safe(domain, 255)}*: new DMARC failures", f"• {first_line}"]
    if len(groups) > 1:
        digest_lines.append(f"…and {len(groups) - 1} more new groups")
    digest = section(fit_lines(digest_lines, 2900))
    fix = fix_button_for(
        first.causes, first.from_domain, team_id, selectors, (details or {}).get(first.key, ())
    )
    if fix is not None:
        digest["accessory"] = fix
    return safe(text, 2950), blocks, digest
