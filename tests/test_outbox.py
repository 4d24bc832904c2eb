"""The alert outbox on a real SQLite file: dedupe and delivery tracking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.stores import Stores, open_stores
from tests.storetest import new_alert


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def stores(db_path: str) -> Iterator[Stores]:
    opened = open_stores(db_path)
    yield opened
    opened.close()


def test_outbox_dedupes_and_tracks_delivery(stores: Stores) -> None:
    assert stores.outbox.add_alerts("T1", [new_alert("k1"), new_alert("k2")]) == 2
    assert stores.outbox.add_alerts("T1", [new_alert("k1")]) == 0
    pending = stores.outbox.pending_alerts("T1")
    stores.outbox.mark_posted("T1", [pending[0].id], "1700000000.000100")
    stores.outbox.mark_attempt_failed("T1", [pending[1].id], "ratelimited", give_up_after=2)
    assert [(a.state, a.attempts) for a in stores.outbox.alerts("T1")] == [("posted", 1), ("pending", 1)]
    stores.outbox.mark_attempt_failed("T1", [pending[1].id], "ratelimited", give_up_after=2)
    assert [a.state for a in stores.outbox.alerts("T1")] == ["posted", "failed"]
    assert stores.outbox.alerts("T1", "posted")[0].ts == "1700000000.000100"
