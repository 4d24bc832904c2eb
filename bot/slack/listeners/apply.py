"""Applying a fix plan from Slack: the Apply and Roll back buttons, the confirmation modal, the outcome.

A click opens the confirmation (zone, provider, records before and after, proposer, who can
approve); submitting it is the approval. The rules are judged again at submission, whatever the
modal showed, and the owner is the installing workspace (Bolt's context), never the clicking
user's team. Ack first; the reads, writes and polling run on the work pool, and the outcome is
posted in the plan's thread.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.apply.service import CannotApply, run_plan, zone_for_plan
from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.apply_rules import approval_refusal, who_can_approve
from bot.slack.blocks.apply import apply_modal, outcome_message
from bot.slack.features import Feature
from bot.slack.fix_plans import check_plan
from bot.slack.mrkdwn import clip
from bot.slack.turn import FOREIGN_ORG, is_foreign_user, turn_for_interaction
from bot.slack.work import WorkPool
from bot.store.apply_audit import AuditRow, PlanRow
from bot.store.stores import Stores

log = logging.getLogger("dmarcbot.apply")

STALE_BUTTON = "That button no longer works: the plan is not stored here. Make a new plan with Fix it."


def _read_key(value: Any) -> str | None:
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    key = data.get("k") if isinstance(data, dict) else None
    return str(key)[:40] if isinstance(key, str) and key.isalnum() else None


def _refuse(stores: Stores, row: PlanRow, user_id: str, reason: str) -> None:
    stores.applies.record(
        AuditRow(
            team_id=row.plan.team_id,
            domain=row.plan.domain,
            plan_id=row.id,
            action="refusal",
            actor=user_id or "?",
            result=reason,
        )
    )


def handle_apply_click(
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    context: BoltContext,
) -> None:
    ack()
    turn = turn_for_interaction(body, client, respond, settings, stores, context, pool)
    action = (body.get("actions") or [{}])[0]
    rollback = action.get("action_id") == slack_ids.ACTION_FIX_ROLLBACK
    user_id = turn.user_id or ""
    foreign = is_foreign_user(body, context)

    def open_confirmation() -> None:
        key = _read_key(action.get("value"))
        row = stores.applies.plan_by_key(turn.team_id or "", key) if key else None
        if row is None:
            turn.tell(STALE_BUTTON)
            return
        if foreign:
            _refuse(stores, row, user_id, FOREIGN_ORG)
            turn.tell(FOREIGN_ORG)
            return
        try:
            zone = zone_for_plan(settings, row)
        except CannotApply as error:
            turn.tell(str(error))
            return
        assert row.changes is not None
        refusal = approval_refusal(settings, client, row.plan.proposed_by, user_id, foreign)
        message = body.get("message") or {}
        metadata = {
            "k": key,
            "r": rollback,
            "c": turn.channel_id,
            "ts": message.get("thread_ts") or row.plan.thread_ts or message.get("ts"),
        }
        who = who_can_approve(settings, row.plan.proposed_by)
        client.views_open(
            trigger_id=body["trigger_id"],
            view=apply_modal(row.plan, row.changes, zone, rollback, who, refusal, metadata),
        )

    turn.later("opening the apply confirmation", open_confirmation)


def handle_apply_submission(
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    view: dict[str, Any],
    context: BoltContext,
) -> None:
    ack()
    turn = turn_for_interaction(body, client, None, settings, stores, context, pool)
    user_id = turn.user_id or ""
    foreign = is_foreign_user(body, context)
    key, rollback, channel, thread_ts = None, False, "", ""
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
        if isinstance(metadata, dict):
            key = _read_key(json.dumps({"k": metadata.get("k")}))
            rollback = metadata.get("r") is True
            channel, thread_ts = str(metadata.get("c") or "")[:20], str(metadata.get("ts") or "")[:40]
    except ValueError:
        key = None  # not metadata we wrote: answered as a stale button below

    def approve_and_apply() -> None:
        row = stores.applies.plan_by_key(turn.team_id or "", key) if key else None
        if row is None:
            turn.tell(STALE_BUTTON)
            return
        # The plan's own channel, never one the metadata names: metadata can be altered on the way.
        turn.channel_id = row.plan.channel_id or channel
        # Judged again here: the modal's missing submit button is no rule, a forged submission has one.
        refusal = approval_refusal(settings, client, row.plan.proposed_by, user_id, foreign)
        if refusal is not None:
            _refuse(stores, row, user_id, refusal)
            turn.tell(clip(refusal, 2900))
            return
        try:
            zone = zone_for_plan(settings, row)
        except CannotApply as error:
            turn.tell(str(error))
            return
        stores.applies.record(
            AuditRow(
                team_id=row.plan.team_id,
                domain=row.plan.domain,
                plan_id=row.id,
                action="approval",
                actor=row.plan.proposed_by or "?",
                approver=user_id,
                provider=zone.provider,
                zone=zone.zone,
                result="approved the rollback" if rollback else "approved the apply",
            )
        )
        outcome = run_plan(
            settings,
            stores.applies,
            row,
            actor=row.plan.proposed_by or user_id,
            approver=user_id,
            rollback=rollback,
            poll_interval=min(5.0, max(0.1, zone.propagation_timeout / 20)),
        )
        log.info(
            "%s of plan %s for %s: %s",
            "rollback" if rollback else "apply",
            row.id,
            row.plan.domain,
            outcome.result,
        )
        check = check_plan(settings, row.plan) if outcome.result == "applied" and not rollback else None
        text, blocks = outcome_message(row.plan, outcome, user_id, rollback, check, row.plan.key())
        turn.post(text, blocks, thread_ts=row.plan.thread_ts or thread_ts or None)

    turn.later("applying a fix plan", approve_and_apply)


def register(app: App, settings: Settings, stores: Stores, pool: WorkPool) -> None:
    """Attach the Apply and Roll back listeners to `app`."""
    app.action(slack_ids.ACTION_FIX_APPLY)(partial(handle_apply_click, settings, stores, pool))
    app.action(slack_ids.ACTION_FIX_ROLLBACK)(partial(handle_apply_click, settings, stores, pool))
    app.view(slack_ids.CALLBACK_APPLY_MODAL)(partial(handle_apply_submission, settings, stores, pool))


APPLY = Feature(name="apply", register=register)
