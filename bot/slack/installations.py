"""Installations (OAuth): who installed the app, looked up with their Enterprise Grid org.

Bolt's installation store keys a bot by (enterprise_id, team_id); a workspace inside a Grid org
is stored under its org's id, so a lookup by team alone finds nothing. Our own rows are stored by
team (the installation's `context.team_id`): the org is read back from the store here, the one
place every lookup (alert delivery, the monitor, report alerts) goes through.
"""

from __future__ import annotations

import html
import logging
import sqlite3
from typing import Any

from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.sqlite3 import SQLite3InstallationStore

log = logging.getLogger("dmarcbot.slack")

ORG_INSTALL_REFUSED = (
    "dmarcbot is installed one workspace at a time: its watches, reports and alerts belong to a "
    "workspace and its channels. Install it into each workspace of your Enterprise Grid org from "
    "that workspace, not org-wide."
)


def enterprise_of(db_path: str, client_id: str, team_id: str) -> str | None:
    """The Enterprise Grid org whose installation covers `team_id` (None: a plain workspace)."""
    try:
        with sqlite3.connect(db_path) as conn:
            row = conn.execute(
                "SELECT enterprise_id FROM slack_bots WHERE client_id = ? AND team_id = ? "
                "ORDER BY installed_at DESC LIMIT 1",
                [client_id, team_id],
            ).fetchone()
    except sqlite3.OperationalError:  # no installation table yet: nothing installed
        return None
    return str(row[0]) if row and row[0] else None


def find_team_bot(installations: SQLite3InstallationStore, db_path: str, team_id: str) -> Bot | None:
    """The bot installed in `team_id`, found under its Grid org when it has one."""
    enterprise_id = enterprise_of(db_path, installations.client_id, team_id)
    return installations.find_bot(enterprise_id=enterprise_id, team_id=team_id)


def install_callbacks(installations: SQLite3InstallationStore) -> CallbackOptions:
    """The OAuth redirect's answers: an org-wide install (`is_enterprise_install`) is removed
    again and refused with a page saying why and what to do instead."""

    def success(args: SuccessArgs) -> BoltResponse:
        installation = args.installation
        if installation.is_enterprise_install:
            log.warning("Refused an org-wide install for enterprise %s", installation.enterprise_id)
            installations.delete_installation(enterprise_id=installation.enterprise_id, team_id=None)
            installations.delete_bot(enterprise_id=installation.enterprise_id, team_id=None)
            return _page(400, "dmarcbot was not installed", ORG_INSTALL_REFUSED)
        builder: Any = args.default
        response: BoltResponse = builder.success(args)
        return response

    def failure(args: FailureArgs) -> BoltResponse:
        builder: Any = args.default
        response: BoltResponse = builder.failure(args)
        return response

    return CallbackOptions(success=success, failure=failure)


def _page(status: int, title: str, text: str) -> BoltResponse:
    body = (
        f"<html><head><title>{html.escape(title)}</title></head>"
        f"<body><h2>{html.escape(title)}</h2><p>{html.escape(text)}</p></body></html>"
    )
    return BoltResponse(status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8"})
