"""The buttons on a domain report: Re-check (fresh DNS, same message) and Watch.

The Fix it buttons are handled by bot/slack/listeners/fixit.py.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import render_report
from bot.slack.features import Feature
from bot.slack.listeners.watch import start_watching
from bot.slack.turn import FOREIGN_ORG, is_foreign_user, turn_for_interaction
from bot.slack.work import WorkPool
from bot.store.stores import Stores
from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.errors import UnreadableValue


def read_button_value(body: dict[str, Any]) -> tuple[str, list[str]]:
    """The domain and selectors a report button carries, validated again: values come back from
    the client and could have been altered."""
    try:
        value = json.loads(body["actions"][0]["value"])
        domain = normalise_domain(str(value["d"]))
        selectors = [str(s) for s in value.get("s", [])][:20]
    except (KeyError, IndexError, TypeError, ValueError, InvalidDomain) as error:
        raise UnreadableValue(str(error)) from None
    return domain, selectors


def handle_recheck(
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
    if is_foreign_user(body, context):  # Re-check re-renders the report: it changes state
        turn.later("refusing a re-check", lambda: turn.tell(FOREIGN_ORG))
        return

    def recheck() -> None:
        try:
            domain, selectors = read_button_value(body)
        except UnreadableValue:
            turn.tell("That button no longer works: run `/dmarc check DOMAIN` again.")
            return
        report = turn.check(domain, selectors, fresh=True)  # Re-check promises fresh DNS
        text, blocks = render_report(report, selectors, turn.team_id)
        message = body.get("message") or {}
        container = body.get("container") or {}
        if container.get("is_ephemeral") or not message.get("ts"):
            respond(text=text, blocks=blocks, replace_original=True)
        else:
            client.chat_update(channel=turn.channel_id or "", ts=message["ts"], text=text, blocks=blocks)

    turn.later("re-checking a domain", recheck)


def handle_watch(
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
    if is_foreign_user(body, context):
        turn.later("refusing a watch", lambda: turn.tell(FOREIGN_ORG))
        return

    def watch() -> None:
        try:
            domain, selectors = read_button_value(body)
        except UnreadableValue:
            turn.tell("That button no longer works: run `/dmarc watch DOMAIN` instead.")
            return
        start_watching(domain, selectors, turn)

    turn.later("starting to watch a domain", watch)


def register(app: App, settings: Settings, stores: Stores, pool: WorkPool) -> None:
    """Attach the report buttons' listeners to `app`."""
    app.action(slack_ids.ACTION_RECHECK)(partial(handle_recheck, settings, stores, pool))
    app.action(slack_ids.ACTION_WATCH)(partial(handle_watch, settings, stores, pool))


REPORT_BUTTONS = Feature(name="report buttons", register=register)
