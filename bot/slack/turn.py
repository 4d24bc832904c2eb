"""One user request, as the workers see it: who asked, where, and how to answer them.

Workers run after the ack. Any failure is logged with its context and the user is told, in an
ephemeral message, what failed and what to try: never a traceback, never silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from handlers.domain.check import DomainReport, check_domain

log = logging.getLogger("dmarcbot.slack")


@dataclass
class SlackTurn:
    """The request's client, respond(), channel, user and team, and the settings."""

    client: WebClient
    respond: Respond | None  # None for modal submissions and inputs: they carry no response_url
    settings: Settings
    channel_id: str | None
    user_id: str | None
    team_id: str | None

    def tell(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """An answer only the requester sees: through the response_url when the request has one
        (commands, buttons, shortcuts), else as an ephemeral message (modal submissions)."""
        if self.respond is not None and self.respond.response_url:
            self.respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
        elif self.user_id:
            try:
                self.client.chat_postEphemeral(
                    channel=self.channel_id or self.user_id, user=self.user_id, text=text, blocks=blocks
                )
            except SlackApiError:  # not a member there: a direct message still reaches them
                self.client.chat_postMessage(channel=self.user_id, text=text, blocks=blocks)

    def post(self, text: str, blocks: list[dict[str, Any]], **extra: Any) -> dict[str, Any] | None:
        """Post in the request's channel for everyone; when the bot may not post there, show the
        message to the requester alone and say how to invite the bot. Returns Slack's answer."""
        try:
            response = self.client.chat_postMessage(
                channel=self.channel_id or "", text=text, blocks=blocks, **extra
            )
            return dict(response.data) if isinstance(response.data, dict) else None
        except SlackApiError as error:
            code = error.response.get("error", "")
            if code not in ("not_in_channel", "channel_not_found", "restricted_action"):
                raise
            self.tell(text, blocks)
            self.tell(
                "I can't post in this channel, so only you see the result. To share results "
                "here, invite me: `/invite @dmarcbot`."
            )
            return None


def interaction_team(body: dict[str, Any]) -> str | None:
    """The acting user's workspace in an interaction payload: in a shared channel the user's own
    team, which may differ from the team the payload was delivered to."""
    return (body.get("user") or {}).get("team_id") or (body.get("team") or {}).get("id")


def turn_for_interaction(
    body: dict[str, Any], client: WebClient, respond: Respond, settings: Settings
) -> SlackTurn:
    """A SlackTurn for a button click or a shortcut."""
    return SlackTurn(
        client,
        respond,
        settings,
        (body.get("channel") or {}).get("id"),
        (body.get("user") or {}).get("id"),
        interaction_team(body),
    )


def run_domain_check(settings: Settings, domain: str, selectors: Sequence[str]) -> DomainReport:
    """A fresh check (new DnsSession: no answer older than this request) from a worker thread."""
    return asyncio.run(check_domain(domain, settings.dns_session(), selectors))


def guarded(what: str, turn: SlackTurn, work: Callable[[], None]) -> None:
    """Run `work`; on any failure, log it with context and tell the user what failed."""
    try:
        work()
    except SlackApiError as error:
        log.error(
            "Slack API error while %s (team=%s channel=%s user=%s): %s",
            what,
            turn.team_id,
            turn.channel_id,
            turn.user_id,
            error.response.get("error"),
            exc_info=True,
        )
        _tell_failure(
            turn,
            f"Slack refused a request while {what} "
            f"({error.response.get('error', 'unknown error')}). Try again in a "
            "minute; if it keeps failing, ask an admin to check the app's scopes.",
        )
    except Exception:  # the boundary to the user: whatever broke, they must hear about it
        log.exception(
            "Unexpected failure while %s (team=%s channel=%s user=%s)",
            what,
            turn.team_id,
            turn.channel_id,
            turn.user_id,
        )
        _tell_failure(
            turn,
            f"Something went wrong while {what}. It has been logged; "
            "try again, and if it persists, run the same check with the "
            "`dmarcbot` command line for details.",
        )
    # The request's last line, whatever its outcome: nothing more is sent for it after this.
    log.debug("%s: finished (team=%s channel=%s user=%s)", what, turn.team_id, turn.channel_id, turn.user_id)


def _tell_failure(turn: SlackTurn, text: str) -> None:
    try:
        turn.tell(f":warning: {text}")
    except (SlackApiError, OSError):
        log.exception("Could not tell the user about a failure either")
