"""`/dmarc why` (a modal to paste headers) and the "Why did DMARC fail?" message shortcut."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.blocks.why import render_verdict
from bot.slack.files import FileRefused, download_file, pasted_text
from bot.slack.listeners.commands import register_worker
from bot.slack.turn import SlackTurn, guarded, turn_for_interaction
from handlers.message.parse import MAX_MESSAGE_BYTES, MessageError, ParsedMessage, parse_message
from handlers.message.verdict import diagnose_message

log = logging.getLogger("dmarcbot.slack")

MODAL_INPUT_LIMIT = 3000  # Block Kit: a plain_text_input holds at most 3,000 characters
MESSAGE_FILE_TYPES = ("eml", "email", "text", "txt", "msg", "")


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


def open_why_modal(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """The worker behind `/dmarc why`: open the modal while the trigger_id is valid (3 s)."""
    turn.client.views_open(trigger_id=body["trigger_id"], view=why_modal(turn.channel_id))


register_worker("why_modal", open_why_modal)


def message_from_shortcut(message: dict[str, Any], token: str) -> ParsedMessage:
    """The message to diagnose: an attached .eml if there is one, else the pasted text."""
    for file in message.get("files") or []:
        if str(file.get("filetype", "")).lower() in MESSAGE_FILE_TYPES or str(
            file.get("name", "")
        ).lower().endswith((".eml", ".txt", ".msg")):
            return parse_message(download_file(file, token, MAX_MESSAGE_BYTES))
    text = pasted_text(message.get("text") or "")
    if not text:
        raise MessageError(
            "that message has no text and no .eml file: paste the headers of the "
            "message that failed, or attach its .eml, then use the shortcut on it"
        )
    return parse_message(text)


def register(app: App, settings: Settings) -> None:
    """Attach the why modal's submission and the message shortcut to `app`."""

    @app.view(slack_ids.CALLBACK_WHY_MODAL)
    def handle_why_submission(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        values = view["state"]["values"][slack_ids.BLOCK_WHY_HEADERS]
        pasted = values[slack_ids.ACTION_WHY_HEADERS].get("value") or ""
        try:  # parsing 3,000 characters is quick: answer on the field before the modal closes
            message = parse_message(pasted)
        except MessageError as error:
            ack(response_action="errors", errors={slack_ids.BLOCK_WHY_HEADERS: str(error)[:150]})
            log.info(
                "why form from %s: the pasted text is not a message (%s); answered on the field",
                (body.get("user") or {}).get("id"),
                str(error)[:150],
            )
            return
        ack()
        channel = json.loads(view.get("private_metadata") or "{}").get("channel")
        user = body["user"]
        turn = SlackTurn(client, respond, settings, channel, user["id"], user.get("team_id"))

        def explain() -> None:
            text, blocks = diagnose(settings, message)
            if channel:
                turn.post(text, blocks)
            else:
                client.chat_postMessage(channel=user["id"], text=text, blocks=blocks)

        guarded("explaining a message's DMARC result", turn, explain)

    @app.shortcut(slack_ids.CALLBACK_WHY_SHORTCUT)
    def handle_why_shortcut(
        ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond, context: dict[str, Any]
    ) -> None:
        ack()
        turn = turn_for_interaction(body, client, respond, settings)
        shared = body.get("message") or {}

        def explain() -> None:
            try:
                message = message_from_shortcut(shared, context.get("bot_token") or "")
            except (MessageError, FileRefused) as error:
                turn.tell(f"I can't read a message there: {error}.")
                return
            text, blocks = diagnose(settings, message)
            turn.post(text, blocks, thread_ts=shared.get("thread_ts") or shared.get("ts"))

        guarded("explaining a message's DMARC result", turn, explain)
