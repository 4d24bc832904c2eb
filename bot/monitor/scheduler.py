"""The monitor's background thread: a cycle, then the outbox delivered, at each interval.

`dmarcbot serve` and `dmarcbot monitor` run it every `settings.monitor_interval` seconds, until stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.config import Settings
from bot.monitor.alert_delivery import client_for_team_factory, deliver_pending
from bot.monitor.cycle import CycleReport, check_watches
from bot.reports.failure_alerts import announce_as_configured
from bot.store.stores import Stores
from bot.supervision import SupervisedThread

log = logging.getLogger("dmarcbot.monitor")


def check_as_configured(settings: Settings, stores: Stores) -> CycleReport:
    """Check every watch through a fresh DnsSession, with the settings' HTTPS client and silence
    period: the checks of a cycle, as `serve` and `monitor --once` run them."""
    return check_watches(
        stores,
        settings.dns_session(),
        https=settings.https_client(),
        reports_silence_days=settings.reports_silence_days,
    )


def run_cycle(settings: Settings, stores: Stores) -> None:
    """One full cycle: check every watch through a fresh DnsSession, then post the outbox."""
    cycle = check_as_configured(settings, stores)
    announce_as_configured(stores, settings)  # new failure groups, folded into one an hour
    delivery = deliver_pending(stores.outbox, client_for_team_factory(settings))
    log.info(
        "Monitor cycle: %d watches, %d domains, %d DNS queries, %d outages, %d alerts "
        "written, %d messages posted, %d alerts pending",
        cycle.watches,
        cycle.domains,
        cycle.queries,
        cycle.outages,
        cycle.alerts_written,
        delivery.messages_posted,
        delivery.alerts_pending,
    )


class MonitorScheduler:
    """Runs `cycle` now and then every `interval` seconds in a daemon thread; `stop` ends it
    between cycles (a cycle in progress finishes its current step first)."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        cycle: Callable[[Settings, Stores], None] = run_cycle,
        interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.cycle = cycle
        self.interval = float(interval if interval is not None else settings.monitor_interval)
        self._thread = SupervisedThread("dmarcbot-monitor", self._loop)
        self.cycles_run = 0

    @property
    def restarts(self) -> int:
        """How often the thread died and was restarted."""
        return self._thread.restarts

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._thread.stop(timeout)

    def wait(self) -> None:
        """Block until the thread ends (Ctrl-C still reaches the caller)."""
        while self._thread.is_alive():
            self._thread.join(1.0)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._run_once()
            stop.wait(self.interval)

    def _run_once(self) -> None:
        try:
            self.cycle(self.settings, self.stores)
        except Exception:  # the thread is the boundary: it must outlive one bad cycle, loudly
            log.exception("Monitor cycle failed unexpectedly; the next one runs in %.0f s", self.interval)
        finally:
            self.cycles_run += 1
