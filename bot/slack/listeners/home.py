"""The App Home tab: what the bot does and how to use it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.slack.routing import usage_text

log = logging.getLogger("dmarcbot.slack")

HOME_SECTIONS: list[Any] = []  # later features (the watch list) append builders here


def home_view(settings: Settings, team_id: str | None) -> dict[str, Any]:
    """The Home tab's view, built from the routing table's usage text."""
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
        {"type": "section", "text": {"type": "mrkdwn", "text": usage_text()}},
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
    for build in HOME_SECTIONS:
        blocks.extend(build(settings, team_id))
    return {"type": "home", "blocks": blocks[:100]}


def register(app: App, settings: Settings) -> None:
    """Attach the app_home_opened listener to `app`."""

    @app.event("app_home_opened")
    def handle_home_opened(event: dict[str, Any], client: WebClient, body: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            # Only the Home tab has content from us; the Messages tab is Slack's own.
            log.debug(
                "app_home_opened on the %r tab by %s: nothing to publish", event.get("tab"), event.get("user")
            )
            return
        try:
            client.views_publish(user_id=event["user"], view=home_view(settings, body.get("team_id")))
        except SlackApiError as error:
            log.error("Could not publish App Home for %s: %s", event.get("user"), error.response.get("error"))
