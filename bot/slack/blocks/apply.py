"""Block Kit for applying a plan: the Apply button, the confirmation modal, and the outcome posted."""

from __future__ import annotations

import json
from typing import Any

from bot.apply.apply import ApplyOutcome
from bot.apply.providers import ZoneProvider
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import button, context, section
from bot.slack.blocks.fixit import verification_message
from bot.slack.fix_plans import FixPlan
from bot.slack.mrkdwn import clip, code, code_block, fit_lines, safe
from handlers.fixes.changes import RecordChange
from handlers.fixes.session import FixCheck

Block = dict[str, Any]
MAX_SHOWN_CHANGES = 6


def apply_button_value(plan_key: str) -> str:
    """What an Apply or Roll back button carries: the plan's key alone (the owner is the installation)."""
    return json.dumps({"k": plan_key}, separators=(",", ":"))


def with_apply_button(blocks: list[Block], plan_key: str) -> list[Block]:
    """The plan message's blocks with an Apply button beside Verify."""
    for block in blocks:
        if block.get("block_id") == slack_ids.BLOCK_FIX_PLAN_ACTIONS:
            block["elements"].append(
                button("Apply", slack_ids.ACTION_FIX_APPLY, apply_button_value(plan_key))
            )
    return blocks


def _changes_lines(changes: tuple[RecordChange, ...]) -> list[str]:
    lines = []
    for change in changes[:MAX_SHOWN_CHANGES]:
        before = "\n".join(change.before) or "(none)"
        after = "\n".join(change.after) or "(none)"
        lines.append(
            f"{code(change.host, 300)} {change.rdtype}\n*Before*\n{code_block(before, 600)}\n"
            f"*After*\n{code_block(after, 600)}"
        )
    return lines


def apply_modal(
    plan: FixPlan,
    changes: tuple[RecordChange, ...],
    zone: ZoneProvider,
    rollback: bool,
    who_can: str,
    refusal: str | None,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """The confirmation: the zone, the provider, each record before and after, the proposer, who
    can approve; without a submit button when the viewer may not approve (`refusal` says why)."""
    shown = tuple(c.reversed() for c in reversed(changes)) if rollback else changes
    verb = "Roll back" if rollback else "Apply"
    blocks: list[Block] = [
        section(
            f"*{verb}* the fix for {code(plan.domain, 300)} (`{plan.finding_id}`), proposed by "
            f"<@{plan.proposed_by}>.\nZone {code(zone.zone, 300)} through *{safe(zone.provider, 60)}*."
        ),
        section(fit_lines(_changes_lines(shown))),
        context(
            "The records are read again from the zone's servers first: if they changed since the plan "
            "was made, nothing is written. Only these names and types are written."
        ),
        section(f"*Who can approve*: {who_can}"),
    ]
    if refusal:
        blocks.append(section(f":no_entry: {refusal}"))
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": slack_ids.CALLBACK_APPLY_MODAL,
        "title": {"type": "plain_text", "text": f"{verb} the fix"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": blocks,
    }
    if not refusal:
        view["submit"] = {"type": "plain_text", "text": f"Approve and {verb.lower()}"}
    return view


def outcome_message(
    plan: FixPlan,
    outcome: ApplyOutcome,
    approver: str,
    rollback: bool,
    check: FixCheck | None,
    plan_key: str,
) -> tuple[str, list[Block]]:
    """What the thread is told after an Apply or a Roll back: who, how it went, Verify's answer,
    and a Roll back button once a change is live."""
    verb = "Rolled back" if rollback else "Applied"
    who = f"{verb} by <@{plan.proposed_by}>, approved by <@{approver}>"
    if outcome.result == "applied":
        head = f":white_check_mark: *{who}*: {code(plan.domain, 300)} is live on the zone's servers."
    elif outcome.result == "not_live":
        head = f":hourglass: *{who}*, but not live yet: {safe(outcome.message, 600)}"
    elif outcome.result == "refused":
        head = f":no_entry: *Not {verb.lower()}* for {code(plan.domain, 300)}: {safe(outcome.message, 1500)}"
    else:
        head = (
            f":x: *The DNS provider refused the change* for {code(plan.domain, 300)}: "
            f"{safe(outcome.message, 1500)}"
        )
    text = clip(
        f"{verb if outcome.result in ('applied', 'not_live') else 'Not ' + verb.lower()}: {plan.domain}", 300
    )
    blocks: list[Block] = [section(head)]
    if check is not None:
        blocks += verification_message(plan, check, None)[1]
    if outcome.result in ("applied", "not_live") and not rollback:
        blocks.append(
            {
                "type": "actions",
                "block_id": slack_ids.BLOCK_FIX_PLAN_ACTIONS,
                "elements": [
                    button("Roll back", slack_ids.ACTION_FIX_ROLLBACK, apply_button_value(plan_key), "danger")
                ],
            }
        )
    return text, blocks
