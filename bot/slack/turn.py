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

from slack_bolt.context.context import BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.slack.work import BUSY, WorkPool
from bot.store.stores import Stores
from handlers.domain.check import DomainReport, check_domain

log = logging.getLogger("dmarcbot.slack")


@dataclass(kw_only=True)
class SlackTurn:
    """The request's client, respond(), channel, user and the installation that received it (its
    team and, in an Enterprise Grid org, its enterprise): the owner of whatever the request
    stores, never the acting user's own team. `pool` runs the work after the ack."""

    client: WebClient
    respond: Respond | None  # None for modal submissions and inputs: they carry no response_url
    settings: Settings
    stores: Stores
    channel_id: str | None
    user_id: str | None
    team_id: str | None
    pool: WorkPool | None = None

    def check(self, domain: str, selectors: Sequence[str], fresh: bool = False) -> DomainReport:
        """A check of `domain`, shared with identical checks running at the same moment (and,
        unless `fresh`, one that finished a few seconds ago: a burst of the same command)."""
        if self.pool is None:
            return run_domain_check(self.settings, domain, selectors)
        key = ("check", repr(self.settings.nameservers), domain, tuple(selectors))
        return self.pool.shared(key, lambda: run_domain_check(self.settings, domain, selectors), not fresh)

    def later(self, what: str, work: Callable[[], None]) -> bool:
        """Run `work` (guarded) after the ack, on the pool; when the pool is full, tell the user
        at once to try again and return False."""
        if self.pool is None:
            guarded(what, self, work)
            return True
        if self.pool.submit(lambda: guarded(what, self, work)):
            return True
        log.warning("Busy: refused %s (team=%s user=%s)", what, self.team_id, self.user_id)
        _tell_failure(self, BUSY, warn=False)
        return False

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


FOREIGN_ORG = (
    "This belongs to the workspace that installed dmarcbot here; you are in another organisation "
    "sharing this channel, so you can read it but not change it. Ask a member of that workspace."
)


def installation_team(context: BoltContext) -> str | None:
    """The workspace that installed the app and received this request: the team Bolt authorized
    the request for (auth.test of the bot token, or the OAuth installation found for it), else
    Bolt's `context.team_id` (from `authorizations` for events, `view.app_installed_team_id` for
    modals). It owns whatever the request creates. Never `user.team_id` nor an event's outer
    `team_id`, which name the acting user's organisation in a Slack Connect channel."""
    authorized = context.authorize_result
    return (authorized.team_id if authorized else None) or context.team_id or context.enterprise_id


def is_foreign_user(body: dict[str, Any], context: BoltContext) -> bool:
    """True when the acting user belongs to another organisation than the installation (a Slack
    Connect partner in a shared channel). A user of another workspace of the same Enterprise
    Grid org, acting through an org-wide install, is not foreign."""
    user_team = (body.get("user") or {}).get("team_id")
    owner = installation_team(context)
    if not user_team or not owner or user_team == owner:
        return False
    enterprise = (body.get("enterprise") or {}).get("id") or (body.get("team") or {}).get("enterprise_id")
    return not (
        context.enterprise_id and body.get("is_enterprise_install") and enterprise == context.enterprise_id
    )


def turn_for_interaction(
    body: dict[str, Any],
    client: WebClient,
    respond: Respond | None,
    settings: Settings,
    stores: Stores,
    context: BoltContext,
    pool: WorkPool | None = None,
) -> SlackTurn:
    """A SlackTurn for a button click, a shortcut or a modal, owned by the installation."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    return SlackTurn(
        client=client,
        respond=respond,
        settings=settings,
        stores=stores,
        channel_id=channel,
        user_id=(body.get("user") or {}).get("id"),
        team_id=installation_team(context),
        pool=pool,
    )


def run_domain_check(settings: Settings, domain: str, selectors: Sequence[str]) -> DomainReport:
    """A fresh check (new DnsSession: no answer older than this request) from a worker thread."""
    return asyncio.run(check_domain(domain, settings.dns_session(), selectors, https=settings.https_client()))


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


def _tell_failure(turn: SlackTurn, text: str, warn: bool = True) -> None:
    try:
        turn.tell(f":warning: {text}" if warn else text)
    except (SlackApiError, OSError):
        log.exception("Could not tell the user about a failure either")
