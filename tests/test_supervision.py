"""A supervised background thread (the monitor's, the mailbox poller's) outlives its body's death."""

from __future__ import annotations

import logging
import threading

import pytest

from bot.config import Settings
from bot.monitor.scheduler import MonitorScheduler
from bot.store.stores import Stores, open_stores
from bot.supervision import SupervisedThread


def test_a_body_that_raises_is_restarted_and_the_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    second_run = threading.Event()

    def body(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise KeyError("a bug in one cycle")
        second_run.set()
        stop.wait()

    thread = SupervisedThread("dmarcbot-test", body, restart_delay=0.05)
    with caplog.at_level(logging.ERROR, logger="dmarcbot"):
        thread.start()
        try:
            assert second_run.wait(10)
        finally:
            thread.stop()
    assert not thread.is_alive()
    assert thread.restarts == 1 and len(runs) == 2
    [record] = caplog.records
    assert "Thread dmarcbot-test died; restarting it in 0 s (restart 1)" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)


def test_the_monitor_thread_outlives_a_failing_cycle(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    stores = open_stores(f"{tmp_path}/m.db")
    cycles: list[int] = []
    second = threading.Event()

    def cycle(settings: Settings, stores: Stores) -> None:
        cycles.append(1)
        if len(cycles) == 1:
            raise RuntimeError("DNS library bug")
        second.set()

    scheduler = MonitorScheduler(Settings(db_path=f"{tmp_path}/m.db"), stores, cycle, interval=0.05)
    with caplog.at_level(logging.ERROR, logger="dmarcbot.monitor"):
        scheduler.start()
        try:
            assert second.wait(10)
        finally:
            scheduler.stop()
    assert any("Monitor cycle failed unexpectedly" in r.getMessage() for r in caplog.records)
