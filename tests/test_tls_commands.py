"""`dmarcbot tls-report` and `/dmarc tls` over reports with known totals, on a real database file
and through the real Slack app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.reports.ingest import ingest_bytes, one_team
from bot.store.stores import Stores, open_stores
from tests.aggregate_xml import days_ago
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.slackstub import SlackStandIn
from tests.test_reports_slack import all_text
from tests.tls_json import policy, tls_report


def fill(stores: Stores, team: str = "T1") -> None:
    """Three reports in the last week, one 40 days ago, and another team's."""
    reports = [
        tls_report(
            days_ago(1),
            [
                policy(
                    950,
                    [
                        ("certificate-expired", "mx1.example.com", "192.0.2.1", 30),
                        ("starttls-not-supported", "mx2.example.com", None, 20),
                    ],
                )
            ],
            org="Google Inc.",
        ),
        # the same 500 sessions under the domain's MTA-STS and DANE policies: counted once
        tls_report(
            days_ago(2),
            [
                policy(490, [("validation-failure", "mx1.example.com", "198.51.100.7", 10)]),
                policy(490, [("validation-failure", "mx1.example.com", "198.51.100.7", 10)], kind="tlsa"),
            ],
            org="Microsoft Corporation",
        ),
        tls_report(days_ago(3), [policy(100, [("certificate-expired", "mx1.example.com", "192.0.2.1", 5)])]),
        tls_report(days_ago(40), [policy(7, [("dnssec-invalid", None, None, 7)])]),
    ]
    for n, data in enumerate(reports):
        outcome = ingest_bytes(stores.reports, data, f"r{n}.json", one_team(team), "test")
        assert outcome.ok, outcome.error
    other = tls_report(days_ago(1), [policy(1, [("sts-policy-invalid", None, None, 99)])], report_id="other")
    assert ingest_bytes(stores.reports, other, "other.json", one_team("T2"), "test").ok


EXPECTED = {
    "domain": "example.com",
    "days": 7,
    "sessions": 1605,
    "successful": 1540,
    "failed": 65,
    "success_rate": 1540 / 1605,
    "policies": [
        {"type": "sts", "sessions": 1605, "failed": 65},
        {"type": "tlsa", "sessions": 500, "failed": 10},
    ],
    "failures": [
        {
            "result_type": "certificate-expired",
            "receiving_mx": "mx1.example.com",
            "sending_ip": "192.0.2.1",
            "sessions": 35,
        },
        {
            "result_type": "starttls-not-supported",
            "receiving_mx": "mx2.example.com",
            "sending_ip": None,
            "sessions": 20,
        },
        {
            "result_type": "validation-failure",
            "receiving_mx": "mx1.example.com",
            "sending_ip": "198.51.100.7",
            "sessions": 20,
        },
    ],
    "reporters": [
        {"org": "Google Inc.", "sessions": 1105},
        {"org": "Microsoft Corporation", "sessions": 500},
    ],
}


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tls.db"
    monkeypatch.setenv("DMARCBOT_DB", str(path))
    return path


def test_tls_report_json_has_exactly_the_documented_shape_and_known_totals(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(open_stores(str(db)))
    assert main(["tls-report", "Example.COM", "--days", "7", "--json", "--team", "T1"]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED
    # the window: 40 days back brings in the dnssec-invalid day
    assert main(["tls-report", "example.com", "--days", "41", "--json", "--team", "T1"]) == 0
    wide = json.loads(capsys.readouterr().out)
    assert (wide["sessions"], wide["failed"]) == (1619, 72)
    assert {"result_type": "dnssec-invalid", "receiving_mx": None, "sending_ip": None, "sessions": 7} in wide[
        "failures"
    ]


def test_tls_report_with_no_sessions_gives_null_rates(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(open_stores(str(db)))
    assert main(["tls-report", "other.example", "--json", "--team", "T1"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "domain": "other.example",
        "days": 30,
        "sessions": 0,
        "successful": 0,
        "failed": 0,
        "success_rate": None,
        "policies": [],
        "failures": [],
        "reporters": [],
    }


def test_tls_report_text_names_each_failure_and_what_it_means(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(open_stores(str(db)))
    assert main(["tls-report", "example.com", "--days", "7", "--team", "T1"]) == 0
    out = capsys.readouterr().out
    assert "1,605 sessions: 1,540 successful, 65 failed (96.0% succeeded)" in out
    assert (
        "certificate-expired (the MX host's certificate has expired) at mx1.example.com from 192.0.2.1: "
        "35 sessions"
    ) in out
    assert "Reporters: Google Inc. 1,105 sessions; Microsoft Corporation 500 sessions" in out
    assert "sts-policy-invalid" not in out  # T2's


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tls-report", "not a domain"], "contains spaces"),
        (["tls-report", "example.com", "--days", "0"], "--days must be from 1 to 366, not 0"),
        (["tls-report", "example.com", "--days", "367"], "--days must be from 1 to 366, not 367"),
    ],
)
def test_tls_report_bad_input_exits_2_saying_what_was_wrong(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_dmarc_tls_posts_the_workspaces_summary(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    fill(open_stores(app.settings.db_path))
    status, body = app.sim.slash_command("tls example.com 7")
    assert status == 200 and json.loads(body)["text"] == "Summarising the TLS reports for example.com…"
    [post] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    text = all_text(post)
    assert post.params["channel"] == "C1"
    assert "*1,605* sessions: 1,540 successful, 65 failed; *96%* succeeded." in text
    assert "certificate-expired (the MX host's certificate has expired) at mx1.example.com" in text
    assert "Google Inc. (1,105)" in text
    assert "sts-policy-invalid" not in text  # T2's data
    slack.assert_no_violations()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("tls example.com lots", "DAYS must be a whole number from 1 to 366"),
        ("tls", "Give a domain name, as in `/dmarc tls example.com [DAYS]`"),
        ("tls example.com 7 more", "Give a domain and, optionally, a number of days."),
    ],
)
def test_dmarc_tls_bad_input_is_answered_at_once_with_usage(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn, command: str, message: str
) -> None:
    app = make_app(nsd)
    status, body = app.sim.slash_command(command)
    assert status == 200
    assert message in json.loads(body)["text"]


def test_dmarc_tls_without_reports_says_where_they_come_from(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    app.sim.slash_command("tls example.com")
    [post] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "No SMTP TLS report sessions for *example.com* in the last 30 days" in all_text(post)
    assert "`_smtp._tls`" in all_text(post)
