"""The store on a real SQLite file: migrations, WAL, team scoping, the outbox, concurrent writers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store.database import (
    MIGRATIONS,
    Decision,
    NewAlert,
    ObservedState,
    WatchHistory,
    WatchStore,
    apply_migrations,
    open_store,
)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def store(db_path: str) -> Iterator[WatchStore]:
    opened = open_store(db_path)
    yield opened
    opened.close()


def alert(key: str, channel: str = "C1", domain: str = "example.com") -> NewAlert:
    return NewAlert(
        channel,
        domain,
        "changed",
        key,
        f"text {key}",
        [{"type": "section", "text": {"type": "mrkdwn", "text": key}}],
        {"type": "section", "text": {"type": "mrkdwn", "text": key}},
    )


def state(fingerprint: str, verdict: str = "pass") -> ObservedState:
    return ObservedState(fingerprint, {"SPF example.com": fingerprint}, [], verdict)


def test_migrations_apply_once_and_are_recorded(db_path: str) -> None:
    assert apply_migrations(db_path) == [v for v, _, _ in MIGRATIONS]
    assert apply_migrations(db_path) == []
    with sqlite3.connect(db_path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM migrations ORDER BY 1")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert versions == [v for v, _, _ in MIGRATIONS]
    assert mode == "wal"


def test_concurrent_start_ups_migrate_once(db_path: str) -> None:
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(apply_migrations(db_path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(len, results)) == [0, 0, 0, len(MIGRATIONS)]


def test_add_watch_is_idempotent_and_moves_channel(store: WatchStore) -> None:
    first, newly = store.add_watch("T1", "C1", "example.com", ["s1"], "U1")
    assert newly and first.selectors == ("s1",) and first.added_by == "U1"
    again, newly = store.add_watch("T1", "C2", "example.com", [], "U2")
    assert not newly and again.id == first.id and again.channel_id == "C2"
    assert again.selectors == () and again.added_by == "U1"
    assert len(store.watches("T1")) == 1


def test_every_read_is_scoped_to_its_team(store: WatchStore) -> None:
    store.add_watch("T1", "C1", "example.com", [], "U1")
    store.add_watch("T2", "C9", "example.com", [], "U9")
    store.add_alerts("T1", [alert("k1")])
    store.add_alerts("T2", [alert("k1", channel="C9")])  # the same key in another team is its own
    assert [w.channel_id for w in store.watches("T1")] == ["C1"]
    assert [a.channel_id for a in store.pending_alerts("T2")] == ["C9"]
    assert store.watch("T3", "example.com") is None
    assert not store.remove_watch("T3", "example.com")
    assert store.remove_watch("T1", "example.com")
    assert store.watch("T2", "example.com") is not None
    assert store.pending_alerts("T1") == []  # the watch's undelivered alerts went with it
    assert store.teams() == ["T2"]


def test_outbox_dedupes_and_tracks_delivery(store: WatchStore) -> None:
    assert store.add_alerts("T1", [alert("k1"), alert("k2")]) == 2
    assert store.add_alerts("T1", [alert("k1")]) == 0
    pending = store.pending_alerts("T1")
    store.mark_posted("T1", [pending[0].id], "1700000000.000100")
    store.mark_attempt_failed("T1", [pending[1].id], "ratelimited", give_up_after=2)
    assert [(a.state, a.attempts) for a in store.alerts("T1")] == [("posted", 1), ("pending", 1)]
    store.mark_attempt_failed("T1", [pending[1].id], "ratelimited", give_up_after=2)
    assert [a.state for a in store.alerts("T1")] == ["posted", "failed"]
    assert store.alerts("T1", "posted")[0].ts == "1700000000.000100"


def test_apply_check_writes_snapshot_status_and_alerts_together(store: WatchStore) -> None:
    watch, _ = store.add_watch("T1", "C1", "example.com", [], "U1")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    seen: list[WatchHistory] = []

    def baseline(history: WatchHistory) -> Decision:
        seen.append(history)
        return Decision([], True)

    store.apply_check("T1", watch.id, state("a"), baseline, now - timedelta(hours=24), now)
    assert seen[0].alerted is None and seen[0].latest is None
    store.apply_check(
        "T1",
        watch.id,
        state("b", "fail"),
        lambda h: Decision([alert("x")], True),
        now - timedelta(hours=24),
        now,
    )
    history: list[WatchHistory] = []

    def decide(previous: WatchHistory) -> Decision:
        history.append(previous)
        return Decision([], False)

    store.apply_check("T1", watch.id, state("b", "fail"), decide, now, now)
    assert history[0].alerted is not None and history[0].alerted.fingerprint == "b"
    assert history[0].recent_fingerprints == {"a", "b"}
    latest = store.latest_snapshot("T1", watch.id)
    assert latest is not None and latest.checks == 2 and latest.verdict == "fail"
    current = store.watch("T1", "example.com")
    assert current is not None and current.last_status == "fail"
    assert [a.dedupe_key for a in store.pending_alerts("T1")] == ["x"]


def test_a_failing_decision_rolls_back_everything(store: WatchStore) -> None:
    watch, _ = store.add_watch("T1", "C1", "example.com", [], "U1")

    def broken(history: WatchHistory) -> Decision:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.apply_check("T1", watch.id, state("a"), broken, datetime.now(UTC))
    assert store.latest_snapshot("T1", watch.id) is None
    assert store.watch("T1", "example.com").last_checked_at is None  # type: ignore[union-attr]


def test_outage_streak_alerts_once_at_the_threshold(store: WatchStore) -> None:
    watch, _ = store.add_watch("T1", "C1", "example.com", [], "U1")
    streaks = [store.apply_outage("T1", watch.id, 3, lambda w, n: alert(f"cc{n}")) for _ in range(5)]
    assert streaks == [1, 2, 3, 4, 5]
    assert [a.dedupe_key for a in store.pending_alerts("T1")] == ["cc3"]
    assert store.watch("T1", "example.com").last_status == "cannot_check"  # type: ignore[union-attr]


def test_old_snapshots_are_pruned_but_not_the_one_the_channel_knows(store: WatchStore) -> None:
    watch, _ = store.add_watch("T1", "C1", "example.com", [], "U1")
    now = datetime.now(UTC)
    store.apply_check("T1", watch.id, state("known"), lambda h: Decision([], True), now, now)
    for n in range(30):
        store.apply_check("T1", watch.id, state(f"s{n}"), lambda h: Decision([], False), now, now)
    rows = store.db.execute("SELECT fingerprint FROM snapshots WHERE team_id = 'T1'").fetchall()
    assert len(rows) == 21 and ("known",) in rows


@pytest.mark.slow
def test_concurrent_writers_from_threads_do_not_fail(store: WatchStore) -> None:
    errors: list[sqlite3.Error] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                store.add_watch("T1", f"C{n}", f"d{n}-{i}.example", [], None)
                store.add_alerts("T1", [alert(f"{n}-{i}")])
        except sqlite3.Error as error:  # "database is locked" is what BEGIN IMMEDIATE prevents
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.watches("T1")) == 120 and len(store.pending_alerts("T1")) == 120


def test_a_second_process_sees_the_same_file(db_path: str, store: WatchStore) -> None:
    store.add_watch("T1", "C1", "example.com", [], "U1")
    other = WatchStore(db_path)
    try:
        assert [w.domain for w in other.watches("T1")] == ["example.com"]
    finally:
        other.close()


def test_add_selectors_validates_dedupes_and_caps(store: WatchStore) -> None:
    store.add_watch("T1", "C1", "example.com", ["s1"], "U1")
    watch = store.add_selectors("T1", "example.com", ["S2", "s1", "bad selector", "a" * 70, "s2"])
    assert watch is not None and watch.selectors == ("s1", "s2")
    many = [f"k{n}" for n in range(30)]
    watch = store.add_selectors("T1", "example.com", many)
    assert watch is not None and len(watch.selectors) == 20
    assert watch.selectors[:3] == ("s1", "s2", "k0")  # the first come stay
    assert store.add_selectors("T2", "example.com", ["s9"]) is None  # another team's: not watched
    assert store.watch("T2", "example.com") is None


def test_a_v4_database_gains_fix_plans_and_threaded_alerts(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.store.database as store_module

    with monkeypatch.context() as patch:  # the schema as the release with 4 migrations left it
        patch.setattr(store_module, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 4])
        apply_migrations(db_path)
    with sqlite3.connect(db_path) as conn:  # a row as the v4 code wrote it
        conn.execute(
            "INSERT INTO alerts (team_id, channel_id, domain, kind, dedupe_key, text, "
            "blocks, digest_block, state, attempts, created_at) VALUES ('T1', 'C1', "
            "'example.com', 'changed', 'before', 't', '[]', '{}', 'pending', 0, 'now')"
        )
    conn.close()
    assert apply_migrations(db_path) == [v for v, _, _ in MIGRATIONS if v > 4]
    upgraded = WatchStore(db_path)
    [kept] = upgraded.pending_alerts("T1")
    assert kept.dedupe_key == "before" and kept.thread_ts is None
    upgraded.add_alerts(
        "T1", [NewAlert("C1", "example.com", "fixed", "reply", "t", [], {}, thread_ts="1700000000.000100")]
    )
    assert [a.thread_ts for a in upgraded.pending_alerts("T1")] == [None, "1700000000.000100"]
    upgraded.close()
