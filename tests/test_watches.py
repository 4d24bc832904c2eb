"""The watch store on a real SQLite file: team scoping, snapshots, a check and its alerts together."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store.stores import Stores, open_stores
from bot.store.watches import Decision, WatchHistory
from tests.storetest import new_alert, observed


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def stores(db_path: str) -> Iterator[Stores]:
    opened = open_stores(db_path)
    yield opened
    opened.close()


def test_add_watch_is_idempotent_and_moves_channel(stores: Stores) -> None:
    first, newly = stores.watches.add_watch("T1", "C1", "example.com", ["s1"], "U1")
    assert newly and first.selectors == ("s1",) and first.added_by == "U1"
    again, newly = stores.watches.add_watch("T1", "C2", "example.com", [], "U2")
    assert not newly and again.id == first.id and again.channel_id == "C2"
    assert again.selectors == () and again.added_by == "U1"
    assert len(stores.watches.watches("T1")) == 1


def test_every_read_is_scoped_to_its_team(stores: Stores) -> None:
    stores.watches.add_watch("T1", "C1", "example.com", [], "U1")
    stores.watches.add_watch("T2", "C9", "example.com", [], "U9")
    stores.outbox.add_alerts("T1", [new_alert("k1")])
    stores.outbox.add_alerts("T2", [new_alert("k1", channel="C9")])  # the same key in another team is its own
    assert [w.channel_id for w in stores.watches.watches("T1")] == ["C1"]
    assert [a.channel_id for a in stores.outbox.pending_alerts("T2")] == ["C9"]
    assert stores.watches.watch("T3", "example.com") is None
    assert not stores.watches.remove_watch("T3", "example.com")
    assert stores.watches.remove_watch("T1", "example.com")
    assert stores.watches.watch("T2", "example.com") is not None
    assert stores.outbox.pending_alerts("T1") == []  # the watch's undelivered alerts went with it
    assert stores.watches.teams() == ["T2"]


def test_apply_check_writes_snapshot_status_and_alerts_together(stores: Stores) -> None:
    watch, _ = stores.watches.add_watch("T1", "C1", "example.com", [], "U1")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    seen: list[WatchHistory] = []

    def baseline(history: WatchHistory) -> Decision:
        seen.append(history)
        return Decision([], True)

    stores.watches.apply_check("T1", watch.id, observed("a"), baseline, now - timedelta(hours=24), now)
    assert seen[0].alerted is None and seen[0].latest is None
    stores.watches.apply_check(
        "T1",
        watch.id,
        observed("b", "fail"),
        lambda h: Decision([new_alert("x")], True),
        now - timedelta(hours=24),
        now,
    )
    history: list[WatchHistory] = []

    def decide(previous: WatchHistory) -> Decision:
        history.append(previous)
        return Decision([], False)

    stores.watches.apply_check("T1", watch.id, observed("b", "fail"), decide, now, now)
    assert history[0].alerted is not None and history[0].alerted.fingerprint == "b"
    assert history[0].recent_fingerprints == {"a", "b"}
    latest = stores.watches.latest_snapshot("T1", watch.id)
    assert latest is not None and latest.checks == 2 and latest.verdict == "fail"
    current = stores.watches.watch("T1", "example.com")
    assert current is not None and current.last_status == "fail"
    assert [a.dedupe_key for a in stores.outbox.pending_alerts("T1")] == ["x"]


def test_a_failing_decision_rolls_back_everything(stores: Stores) -> None:
    watch, _ = stores.watches.add_watch("T1", "C1", "example.com", [], "U1")

    def broken(history: WatchHistory) -> Decision:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        stores.watches.apply_check("T1", watch.id, observed("a"), broken, datetime.now(UTC))
    assert stores.watches.latest_snapshot("T1", watch.id) is None
    assert stores.watches.watch("T1", "example.com").last_checked_at is None  # type: ignore[union-attr]


def test_outage_streak_alerts_once_at_the_threshold(stores: Stores) -> None:
    watch, _ = stores.watches.add_watch("T1", "C1", "example.com", [], "U1")
    streaks = [
        stores.watches.apply_outage("T1", watch.id, 3, lambda w, n: new_alert(f"cc{n}")) for _ in range(5)
    ]
    assert streaks == [1, 2, 3, 4, 5]
    assert [a.dedupe_key for a in stores.outbox.pending_alerts("T1")] == ["cc3"]
    assert stores.watches.watch("T1", "example.com").last_status == "cannot_check"  # type: ignore[union-attr]


def test_old_snapshots_are_pruned_but_not_the_one_the_channel_knows(stores: Stores) -> None:
    watch, _ = stores.watches.add_watch("T1", "C1", "example.com", [], "U1")
    now = datetime.now(UTC)
    stores.watches.apply_check("T1", watch.id, observed("known"), lambda h: Decision([], True), now, now)
    for n in range(30):
        stores.watches.apply_check("T1", watch.id, observed(f"s{n}"), lambda h: Decision([], False), now, now)
    rows = stores.database.connection.execute(
        "SELECT fingerprint FROM snapshots WHERE team_id = 'T1'"
    ).fetchall()
    assert len(rows) == 21 and ("known",) in rows


def test_add_selectors_validates_dedupes_and_caps(stores: Stores) -> None:
    stores.watches.add_watch("T1", "C1", "example.com", ["s1"], "U1")
    watch = stores.watches.add_selectors("T1", "example.com", ["S2", "s1", "bad selector", "a" * 70, "s2"])
    assert watch is not None and watch.selectors == ("s1", "s2")
    many = [f"k{n}" for n in range(30)]
    watch = stores.watches.add_selectors("T1", "example.com", many)
    assert watch is not None and len(watch.selectors) == 20
    assert watch.selectors[:3] == ("s1", "s2", "k0")  # the first come stay
    assert stores.watches.add_selectors("T2", "example.com", ["s9"]) is None  # another team's: not watched
    assert stores.watches.watch("T2", "example.com") is None
