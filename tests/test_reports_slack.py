"""Aggregate reports through the Slack app end to end: a file shared in a channel (downloaded from
the stand-in with the bot token), and `/dmarc report` with its chart, asserting on what reached
the stand-in and on what the database holds."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, gz, mail_with, open_reports, report_xml
from tests.applog import capture_app_log, wait_for_log
from tests.conftest import AppFactory
from tests.dnstest import NsdServer, make_zone
from tests.slackapp import RunningApp
from tests.slackstub import BOT_USER_ID, Call, SlackStandIn

NASTY = "<!channel>"


def share(
    slack: SlackStandIn,
    name: str,
    data: bytes,
    channel: str = "C1",
    ts: str = "1700000000.000100",
    user: str = "U1",
    mimetype: str = "application/gzip",
) -> dict[str, Any]:
    """Serve a file and say, as Slack's files.info does, which message shared it where."""
    return slack.add_file(
        name, data, mimetype=mimetype, user=user, shares={"public": {channel: [{"ts": ts}]}}
    )


def file_shared(
    app: RunningApp, info: dict[str, Any], channel: str = "C1", user: str = "U1", team: str = "T1"
) -> None:
    status, body = app.sim.event(
        {
            "type": "file_shared",
            "file_id": info["id"],
            "user_id": user,
            "channel_id": channel,
            "file": {"id": info["id"]},
        },
        team_id=team,
    )
    assert status == 200, body


def all_text(call: Call) -> str:
    return json.dumps(call.blocks) + (call.text or "")


