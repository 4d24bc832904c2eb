"""How the report mailbox's polls went: the last success and the last failure with its error.

The mailbox is the install's, not a workspace's: its rows hold no team's data (a mailbox label,
times and the server's error), so any workspace whose reports stopped may be told its poll fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.store.database import Database, iso, utcnow

MAX_ERROR = 300  # the server's answer, as logged; enough to say what went wrong


@dataclass(frozen=True)
class PollFailure:
    """A mailbox whose latest poll failed: since when (its last success, if any) and the error."""

    mailbox: str
    last_error: str
    last_error_at: str
    last_ok_at: str | None


class MailboxPollStore:
    """The poll record of every report mailbox over `database`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record_success(self, mailbox: str, now: datetime | None = None) -> None:
        """A poll of `mailbox` worked."""
        with self.database.write() as db:
            db.execute(
                "INSERT INTO mailbox_polls (mailbox, last_ok_at) VALUES (?, ?) "
                "ON CONFLICT (mailbox) DO UPDATE SET last_ok_at = excluded.last_ok_at",
                [mailbox, iso(now or utcnow())],
            )

    def record_failure(self, mailbox: str, error: str, now: datetime | None = None) -> None:
        """A poll of `mailbox` failed with `error`."""
        with self.database.write() as db:
            db.execute(
                "INSERT INTO mailbox_polls (mailbox, last_error, last_error_at) VALUES (?, ?, ?) "
                "ON CONFLICT (mailbox) DO UPDATE SET last_error = excluded.last_error, "
                "last_error_at = excluded.last_error_at",
                [mailbox, error[:MAX_ERROR], iso(now or utcnow())],
            )

    def failing(self, since: datetime | None = None) -> list[PollFailure]:
        """Mailboxes whose latest poll failed (and failed at or after `since`, when given)."""
        rows = self.database.connection.execute(
            "SELECT mailbox, last_error, last_error_at, last_ok_at FROM mailbox_polls "
            "WHERE last_error_at IS NOT NULL AND (last_ok_at IS NULL OR last_error_at > last_ok_at) "
            "AND last_error_at >= ? ORDER BY mailbox",
            [iso(since) if since else ""],
        ).fetchall()
        return [PollFailure(row[0], row[1] or "", row[2], row[3]) for row in rows]
