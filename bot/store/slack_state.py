"""What the Slack side keeps between requests: deliveries already taken, and large button state.

A delivery already taken makes a retry do nothing; button state too large for a button value is kept
here under a short id. Every row is bounded in age.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.store.database import Database, iso, utcnow

# Slack retries an unacknowledged event three times, the last about an hour after the first
# (1 minute, 5 minutes, 1 hour as documented): a day covers the schedule with room to spare.
DELIVERY_WINDOW = timedelta(days=1)


class SlackStateStore:
    """Seen deliveries and stored button state, over `database`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def delivery_recorded(self, delivery_id: str) -> bool:
        """True when `delivery_id` (an event_id, or an interaction's own key) was recorded inside
        the window. A read: it never waits for a writer, so a request's ack never does either."""
        with self.database.shared_reader() as db:
            row = db.execute(
                "SELECT received_at FROM slack_deliveries WHERE delivery_id = ?", [delivery_id[:200]]
            ).fetchone()
        return row is not None and row[0] >= iso(utcnow() - DELIVERY_WINDOW)

    def record_deliveries(self, deliveries: Sequence[tuple[str, datetime]]) -> None:
        """Record each (delivery id, received at) in one transaction, and forget the ones older
        than the window."""
        if not deliveries:
            return
        newest = max(when for _, when in deliveries)
        with self.database.write() as db:
            db.execute("DELETE FROM slack_deliveries WHERE received_at < ?", [iso(newest - DELIVERY_WINDOW)])
            db.conn.executemany(
                "INSERT OR IGNORE INTO slack_deliveries (delivery_id, received_at) VALUES (?, ?)",
                [(delivery_id[:200], iso(when)) for delivery_id, when in deliveries],
            )

    def save_button_state(self, team_id: str, state: dict[str, Any], now: datetime | None = None) -> str:
        """Keep `state` for a button of `team_id`; returns the short id the button carries."""
        state_id = secrets.token_hex(8)
        with self.database.write() as db:
            db.execute(
                "INSERT INTO button_states (id, team_id, state, created_at) VALUES (?, ?, ?, ?)",
                [state_id, team_id, json.dumps(state), iso(now or utcnow())],
            )
        return state_id

    def button_state(self, team_id: str, state_id: str) -> dict[str, Any] | None:
        """The state stored under `state_id` for `team_id`, or None."""
        rows = list(
            self.database.connection.table("button_states").rows_where(
                "id = ? AND team_id = ?", [state_id, team_id], limit=1
            )
        )
        if not rows:
            return None
        state = json.loads(rows[0]["state"])
        return state if isinstance(state, dict) else None
