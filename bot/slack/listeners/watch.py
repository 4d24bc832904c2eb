"""`/dmarc watch`, `unwatch` and `list`, the report's Watch button and the App Home watch list.

Every read and write is scoped to the team the request came from.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.monitor.cycle import check_watch, record_observation
from bot.monitor.watch_state import observe
from bot.slack.blocks.alerts import render_watch_list, render_watch_started
from bot.slack.blocks.domain_report import context
from bot.slack.features import Feature
from bot.slack.mrkdwn import safe
from bot.slack.routing import Job, Subcommand, parse_domain_argument, parse_selectors
from bot.slack.turn import SlackTurn
from bot.store.stores import Stores
from handlers.dns.domain_name import display_name, first_mention

# The app does not ask for im:read / mpim:read: a DM is no place for a team's alerts.
NEEDS_CHANNEL = "Alerts need a channel; run this in the channel that should receive them."
HOME_WATCH_BLOCKS = 45  # of the Home tab's 100: the intro and usage come first


def parse_watch(words: list[str]) -> Job:
    """Watch a domain: this channel hears when its records change, mail starts failing, or it recovers."""
    domain = parse_domain_argument(words, "watch DOMAIN")
    selectors = parse_selectors(words[1:])
    # No "Watching…" in the ack: whether the bot can post here is known only once Slack has said
    # it is a member (conversations.info, after the ack), and a user told "Watching…" and then
    # "I'm not a member" cannot tell which is true. start_watching says "Watching…" after that.
    return Job(
        ack=None,
        work="watch",
        args={"domain": domain, "selectors": selectors},
        channel_problem=NEEDS_CHANNEL,
    )


def parse_unwatch(words: list[str]) -> Job:
    """Stop watching a domain."""
    return Job(ack=None, work="unwatch", args={"domain": parse_domain_argument(words, "unwatch DOMAIN")})


def parse_list(words: list[str]) -> Job:
    """List this workspace's watched domains: channel, last check, status."""
    return Job(ack=None, work="list")


def invite_problem(client: WebClient, channel_id: str, domain: str) -> str | None:
    """Why alerts could not be posted in `channel_id` (the bot is not a member), or None."""
    how = (
        f"I'm not a member of this channel, so I could not post alerts about "
        f"{safe(display_name(domain), 300)} here. Invite me with `/invite @dmarcbot` (or "
        "the channel's details → Integrations → Add apps), then run "
        f"`/dmarc watch {safe(domain, 300)}` again."
    )
    try:
        info = client.conversations_info(channel=channel_id)
    except SlackApiError as error:
        code = error.response.get("error")
        if code == "channel_not_found":  # a private channel we are not in
            return how
        if code == "missing_scope":  # a DM or group DM: reading it needs im:read / mpim:read
            return NEEDS_CHANNEL
        raise
    channel = info.get("channel") or {}
    return how if channel.get("is_member") is False else None


def start_watching(domain: str, selectors: list[str], turn: SlackTurn) -> None:
    """Watch `domain` for the turn's team with alerts to its channel, run the first check as the
    baseline, and post its summary there."""
    if not turn.team_id or not turn.channel_id or turn.channel_id.startswith("D"):
        turn.tell(NEEDS_CHANNEL)
        return
    problem = invite_problem(turn.client, turn.channel_id, domain)
    if problem:
        turn.tell(problem)
        return
    turn.tell(f"Watching {first_mention(domain)} for this channel: running its first check…")
    store = turn.stores.watches
    watch, newly = store.add_watch(turn.team_id, turn.channel_id, domain, selectors, turn.user_id)
    report = check_watch(watch, turn.settings.dns_session(), turn.settings.https_client())
    record_observation(store, watch, observe(report))
    text, blocks = render_watch_started(report, watch, newly, selectors)
    turn.post(text, blocks, unfurl_links=False, unfurl_media=False)


def watch_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """After the ack of `/dmarc watch`."""
    start_watching(args["domain"], args["selectors"], turn)


def unwatch_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """After the ack of `/dmarc unwatch`: remove the team's watch and say so."""
    domain = args["domain"]
    store = turn.stores.watches
    if turn.team_id and store.remove_watch(turn.team_id, domain):
        turn.tell(f"Stopped watching {safe(display_name(domain), 300)}.")
    else:
        turn.tell(
            f"{safe(display_name(domain), 300)} is not watched in this workspace. "
            "`/dmarc list` shows what is."
        )


def list_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """After the ack of `/dmarc list`: this team's watches, to the person who asked."""
    watches = turn.stores.watches.watches(turn.team_id or "")
    text, blocks = render_watch_list(watches)
    turn.tell(text, blocks)


def home_watch_section(settings: Settings, stores: Stores, team_id: str | None) -> list[dict[str, Any]]:
    """The App Home's watch list for the team whose member opened it."""
    watches = stores.watches.watches(team_id) if team_id else []
    _, blocks = render_watch_list(watches, limit_blocks=HOME_WATCH_BLOCKS)
    blocks = [{"type": "divider"}, *blocks]
    if settings.ephemeral_disk:
        blocks.append(
            context(
                ":warning: The watch list lives in a database on a disk that is "
                "wiped at every deploy and restart: export it with "
                "`dmarcbot export`, or keep DMARCBOT_DB on persistent storage."
            )
        )
    return blocks


WATCH = Feature(
    name="watch",
    subcommands=(
        Subcommand(
            "watch",
            "watch DOMAIN [SELECTOR...]",
            parse_watch,
            ("/dmarc watch example.com", "/dmarc watch example.com google selector1"),
        ),
        Subcommand("unwatch", "unwatch DOMAIN", parse_unwatch, ("/dmarc unwatch example.com",)),
        Subcommand("list", "list", parse_list, ("/dmarc list",)),
    ),
    workers={"watch": watch_worker, "unwatch": unwatch_worker, "list": list_worker},
    home_section=home_watch_section,
)
