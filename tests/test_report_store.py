"""The report store on a real SQLite file: dedupe, per-team isolation, and the aggregation queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.reports.ingest import ingest_bytes, one_team
from bot.store.database import Database
from bot.store.reports import ReportStore, shift, window
from bot.store.stores import Stores
from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, gz, open_reports, report_xml, zipped


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Stores, ReportStore]:
    return open_reports(tmp_path / "reports.db")


def test_the_same_report_ingested_twice_is_counted_once(stores: tuple[Stores, ReportStore]) -> None:
    _store, reports = stores
    xml = report_xml([Row("192.0.2.1", 40), Row("192.0.2.2", 2, dkim="fail", spf="fail")])
    first = reports.add_report("T1", parse_report(xml), "test")
    again = reports.add_report("T1", parse_report(xml), "test")
    assert not first.duplicate and again.duplicate
    # as gzip and as zip it is still the same report: same reporter, id, domain and dates
    assert ingest_bytes(reports, gz(xml), "r.xml.gz", one_team("T1"), "t").reports[0].duplicate
    assert ingest_bytes(reports, zipped(xml), "r.zip", one_team("T1"), "t").reports[0].duplicate
    today = days_ago(0).isoformat()
    assert reports.totals("T1", "example.com", today, today).messages == 42
    assert reports.report_count("T1") == 1


@pytest.mark.parametrize(
    "change",
    [{"report_id": "r2"}, {"reporter": "yahoo.com"}, {"domain": "example.org"}, {"day": days_ago(1)}],
)
def test_a_report_differing_in_any_part_of_the_key_is_another_report(
    stores: tuple[Stores, ReportStore], change: dict[str, object]
) -> None:
    _store, reports = stores
    reports.add_report("T1", parse_report(report_xml([Row("192.0.2.1", 5)])), "test")
    other = reports.add_report("T1", parse_report(report_xml([Row("192.0.2.1", 5)], **change)), "t")  # type: ignore[arg-type]
    assert not other.duplicate
    assert reports.report_count("T1") == 2


def test_teams_never_see_each_others_reports(stores: tuple[Stores, ReportStore]) -> None:
    _store, reports = stores
    xml = report_xml([Row("192.0.2.1", 7)])
    reports.add_report("T1", parse_report(xml), "test")
    # The same report for another team is that team's own copy, not a duplicate.
    assert not reports.add_report("T2", parse_report(xml), "test").duplicate
    reports.add_report("T2", parse_report(report_xml([Row("192.0.2.9", 1000)], report_id="x")), "t")
    first, last = window(7)
    assert reports.totals("T1", "example.com", first, last).messages == 7
    assert [s.ip for s in reports.sources("T1", "example.com", first, last)] == ["192.0.2.1"]
    assert reports.teams() == ["T1", "T2"]


def test_aggregates_pass_share_sources_failures_and_selectors(stores: tuple[Stores, ReportStore]) -> None:
    _store, reports = stores
    xml = report_xml(
        [
            Row("192.0.2.1", 90),  # aligned both ways
            Row("192.0.2.1", 10, spf="fail", spf_domain="bounces.esp.test", spf_result="pass"),
            Row(
                "198.51.100.5", 30, dkim="fail", dkim_domain="esp.test", selector="esp", dkim_result="pass"
            ),  # DKIM passed for another domain: passes via SPF only
            Row(
                "203.0.113.9",
                20,
                dkim="fail",
                spf="fail",
                dkim_domain="example.com",
                selector="old",
                spf_domain="forger.test",
            ),
            Row(
                "203.0.113.10",
                5,
                dkim="fail",
                spf="fail",
                dkim_domain=None,
                spf_domain="x.test",
                spf_result="softfail",
            ),
        ]
    )
    reports.add_report("T1", parse_report(xml), "test")
    first, last = window(1)
    totals = reports.totals("T1", "example.com", first, last)
    assert (totals.messages, totals.passed) == (155, 130)
    by_ip = {s.ip: s for s in reports.sources("T1", "example.com", first, last)}
    assert (by_ip["192.0.2.1"].messages, by_ip["192.0.2.1"].spf_aligned, by_ip["192.0.2.1"].dkim_aligned) == (
        100,
        90,
        100,
    )
    assert (by_ip["198.51.100.5"].passed, by_ip["198.51.100.5"].dkim_aligned) == (30, 0)
    failures = {f.ip: f for f in reports.failures("T1", "example.com", first, last)}
    assert set(failures) == {"203.0.113.9", "203.0.113.10"}
    assert failures["203.0.113.9"].spf_why == "SPF fail for forger.test"
    assert failures["203.0.113.9"].dkim_why == "DKIM fail for d=example.com s=old"
    assert failures["203.0.113.10"].spf_why == "SPF softfail for x.test"
    assert failures["203.0.113.10"].dkim_why == "no DKIM signature"
    # only selectors with d= the domain itself: those a watch of the domain can check
    assert [
        (s.selector, s.messages, s.passed) for s in reports.selectors("T1", "example.com", first, last)
    ] == [("s1", 100, 100), ("old", 20, 0)]


def test_daily_volume_and_the_trailing_baseline(stores: tuple[Stores, ReportStore]) -> None:
    _store, reports = stores
    for n in range(1, 16):  # 15 days of 100 messages, 90 passing
        xml = report_xml(
            [Row("192.0.2.1", 90), Row("192.0.2.7", 10, dkim="fail", spf="fail")],
            day=days_ago(n),
            report_id=f"d{n}",
        )
        reports.add_report("T1", parse_report(xml), "test")
    first, last = window(7)
    daily = reports.daily("T1", "example.com", first, last)
    assert [d.day for d in daily] == [days_ago(n).isoformat() for n in range(6, 0, -1)]
    assert all((d.messages, d.passed) == (100, 90) for d in daily)
    today = days_ago(0).isoformat()
    base = reports.baseline("T1", "example.com", today)  # the 14 days before today
    assert (base.messages, base.passed) == (1400, 1260)
    assert reports.sources_seen_before("T1", "example.com", ["192.0.2.7", "192.0.2.99"], today) == {
        "192.0.2.7"
    }
    assert shift(today, -14) == days_ago(14).isoformat()


def test_a_report_is_stored_whole_or_not_at_all(stores: tuple[Stores, ReportStore], tmp_path: Path) -> None:
    store, reports = stores
    xml = report_xml([Row("192.0.2.1", 5)])
    other = sqlite3.connect(tmp_path / "reports.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock past our busy timeout
    store_short = ReportStore(Database(str(tmp_path / "reports.db")))
    store_short.database.connection.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(sqlite3.OperationalError):
        store_short.add_report("T1", parse_report(xml), "test")
    other.execute("ROLLBACK")
    assert reports.report_count("T1") == 0
    assert store.database.connection.execute("SELECT COUNT(*) FROM agg_rows").fetchone()[0] == 0
    assert not reports.add_report("T1", parse_report(xml), "test").duplicate


def test_staged_records_are_grouped_on_every_stored_detail(stores: tuple[Stores, ReportStore]) -> None:
    _store, reports = stores
    rows = [
        Row("192.0.2.1", 3, dkim="fail", spf="fail", disposition="quarantine"),
        Row("192.0.2.1", 4, dkim="fail", spf="fail", disposition="quarantine"),  # same row: summed
        Row("192.0.2.1", 5, dkim="fail", spf="fail", disposition="reject"),
        Row("192.0.2.1", 6, dkim="fail", spf="fail", disposition="none", reasons=("forwarded",)),
        Row("192.0.2.1", 7, envelope_from="bounce.example.com"),
        Row("192.0.2.1", 8, dkim_domain=None),  # no DKIM result: NULLs group together
        Row("192.0.2.1", 9, dkim_domain=None),
    ]
    stored = reports.add_report("T1", parse_report(report_xml(rows, email="dmarc@google.com")), "test")
    assert stored.messages == 42 and stored.records == 7
    first, last = window(1)
    details = {
        (key.disposition, key.override_reasons, key.envelope_from, key.dkim_domains): count
        for key, count in reports.details("T1", "example.com", first, last)
    }
    assert details == {
        ("quarantine", None, None, "example.com"): 7,
        ("reject", None, None, "example.com"): 5,
        ("none", "forwarded", None, "example.com"): 6,
        ("none", None, "bounce.example.com", "example.com"): 7,
        ("none", None, None, None): 17,
    }
    row = next(reports.record_rows("T1", "example.com", first, last))
    assert (row["org_email"], row["adkim"], row["aspf"], row["p"]) == ("dmarc@google.com", "r", "r", "none")
