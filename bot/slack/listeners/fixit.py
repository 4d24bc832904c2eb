"""The fix-it flow in Slack: "Fix it" opens the modal, input changes update the proposal, the
submission posts the plan in the report's thread, "Verify" looks again.

The modal is opened with the trigger_id before any DNS (the trigger expires 3 seconds after the
click): first a "reading the records" view built from the button value, then views.update with the
proposal from fresh lookups. Only members of the workspace that owns the report may act: the owner
travels in the button value and the modal's private_metadata, and a user of another team in a
shared channel is refused with a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.monitor.fix_followup import settle_verified
from bot.reports.summary import readiness_stats
from bot.slack import ids as slack_ids
from bot.slack.blocks.fixit import (
    fix_view,
    input_id,
    loading_view,
    metadata,
    plan_message,
    read_form,
    verification_message,
)
from bot.slack.fix_plans import BadPlanValue, FixPlan, check_plan
from bot.slack.turn import SlackTurn, guarded, interaction_team, turn_for_interaction
from bot.store.database import shared_store
from bot.store.reports import ReportStore
from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.fixes.records import FixInputError, fix_kind
from handlers.fixes.session import FixForm, FixScreen, expected_records, prepare_fix, refused_reasons
from handlers.fixes.spf_fixes import AddressDrift, parse_extra_terms

log = logging.getLogger("dmarcbot.fixit")

MAX_DRIFT_TERMS = 100  # a button value holds 2000 characters: far fewer fit anyway
FOREIGN_TEAM = (
    "Only members of the workspace that ran this check can fix its domain; you are in "
    "another organisation sharing this channel."
)


@dataclass(frozen=True)
class FixRequest:
    """What a Fix it button (or the modal's metadata) says: the finding, domain and owner."""

    finding_id: str
    domain: str
    owner: str | None
    selectors: tuple[str, ...]
    selector: str | None
    channel_id: str | None = None
    thread_ts: str | None = None
    # A stale flattening's re-flatten (the drift alert's button): only the first screen needs
    # it, the modal's inputs carry the choices after that, so it stays out of the metadata.
    drift: AddressDrift | None = None

    def to_metadata(self) -> str:
        return metadata(
            {
                "f": self.finding_id,
                "d": self.domain,
                "o": self.owner,
                "s": list(self.selectors),
                "x": self.selector,
                "c": self.channel_id,
                "ts": self.thread_ts,
            }
        )

    @property
    def kind(self) -> str:
        return fix_kind(self.finding_id) or ""


class BadFixValue(ValueError):
    """A button value or metadata we did not write (forged, or from an older version)."""


def read_fix_request(data: Any, channel_id: str | None = None, thread_ts: str | None = None) -> FixRequest:
    """Validate what came back from the client: values can be altered on the way."""
    try:
        if not isinstance(data, dict):
            raise TypeError("not an object")
        finding_id = str(data["f"])
        if fix_kind(finding_id) is None:
            raise ValueError(f"no fix for {finding_id}")
        selector = data.get("x")
        return FixRequest(
            finding_id,
            normalise_domain(str(data["d"])),
            str(data["o"]) if data.get("o") else None,
            tuple(str(s) for s in data.get("s") or [])[:20],
            str(selector) if selector else None,
            data.get("c") or channel_id,
            data.get("ts") or thread_ts,
            _read_drift(data),
        )
    except (KeyError, TypeError, ValueError, InvalidDomain) as error:
        raise BadFixValue(str(error)) from None


def _read_drift(data: dict[str, Any]) -> AddressDrift | None:
    """The re-flatten a drift alert's button carries: address terms only, as the form checks them."""
    if not data.get("i"):
        return None

    def terms(key: str) -> tuple[str, ...]:
        out = []
        for raw in list(data.get(key) or [])[:MAX_DRIFT_TERMS]:
            try:
                (term,) = parse_extra_terms(str(raw))
            except (FixInputError, ValueError):
                raise ValueError(f"not an address term: {str(raw)[:60]}") from None
            if not term.startswith(("ip4:", "ip6:")):
                raise ValueError("a re-flatten only moves ip4/ip6 terms")
            out.append(term)
        return tuple(out)

    return AddressDrift(normalise_domain(str(data["i"])), terms("r"), terms("a"))


def _foreign(owner: str | None, body: dict[str, Any]) -> bool:
    """True when the report has an owner and the acting user belongs to another team."""
    return owner is not None and interaction_team(body) != owner


def _screen(settings: Settings, request: FixRequest, form: FixForm | None, body: dict[str, Any]) -> FixScreen:
    """Prepare the fix from fresh records (a new DnsSession for every step); a policy step reads
    its readiness from the owning team's aggregate reports when it has some."""
    stats = None
    if request.kind == "dmarc_progress":
        team_id = request.owner or interaction_team(body) or ""
        stats = readiness_stats(ReportStore(shared_store(settings.db_path)), team_id, request.domain)
    return asyncio.run(
        prepare_fix(
            settings.dns_session(),
            request.finding_id,
            request.domain,
            request.selectors,
            request.selector,
            form,
            stats,
            request.drift,
        )
    )


def _overlay_action(values: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """The view's state with the changed input's new value, whatever Slack sent in `state`."""
    action_id = action.get("action_id", "")
    kind = action.get("type")
    if kind == "static_select":
        entry = {"type": kind, "selected_option": action.get("selected_option")}
    elif kind == "multi_static_select":
        entry = {"type": kind, "selected_options": action.get("selected_options") or []}
    elif kind == "plain_text_input":
        entry = {"type": kind, "value": action.get("value")}
    else:
        return values
    return {**values, action.get("block_id", action_id): {action_id: entry}}


def register(app: App, settings: Settings) -> None:
    """Attach the fix-it listeners to `app`."""

    @app.action(slack_ids.ACTION_FIX)
    def handle_fix_click(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        message = body.get("message") or {}
        turn = turn_for_interaction(body, client, respond, settings)
        channel_id = turn.channel_id

        def open_modal() -> None:
            try:
                data = json.loads(body["actions"][0]["value"])
                if isinstance(data, dict) and not data.get("o") and message.get("team"):
                    data["o"] = message["team"]  # the workspace whose bot posted the report
                request = read_fix_request(data, channel_id, message.get("thread_ts") or message.get("ts"))
            except (KeyError, IndexError, ValueError, BadFixValue):
                turn.tell(
                    "That Fix it button is from an older report: press Re-check, then the "
                    "Fix it button of the finding."
                )
                return
            if _foreign(request.owner, body):
                turn.tell(FOREIGN_TEAM)
                return
            opened = client.views_open(
                trigger_id=body["trigger_id"],
                view=loading_view(request.finding_id, request.domain, request.kind, request.to_metadata()),
            )
            view_id = opened["view"]["id"]
            screen = _screen(settings, request, None, body)
            client.views_update(view_id=view_id, view=fix_view(screen, request.to_metadata()))

        guarded("opening the fix-it flow", turn, open_modal)

    @app.action(re.compile("^" + re.escape(slack_ids.FIX_INPUT_PREFIX)))
    def handle_fix_input(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = body.get("view") or {}
        turn = SlackTurn(
            client, None, settings, None, (body.get("user") or {}).get("id"), interaction_team(body)
        )

        def update() -> None:
            try:
                request = read_fix_request(json.loads(view.get("private_metadata") or "{}"))
            except (ValueError, BadFixValue):
                return
            turn.channel_id = request.channel_id
            if _foreign(request.owner, body):
                turn.tell(FOREIGN_TEAM)
                return
            values = (view.get("state") or {}).get("values") or {}
            for action in body.get("actions") or []:
                values = _overlay_action(values, action)
            try:
                form = read_form(request.kind, values, request.domain, request.selector)
            except FixInputError as error:
                screen = _screen(settings, request, None, body)
                shown = fix_view(screen, request.to_metadata())
                shown["blocks"].insert(
                    0,
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": f":warning: {error.message[:2900]}"},
                    },
                )
                client.views_update(view_id=view["id"], view=shown)
                return
            screen = _screen(settings, request, form, body)
            client.views_update(view_id=view["id"], view=fix_view(screen, request.to_metadata()))

        guarded("updating the fix proposal", turn, update)

    @app.view(slack_ids.CALLBACK_FIX_MODAL)
    def handle_fix_submission(
        ack: Ack, body: dict[str, Any], client: WebClient, view: dict[str, Any]
    ) -> None:
        user_id = (body.get("user") or {}).get("id")
        try:
            request = read_fix_request(json.loads(view.get("private_metadata") or "{}"))
        except (ValueError, BadFixValue):
            ack()
            return
        turn = SlackTurn(client, None, settings, request.channel_id, user_id, interaction_team(body))
        if _foreign(request.owner, body):
            first = _first_input(view)
            if first is None:
                ack()
                guarded("refusing a fix", turn, lambda: turn.tell(FOREIGN_TEAM))
            else:
                ack(response_action="errors", errors={first: FOREIGN_TEAM})
            return
        try:
            form = read_form(
                request.kind, (view.get("state") or {}).get("values") or {}, request.domain, request.selector
            )
        except FixInputError as error:
            # Slack shows the message under the field (response_action: errors).
            ack(response_action="errors", errors={input_id(error.field): error.message[:300]})
            log.info(
                "fix form for %s from %s: the %s field is invalid; answered on the field",
                request.domain,
                user_id,
                error.field,
            )
            return
        ack()

        def post_plan() -> None:
            screen = _screen(settings, request, form, body)
            reasons = refused_reasons(screen)
            if reasons:
                turn.tell("The plan was not posted: " + "; ".join(reasons)[:2500])
                return
            if not request.channel_id or not request.thread_ts:
                turn.tell("The report this fix belongs to is gone; run the check again.")
                return
            plan = FixPlan(
                request.owner or interaction_team(body) or "",
                request.channel_id,
                request.thread_ts,
                request.domain,
                screen.proposal.kind,
                request.finding_id,
                expected_records(screen.proposal),
                screen.family_findings,
                (screen.proposal.selector,) if screen.proposal.selector else request.selectors,
                screen.proposal.watch_includes,
                user_id or "",
            )
            text, blocks = plan_message(plan, screen.proposal, user_id or "")
            client.chat_postMessage(
                channel=request.channel_id, thread_ts=request.thread_ts, text=text, blocks=blocks
            )
            # Stored after the post: a plan nobody saw is never announced "fixed" by the monitor.
            stored = shared_store(settings.db_path).save_fix_plan(plan)
            log.info(
                "fix plan for %s (%s) in %s: %s",
                plan.domain,
                plan.finding_id,
                plan.channel_id,
                "stored" if stored else "already stored (a replayed submission), kept once",
            )

        guarded("posting the fix plan", turn, post_plan)

    @app.action(slack_ids.ACTION_FIX_VERIFY)
    def handle_fix_verify(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        turn = turn_for_interaction(body, client, respond, settings)
        user_id = turn.user_id

        def verify() -> None:
            try:
                plan = FixPlan.from_button_value(body["actions"][0]["value"])
                normalise_domain(plan.domain)
            except (KeyError, IndexError, BadPlanValue, InvalidDomain):
                turn.tell("That Verify button no longer works: run the check again.")
                return
            if _foreign(plan.team_id or None, body):
                turn.tell(FOREIGN_TEAM)
                return
            check = check_plan(settings, plan)
            text, blocks = verification_message(plan, check, user_id)
            client.chat_postMessage(
                channel=plan.channel_id, thread_ts=plan.thread_ts, text=text, blocks=blocks
            )
            if check.live:
                # The thread has just been told: the monitor must not say "fixed" again.
                settle_verified(shared_store(settings.db_path), plan)

        guarded("verifying a fix", turn, verify)


def _first_input(view: dict[str, Any]) -> str | None:
    blocks = [b for b in view.get("blocks") or [] if b.get("type") == "input"]
    return str(blocks[0]["block_id"]) if blocks else None
