"""`dmarcbot ingest` and `dmarcbot report` through the real entry point, on a real database file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.aggregate_xml import Row, days_ago, gz, open_reports, report_xml, write_large_zip
from tests.dnstest import NsdServer, make_zone
from tests.testdata import TESTDATA

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("DMARCBOT_DB", str(path))
    monkeypatch.delenv("DMARCBOT_NAMESERVERS", raising=False)
    return path


def ptr_zone(name: str) -> str:
    """192.0.2.1's reverse zone, its PTR pointing at `name`."""
    return make_zone("2.0.192.in-addr.arpa", [("1", "PTR", name)])


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_ingest_stores_the_good_files_and_names_each_refused_one(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.xml.gz", gz(report_xml([Row("192.0.2.1", 12)])))
    broken = str(TESTDATA / "dmarc-reports-parsedmarc" / "aggregate" / "invalid_xml.xml")
    json_file = write(tmp_path, "tls.json", b'{\n  "organization-name": "x"\n}')
    missing = str(tmp_path / "nope.xml")
    other = write(tmp_path, "other.xml", report_xml([Row("192.0.2.2", 3)], report_id="r2"))
    code = main(["ingest", good, broken, json_file, missing, other])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{broken}: refused: the XML is not well-formed at line 5" in err
    assert f"{json_file}: refused: the report has no report-id (RFC 8460 §4.4 requires it)" in err
    assert f"{missing}: refused: cannot read it: No such file or directory" in err
    assert "3 of 5 files refused" in err
    assert f"{good}: example.com from noreply-dmarc@google.com for " in out
    _store, reports = open_reports(db)
    assert reports.report_count("local") == 2
    today = days_ago(0).isoformat()
    assert reports.totals("local", "example.com", today, today).messages == 15


def test_ingesting_a_file_again_counts_it_once_and_succeeds(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.xml", report_xml([Row("192.0.2.1", 12)]))
    assert main(["ingest", good]) == 0
    assert main(["ingest", good]) == 0
    assert "already ingested, not counted again" in capsys.readouterr().out
    assert open_reports(db)[1].report_count("local") == 1


def test_report_json_has_exactly_the_documented_shape_and_fractions(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        Row("192.0.2.1", 75),
        Row("192.0.2.1", 25, spf="fail", spf_domain="esp.test", spf_result="pass"),
        Row("198.51.100.9", 50, dkim="fail", spf="fail", selector="gone"),
    ]
    main(["ingest", "--team", "T9", write(tmp_path, "r.xml", report_xml(rows, day=days_ago(2)))])
    main(
        [
            "ingest",
            "--team",
            "T9",
            write(
                tmp_path, "old.xml", report_xml([Row("192.0.2.1", 1000)], day=days_ago(40), report_id="old")
            ),
        ]
    )
    nsd.set_zone("2.0.192.in-addr.arpa", ptr_zone("mail-1.sender.example.net."))
    capsys.readouterr()
    code = main(
        ["report", "Example.COM.", "--days", "7", "--json", "--team", "T9", "--nameserver", nsd.address]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    # Every field the shape had before senders were named is kept, with the same values; the
    # added ones are checked in tests/test_senders.py.
    added_top = {"senders", "dispositions", "override_reasons", "from_domains", "reporters"}
    added_source = {"sender", "sender_source", "category", "reason"}
    assert added_top <= data.keys() and all(added_source <= s.keys() for s in data["sources"])
    data = {k: v for k, v in data.items() if k not in added_top}
    data["sources"] = [{k: v for k, v in s.items() if k not in added_source} for s in data["sources"]]
    assert data == {
        "domain": "example.com",
        "days": 7,
        "messages": 150,
        "dmarc_pass_rate": 0.6667,
        "sources": [
            {
                "ip": "192.0.2.1",
                "name": "mail-1.sender.example.net",
                "messages": 100,
                "dmarc_pass_rate": 1.0,
                "spf_aligned": 0.75,
                "dkim_aligned": 1.0,
            },
            {
                "ip": "198.51.100.9",
                "name": None,
                "messages": 50,
                "dmarc_pass_rate": 0.0,
                "spf_aligned": 0.0,
                "dkim_aligned": 0.0,
            },
        ],
        "selectors": ["s1", "gone"],
    }


def test_report_text_groups_sources_and_says_why_they_fail(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        Row("192.0.2.1", 10),
        Row("198.51.100.9", 5, dkim="fail", spf="fail", spf_domain="forger.test", dkim_domain=None),
    ]
    main(["ingest", write(tmp_path, "r.xml", report_xml(rows))])
    nsd.set_zone("2.0.192.in-addr.arpa", ptr_zone("o1.mail.sendgrid.net."))
    capsys.readouterr()
    assert main(["report", "example.com", "--nameserver", nsd.address]) == 0
    out = capsys.readouterr().out
    assert "15 messages, 66.7% passed DMARC" in out
    assert "  sendgrid.net\n    192.0.2.1" in out
    assert "198.51.100.9 (5 messages): SPF fail for forger.test; no DKIM signature" in out


@pytest.mark.slow
def test_report_writes_the_chart(db: Path, tmp_path: Path, nsd: NsdServer) -> None:
    main(["ingest", write(tmp_path, "r.xml", report_xml([Row("192.0.2.1", 10)]))])
    chart = tmp_path / "chart.png"
    assert main(["report", "example.com", "--chart", str(chart), "--nameserver", nsd.address]) == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_chart_into_a_missing_folder_is_refused_before_any_work(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-folder"
    assert main(["report", "example.com", "--chart", str(missing / "chart.png")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"dmarcbot report: --chart {missing / 'chart.png'}: the folder {missing} does not exist: "
        "create it, or name a file in a folder that exists\n"
    )
    assert not db.exists()  # refused before the database was opened
    assert main(["report", "example.com", "--chart", str(tmp_path)]) == 2
    assert f"--chart {tmp_path} is a folder: name a file" in capsys.readouterr().err


def test_a_csv_into_a_missing_folder_is_refused_before_any_work(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-folder"
    assert main(["report", "example.com", "--csv", str(missing / "report.csv")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"dmarcbot report: --csv {missing / 'report.csv'}: the folder {missing} does not exist: "
        "create it, or name a file in a folder that exists\n"
    )
    assert not db.exists()  # refused before the database was opened
    assert main(["report", "example.com", "--csv", str(tmp_path)]) == 2
    assert f"--csv {tmp_path} is a folder: name a file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "not a domain"], "dmarcbot report: "),
        (["report", "example.com", "--days", "0"], "--days must be from 1 to 366, not 0"),
        (["report", "example.com", "--team", "T1; DROP"], "is not a Slack team id"),
    ],
)
def test_bad_input_is_answered_with_exit_2(
    db: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_several_workspaces_need_team(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xml = write(tmp_path, "r.xml", report_xml([Row("192.0.2.1", 1)]))
    main(["ingest", "--team", "T1", xml])
    main(["ingest", "--team", "T2", xml])
    assert main(["report", "example.com"]) == 2
    assert "several workspaces (T1, T2): name one with --team" in capsys.readouterr().err


def test_report_text_cannot_drive_the_terminal(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # XML 1.0 forbids ESC, but C1 controls (CSI is U+009B) and bidi overrides are legal characters
    rows = [Row("198.51.100.9", 5, dkim="fail", spf="fail", spf_domain="forger\u009b2J.test\u202e")]
    xml = report_xml(rows, reporter="Evil\u009b2J\u202eCorp")
    assert main(["ingest", write(tmp_path, "r.xml", xml)]) == 0
    out = capsys.readouterr().out
    assert "\u009b" not in out and "\u202e" not in out
    assert "evil\\x9b2j\\u202ecorp" in out  # the reporter, as its address names it
    assert main(["report", "example.com", "--nameserver", nsd.address]) == 0
    out = capsys.readouterr().out
    assert "\u009b" not in out and "\u202e" not in out
    assert "forger\\x9b2j.test\\u202e" in out


def test_a_report_with_an_impossible_count_is_refused_and_the_batch_goes_on(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.xml", report_xml([Row("192.0.2.1", 12)]))
    # Two records of 2^63-1: their sum overflowed the database's 64-bit integer.
    huge_rows = [Row("192.0.2.7", 2**63 - 1), Row("192.0.2.8", 2**63 - 1)]
    huge = write(tmp_path, "huge.xml", report_xml(huge_rows, report_id="huge"))
    good2 = write(tmp_path, "good2.xml", report_xml([Row("192.0.2.2", 3)], report_id="r2"))
    code = main(["ingest", good, huge, good2])
    out, err = capsys.readouterr()
    assert code == 1
    assert (
        f"{huge}: refused: record 1: count 9223372036854775807 does not fit in 32 bits; "
        "at most 4,294,967,295 messages per record are accepted"
    ) in err
    assert "Traceback" not in out + err
    assert f"{good2}: example.com from noreply-dmarc@google.com" in out
    reports = open_reports(db)[1]
    today = days_ago(0).isoformat()
    assert reports.report_count("local") == 2
    assert reports.totals("local", "example.com", today, today).messages == 15


def test_two_reports_at_the_largest_count_are_both_stored_and_summarised(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    largest = 2**32 - 1
    for report_id in ("r1", "r2"):
        path = write(
            tmp_path, f"{report_id}.xml", report_xml([Row("192.0.2.1", largest)], report_id=report_id)
        )
        assert main(["ingest", path]) == 0
    capsys.readouterr()
    assert main(["report", "example.com", "--json", "--nameserver", nsd.address]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["messages"] == 2 * largest
    assert data["sources"][0]["messages"] == 2 * largest
    assert main(["report", "example.com", "--nameserver", nsd.address]) == 0
    assert f"{2 * largest:,} messages" in capsys.readouterr().out


def test_sums_over_stored_counts_cannot_overflow(
    db: Path, tmp_path: Path, nsd: NsdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rows stored before counts were bounded (or by any other writer): their SQL sum exceeds 2^63.
    path = write(tmp_path, "r.xml", report_xml([Row("192.0.2.1", 1)], report_id="r1"))
    assert main(["ingest", path]) == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE agg_rows SET messages = ?", [2**62])
        conn.execute("UPDATE agg_selectors SET messages = ?, passed = ?", [2**62, 2**62])
        conn.execute(
            "INSERT INTO agg_rows (team_id, report_pk, domain, day, source_ip, messages, dmarc_pass, "
            "spf_aligned, dkim_aligned) SELECT team_id, report_pk, domain, day, source_ip, messages, "
            "dmarc_pass, spf_aligned, dkim_aligned FROM agg_rows"
        )
        conn.execute(
            "INSERT INTO agg_selectors SELECT NULL, team_id, report_pk, domain, day, dkim_domain, "
            "selector, messages, passed FROM agg_selectors"
        )
    capsys.readouterr()
    assert main(["report", "example.com", "--json", "--nameserver", nsd.address]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["messages"] == 2**63
    assert data["dmarc_pass_rate"] == 1.0


@pytest.mark.slow
def test_ingest_memory_stays_flat_on_a_large_report(db: Path, tmp_path: Path) -> None:
    # 200,000 records in two reports (about 100 MB of XML), each from its own source. Kept as a list
    # of records, they alone would take some 200 MB; streamed, the process stays near its baseline.
    large = write_large_zip(tmp_path / "large.zip", members=2, records=100_000)
    small = write(tmp_path, "small.xml", report_xml([Row("192.0.2.1", 1)], report_id="small"))
    env = {**os.environ, "DMARCBOT_DB": str(db)}

    def peak_mib(path: Path | str) -> tuple[int, float]:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "ingest", str(path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # wait4: this child's own peak (ru_maxrss, kB on Linux), not the largest of every child.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        return process.returncode, usage.ru_maxrss / 1024

    code, baseline = peak_mib(small)  # the interpreter and the imports
    assert code == 0
    code, peak = peak_mib(large)
    assert code == 0
    assert peak - baseline < 60, f"peak {peak:.0f} MiB against a baseline of {baseline:.0f} MiB"
    reports = open_reports(db)[1]
    assert reports.report_count("local") == 3
