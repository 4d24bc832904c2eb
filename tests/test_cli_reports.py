"""`dmarcbot ingest` and `dmarcbot report` through the real entry point, on a real database file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.aggregate_xml import Row, days_ago, gz, open_reports, report_xml
from tests.dnstest import NsdServer, make_zone
from tests.testdata import TESTDATA


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
    assert f"{json_file}: refused: not a report: it is JSON (an SMTP TLS report?)" in err
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
