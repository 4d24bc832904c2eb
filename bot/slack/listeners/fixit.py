"""The fix-it flow in Slack: the modal, its live proposal, the plan posted, and Verify.

"Fix it" opens the modal, input changes update the proposal, the submission posts the plan in the
report's thread, "Verify" looks again.

The modal is opened with the trigger_id before any DNS (the trigger expires 3 seconds after the
click): first a "reading the records" view built from the button value, then views.update with the
proposal from fresh lookups. The owner is the workspace that installed the app (Bolt's context),
never the clicking user's team; a user of another organisation in a shared channel is refused
with a message. A report only its requester sees (the bot is not in the channel) has no thread:
its plan is posted in the channel, or through the click's response_url when the bot may not post.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.monitor.fix_followup import settle_verified
from bot.reports.summary import readiness_stats
from bot.slack import ids as slack_ids
from bot.slack.blocks.apply import with_apply_button
from bot.slack.blocks.fixit import (
    fix_view,
    input_id,
    loading_view,
    metadata,
    plan_message,
    read_form,
    verification_message,
)
from bot.slack.features import Feature
from bot.slack.fix_plans import FixPlan, check_plan
from bot.slack.mrkdwn import FIELD_ERROR_LIMIT, clip, escape, safe
from bot.slack.turn import FOREIGN_ORG, is_foreign_user, turn_for_interaction
from bot.slack.work import WorkPool
from bot.store.apply_audit import record_proposal
from bot.store.stores import Stores
from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.errors import UnreadableValue
from handlers.fixes.changes import changes_for
from handlers.fixes.providers import PROVIDERS_BY_KEY
from handlers.fixes.records import FixInputError, fix_kind
from handlers.fixes.session import FixForm, FixScreen, expected_records, prepare_fix, refused_reasons
from handlers.fixes.spf_fixes import AddressDrift, parse_extra_terms

log = logging.getLogger("dmarcbot.fixit")

MAX_DRIFT_TERMS = 100  # a button value holds 2000 characters: far fewer fit anyway


@dataclass(frozen=True, kw_only=True)
class FixRequest:
    """What a Fix it button (or the modal's metadata) says: the finding, domain and owner."""

    finding_id: str
    domain: str
    owner: str | None
    selectors: tuple[str, ...]
    selector: str | None
    channel_id: str | None = None
    thread_ts: str | None = None
    # The click's response_url: the way back to the requester when the report had no thread.
    response_url: str | None = None
    # A stale flattening's re-flatten (the drift alert's button): only the first screen needs
    # it, the modal's inputs carry the choices after that, so it stays out of the metadata.
    drift: AddressDrift | None = None
    # A sender named in aggregate reports (its catalog key): the SPF fix opens with its include
    # chosen. Like `drift`, only the first screen needs it.
    provider: str | None = None

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
                # "u", not "r": a drift alert's button value uses "r" for the removed addresses.
                "u": self.response_url,
            }
        )

    @property
    def kind(self) -> str:
        return fix_kind(self.finding_id) or ""


STALE_FORM = "That Fix it form no longer works: press Fix it on the report again."


def read_fix_request(
    data: Any, channel_id: str | None = None, thread_ts: str | None = None, response_url: str | None = None
) -> FixRequest:
    """Validate what came back from the client: values can be altered on the way."""
    try:
        if not isinstance(data, dict):
            raise TypeError("not an object")
        finding_id = str(data["f"])
        if fix_kind(finding_id) is None:
            raise ValueError(f"no fix for {finding_id}")
        selector = data.get("x")
        url = data.get("u") or response_url
        if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
            raise ValueError("not a response_url")
        return FixRequest(
            finding_id=finding_id,
            domain=normalise_domain(str(data["d"])),
            owner=str(data["o"]) if data.get("o") else None,
            selectors=tuple(str(s) for s in data.get("s") or [])[:20],
            selector=str(selector) if selector else None,
            channel_id=data.get("c") or channel_id,
            thread_ts=data.get("ts") or thread_ts,
            response_url=url[:500] if url else None,
            drift=_read_drift(data),
            provider=_read_provider(data),
        )
    except (KeyError, TypeError, ValueError, InvalidDomain) as error:
        raise UnreadableValue(str(error)) from None


def _read_provider(data: dict[str, Any]) -> str | None:
    """A catalog provider's key, or None: anything else is refused, not guessed at."""
    key = data.get("p")
    if key is None:
        return None
    if not isinstance(key, str) or key not in PROVIDERS_BY_KEY:
        raise ValueError("not a known provider")
    return key


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


def _screen(
    settings: Settings, stores: Stores, request: FixRequest, form: FixForm | None, team_id: str | None
) -> FixScreen:
    """Prepare the fix from fresh records (a new DnsSession for every step); a policy step reads
    its readiness from the owning team's aggregate reports when it has some."""
    stats = None
    if request.kind == "dmarc_progress":
        stats = readiness_stats(stores.reports, team_id or "", request.domain)
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
            request.provider,
            https=settings.https_client(),
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


