"""`/dmarc why` (a modal to paste headers) and the "Why did DMARC fail?" message shortcut."""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.blocks.why import render_verdict
from bot.slack.features import Feature
from bot.slack.files import (
    EMAIL_APP,
    FileRefused,
    download_file,
    is_email_app_file,
    pasted_text,
    readable_file,
)
from bot.slack.mrkdwn import FIELD_ERROR_LIMIT, clip
from bot.slack.routing import Job, Subcommand
from bot.slack.turn import SlackTurn, turn_for_interaction
from bot.slack.work import WorkPool
from bot.store.stores import Stores
from handlers.message.parse import MAX_MESSAGE_BYTES, MessageError, ParsedMessage, parse_message
from handlers.message.verdict import diagnose_message

log = logging.getLogger("dmarcbot.slack")

MODAL_INPUT_LIMIT = 3000  # Block Kit: a plain_text_input holds at most 3,000 characters
MESSAGE_FILE_TYPES = ("eml", "text", "txt", "msg", "")


def why_modal(channel_id: str | None) -> dict[str, Any]:
    """The paste-your-headers modal; `private_metadata` remembers where to post the verdict."""
    return {
        "type": "modal",
        "callback_id": slack_ids.CALLBACK_WHY_MODAL,
        "title": {"type": "plain_text", "text": "Why did DMARC fail?"},
        "submit": {"type": "plain_text", "text": "Explain"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"channel": channel_id}),
        "blocks": [
            {
                "type": "input",
                "block_id": slack_ids.BLOCK_WHY_HEADERS,
                "label": {"type": "plain_text", "text": "The message's headers"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": slack_ids.ACTION_WHY_HEADERS,
                    "multiline": True,
                    "max_length": MODAL_INPUT_LIMIT,
                    "placeholder": {"type": "plain_text", "text": "From: …\nDKIM-Signature: …\nReceived: …"},
                },
                "hint": {
                    "type": "plain_text",
                    "text": (
                        "This box holds at most 3,000 characters and real headers are often longer. "
                        "For a whole message, share its .eml file in a channel with me (or paste the "
                        "headers in a message) and use the shortcut “Why did DMARC fail?” on it."
                    ),
                },
            },
        ],
    }


def diagnose(settings: Settings, message: ParsedMessage) -> tuple[str, list[dict[str, Any]]]:
    """Diagnose with fresh DNS and render the verdict."""
    verdict = asyncio.run(diagnose_message(settings.dns_session(), message))
    return render_verdict(verdict)


def parse_why(words: list[str]) -> Job:
    """Explain why one message failed DMARC: opens a form to paste its headers."""
    return Job(ack=None, work="why_modal")


def open_why_modal(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """The worker behind `/dmarc why`: open the modal while the trigger_id is valid (3 s)."""
    turn.client.views_open(trigger_id=body["trigger_id"], view=why_modal(turn.channel_id))


def _message_file(file: dict[str, Any]) -> bool:
    return str(file.get("filetype", "")).lower() in MESSAGE_FILE_TYPES or str(
        file.get("name", "")
    ).lower().endswith((".eml", ".txt", ".msg"))


def message_from_shortcut(message: dict[str, Any], client: WebClient, token: str) -> ParsedMessage:
    """The message to diagnose: an attached .eml if one can be read, else the pasted text; when
    neither works, why the attachment could not be read (or why the text is not a message)."""
    refused: FileRefused | None = None
    for file in message.get("files") or []:
        if is_email_app_file(file):
            refused = refused or FileRefused(EMAIL_APP)
            continue
        if not _message_file(file):
            continue
        try:
            info = readable_file(file, client)
            if not _message_file(info):
                raise FileRefused("the attached file is not a message (.eml) file")
            data = download_file(info, token, MAX_MESSAGE_BYTES)
        except FileRefused as error:
            refused = refused or error
            continue
        return parse_message(data)
    text = pasted_text(message.get("text") or "")
    if text:
        try:
            return parse_message(text)
        except MessageError:
            if refused is None:
                raise
    if refused is not None:
        raise refused
    raise MessageError(
        "that message has no text and no .eml file: paste the headers of the "
        "message that failed, or attach its .eml, then use the shortcut on it"
    )


def handle_why_submission(
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    client: WebClient,
    context: BoltContext,
) -> None:
    values = view["state"]["values"][slack_ids.BLOCK_WHY_HEADERS]
    pasted = values[slack_ids.ACTION_WHY_HEADERS].get("value") or ""
    try:  # parsing 3,000 characters is quick: answer on the field before the modal closes
        message = parse_message(pasted)
    except MessageError as error:
        ack(
            response_action="errors",
            errors={slack_ids.BLOCK_WHY_HEADERS: clip(str(error), FIELD_ERROR_LIMIT)},
        )
        log.info(
            "why form from %s: the pasted text is not a message (%s); answered on the field",
            (body.get("user") or {}).get("id"),
            str(error)[:150],
        )
        return
    ack()
    channel = json.loads(view.get("private_metadata") or "{}").get("channel")
    user = body["user"]
    turn = turn_for_interaction(body, client, None, settings, stores, context, pool)
    turn.channel_id = channel

    def explain() -> None:
        text, blocks = diagnose(settings, message)
        if channel:
            turn.post(text, blocks)
        else:
            client.chat_postMessage(channel=user["id"], text=text, blocks=blocks)

    turn.later("explaining a message's DMARC result", explain)


def handle_why_shortcut(
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
    shared = body.get("message") or {}

    def explain() -> None:
        try:
            message = message_from_shortcut(shared, client, context.bot_token or "")
        except (MessageError, FileRefused) as error:
            turn.tell(f"I can't read a message there: {error}.")
            return
        text, blocks = diagnose(settings, message)
        turn.post(text, blocks, thread_ts=shared.get("thread_ts") or shared.get("ts"))

    turn.later("explaining a message's DMARC result", explain)


def register(app: App, settings: Settings, stores: Stores, pool: WorkPool) -> None:
    """Attach the why modal's submission and the message shortcut to `app`."""
    app.view(slack_ids.CALLBACK_WHY_MODAL)(partial(handle_why_submission, settings, stores, pool))
    app.shortcut(slack_ids.CALLBACK_WHY_SHORTCUT)(partial(handle_why_shortcut, settings, stores, pool))


WHY = Feature(
    name="why",
    subcommands=(Subcommand("why", "why", parse_why, ("/dmarc why",)),),
    workers={"why_modal": open_why_modal},
    register=register,
)
