"""Ingest from bytes, as every source does: each format, every shared sample, refusals naming why."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bot.reports.ingest import ingest_bytes, looks_like_report_name, one_team
from bot.store.reports import ReportStore
from handlers.reports.archive import ReportLimits
from tests.aggregate_xml import Row, gz, mail_with, open_reports, report_xml, zip_bomb, zipped
from tests.testdata import TESTDATA

SAMPLE_DIRS = [
    "dmarc-reports-parsedmarc/aggregate",
    "dmarc-reports-cry-inc/dmarc-reports",
    "dmarc-reports-mail-dmarc",
    "dmarc-opendmarc/aggregate_reports",
]
SAMPLES = sorted(p for d in SAMPLE_DIRS for p in (TESTDATA / d).iterdir() if looks_like_report_name(p.name))
BROKEN = {
    "invalid_utf_8.xml": "not valid UTF-8",
    "invalid_xml.xml": "not well-formed",
    "bad.com!example.com!1337140800!1337227200.xml": "not well-formed",
    "rfc9990-sample.xml": "begins 1979-08-07, before 2012, when DMARC reporting began",  # the RFC's example
}


@pytest.fixture
def reports(tmp_path: Path) -> ReportStore:
    return open_reports(tmp_path / "ingest.db")[1]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name[:60])
@pytest.mark.slow
def test_every_shared_sample_is_stored_or_refused_with_a_reason(reports: ReportStore, path: Path) -> None:
    outcome = ingest_bytes(reports, path.read_bytes(), path.name, one_team("T1"), "test")
    if path.name in BROKEN:
        assert not outcome.ok and BROKEN[path.name] in (outcome.error or "")
        assert reports.report_count("T1") == 0
        assert outcome.describe().startswith(f"{path.name}: refused: ")
    else:
        assert outcome.ok, outcome.error
        assert outcome.reports and all(not r.duplicate for r in outcome.reports)
        assert reports.report_count("T1") == len(outcome.reports)


@pytest.mark.parametrize(
    "wrap", [lambda x: x, gz, zipped, lambda x: mail_with(gz(x))], ids=["xml", "gzip", "zip", "eml"]
)
def test_each_format_reaches_the_store(reports: ReportStore, wrap: object) -> None:
    xml = report_xml([Row("192.0.2.1", 3)], namespace=True)
    outcome = ingest_bytes(reports, wrap(xml), "report", one_team("T1"), "test")  # type: ignore[operator]
    assert outcome.ok and [r.messages for r in outcome.reports] == [3]


def test_a_zip_bomb_is_refused_naming_the_cap_and_nothing_is_stored(reports: ReportStore) -> None:
    limits = ReportLimits(max_xml_bytes=1024 * 1024)
    outcome = ingest_bytes(reports, zip_bomb(5 * 1024 * 1024), "bomb.zip", one_team("T1"), "t", limits)
    assert not outcome.ok and outcome.refused_by_cap == "max_xml_bytes"
    assert (outcome.error or "").startswith("the report's XML, once decompressed, is larger than 1 MB")
    assert reports.report_count("T1") == 0


def test_entity_expansion_is_refused(reports: ReportStore) -> None:
    laughs = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><feedback>&lol;</feedback>'
    outcome = ingest_bytes(reports, laughs, "lol.xml", one_team("T1"), "t")
    assert not outcome.ok and "DTD" in (outcome.error or "")


def test_a_file_with_one_bad_document_stores_nothing(reports: ReportStore, tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("good.xml", report_xml([Row("192.0.2.1", 3)]))
        archive.writestr("bad.xml", b"<feedback><report_metadata>")
    outcome = ingest_bytes(reports, path.read_bytes(), "two.zip", one_team("T1"), "t")
    assert not outcome.ok and reports.report_count("T1") == 0


def test_a_report_nobody_owns_is_refused_saying_how_to_fix_it(reports: ReportStore) -> None:
    outcome = ingest_bytes(reports, report_xml([Row("192.0.2.1", 3)]), "r.xml", lambda r: [], "t")
    assert not outcome.ok and "no workspace watches example.com" in (outcome.error or "")


def test_a_report_owned_by_two_teams_is_stored_for_each(tmp_path: Path) -> None:
    reports = open_reports(tmp_path / "two.db")[1]
    outcome = ingest_bytes(reports, report_xml([Row("192.0.2.1", 3)]), "r.xml", lambda r: ["T1", "T2"], "t")
    assert [r.team_id for r in outcome.reports] == ["T1", "T2"]
    assert reports.report_count("T1") == reports.report_count("T2") == 1


@pytest.mark.parametrize(
    "filler",
    [b" " * (4 * 1024 * 1024), (b"<!--" + b" " * 60_000 + b"-->") * 70],
    ids=["blanks", "comments"],
)
def test_text_with_no_element_is_refused_at_its_cap(reports: ReportStore, filler: bytes) -> None:
    # The parser holds text (and a comment) whole until an element starts or ends.
    data = zipped(b"<feedback>" + filler + b"</feedback>")
    outcome = ingest_bytes(reports, data, "blank.zip", one_team("T1"), "t")
    assert outcome.refused_by_cap == "max_text_run"
    assert "the XML has more than 1 MB with no element in it, the most accepted" in (outcome.error or "")