def handle_fix_click(
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
    message = body.get("message") or {}
    turn = turn_for_interaction(body, client, respond, settings, stores, context, pool)
    channel_id = turn.channel_id

    def open_modal() -> None:
        try:
            data = json.loads(body["actions"][0]["value"])
            if isinstance(data, dict):
                data["o"] = turn.team_id  # the installation owns it, whatever the value says
            request = read_fix_request(
                data, channel_id, message.get("thread_ts") or message.get("ts"), body.get("response_url")
            )
        except (KeyError, IndexError, ValueError, UnreadableValue):
            turn.tell(
                "That Fix it button is from an older report: press Re-check, then the "
                "Fix it button of the finding."
            )
            return
        if is_foreign_user(body, context):
            turn.tell(FOREIGN_ORG)
            return
        opened = client.views_open(
            trigger_id=body["trigger_id"],
            view=loading_view(request.finding_id, request.domain, request.kind, request.to_metadata()),
        )
        view_id = opened["view"]["id"]
        screen = _screen(settings, stores, request, None, turn.team_id)
        client.views_update(view_id=view_id, view=fix_view(screen, request.to_metadata()))

    turn.later("opening the fix-it flow", open_modal)


def handle_fix_input(
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    context: BoltContext,
) -> None:
    ack()
    view = body.get("view") or {}
    turn = turn_for_interaction(body, client, None, settings, stores, context, pool)

    def update() -> None:
        try:
            request = read_fix_request(json.loads(view.get("private_metadata") or "{}"))
        except (ValueError, UnreadableValue):
            return
        turn.channel_id = request.channel_id
        if is_foreign_user(body, context):
            turn.tell(FOREIGN_ORG)
            return
        values = (view.get("state") or {}).get("values") or {}
        for action in body.get("actions") or []:
            values = _overlay_action(values, action)
        try:
            form = read_form(request.kind, values, request.domain, request.selector)
        except FixInputError as error:
            screen = _screen(settings, stores, request, None, turn.team_id)
            shown = fix_view(screen, request.to_metadata())
            shown["blocks"].insert(
                0,
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f":warning: {clip(escape(error.message), 2900)}"},
                },
            )
            client.views_update(view_id=view["id"], view=shown)
            return
        screen = _screen(settings, stores, request, form, turn.team_id)
        client.views_update(view_id=view["id"], view=fix_view(screen, request.to_metadata()))

    turn.later("updating the fix proposal", update)


def handle_fix_submission(
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    view: dict[str, Any],
    context: BoltContext,
) -> None:
    user_id = (body.get("user") or {}).get("id")
    turn = turn_for_interaction(body, client, None, settings, stores, context, pool)
    try:
        request = read_fix_request(json.loads(view.get("private_metadata") or "{}"))
    except (ValueError, UnreadableValue):
        # No field to mark: the form carries no fix, so it is closed and the user told why.
        ack()
        turn.later("answering a Fix it form that no longer works", lambda: turn.tell(STALE_FORM))
        return
    turn.channel_id = request.channel_id
    if is_foreign_user(body, context):
        first = _first_input(view)
        if first is None:
            ack()
            turn.later("refusing a fix", lambda: turn.tell(FOREIGN_ORG))
        else:
            ack(response_action="errors", errors={first: FOREIGN_ORG})
        return
    try:
        form = read_form(
            request.kind, (view.get("state") or {}).get("values") or {}, request.domain, request.selector
        )
    except FixInputError as error:
        # Slack shows the message under the field (response_action: errors).
        ack(response_action="errors", errors={input_id(error.field): clip(error.message, FIELD_ERROR_LIMIT)})
        log.info(
            "fix form for %s from %s: the %s field is invalid; answered on the field",
            request.domain,
            user_id,
            error.field,
        )
        return
    ack()

    def post_plan() -> None:
        screen = _screen(settings, stores, request, form, turn.team_id)
        reasons = refused_reasons(screen)
        if reasons:
            turn.tell(safe("The plan was not posted: " + "; ".join(reasons), 2500))
            return
        if not request.channel_id:
            turn.tell("I don't know which channel this fix belongs to; run the check again.")
            return
        team_id = turn.team_id or ""
        plan = FixPlan(
            team_id=team_id,
            channel_id=request.channel_id,
            thread_ts=request.thread_ts or "",  # "": the plan starts its own thread (see below)
            domain=request.domain,
            kind=screen.proposal.kind,
            finding_id=request.finding_id,
            expected=expected_records(screen.proposal),
            clears=screen.family_findings,
            selectors=(screen.proposal.selector,) if screen.proposal.selector else request.selectors,
            watch_includes=screen.proposal.watch_includes,
            proposed_by=user_id or "",
        )
        value = plan.button_value(lambda state: stores.slack_state.save_button_state(team_id, state))
        text, blocks = plan_message(plan, screen.proposal, user_id or "", value)
        changes = changes_for(screen.proposal)
        if changes and request.thread_ts and settings.dns_providers.for_name(plan.domain) is not None:
            # The bot can write this zone: an Apply button beside Verify (see listeners/apply.py).
            blocks = with_apply_button(blocks, plan.key())
        if request.thread_ts:
            client.chat_postMessage(
                channel=request.channel_id, thread_ts=request.thread_ts, text=text, blocks=blocks
            )
        else:
            # The report was shown to its requester alone: there is no thread to answer in.
            posted = _post_without_thread(client, request, text, blocks)
            if posted is None:
                return  # shown through the response_url only: no thread for "fixed" to go in
            plan = dataclasses.replace(plan, thread_ts=posted)
        # Stored after the post: a plan nobody saw is never announced "fixed" by the monitor.
        stored = stores.fix_plans.save_fix_plan(plan)
        if stored:
            record_proposal(stores.applies, plan, changes)
        log.info(
            "fix plan for %s (%s) in %s: %s",
            plan.domain,
            plan.finding_id,
            plan.channel_id,
            "stored" if stored else "already stored (a replayed submission), kept once",
        )

    turn.later("posting the fix plan", post_plan)


