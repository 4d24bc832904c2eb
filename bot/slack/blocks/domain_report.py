"""Block Kit for a domain report: the verdict, each record, the findings and their buttons.

A header and verdict, the summary, one section per record, the findings by severity with their fixes,
a context line and the Re-check / Watch / Fix it buttons.

Everything from DNS is escaped (bot.slack.mrkdwn) and every part is bounded, so the worst domain still
fits Block Kit's limits (50 blocks, 3000 characters a section): extra findings become "…and N more".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from bot.slack import ids as slack_ids
from bot.slack.mrkdwn import clip, code, code_block, safe
from handlers.dns.domain_name import display_name, first_mention, unicode_names
from handlers.domain.check import TRANSPORT_PARTS, DomainReport
from handlers.domain.findings import Finding, Severity
from handlers.fixes.records import fix_kind

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
_SEVERITY_ICONS = {
    Severity.ERROR: ":red_circle:",
    Severity.WARNING: ":large_orange_circle:",
    Severity.INFO: ":information_source:",
}
_VERDICT_WORDS = {"pass": "can pass DMARC", "fail": "fails DMARC", "unknown": "unknown (DNS failed)"}
# The report's fixed blocks: header, summary, divider, 4 record sections and the alignment one, 4 more
# after MX (or fewer and an "also checked" line), divider, context, actions.
_FIXED_BLOCKS = 15


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, 3000)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 3000)}]}


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, 75)},
        "action_id": action_id,
        "value": value[:2000],
    }
    if style:
        element["style"] = style
    return element


def report_button_value(domain: str, selectors: list[str]) -> str:
    """What the report's buttons carry: enough to run the same check again (≤ 2000 characters)."""
    value = json.dumps({"d": domain, "s": selectors[:20]}, separators=(",", ":"))
    return value if len(value) <= 2000 else json.dumps({"d": domain, "s": []})


_KEY_NAME = re.compile(r"([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\._domainkey\.")


def fix_button_value(f: Finding, domain: str, team_id: str | None, selectors: list[str] | None = None) -> str:
    """What a finding's Fix it button carries: the finding id, the domain, the owning team, and
    the DKIM selector at fault (read from the finding's detail) — well within 2000 characters."""
    return fix_value(f.id, f.detail, domain, team_id, selectors)


def fix_value(
    finding_id: str,
    detail: str,
    domain: str,
    team_id: str | None,
    selectors: Sequence[str] | None = None,
    provider: str | None = None,
) -> str:
    """The same, from a finding's id and detail (alerts keep findings as plain data); `provider`
    is the catalog key of a sender the fix adds."""
    data: dict[str, Any] = {"f": finding_id, "d": domain}
    if team_id:
        data["o"] = team_id
    if provider:
        data["p"] = provider
    if finding_id.startswith("dkim."):
        found = _KEY_NAME.search(detail)
        if found and len(found.group(1)) <= 63:
            data["x"] = found.group(1).lower()
    data["s"] = list(selectors or [])[:20]
    return json.dumps(data, separators=(",", ":"))[:2000]


def fix_button(
    f: Finding, domain: str, team_id: str | None, selectors: list[str] | None = None
) -> Block | None:
    """A finding's own Fix it button, or None when the fix-it flow has no fix for it (alerts use
    this too, so every fixable finding carries one)."""
    if fix_kind(f.id) is None:
        return None
    return button("Fix it", slack_ids.ACTION_FIX, fix_button_value(f, domain, team_id, selectors))


