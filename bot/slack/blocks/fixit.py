"""Block Kit for the fix-it flow: the modal and its inputs, the plan posted, the Verify answer.

The modal shows the problem, the current record, the proposal and the inputs, which are read back
from its state; the plan is posted in the report's thread.

Every value from DNS or typed by a person is escaped (bot.slack.mrkdwn) and clipped; the modal stays under
100 blocks and its private_metadata under 3000 characters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import button, context, fix_value, section
from bot.slack.fix_plans import FixPlan
from bot.slack.mrkdwn import clip, code, code_block, safe
from handlers.dns.dns_entry import DnsEntry
from handlers.domain.dmarc_record import POLICIES
from handlers.domain.findings import CATALOG
from handlers.fixes.dkim_fixes import (
    DkimKeyChoices,
    parse_cname_target,
    parse_public_key_input,
    parse_selector_input,
)
from handlers.fixes.providers import PROVIDERS, PROVIDERS_BY_KEY
from handlers.fixes.readiness import Readiness
from handlers.fixes.records import (
    DmarcChoices,
    FixInputError,
    Proposal,
    parse_rua_input,
)
from handlers.fixes.session import FixCheck, FixForm, FixScreen
from handlers.fixes.spf_fixes import ALL_QUALIFIERS, SpfChoices, parse_extra_terms
from handlers.fixes.transport_fixes import TransportChoices, parse_https_url_input, parse_tls_rua_input

Block = dict[str, Any]
View = dict[str, Any]

MAX_METADATA = 3000
_TITLES = {
    "dmarc": "Fix DMARC",
    "dmarc_progress": "Next DMARC policy step",
    "spf": "Fix SPF",
    "dkim_testing": "Fix DKIM test mode",
    "dkim_key": "Publish a DKIM key",
    "mta_sts": "Publish MTA-STS",
    "tls_rpt": "Publish TLS reporting",
    "bimi": "Publish BIMI",
}
_INHERIT = "inherit"


def input_id(name: str) -> str:
    """The block_id and action_id of the modal input `name`."""
    return slack_ids.FIX_INPUT_PREFIX + name


def metadata(data: dict[str, Any]) -> str:
    """The modal's private_metadata: compact JSON, selector lists dropped first if too long."""
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > MAX_METADATA:
        text = json.dumps({**data, "s": []}, separators=(",", ":"))
    return text[:MAX_METADATA]


def _title(kind: str) -> dict[str, str]:
    return {"type": "plain_text", "text": clip(_TITLES.get(kind, "Fix it"), 24)}


def loading_view(finding_id: str, domain: str, kind: str, private_metadata: str) -> View:
    """What opens at once, inside the trigger's 3 seconds, while the records are read afresh."""
    title = CATALOG[finding_id].title if finding_id in CATALOG else finding_id
    return {
        "type": "modal",
        "callback_id": slack_ids.CALLBACK_FIX_MODAL,
        "title": _title(kind),
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": private_metadata,
        "blocks": [
            section(f"*{safe(title, 200)}* on {code(domain, 300)}"),
            context(":hourglass_flowing_sand: Reading the current records afresh…"),
        ],
    }


def error_view(kind: str, text: str, private_metadata: str) -> View:
    """The modal when the records could not be read or the finding has no fix."""
    return {
        "type": "modal",
        "callback_id": slack_ids.CALLBACK_FIX_MODAL,
        "title": _title(kind),
        "close": {"type": "plain_text", "text": "Close"},
        "private_metadata": private_metadata,
        "blocks": [section(f":warning: {safe(text, 2900)}")],
    }