def _post_without_thread(
    client: WebClient, request: FixRequest, text: str, blocks: list[dict[str, Any]]
) -> str | None:
    """Post a plan whose report had no thread: in the channel (returns the message's ts, where
    its own thread starts), else, when the bot may not post there, through the click's
    response_url to the requester (returns None)."""
    try:
        answer = client.chat_postMessage(channel=request.channel_id or "", text=text, blocks=blocks)
        return str(answer["ts"])
    except SlackApiError as error:
        if error.response.get("error") not in ("not_in_channel", "channel_not_found", "restricted_action"):
            raise
    if not request.response_url:
        raise RuntimeError("no channel and no response_url to post the plan through")
    Respond(response_url=request.response_url)(
        text=text, blocks=blocks, response_type="ephemeral", replace_original=False
    )
    return None


def handle_fix_verify(
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
    user_id = turn.user_id
    if is_foreign_user(body, context):
        turn.later("refusing a verification", lambda: turn.tell(FOREIGN_ORG))
        return

    def verify() -> None:
        team_id = turn.team_id or ""
        try:
            plan = FixPlan.from_button_value(
                body["actions"][0]["value"], lambda ref: stores.slack_state.button_state(team_id, ref)
            )
            normalise_domain(plan.domain)
        except (KeyError, IndexError, UnreadableValue, InvalidDomain):
            turn.tell("That Verify button no longer works: run the check again.")
            return
        channel, thread_ts = _clicked_message_place(body)
        if not plan.thread_ts:  # a plan that started its own thread: the message clicked is its root
            message_ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get(
                "message_ts"
            )
            plan = dataclasses.replace(plan, thread_ts=str(message_ts or ""))
            thread_ts = thread_ts or plan.thread_ts or None
        # Where the answer goes is the clicked message's own place (its channel and thread, from
        # Slack's container), never what the button's value says: a value that names another
        # channel or thread is not this message's button.
        if channel is None or (channel, thread_ts) != (plan.channel_id, plan.thread_ts or None):
            turn.tell(
                "That Verify button does not belong to this message's thread: "
                "use the Verify button on the fix plan itself."
            )
            return
        check = check_plan(settings, plan)
        text, blocks = verification_message(plan, check, user_id)
        turn.channel_id = channel
        turn.post(text, blocks, thread_ts=thread_ts)
        if check.live:
            # The thread has just been told: the monitor must not say "fixed" again.
            settle_verified(stores.fix_plans, plan)

    turn.later("verifying a fix", verify)


def _clicked_message_place(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The channel and thread of the message whose button was clicked, as Slack describes it."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    return (str(channel) if channel else None), (str(thread_ts) if thread_ts else None)


def _first_input(view: dict[str, Any]) -> str | None:
    blocks = [b for b in view.get("blocks") or [] if b.get("type") == "input"]
    return str(blocks[0]["block_id"]) if blocks else None


def register(app: App, settings: Settings, stores: Stores, pool: WorkPool) -> None:
    """Attach the fix-it listeners to `app`."""
    app.action(slack_ids.ACTION_FIX)(partial(handle_fix_click, settings, stores, pool))
    app.action(re.compile("^" + re.escape(slack_ids.FIX_INPUT_PREFIX)))(
        partial(handle_fix_input, settings, stores, pool)
    )
    app.view(slack_ids.CALLBACK_FIX_MODAL)(partial(handle_fix_submission, settings, stores, pool))
    app.action(slack_ids.ACTION_FIX_VERIFY)(partial(handle_fix_verify, settings, stores, pool))


FIX_IT = Feature(name="fix it", register=register)
