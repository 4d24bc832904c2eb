"""DMARC failure reports: recognised on ingest, explained by the `why` verdict against real DNS
(NSD), stored with only the headers the verdict needs and addresses redacted, grouped per day."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from bot.reports.failures import FailureReading
from bot.reports.ingest import FileOutcome, ingest_bytes, one_team
from bot.store.stores import open_stores
from tests.dnstest import NsdServer
from tests.messages.helpers import key_record, message, rsa_key, sign, zones
from tests.testdata import TESTDATA

PEM, PUB = rsa_key(2048)
ESP_PEM, ESP_PUB = rsa_key(2048)
RECORDS = {
    "_dmarc.example.com": [("TXT", "v=DMARC1; p=reject")],
    "example.com": [("TXT", "v=spf1 ip4:185.70.40.10 -all")],
    "s1._domainkey.example.com": [("TXT", key_record(PUB))],
    "esp.test": [("TXT", "v=spf1 ip4:198.51.100.20 -all")],
    "k1._domainkey.esp.test": [("TXT", key_record(ESP_PUB))],
}
STRANGER = "203.0.113.7"
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
TODAY = YESTERDAY + timedelta(days=1)


def at(moment: datetime, hour: int = 10) -> str:
    """An Arrival-Date as receivers write it."""
    return format_datetime(moment.replace(hour=hour))


FAILURES = TESTDATA / "dmarc-reports-parsedmarc" / "failure"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsdServer]:
    nsd = NsdServer(tmp_path_factory.mktemp("nsd-failures"))
    nsd.start(zones(RECORDS))
    try:
        yield nsd
    finally:
        nsd.stop()


@pytest.fixture
def db(tmp_path: Path, server: NsdServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "failures.db"
    monkeypatch.setenv("DMARCBOT_DB", str(path))
    monkeypatch.setenv("DMARCBOT_NAMESERVERS", server.address)
    monkeypatch.delenv("DMARCBOT_FAILURES_KEEP_ADDRESSES", raising=False)
    return path


def failure_report(
    original: bytes,
    source_ip: str = STRANGER,
    mail_from: str = "alice@example.com",
    *,
    headers_only: bool = False,
    arrival: str = at(YESTERDAY),
) -> bytes:
    """An RFC 6591 failure report as a receiver mails it, carrying `original` verbatim."""
    third = "text/rfc822-headers" if headers_only else "message/rfc822"
    if headers_only:
        original = original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return (
        b"From: dmarc-noreply@receiver.example\r\n"
        b"To: ruf@example.com\r\n"
        b"Subject: DMARC failure report\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n'
        b"\r\n--B\r\nContent-Type: text/plain\r\n\r\nA message failed DMARC.\r\n"
        b"--B\r\nContent-Type: message/feedback-report\r\n\r\n"
        b"Feedback-Type: auth-failure\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n"
        + f"Original-Mail-From: <{mail_from}>\r\nArrival-Date: {arrival}\r\n"
        f"Source-IP: {source_ip}\r\nReported-Domain: example.com\r\nAuth-Failure: dmarc\r\n".encode()
        + f"\r\n--B\r\nContent-Type: {third}\r\n\r\n".encode()
        + original
        + b"\r\n--B--\r\n"
    )


def unsigned(message_id: str = "<1@example.com>") -> bytes:
    return message(body="Hello\r\n").replace(b"<20260302100000.1@example.com>", message_id.encode())


def signed(domain: str = "example.com", selector: str = "s1", pem: bytes = PEM) -> bytes:
    return sign(message(), domain, selector, pem)


def ingest(db: Path, data: bytes, keep: bool = False) -> FileOutcome:
    """Ingest as the command line does, with the settings the environment gives (NSD's address)."""
    stores = open_stores(str(db))
    try:
        settings = dataclasses.replace(Settings.from_env(os.environ), failures_keep_addresses=keep)
        reading = FailureReading.of(settings)
        return ingest_bytes(stores.reports, data, "report.eml", one_team("local"), "test", reading=reading)
    finally:
        stores.close()


def stored_rows(db: Path) -> list[sqlite3.Row]:
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute("SELECT * FROM failure_reports ORDER BY id").fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("original", "extra", "expected"),
    [
        (unsigned(), {}, {"cause.spf_ip_not_authorized", "cause.no_dkim_signature"}),
        (
            signed().replace(b"the numbers are attached", b"the numbers are ATTACHED"),
            {},
            {"cause.dkim_body_modified", "cause.spf_ip_not_authorized"},
        ),
        (signed(selector="gone"), {}, {"cause.dkim_key_missing", "cause.spf_ip_not_authorized"}),
        (signed("esp.test", "k1", ESP_PEM), {}, {"cause.dkim_not_aligned", "cause.spf_ip_not_authorized"}),
        (
            signed().replace(b"Subject: Quarterly numbers", b"Subject: [list] Quarterly numbers"),
            {"headers_only": True},
            {"cause.dkim_header_modified", "cause.spf_ip_not_authorized"},
        ),
        (
            unsigned(),
            {"source_ip": "198.51.100.20", "mail_from": "bounce@esp.test"},
            {"cause.spf_not_aligned", "cause.no_dkim_signature"},
        ),
    ],
    ids=[
        "unsigned",
        "body-modified",
        "key-missing",
        "dkim-not-aligned",
        "header-modified",
        "spf-not-aligned",
    ],
)
def test_each_cause_comes_out_of_a_generated_report(
    db: Path, original: bytes, extra: dict[str, object], expected: set[str]
) -> None:
    outcome = ingest(db, failure_report(original, **extra))  # type: ignore[arg-type]
    assert outcome.ok, outcome.describe()
    (row,) = stored_rows(db)
    causes = set(json.loads(row["causes"]))
    assert expected <= causes, causes
    assert row["source_ip"] == extra.get("source_ip", STRANGER)
    assert row["from_domain"] == "example.com"
    assert row["day"] == YESTERDAY.date().isoformat()


