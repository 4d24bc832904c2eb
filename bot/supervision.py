"""Background threads that outlive their own failures: `serve`'s monitor and mailbox poller.

A thread whose body raises is not left dead, with the bot still answering in Slack and nothing
being checked or read: the error is logged with its traceback, and the body starts again after a
pause (so a failure that repeats at once cannot spin), until the thread is asked to stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("dmarcbot")

RESTART_DELAY_SECONDS = 5.0


class SupervisedThread:
    """Runs `body(stop)` in a daemon thread named `name`; `body` returns when `stop` is set. When it
    raises instead, it is restarted after `restart_delay` seconds, with a logged error."""

    def __init__(
        self,
        name: str,
        body: Callable[[threading.Event], None],
        restart_delay: float = RESTART_DELAY_SECONDS,
    ) -> None:
        self.name = name
        self.body = body
        self.restart_delay = restart_delay
        self.stop_event = threading.Event()
        self.restarts = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the body to stop and wait for the thread."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _supervise(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.body(self.stop_event)
                return  # the body saw the stop
            except Exception:  # the thread is the boundary: whatever killed the body, restart it
                self.restarts += 1
                log.exception(
                    "Thread %s died; restarting it in %.0f s (restart %d)",
                    self.name,
                    self.restart_delay,
                    self.restarts,
                )
                self.stop_event.wait(self.restart_delay)