def render_report(
    report: DomainReport, selectors: list[str] | None = None, team_id: str | None = None
) -> tuple[str, list[Block]]:
    """The message for a domain report: (fallback text, blocks). `team_id`, the workspace that
    asked, goes into the Fix it buttons so only its members may fix the domain."""
    name = report.display_domain
    verdict = report.verdict
    # the fallback text is mrkdwn too (notifications, screen readers): escape it like the blocks
    text = f"DMARC check for {name}: {_VERDICT_WORDS[verdict]}. {safe(report.summary, 2600)}"
    blocks: list[Block] = [
        {
            "type": "header",
            # the one place the A-label of an internationalised name is shown
            "text": {
                "type": "plain_text",
                "text": clip(f"{first_mention(report.domain)}: {_VERDICT_WORDS[verdict]}", 150),
            },
        },
        section(safe(report.summary, 2900)),
        {"type": "divider"},
        *_record_sections(report),
        {"type": "divider"},
    ]
    room = MAX_MESSAGE_BLOCKS - len(blocks) - 3  # context, actions, and one "…and N more"
    findings = list(report.findings)
    blocks += [
        _finding_section(f, report.display_domain, fix_button(f, report.domain, team_id, selectors))
        for f in findings[:room]
    ]
    if len(findings) > room:
        blocks.append(
            context(
                f"…and {len(findings) - room} more findings: run "
                f"`dmarcbot check {report.domain}` for the full list."
            )
        )
    blocks.append(
        context(
            f"Checked <!date^{int(report.checked_at.timestamp())}^{{date_short_pretty}} "
            f"{{time}}|{report.checked_at:%Y-%m-%d %H:%M} UTC> · "
            f"{report.queries} DNS queries"
        )
    )
    value = report_button_value(report.domain, selectors or [])
    actions = [
        button("Re-check", slack_ids.ACTION_RECHECK, value, "primary"),
        button("Watch", slack_ids.ACTION_WATCH, value),
    ]
    fixable = [f for f in report.findings if f.severity is not Severity.INFO and fix_kind(f.id)]
    if fixable:
        # The report-wide button fixes the most important finding; each finding has its own too.
        top = report.top_finding if report.top_finding in fixable else fixable[0]
        assert top is not None
        actions.append(
            button("Fix it", slack_ids.ACTION_FIX, fix_button_value(top, report.domain, team_id, selectors))
        )
    blocks.append({"type": "actions", "block_id": slack_ids.BLOCK_REPORT_ACTIONS, "elements": actions})
    return clip(text, 3000), blocks


def _record_sections(report: DomainReport) -> list[Block]:
    if not report.exists:
        return [section(f"*Domain*\n{safe(report.domain)} does not exist (NXDOMAIN).")]
    parts = []
    if report.dmarc is not None:
        dmarc = report.dmarc
        lines = ["*DMARC*"]
        lines.append(code_block(dmarc.record.raw, 1200) if dmarc.record else "_no record_")
        if dmarc.location:
            lines.append(
                f"at {code('_dmarc.' + display_name(dmarc.location), 300)}"
                + (f" · policy for this domain: *{dmarc.policy}*" if dmarc.policy else "")
            )
        parts.append(section("\n".join(lines)))
    alignment = _alignment_section(report)
    if alignment is not None:
        parts.append(alignment)
    if report.spf is not None:
        spf = report.spf
        if len(spf.records) > 1:
            # one code block each: an inline span across a newline is not rendered as code
            share = 1500 // len(spf.records[:4])
            lines = [f"*SPF* ({len(spf.records)} records, so receivers ignore them all)"]
            lines += [code_block(record, share) for record in spf.records[:4]]
        else:
            lines = ["*SPF*", code_block(spf.record, 1500) if spf.record else "_no record_"]
        if spf.record:
            lines.append(f"{spf.dns_lookups} of 10 DNS lookups · {spf.void_lookups} void")
        parts.append(section("\n".join(lines)))
    if report.dkim is not None:
        dkim = report.dkim
        keys = [
            f"• {code(k.selector, 70)}: {safe(k.key_type or '?', 40)}, {k.key_bits or '?'} bits"
            f"{' (revoked)' if k.revoked else ''}"
            for k in dkim.keys[:10]
        ]
        how = "named" if not dkim.probed else f"probed {len(dkim.selectors_tried)} common selectors"
        missing = "_unknown: DNS failed_" if report.dkim_unknown else "_no key found_"
        parts.append(section("*DKIM* (" + how + ")\n" + ("\n".join(keys) or missing)))
    if report.mx is not None:
        mx = report.mx
        hosts = ", ".join(code(f"{h.preference} {h.host}", 120) for h in mx.hosts[:8])
        if len(mx.hosts) > 8:
            hosts += f" …and {len(mx.hosts) - 8} more"
        parts.append(section("*MX*\n" + ("null MX: accepts no mail" if mx.null_mx else hosts or "_none_")))
    shown, quiet = report.transport_sections()
    names = dict(TRANSPORT_PARTS)
    parts += [section(f"*{names[part]}*\n" + _transport_text(report, part)) for part in shown]
    if quiet:
        parts.append(context(f"Also checked, nothing to report: {', '.join(quiet)}."))
    return parts


