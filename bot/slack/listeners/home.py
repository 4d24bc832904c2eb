"""The App Home tab: what the bot does and how to use it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.slack.features import HomeSection
from bot.slack.routing import Router
from bot.slack.turn import installation_team
from bot.store.stores import Stores

log = logging.getLogger("dmarcbot.slack")


def home_view(
    settings: Settings,
    stores: Stores,
    router: Router,
    sections: Sequence[HomeSection],
    team_id: str | None,
) -> dict[str, Any]:
    """The Home tab's view: the routing table's usage text, then each feature's section."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "dmarcbot"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    "I tell you exactly why DMARC fails for your domains and messages: which identifier "
                    "aligned, which did not, the record at fault and the fix."
                ),
            },
        },
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": router.usage_text()}},
    ]
    if settings.ephemeral_disk:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            ":warning: This bot runs on a platform whose disk is wiped at every deploy and "
                            "restart: stored data there does not last. See the README's deploy section."
                        ),
                    }
                ],
            }
        )
    for build in sections:
        blocks.extend(build(settings, stores, team_id))
    return {"type": "home", "blocks": blocks[:100]}


def handle_home_opened(
    settings: Settings,
    stores: Stores,
    router: Router,
    sections: Sequence[HomeSection],
    event: dict[str, Any],
    client: WebClient,
    body: dict[str, Any],
    context: BoltContext,
) -> None:
    if event.get("tab", "home") != "home":
        # Only the Home tab has content from us; the Messages tab is Slack's own.
        log.debug(
            "app_home_opened on the %r tab by %s: nothing to publish", event.get("tab"), event.get("user")
        )
        return
    try:
        client.views_publish(
            user_id=event["user"],
            view=home_view(settings, stores, router, sections, installation_team(context)),
        )
    except SlackApiError as error:
        log.error("Could not publish App Home for %s: %s", event.get("user"), error.response.get("error"))


def register(
    app: App, settings: Settings, stores: Stores, router: Router, sections: Sequence[HomeSection]
) -> None:
    """Attach the app_home_opened listener to `app`: the usage from `router`, then `sections`."""
    app.event("app_home_opened")(partial(handle_home_opened, settings, stores, router, sections))