def test_a_dkim_pass_from_the_domain_is_a_dmarc_pass_not_a_cause(db: Path) -> None:
    ingest(db, failure_report(signed()))
    (row,) = stored_rows(db)
    assert row["dmarc_result"] == "pass"


def test_only_the_verdicts_headers_are_stored_and_local_parts_redacted(db: Path) -> None:
    original = message(
        body="SECRET BODY TEXT\r\n",
        headers=[
            ("Return-Path", "<alice@example.com>"),
            (
                "Received",
                f"from x (x [{STRANGER}]) by mx.receiver.example for <bob@receiver.example>; "
                "Mon, 02 Mar 2026 10:00:01 +0000",
            ),
        ],
    )
    outcome = ingest(db, failure_report(original))
    assert outcome.ok
    (row,) = stored_rows(db)
    stored = " ".join(str(value) for value in row)
    assert "SECRET BODY" not in stored
    assert "Subject" not in row["headers"] and "Quarterly" not in stored
    assert "alice@" not in stored and "bob@" not in stored
    assert "From: Alice <*@example.com>" in row["headers"]
    assert "Return-Path: <*@example.com>" in row["headers"]
    assert "for <*@receiver.example>" in row["headers"]
    assert row["mail_from"] == "*@example.com"
    assert "Message-ID: <20260302100000.1@example.com>" in row["headers"]


def test_addresses_are_kept_when_the_operator_says_so(db: Path) -> None:
    ingest(db, failure_report(message(headers=[("Return-Path", "<alice@example.com>")])), keep=True)
    (row,) = stored_rows(db)
    assert "From: Alice <alice@example.com>" in row["headers"]
    assert row["mail_from"] == "alice@example.com"


def test_same_ip_domain_and_causes_in_a_day_are_one_group_and_json_has_the_documented_shape(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        ingest(db, failure_report(unsigned(f"<{n}@example.com>"), arrival=at(YESTERDAY, 10 + n)))
    ingest(db, failure_report(unsigned("<again@example.com>"), source_ip="198.51.100.9"))
    ingest(db, failure_report(unsigned("<next-day@example.com>"), arrival=at(TODAY)))
    # the same report again is one report, not two
    ingest(db, failure_report(unsigned("<0@example.com>"), arrival=at(YESTERDAY, 10)))
    assert len(stored_rows(db)) == 5
    assert main(["failures", "example.com", "--days", "7", "--json", "--team", "local"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"domain", "days", "reports", "groups"}
    assert (data["domain"], data["days"], data["reports"]) == ("example.com", 7, 5)
    counts = sorted((g["source_ip"], g["first"][:10], g["count"]) for g in data["groups"])
    yesterday, today = YESTERDAY.date().isoformat(), TODAY.date().isoformat()
    assert counts == [("198.51.100.9", yesterday, 1), (STRANGER, yesterday, 3), (STRANGER, today, 1)]
    big = next(g for g in data["groups"] if g["count"] == 3)
    assert set(big) == {
        "source_ip",
        "sender",
        "from_domain",
        "count",
        "first",
        "last",
        "dmarc_result",
        "causes",
    }
    assert big["first"] < big["last"] and big["dmarc_result"] == "fail" and big["sender"] is None
    assert "cause.no_dkim_signature" in big["causes"]


def test_the_text_output_names_causes_fixes_and_the_dns_of_the_moment(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "--team", "local", str(_write(db.parent, failure_report(unsigned())))]) == 0
    out = capsys.readouterr().out
    assert f"failure report for example.com from 203.0.113.7 on {YESTERDAY.date()}, DMARC fail" in out
    assert "DNS of the moment" in out
    assert main(["failures", "example.com", "--days", "7", "--team", "local"]) == 0
    out = capsys.readouterr().out
    assert "1 failure from 203.0.113.7 (unknown sender)" in out
    assert "cause.no_dkim_signature: fix: Turn on DKIM signing" in out


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "failure.eml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("sample", sorted(p.name for p in FAILURES.iterdir()), ids=lambda n: n[:30])
def test_every_vendored_failure_sample_is_stored_or_refused_with_its_reason(db: Path, sample: str) -> None:
    outcome = ingest(db, (FAILURES / sample).read_bytes())
    if sample.startswith("exim_plain_text_only"):
        assert outcome.error is not None
        assert "without the machine-readable message/feedback-report part" in outcome.error
        assert stored_rows(db) == []
        return
    assert outcome.ok, outcome.describe()
    (row,) = stored_rows(db)
    assert row["source_ip"] and row["from_domain"]
    assert "@" not in (row["mail_from"] or "").split("@")[0] or row["mail_from"].startswith("*@")
