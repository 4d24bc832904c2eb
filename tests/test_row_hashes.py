"""Report rows grouped by their key's hash: stored rows get it at ingest, older ones from their
migration, and a window's details are the same as grouping by every key column."""

from __future__ import annotations

from pathlib import Path

from bot.store.database import Database, apply_migrations
from bot.store.migrations import MIGRATIONS, ROW_KEY_COLUMNS
from bot.store.reports import RowKey
from bot.store.row_hashes import row_hash
from bot.store.stores import Stores, open_stores
from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, report_xml


def test_the_hash_is_stable_and_tells_keys_apart() -> None:
    key = ("192.0.2.1", 1, 1, 0, None, "no DKIM signature", "none", None, "example.com", None)
    assert row_hash(key) == row_hash(list(key)) == 5252188583180459947  # the same in every process
    assert row_hash((None,)) != row_hash(("",)) != row_hash(("\x00",))
    assert row_hash(("a", "b")) != row_hash(("ab",))
    assert tuple(RowKey._fields) == ROW_KEY_COLUMNS  # the migration hashed the same columns


def test_rows_stored_before_the_hash_get_it_and_group_as_before(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    apply_migrations(path, [m for m in MIGRATIONS if m[0] <= 13])
    day = days_ago(1).isoformat()
    old = Stores.over(Database(path))  # as an older release left the file
    try:
        with old.database.write() as db:
            for n, (ip, passing) in enumerate([("192.0.2.1", 1), ("192.0.2.1", 1), ("192.0.2.2", 0)]):
                db.execute(
                    "INSERT INTO agg_rows (team_id, report_pk, domain, day, source_ip, messages, dmarc_pass, "
                    "spf_aligned, dkim_aligned) VALUES ('T1', ?, 'example.com', ?, ?, 5, ?, ?, 0)",
                    [n, day, ip, passing, passing],
                )
    finally:
        old.close()
    stores = open_stores(path)  # migration 15 hashes the rows already there
    try:
        hashes = stores.database.connection.execute("SELECT row_hash FROM agg_rows ORDER BY id").fetchall()
        keys = stores.reports.details("T1", "example.com", day, day)
        assert [h[0] is not None for h in hashes] == [True, True, True]
        assert hashes[0] == hashes[1] != hashes[2]
        assert [(k.source_ip, k.dmarc_pass, n) for k, n in keys] == [
            ("192.0.2.1", 1, 10),
            ("192.0.2.2", 0, 5),
        ]
        assert hashes[0][0] == row_hash(keys[0][0])
    finally:
        stores.close()


def test_ingested_rows_carry_their_hash_and_details_sum_across_days(tmp_path: Path) -> None:
    stores = open_stores(str(tmp_path / "new.db"))
    try:
        for n in (1, 2):
            rows = [
                Row("192.0.2.1", 10 * n),
                Row("192.0.2.1", n, dkim="fail", spf="fail"),
                Row("192.0.2.9", 3),
            ]
            xml = report_xml(rows, day=days_ago(n), report_id=f"r{n}")
            stores.reports.add_report("T1", parse_report(xml), "test")
        details = stores.reports.details(
            "T1", "example.com", days_ago(2).isoformat(), days_ago(1).isoformat()
        )
        assert [(k.source_ip, k.dmarc_pass, n) for k, n in details] == [
            ("192.0.2.1", 1, 30),
            ("192.0.2.9", 1, 6),
            ("192.0.2.1", 0, 3),
        ]
        missing = stores.database.connection.execute("SELECT COUNT(*) FROM agg_rows WHERE row_hash IS NULL")
        assert missing.fetchone()[0] == 0
    finally:
        stores.close()
