"""The app's own log lines as a positive signal that it has finished.

When the right answer is to do nothing (post nothing, store nothing), the line the app writes as it
decides so is what a test waits for before it asserts the absence: never a sleep, which passes
without checking anything when the app is slow.
"""

from __future__ import annotations

import logging
import time

import pytest

APP_LOGGER = "dmarcbot"


def capture_app_log(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> None:
    """Record the app's log lines from `level` up (in every thread: the listeners run in Bolt's
    pool); call before sending the request."""
    caplog.set_level(level, logger=APP_LOGGER)


def wait_for_log(
    caplog: pytest.LogCaptureFixture,
    needle: str,
    count: int = 1,
    timeout: float = 15.0,
    logger: str = APP_LOGGER,
) -> list[logging.LogRecord]:
    """Block until `count` records from `logger` (and its children) contain `needle`, or fail
    after `timeout` seconds saying what was logged instead."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in list(caplog.records) if r.name.startswith(logger)]
        found = [r for r in records if needle in r.getMessage()]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            logged = "\n  ".join(r.getMessage()[:200] for r in records) or "nothing"
            raise AssertionError(
                f"waited {timeout}s for {count} log line(s) containing {needle!r}, got {len(found)}; "
                f"logged:\n  {logged}"
            )
        time.sleep(0.01)  # polling the captured records, not standing in for a signal
