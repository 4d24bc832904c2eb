"""Retried deliveries: each request is answered once, however often Slack sends it.

Slack re-sends an event it thinks was not acknowledged (with X-Slack-Retry-Num), and a replayed
request must not post a second answer. Every request is checked by its own id before any listener
runs; a copy is acknowledged and dropped.

The check sits in front of every ack, so it never waits for SQLite's write lock: a burst of fifty
commands each writing its own row queued behind one another (each waiter sleeping in SQLite's
busy handler, each commit an fsync) and the last acks took seconds, as would any ack arriving while
a report ingest or a monitor cycle holds the lock. So a delivery is claimed in memory (this process
serves every request), looked up in SQLite with a read (a copy received before a restart), and its
row is written by one thread of the log's own, many rows per transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.store.database import utcnow
from bot.store.slack_state import SlackStateStore

log = logging.getLogger("dmarcbot.slack")

# After a failed write (the database busy past its timeout, the disk full), wait this long before
# trying again; the rows are kept meanwhile and the requests are still answered once.
RETRY_WRITE_SECONDS = 1.0


def delivery_id(body: dict[str, Any]) -> str | None:
    """What makes a request unique: an event's `event_id`; an interaction's or a command's
    `trigger_id` (each click, submission or command gets a new one); None for the rest."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


class DeliveryLog:
    """The deliveries taken: claimed in memory at once, recorded in SQLite by a writer thread."""

    def __init__(self, store: SlackStateStore) -> None:
        self._store = store
        self._lock = threading.Condition()
        # Claimed in this process and not yet known to be in SQLite: a copy arriving meanwhile is
        # found here. A key leaves only once its row is committed, so every copy is found in one
        # place or the other.
        self._claimed: set[str] = set()
        self._unwritten: list[tuple[str, datetime]] = []
        self._writing = 0  # rows taken by the writer and not yet committed
        self._writer: threading.Thread | None = None

    def first(self, key: str) -> bool:
        """Claim `key`; False when it was taken already (in this process, or recorded before)."""
        with self._lock:
            if key in self._claimed:
                return False
            self._claimed.add(key)
        if self._store.delivery_recorded(key):  # taken before this process started
            with self._lock:
                self._claimed.discard(key)
            return False
        with self._lock:
            self._unwritten.append((key, utcnow()))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_forever, name="dmarcbot-deliveries", daemon=True
                )
                self._writer.start()
            self._lock.notify_all()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every delivery claimed so far is recorded; False if `timeout` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._unwritten and not self._writing, timeout)

    def _write_forever(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._unwritten))
                batch, self._unwritten = self._unwritten, []
                self._writing = len(batch)
            try:
                self._store.record_deliveries(batch)
            except Exception:  # the database is shared with everything else: keep the rows, retry
                log.exception("Could not record %d Slack deliveries; trying again", len(batch))
                with self._lock:
                    self._unwritten[:0] = batch
                    self._writing = 0
                time.sleep(RETRY_WRITE_SECONDS)
                continue
            with self._lock:
                self._claimed.difference_update(key for key, _ in batch)
                self._writing = 0
                self._lock.notify_all()


def register_deduplication(app: App, deliveries: DeliveryLog) -> None:
    """Attach the middleware that drops retried and replayed deliveries to `app` (first, so no
    listener sees a copy)."""

    @app.middleware
    def drop_repeated_deliveries(
        req: BoltRequest, body: dict[str, Any], next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        key = delivery_id(body)
        if key is None or deliveries.first(key):
            return next()
        retry = (req.headers.get("x-slack-retry-num") or [""])[0]
        log.info("Dropped a repeated delivery %s (retry %s)", key, retry or "-")
        return BoltResponse(status=200, body="")