def fix_view(screen: FixScreen, private_metadata: str) -> View:
    """The modal for a prepared fix: the problem, the current record, the proposal, the inputs."""
    proposal = screen.proposal
    title = CATALOG[screen.finding_id].title
    blocks: list[Block] = [
        section(f"*{safe(title, 200)}* (`{screen.finding_id}`) on {code(screen.domain, 300)}"),
        section(f"*Current* at {code(proposal.host, 300)}\n" + _records(proposal.before, 1300)),
    ]
    blocks += _proposal_blocks(proposal)
    if screen.readiness is not None:
        blocks.append(_readiness_section(screen.readiness))
    blocks.append({"type": "divider"})
    blocks += _inputs(screen)
    view: View = {
        "type": "modal",
        "callback_id": slack_ids.CALLBACK_FIX_MODAL,
        "title": _title(screen.kind),
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": private_metadata,
        "blocks": blocks[:100],
        # Slack requires a submit button beside inputs; a refused proposal is then
        # answered with its reasons instead of a plan.
        "submit": {"type": "plain_text", "text": "Post the plan"},
    }
    return view


def _records(records: Sequence[str], limit: int) -> str:
    if not records:
        return "_no record_"
    return "\n".join(code_block(r, limit // max(len(records), 1)) for r in records[:4])


def _proposal_blocks(proposal: Proposal) -> list[Block]:
    blocks: list[Block] = []
    reasons = proposal.problems
    if reasons:
        lines = "\n".join(f"• {safe(p, 400)}" for p in reasons[:6])
        blocks.append(section(f":x: *Not offered*: the record would not be valid.\n{lines}"))
    elif proposal.entries:
        shown = "\n".join(
            f"{code(e.host, 200)} {e.rdtype}\n{code_block(e.value, 1100)}" for e in proposal.entries[:3]
        )
        blocks.append(section(f"*Proposed*\n{shown}"))
    if proposal.steps:
        blocks.append(section(f"*Steps*\n{safe(proposal.steps, 2000)}"))
    if proposal.hosted_file and not reasons:
        blocks.append(_hosted_file_section(proposal.hosted_file))
    if proposal.delete:
        blocks.append(section("*Delete*\n" + _records(proposal.delete, 1500)))
    if proposal.notes:
        blocks.append(context("\n".join(safe(n, 600) for n in proposal.notes[:6])))
    return blocks


def _hosted_file_section(hosted: tuple[str, str]) -> Block:
    url, content = hosted
    # shown with LF line ends: a code block keeps every character as it must be served
    return section(f"*File to serve* at {code(url, 300)}\n" + code_block(content.replace("\r\n", "\n"), 2500))


def _readiness_section(readiness: Readiness) -> Block:
    icon = {"ready": ":white_check_mark:", "not_ready": ":no_entry:"}.get(readiness.verdict, ":clipboard:")
    lines = [f"{icon} *Readiness*: {safe(readiness.summary, 600)}"]
    lines += [f"• {safe(item, 250)}" for item in readiness.checklist[:8]]
    return section("\n".join(lines))


# -- inputs -------------------------------------------------------------------------------------


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": clip(text, 75)}, "value": value[:150]}


def _select(name: str, label: str, options: Sequence[tuple[str, str]], chosen: str) -> Block:
    opts = [_option(t, v) for t, v in options]
    element: Block = {"type": "static_select", "action_id": input_id(name), "options": opts}
    initial = next((o for o in opts if o["value"] == chosen), None)
    if initial is not None:
        element["initial_option"] = initial
    return _input(name, label, element)


def _multi(name: str, label: str, options: Sequence[tuple[str, str]], chosen: Sequence[str]) -> Block | None:
    opts = [_option(t, v) for t, v in options if len(v) <= 150][:100]
    if not opts:
        return None
    element: Block = {"type": "multi_static_select", "action_id": input_id(name), "options": opts}
    initial = [o for o in opts if o["value"] in chosen]
    if initial:
        element["initial_options"] = initial
    return _input(name, label, element)


def _text(name: str, label: str, value: str, placeholder: str) -> Block:
    element: Block = {
        "type": "plain_text_input",
        "action_id": input_id(name),
        "placeholder": {"type": "plain_text", "text": clip(placeholder, 150)},
        "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
    }
    if value:
        element["initial_value"] = value[:3000]
    return _input(name, label, element)


def _input(name: str, label: str, element: Block) -> Block:
    # dispatch_action: every change comes back as a block_actions, and the proposal follows it.
    return {
        "type": "input",
        "block_id": input_id(name),
        "optional": True,
        "dispatch_action": True,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


_POLICY_OPTIONS = [(p, p) for p in POLICIES]
_SUB_OPTIONS = [("same as p= (inherit)", _INHERIT), *_POLICY_OPTIONS]
_ALIGN_OPTIONS = [("relaxed (same organizational domain)", "r"), ("strict (identical names)", "s")]
_TEST_OPTIONS = [
    ("no: apply the policy as published", "n"),
    ("t=y: apply it one level lower while testing", "y"),
]


def _inputs(screen: FixScreen) -> list[Block]:
    if screen.form.dmarc is not None:
        d = screen.form.dmarc
        return [
            _select("policy", "Policy (p=)", _POLICY_OPTIONS, d.policy),
            _select("testing", "Test mode (t=)", _TEST_OPTIONS, "y" if d.testing else "n"),
            _select("sp", "Subdomain policy (sp=)", _SUB_OPTIONS, d.sp or _INHERIT),
            _select("np", "Non-existent subdomain policy (np=)", _SUB_OPTIONS, d.np or _INHERIT),
            _text(
                "rua",
                "Aggregate reports to (rua=)",
                ", ".join(u.removeprefix("mailto:") for u in d.rua),
                f"dmarc-reports@{screen.domain}",
            ),
            _select("adkim", "DKIM alignment (adkim=)", _ALIGN_OPTIONS, d.adkim),
            _select("aspf", "SPF alignment (aspf=)", _ALIGN_OPTIONS, d.aspf),
        ]
    if screen.form.spf is not None:
        s = screen.form.spf
        providers = [(p.name, p.key) for p in PROVIDERS if p.spf_include]
        blocks = [
            _multi("providers", "Add senders", providers, s.add_providers),
            _text(
                "terms",
                "Add other senders (include:, ip4:, ip6:)",
                " ".join(s.extra_terms),
                "include:_spf.example.net ip4:192.0.2.0/24",
            ),
            _multi("remove", "Remove terms", [(t, t) for t in screen.spf_terms], s.remove_terms),
            _multi(
                "flatten", "Flatten includes into ip4/ip6", [(i, i) for i in screen.spf_includes], s.flatten
            ),
            _select("all", "Other servers", [("-all: fail", "-"), ("~all: softfail", "~")], s.all_qualifier),
        ]
        return [b for b in blocks if b is not None]
    if screen.form.transport is not None:
        t = screen.form.transport
        if screen.kind == "tls_rpt":
            return [
                _text("tls_rua", "TLS reports to (rua=)", t.tls_rua or "", f"tls-reports@{screen.domain}")
            ]
        if screen.kind == "bimi":
            return [
                _text(
                    "logo",
                    "Logo address (l=, SVG Tiny PS)",
                    t.logo_url or "",
                    f"https://{screen.domain}/logo.svg",
                ),
                _text(
                    "vmc",
                    "Mark certificate address (a=, optional)",
                    t.certificate_url or "",
                    f"https://{screen.domain}/vmc.pem",
                ),
            ]
        return []
    if screen.form.dkim is not None:
        k = screen.form.dkim
        options = [("another provider or my own server", "other")] + [
            (p.name, p.key) for p in PROVIDERS if p.dkim_steps
        ]
        return [
            _select("provider", "Who signs the mail", options, k.provider or "other"),
            _text("selector", "Selector", k.selector, "s1"),
            _text(
                "key",
                "Public key record (never the private key)",
                k.public_key or "",
                "v=DKIM1; k=rsa; p=MIIBIjANBg…",
            ),
            _text(
                "target",
                "…or the CNAME target your provider shows",
                k.cname_target or "",
                "s1.domainkey.u1234.wl.sendgrid.net",
            ),
        ]
    return []


def read_form(kind: str, values: dict[str, Any], domain: str, default_selector: str | None) -> FixForm:
    """The modal's input values as a FixForm; FixInputError names the field at fault."""

    def get(name: str) -> Any:
        state = (values.get(input_id(name)) or {}).get(input_id(name)) or {}
        if "selected_option" in state:
            return (state.get("selected_option") or {}).get("value")
        if "selected_options" in state:
            return [o.get("value") for o in state.get("selected_options") or []]
        return state.get("value")

    def choice(name: str, allowed: Sequence[str], default: str) -> str:
        value = get(name)
        if value is None:
            return default
        if value not in allowed:
            raise FixInputError(name, f"Choose one of {', '.join(allowed)}.")
        return str(value)

    if kind in ("dmarc", "dmarc_progress"):
        sub = (*POLICIES, _INHERIT)
        sp, np = choice("sp", sub, _INHERIT), choice("np", sub, _INHERIT)
        return FixForm(
            dmarc=DmarcChoices(
                policy=choice("policy", POLICIES, "none"),
                sp=None if sp == _INHERIT else sp,
                np=None if np == _INHERIT else np,
                rua=parse_rua_input(str(get("rua") or ""), domain),
                adkim=choice("adkim", ("r", "s"), "r"),
                aspf=choice("aspf", ("r", "s"), "r"),
                testing=choice("testing", ("y", "n"), "n") == "y",
            )
        )
    if kind == "spf":
        providers = [str(p) for p in get("providers") or [] if p in PROVIDERS_BY_KEY]
        return FixForm(
            spf=SpfChoices(
                add_providers=tuple(providers),
                extra_terms=parse_extra_terms(str(get("terms") or "")),
                remove_terms=tuple(str(t) for t in get("remove") or []),
                flatten=tuple(str(t) for t in get("flatten") or []),
                all_qualifier=choice("all", ALL_QUALIFIERS, "~"),
            )
        )
    if kind == "mta_sts":
        return FixForm(transport=TransportChoices())
    if kind == "tls_rpt":
        return FixForm(
            transport=TransportChoices(tls_rua=parse_tls_rua_input(str(get("tls_rua") or ""), domain))
        )
    if kind == "bimi":
        return FixForm(
            transport=TransportChoices(
                logo_url=parse_https_url_input("logo", str(get("logo") or ""), f"https://{domain}/logo.svg"),
                certificate_url=parse_https_url_input(
                    "vmc", str(get("vmc") or ""), f"https://{domain}/vmc.pem"
                ),
            )
        )
    if kind == "dkim_key":
        provider = choice("provider", ("other", *PROVIDERS_BY_KEY), "other")
        selector_text = str(get("selector") or default_selector or "")
        if not selector_text:
            raise FixInputError(
                "selector",
                "Give the selector your provider uses (the s= tag of "
                "a DKIM-Signature), such as s1 or google.",
            )
        key_text, target_text = str(get("key") or ""), str(get("target") or "")
        return FixForm(
            dkim=DkimKeyChoices(
                None if provider == "other" else provider,
                parse_selector_input(selector_text),
                parse_public_key_input(key_text) if key_text.strip() else None,
                parse_cname_target(target_text) if target_text.strip() else None,
            )
        )
    return FixForm()


# -- the plan and the verification ---------------------------------------------------------------


def _entry_lines(entry: DnsEntry) -> str:
    strings = " ".join(code('"' + s + '"', 700) for s in entry.strings)
    return (
        f"*Host* {code(entry.relative_host, 200)} (full name {code(entry.host, 300)}) · "
        f"*Type* {entry.rdtype} · *TTL* {entry.ttl}\n*Value* "
        + (f"({len(entry.strings)} strings) " if len(entry.strings) > 1 else "")
        + strings
    )


def plan_message(
    plan: FixPlan, proposal: Proposal, user_id: str, verify_value: str
) -> tuple[str, list[Block]]:
    """The plan posted in the report's thread: who, before/after, the exact entries, Verify."""
    title = CATALOG[plan.finding_id].title
    text = f"Fix planned for {plan.domain} ({plan.finding_id}) by <@{user_id}>"
    blocks: list[Block] = [
        section(
            f":hammer_and_wrench: *Fix planned* for {code(plan.domain, 300)} by <@{user_id}>: "
            f"{safe(title, 200)} (`{plan.finding_id}`)"
        ),
        section(f"*Before* at {code(proposal.host, 300)}\n" + _records(proposal.before, 1300)),
    ]
    if proposal.entries:
        blocks.append(
            section(
                "*After*\n"
                + "\n".join(code_block(e.value, 1200 // len(proposal.entries)) for e in proposal.entries[:3])
            )
        )
        for entry in proposal.entries[:3]:
            blocks.append(section("*DNS entry*\n" + _entry_lines(entry)))
            blocks.append(section("*BIND zone line*\n" + code_block(entry.bind_line(), 2500)))
    if proposal.delete:
        blocks.append(section("*Delete these records* at the same name\n" + _records(proposal.delete, 1500)))
    if proposal.steps:
        blocks.append(section(f"*Steps*\n{safe(proposal.steps, 2000)}"))
    if proposal.hosted_file:
        blocks.append(_hosted_file_section(proposal.hosted_file))
    if proposal.notes:
        blocks.append(context("\n".join(safe(n, 600) for n in proposal.notes[:6])))
    elements = [button("Verify", slack_ids.ACTION_FIX_VERIFY, verify_value, "primary")]
    if proposal.prerequisite_fix:
        # the fix that must come first (BIMI needs DMARC at enforcement), one click away
        first = fix_value(proposal.prerequisite_fix, "", plan.domain, plan.team_id, plan.selectors)
        elements.append(
            button(f"Fix it first: {CATALOG[proposal.prerequisite_fix].title}", slack_ids.ACTION_FIX, first)
        )
    blocks.append({"type": "actions", "block_id": slack_ids.BLOCK_FIX_PLAN_ACTIONS, "elements": elements})
    return clip(text, 3000), blocks


def verification_message(plan: FixPlan, check: FixCheck, user_id: str | None) -> tuple[str, list[Block]]:
    """The answer to Verify (or the monitor's own check): live or not yet, and what cleared."""
    who = f" (asked by <@{user_id}>)" if user_id else ""
    cleared = ", ".join(f"`{i}`" for i in check.cleared) or "none"
    remaining = ", ".join(f"`{i}`" for i in check.remaining) or "none"
    if check.live:
        head = f":white_check_mark: *Fixed*: the planned record for {code(plan.domain, 300)} is live{who}."
        text = f"Fixed: the planned record for {plan.domain} is live."
    elif check.outage:
        head = (
            f":warning: *Could not verify* {code(plan.domain, 300)}{who}: a DNS lookup failed, "
            "so whether the record is live is unknown. Try again in a few minutes."
        )
        text = f"Could not verify the fix for {plan.domain}: DNS failed."
    else:
        head = f":hourglass: *Not live yet* for {code(plan.domain, 300)}{who}."
        text = f"The fix for {plan.domain} is not live yet."
    lines = [head, f"Cleared: {cleared}", f"Still present: {remaining}"]
    lines += [f"• {safe(d, 700)}" for d in check.differences[:4]]
    if not check.live and not check.outage:
        lines.append("DNS changes can take up to the old record's TTL to show; press Verify again later.")
    return text, [section("\n".join(lines))]


__all__ = [
    "error_view",
    "fix_view",
    "input_id",
    "loading_view",
    "metadata",
    "plan_message",
    "read_form",
    "verification_message",
]