def _transport_text(report: DomainReport, part: str) -> str:
    """What a part after MX published, for its own section (its findings follow with the rest)."""
    if part == "mta_sts" and report.mta_sts is not None:
        lines = [code_block(report.mta_sts.record, 600) if report.mta_sts.record else "_no record_"]
        policy = report.mta_sts.policy
        if policy is not None:
            patterns = ", ".join(code(p, 120) for p in policy.mx[:5]) + (" …" if len(policy.mx) > 5 else "")
            lines.append(f"policy: mode *{safe(policy.mode, 20)}*, max_age {policy.max_age}, mx {patterns}")
        return "\n".join(lines)
    if part == "tls_rpt" and report.tls_rpt is not None:
        return code_block(report.tls_rpt.record, 600) if report.tls_rpt.record else "_no record_"
    if part == "bimi" and report.bimi is not None:
        lines = [code_block(report.bimi.record, 600) if report.bimi.record else "_no record_"]
        if report.bimi.logo_url:
            lines.append(f"logo: {code(report.bimi.logo_url, 600)}")
        if report.bimi.certificate is not None:
            mark = report.bimi.certificate
            lines.append(f"VMC: expires {mark.not_after:%Y-%m-%d}, issued by {code(mark.issuer, 300)}")
        return "\n".join(lines)
    if part == "dnssec" and report.dnssec is not None:
        dnssec = report.dnssec
        state = {None: "unknown (DNS failed)", False: "not signed", True: "signed"}[dnssec.signed]
        if dnssec.valid is not None:
            state += ", signatures verify" if dnssec.valid else ", signatures do not verify"
        return f"zone {code(display_name(dnssec.zone), 300)}: {state}" if dnssec.zone else state
    return ""


def _alignment_section(report: DomainReport) -> Block | None:
    """For a subdomain: its organizational domain, the alignment modes, and each identifier that
    can give an aligned pass (RFC 9989 §4.4)."""
    org = report.organizational
    if org is None or report.dmarc is None or report.dmarc.record is None:
        return None
    record = report.dmarc.record
    modes = ", ".join(
        f"a{t}={mode} ({'relaxed' if mode != 's' else 'strict'})"
        for t, mode in (("dkim", record.adkim), ("spf", record.aspf))
    )
    lines = [f"*Alignment*\norganizational domain {code(org.domain, 300)} · {modes}"]
    for path in report.aligned_paths()[:10]:
        if path.via == "spf":
            where = f"a MAIL FROM at {code(path.domain, 300)}" if path.relaxed else "its own MAIL FROM"
            lines.append(f"• SPF for {where}" + (" (relaxed aspf)" if path.relaxed else ""))
        else:
            signer = f"d={code(path.domain, 300)} " if path.relaxed else ""
            lines.append(
                f"• DKIM {signer}selector {code(path.selector or '', 70)}"
                + (" (relaxed adkim)" if path.relaxed else "")
            )
    if not report.aligned_paths():
        lines.append("_no identifier can give an aligned pass_")
    return section("\n".join(lines))


def _fix_text(f: Finding, domain: str) -> str:
    """The finding's fix, escaped, with Slack's own syntax where the fix is to run a command."""
    if f.id == "dkim.no_selector":
        return f"{safe(unicode_names(f.fix), 600)} Run {code(f'/dmarc check {domain} SELECTOR', 300)}"
    return safe(unicode_names(f.fix), 700)


def _finding_section(f: Finding, domain: str, fix: Block | None = None) -> Block:
    lines = [
        f"{_SEVERITY_ICONS[f.severity]} *{safe(f.title, 200)}*  `{f.id}`",
        safe(unicode_names(f.detail), 1200),
    ]
    if f.record:
        # several records (spf.multiple, dmarc.multiple): one code block each, since an inline code
        # span across a newline is not rendered as code
        records = f.record.split("\n")
        if len(records) > 1:
            lines += [code_block(record, 700 // len(records[:4])) for record in records[:4]]
        else:
            lines.append(code(f.record, 700))
    lines.append(f"*Fix:* {_fix_text(f, domain)}")
    block = section("\n".join(lines))
    if fix is not None:
        block["accessory"] = fix
    return block
