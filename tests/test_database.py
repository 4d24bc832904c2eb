"""The database on a real SQLite file: migrations, WAL, concurrent writers, a second process."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.database import Database, apply_migrations
from bot.store.migrations import MIGRATIONS
from bot.store.outbox import AlertOutbox, NewAlert
from bot.store.stores import Stores, open_stores
from bot.store.watches import WatchStore
from tests.storetest import new_alert


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def stores(db_path: str) -> Iterator[Stores]:
    opened = open_stores(db_path)
    yield opened
    opened.close()


def test_migrations_apply_once_and_are_recorded(db_path: str) -> None:
    assert apply_migrations(db_path) == [v for v, _, _ in MIGRATIONS]
    assert apply_migrations(db_path) == []
    with sqlite3.connect(db_path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM migrations ORDER BY 1")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert versions == [v for v, _, _ in MIGRATIONS]
    assert mode == "wal"


def test_a_database_of_the_release_where_alert_leases_were_version_8_upgrades(db_path: str) -> None:
    """That release ran 1-7 as now, then the alert leases as 8; slack deliveries and button states
    took 8 and 9 later, and the leases 10. Its database must open and get every table."""
    by_name = {name: (version, migrate) for version, name, migrate in MIGRATIONS}
    leases = by_name["alert leases"][1]
    released = [(v, n, m) for v, n, m in MIGRATIONS if v <= 7] + [(8, "alert leases", leases)]
    apply_migrations(db_path, released)
    assert apply_migrations(db_path) == [v for v, _, _ in MIGRATIONS if v >= 8]
    assert apply_migrations(db_path) == []
    with sqlite3.connect(db_path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in conn.execute("PRAGMA table_info(alerts)")}
        recorded = dict(conn.execute("SELECT version, name FROM migrations").fetchall())
    conn.close()
    assert {"slack_deliveries", "button_states"} <= tables
    assert {"claimed_by", "claimed_until"} <= columns
    assert recorded == {v: n for v, n, _ in MIGRATIONS}


def test_concurrent_start_ups_migrate_once(db_path: str) -> None:
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(apply_migrations(db_path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(len, results)) == [0, 0, 0, len(MIGRATIONS)]


@pytest.mark.slow
def test_concurrent_writers_from_threads_do_not_fail(stores: Stores) -> None:
    errors: list[sqlite3.Error] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                stores.watches.add_watch("T1", f"C{n}", f"d{n}-{i}.example", [], None)
                stores.outbox.add_alerts("T1", [new_alert(f"{n}-{i}")])
        except sqlite3.Error as error:  # "database is locked" is what BEGIN IMMEDIATE prevents
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(stores.watches.watches("T1")) == 120 and len(stores.outbox.pending_alerts("T1")) == 120


def test_a_second_process_sees_the_same_file(db_path: str, stores: Stores) -> None:
    stores.watches.add_watch("T1", "C1", "example.com", [], "U1")
    other = Database(db_path)  # a new connection, as another process would open
    try:
        assert [w.domain for w in WatchStore(other).watches("T1")] == ["example.com"]
    finally:
        other.close()


def test_a_v4_database_gains_fix_plans_and_threaded_alerts(db_path: str) -> None:
    # The schema as the release with 4 migrations left it.
    apply_migrations(db_path, [m for m in MIGRATIONS if m[0] <= 4])
    with sqlite3.connect(db_path) as conn:  # a row as the v4 code wrote it
        conn.execute(
            "INSERT INTO alerts (team_id, channel_id, domain, kind, dedupe_key, text, "
            "blocks, digest_block, state, attempts, created_at) VALUES ('T1', 'C1', "
            "'example.com', 'changed', 'before', 't', '[]', '{}', 'pending', 0, 'now')"
        )
    conn.close()
    assert apply_migrations(db_path) == [v for v, _, _ in MIGRATIONS if v > 4]
    database = Database(db_path)
    upgraded = AlertOutbox(database)
    [kept] = upgraded.pending_alerts("T1")
    assert kept.dedupe_key == "before" and kept.thread_ts is None
    upgraded.add_alerts(
        "T1",
        [
            NewAlert(
                channel_id="C1",
                domain="example.com",
                kind="fixed",
                dedupe_key="reply",
                text="t",
                blocks=[],
                digest_block={},
                thread_ts="1700000000.000100",
            )
        ],
    )
    assert [a.thread_ts for a in upgraded.pending_alerts("T1")] == [None, "1700000000.000100"]
    database.close()


def test_a_v7_database_gains_selector_probes_and_its_watches_are_probed(db_path: str) -> None:
    apply_migrations(db_path, [m for m in MIGRATIONS if m[0] <= 7])
    with sqlite3.connect(db_path) as conn:  # a watch as the v7 code wrote it
        conn.execute(
            "INSERT INTO watches (team_id, channel_id, domain, selectors, created_at, temperror_streak) "
            "VALUES ('T1', 'C1', 'example.com', '[\"s1\"]', 'now', 0)"
        )
    conn.close()
    assert apply_migrations(db_path) == [v for v, _, _ in MIGRATIONS if v > 7]
    database = Database(db_path)
    watch = WatchStore(database).watch("T1", "example.com")
    assert watch is not None and watch.selectors == ("s1",)
    assert watch.found_selectors == () and watch.selectors_probed_at is None  # probed next cycle
    assert watch.to_json()["selectors"] == ["s1"] and watch.to_json()["selectors_probed_at"] is None
    database.close()


def test_a_write_inside_a_write_is_a_savepoint_of_it(stores: Stores) -> None:
    watches = stores.watches
    with stores.database.write():
        watches.add_watch("T1", "C1", "kept.example", [], "U1")
        with pytest.raises(RuntimeError), stores.database.write() as db:
            db.table("watches").insert(
                {"team_id": "T1", "channel_id": "C1", "domain": "undone.example", "created_at": "now"}
            )
            raise RuntimeError("a bug in one check of a batch")
        watches.add_watch("T1", "C1", "after.example", [], "U1")
    assert [w.domain for w in watches.watches("T1")] == ["after.example", "kept.example"]