def test_a_shared_report_file_is_downloaded_ingested_and_answered_in_its_thread(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    rows = [
        Row("192.0.2.1", 80),
        Row(
            "198.51.100.9", 20, dkim="fail", spf="fail", spf_domain="&lt;!channel&gt;.test", dkim_domain=None
        ),
    ]
    info = share(slack, "google.com!example.com!1.xml.gz", gz(report_xml(rows, day=days_ago(1))))
    file_shared(app, info)
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    download = slack.last("files.download")
    assert download.params["authorized"] and download.headers["authorization"] == "Bearer xoxb-test-token"
    assert answer.params["channel"] == "C1" and answer.params["thread_ts"] == "1700000000.000100"
    text = all_text(answer)
    assert "Ingested 1 report" in text
    assert "*100* messages from 2 sources" in text and "*80%* passed DMARC" in text
    assert "198.51.100.9" in text and NASTY not in text and "&lt;!channel&gt;" in text
    slack.assert_no_violations()
    _store, reports = open_reports(Path(app.settings.db_path))
    day = days_ago(1).isoformat()
    assert reports.totals("T1", "example.com", day, day).messages == 100

    # the same report shared again (as an .eml this time) is counted once
    slack.reset()
    again = share(
        slack, "report.eml", mail_with(gz(report_xml(rows, day=days_ago(1)))), mimetype="message/rfc822"
    )
    file_shared(app, again)
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "Ingested 0 reports; 1 already ingested (counted once)" in all_text(answer)
    assert reports.totals("T1", "example.com", day, day).messages == 100


def test_a_broken_report_file_is_answered_with_the_reason(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    file_shared(app, share(slack, "report.xml", b"<feedback><report_metadata>", mimetype="text/xml"))
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "I could not ingest *report.xml*" in all_text(answer)
    assert "the XML ends early" in all_text(answer) or "missing required" in all_text(answer)


def test_a_sign_in_page_is_refused_not_ingested(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    page = b"<!DOCTYPE html><html><head><title>Sign in | Slack</title></head></html>"
    file_shared(app, share(slack, "report.xml", page, mimetype="text/html"))
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "sign-in page instead of the file" in all_text(answer)


@pytest.mark.slow
def test_files_that_are_not_reports_and_the_bots_own_files_are_left_alone(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    # Bolt's loggers take the root logger's level when the app is built: DEBUG, so that its
    # middleware says when it drops the bot's own event
    caplog.set_level(logging.DEBUG)
    app = make_app(nsd)
    file_shared(app, share(slack, "holiday.png", b"\x89PNG\r\n\x1a\n", mimetype="image/png"))
    file_shared(
        app, share(slack, "chart.xml", report_xml([Row("192.0.2.1", 1)]), user=BOT_USER_ID), user=BOT_USER_ID
    )
    plain = mail_with(b"hello", filename="notes.txt")
    file_shared(app, share(slack, "message.eml", plain, mimetype="message/rfc822"))
    # each listener says why it left its file alone, as its last act; Bolt drops the bot's own
    wait_for_log(caplog, "'holiday.png' (team T1): not named like a report file, left alone")
    wait_for_log(caplog, "Skipped self event: {'type': 'file_shared'", logger="slack_bolt")
    wait_for_log(caplog, "'message.eml' (team T1): carries no aggregate report, left alone")
    assert slack.calls("chat.postMessage") == []
    assert len(slack.calls("files.download")) == 1  # only the .eml was read; it holds no report


def test_dmarc_report_posts_the_summary_and_the_chart(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zone(
        "2.0.192.in-addr.arpa", make_zone("2.0.192.in-addr.arpa", [("1", "PTR", "o1.mail.sendgrid.net.")])
    )
    app = make_app(nsd)
    _store, reports = open_reports(Path(app.settings.db_path))
    for n in range(1, 4):
        rows = [Row("192.0.2.1", 90), Row("198.51.100.9", 10, dkim="fail", spf="fail")]
        reports.add_report("T1", parse_report(report_xml(rows, day=days_ago(n), report_id=f"{n}")), "t")
    reports.add_report("T2", parse_report(report_xml([Row("203.0.113.1", 999)])), "t")
    status, body = app.sim.slash_command("report example.com 7")
    assert status == 200 and json.loads(body)["text"] == "Summarising the reports for example.com…"
    [post] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    text = all_text(post)
    assert "*300* messages from 2 sources" in text and "*90%* passed DMARC" in text
    assert "sendgrid.net" in text and "o1.mail.sendgrid.net" in text
    assert "203.0.113.1" not in text  # team T2's data
    slack.wait_for("files.completeUploadExternal", 1, timeout=30, ok_only=True)
    [upload] = slack.uploads()
    assert upload["data"][:8] == b"\x89PNG\r\n\x1a\n"
    assert upload["channel_id"] == "C1" and upload["thread_ts"] == post.response["ts"]
    slack.assert_no_violations()


def test_dmarc_report_with_bad_days_is_answered_with_usage(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    status, body = app.sim.slash_command("report example.com lots")
    assert status == 200
    answer = json.loads(body)["text"]
    assert "DAYS must be a whole number from 1 to 366" in answer
    assert "Usage: `/dmarc report DOMAIN [DAYS]`" in answer


def test_dmarc_report_without_data_says_so(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(nsd)
    app.sim.slash_command("report example.com")
    [post] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "No aggregate reports for this domain yet" in all_text(post)
    wait_for_log(caplog, "running /dmarc report example.com: finished")
    assert slack.uploads() == [] and slack.calls("files.getUploadURLExternal") == []


def test_dmarc_report_sums_counts_beyond_64_bits(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    # Two reports at the largest count a record may have, and rows stored before counts were
    # bounded whose sum passes 2^63: the summary and its chart still go out.
    app = make_app(nsd)
    _store, reports = open_reports(Path(app.settings.db_path))
    for n in (1, 2):
        xml = report_xml([Row("192.0.2.1", 2**32 - 1)], day=days_ago(1), report_id=f"max{n}")
        reports.add_report("T1", parse_report(xml), "t")
    reports.add_report("T1", parse_report(report_xml([Row("198.51.100.9", 1)], report_id="old")), "t")
    with reports.database.write() as db:
        db.execute("UPDATE agg_rows SET messages = ? WHERE source_ip = '198.51.100.9'", [2**63 - 1])
    status, _ = app.sim.slash_command("report example.com 7")
    assert status == 200
    [post] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "messages from 2 sources" in all_text(post)
    assert "Something went wrong" not in all_text(post)
    slack.wait_for("files.completeUploadExternal", 1, timeout=30, ok_only=True)
    slack.assert_no_violations()
