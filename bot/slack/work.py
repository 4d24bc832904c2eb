"""The app's own pool for the slow part of every request, run after the ack.

Bolt runs each listener on a small pool (5 threads) and answers Slack only when the listener has
called ack(); a listener that goes on to wait for DNS holds its thread, and once all five wait,
the next request's ack waits behind them and Slack shows the user an error after 3 seconds. So
listeners only parse, ack and hand the rest to this pool, which is sized for work that mostly
waits on the network (DNS, the Web API), not for CPU, and whose queue is bounded: when it is full
the request is refused at once with "busy, try again in a minute" rather than left to time out.

Identical domain checks in flight at the same time share one run (`shared`): during an incident
ten people check the same domain, and one set of DNS answers serves them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger("dmarcbot.slack")

T = TypeVar("T")

# Threads that mostly wait for DNS and HTTP answers: many are cheap. Every accepted job holds a
# slot from submission to its end, so at most WORKERS + QUEUE jobs exist at once.
WORKERS = 32
QUEUE = 256
# A result finished this recently still answers an identical request (a burst of the same
# `/dmarc check` a few seconds apart), without a second set of lookups.
SHARE_SECONDS = 5.0
BUSY = ":hourglass: I'm busy with many requests right now and could not take this one. Try again in a minute."


class WorkPool:
    """A bounded executor for the work after an ack, with in-flight sharing of identical jobs."""

    def __init__(self, workers: int = WORKERS, queue: int = QUEUE, share_seconds: float = SHARE_SECONDS):
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dmarcbot-work")
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._share_seconds = share_seconds
        self._lock = threading.Lock()
        self._shared: dict[Hashable, tuple[Future[Any], float | None]] = {}

    def submit(self, work: Callable[[], None]) -> bool:
        """Run `work` on the pool; False, at once, when the pool is full (nothing was queued)."""
        if not self._slots.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                work()
            except Exception:  # work is wrapped by guarded(); this is only the last line
                log.exception("Unhandled failure in background work")
            finally:
                self._slots.release()

        try:
            self._executor.submit(run)
        except RuntimeError:  # shut down
            self._slots.release()
            return False
        return True

    def shared(self, key: Hashable, compute: Callable[[], T], reuse_finished: bool = True) -> T:
        """compute()'s result, shared by every caller with the same `key` while it runs (and for a
        few seconds after, unless `reuse_finished` is False): the first caller computes, the
        others wait for its answer."""
        now = time.monotonic()
        with self._lock:
            self._forget_old(now)
            entry = self._shared.get(key)
            if entry is not None and entry[1] is not None and not reuse_finished:
                entry = None  # finished: this caller wants answers newer than it
            owner = entry is None
            if entry is None:
                future: Future[Any] = Future()
                self._shared[key] = (future, None)
            else:
                future = entry[0]
        if owner:
            try:
                future.set_result(compute())
            except BaseException as error:
                future.set_exception(error)
                with self._lock:  # a failure is not shared with later callers
                    self._shared.pop(key, None)
            else:
                with self._lock:
                    self._shared[key] = (future, time.monotonic())
        result: T = future.result()
        return result

    def _forget_old(self, now: float) -> None:
        for key, (_, finished) in list(self._shared.items()):
            if finished is not None and now - finished > self._share_seconds:
                del self._shared[key]

    def shutdown(self) -> None:
        """Stop taking work; let what runs finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)
