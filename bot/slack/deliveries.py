"""Retried deliveries: each request is answered once, however often Slack sends it.

Slack re-sends an event it thinks was not acknowledged (with X-Slack-Retry-Num), and a replayed
request must not post a second answer. Every request is recorded in SQLite by its own id before
any listener runs; a copy is acknowledged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.store.slack_state import SlackStateStore

log = logging.getLogger("dmarcbot.slack")


def delivery_id(body: dict[str, Any]) -> str | None:
    """What makes a request unique: an event's `event_id`; an interaction's or a command's
    `trigger_id` (each click, submission or command gets a new one); None for the rest."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def register_deduplication(app: App, store: SlackStateStore) -> None:
    """Attach the middleware that drops retried and replayed deliveries to `app` (first, so no
    listener sees a copy)."""

    @app.middleware
    def drop_repeated_deliveries(
        req: BoltRequest, body: dict[str, Any], next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        key = delivery_id(body)
        if key is None or store.first_delivery(key):
            return next()
        retry = (req.headers.get("x-slack-retry-num") or [""])[0]
        log.info("Dropped a repeated delivery %s (retry %s)", key, retry or "-")
        return BoltResponse(status=200, body="")
