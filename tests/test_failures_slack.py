"""Failure reports through the Slack app end to end: `/dmarc failures` through the signed endpoint
(ephemeral, the installing workspace's data only, bad arguments answered), and a failure report
shared in a channel answered in its thread with its causes and fixes, explained against NSD."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.slack import ids as slack_ids
from bot.store.database import Database
from bot.store.failures import FailureGroup, NewFailure
from bot.store.stores import Stores
from tests.applog import capture_app_log, wait_for_log
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.messages.helpers import zones
from tests.slackstub import Call, SlackStandIn
from tests.test_failure_reports import RECORDS, STRANGER, YESTERDAY, failure_report, signed, unsigned

NOW = datetime.now(UTC)


def stores_of(path: str) -> Stores:
    return Stores.over(Database(path))


def add_failure(
    stores: Stores,
    team: str,
    n: int,
    ip: str = STRANGER,
    causes: tuple[str, ...] = ("cause.spf_ip_not_authorized", "cause.no_dkim_signature"),
    domain: str = "example.com",
    day: datetime = NOW,
) -> None:
    stores.failures.add(
        NewFailure(
            team_id=team,
            digest=f"{team}-{ip}-{n}-{day.date()}",
            domain=domain,
            from_domain=domain,
            reporter="receiver.example",
            source_ip=ip,
            mail_from="*@example.com",
            arrived_at=day.replace(hour=1, minute=n % 60),
            dmarc_result="fail",
            causes=causes,
            verdict={},
            headers="From: *@example.com",
            source="test",
        )
    )


def all_text(call: Call) -> str:
    return json.dumps(call.blocks) + (call.text or "")


def fix_values(call: Call) -> list[dict[str, object]]:
    """The decoded values of the message's Fix it buttons."""
    return [
        json.loads(block["accessory"]["value"])
        for block in call.blocks
        if (block.get("accessory") or {}).get("action_id") == slack_ids.ACTION_FIX
    ]


def test_dmarc_failures_tells_the_requester_the_groups_causes_and_fixes(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    stores = stores_of(app.settings.db_path)
    for n in range(14):
        add_failure(stores, "T1", n)
    add_failure(stores, "T1", 0, ip="198.51.100.9", causes=("cause.dkim_body_modified",))
    add_failure(stores, "T2", 0, ip="192.0.2.222")  # another workspace's report
    add_failure(stores, "T1", 0, ip="192.0.2.99", day=NOW - timedelta(days=20))  # outside 7 days
    # the user's own organisation is T9 (a shared channel): the data is the installing workspace's
    status, body = app.sim.slash_command("failures Example.COM 7", team_id="T9")
    assert status == 200 and json.loads(body)["text"] == "Reading the failure reports for example.com…"
    [answer] = slack.wait_for("response_url", 1, timeout=15)
    assert answer.params["response_type"] == "ephemeral"
    assert slack.calls("chat.postMessage") == []  # the requester alone sees it
    text = all_text(answer)
    assert "*15* failure reports in 2 groups" in text
    assert "*14* failures from `203.0.113.7` (unknown sender): not in SPF, no DKIM signature" in text
    assert "*1* failure from `198.51.100.9` (unknown sender): body changed after signing" in text
    assert "192.0.2.222" not in text and "192.0.2.99" not in text
    assert "Turn on DKIM signing for your domain" in text and "Find what rewrites the body" in text
    assert "DNS of the moment" in text
    fixes = fix_values(answer)
    assert {f["f"] for f in fixes} == {"spf.sender_missing", "dkim.key_missing"}
    assert all(f["d"] == "example.com" and f["o"] == "T1" for f in fixes)
    slack.assert_no_violations()


def test_dmarc_failures_without_reports_says_so(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    app.sim.slash_command("failures example.com")
    [answer] = slack.wait_for("response_url", 1, timeout=15)
    assert "No failure reports for *example.com* in the last 30 days" in all_text(answer)
    slack.assert_no_violations()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("failures", "Give a domain name, as in `/dmarc failures example.com [DAYS]`."),
        ("failures 192.0.2.1", "That is not a domain I can check"),
        ("failures example.com lots", "DAYS must be a whole number from 1 to 366, not “`lots`”."),
        ("failures example.com 0", "DAYS must be a whole number from 1 to 366, not “`0`”."),
        ("failures example.com 400", "DAYS must be a whole number from 1 to 366, not “`400`”."),
        ("failures example.com 7 more", "Give a domain and, optionally, a number of days."),
    ],
)
def test_dmarc_failures_with_bad_arguments_says_what_was_wrong_and_what_would_work(
    nsd: NsdServer,
    make_app: AppFactory,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
    text: str,
    expected: str,
) -> None:
    capture_app_log(caplog)
    app = make_app(nsd)
    status, body = app.sim.slash_command(text)
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral"
    assert expected in answer["text"] and "Usage: `/dmarc failures DOMAIN [DAYS]`" in answer["text"]
    wait_for_log(caplog, "answered in the acknowledgement")
    assert slack.calls("response_url") == [] and slack.calls("chat.postMessage") == []


def test_a_shared_failure_report_is_explained_in_its_thread(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones(zones(RECORDS))
    app = make_app(nsd)
    report = failure_report(unsigned())
    info = slack.add_file(
        "failure.eml",
        report,
        mimetype="message/rfc822",
        shares={"public": {"C1": [{"ts": "1700000000.000200"}]}},
    )
    status, _ = app.sim.event(
        {"type": "file_shared", "file_id": info["id"], "user_id": "U1", "channel_id": "C1"}, team_id="T1"
    )
    assert status == 200
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=20, ok_only=True)
    assert answer.params["channel"] == "C1" and answer.params["thread_ts"] == "1700000000.000200"
    text = all_text(answer)
    assert "a DMARC failure report (stored)" in text
    assert f"sent from `{STRANGER}` on {YESTERDAY.date()}: DMARC *fail*" in text
    assert "The sending IP is not authorised by SPF" in text and "cause.spf_ip_not_authorized" in text
    assert "The message carries no DKIM signature" in text and "Turn on DKIM signing" in text
    assert "DNS of the moment" in text
    assert {f["f"] for f in fix_values(answer)} == {"spf.sender_missing", "dkim.key_missing"}
    slack.assert_no_violations()
    stores = stores_of(app.settings.db_path)
    [group] = stores.failures.groups("T1", "example.com", "2000-01-01", "2999-12-31")
    assert isinstance(group, FailureGroup) and group.count == 1 and group.source_ip == STRANGER

    # shared again: counted once, and said so
    slack.reset()
    again = slack.add_file(
        "failure-again.eml", report, mimetype="message/rfc822", shares={"public": {"C1": [{"ts": "1.2"}]}}
    )
    app.sim.event({"type": "file_shared", "file_id": again["id"], "user_id": "U1", "channel_id": "C1"})
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=20, ok_only=True)
    assert "already ingested, counted once" in all_text(answer)
    assert stores.failures.count("T1", "example.com", "2000-01-01", "2999-12-31") == 1


def test_a_shared_report_of_a_missing_key_names_the_key_and_its_fix_opens_on_the_selector(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones(zones(RECORDS))
    app = make_app(nsd)
    report = failure_report(signed(selector="gone"))
    info = slack.add_file(
        "gone.eml", report, mimetype="message/rfc822", shares={"public": {"C1": [{"ts": "1.3"}]}}
    )
    app.sim.event({"type": "file_shared", "file_id": info["id"], "user_id": "U1", "channel_id": "C1"})
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=20, ok_only=True)
    text = all_text(answer)
    assert "No DKIM key at the signature" in text
    assert "Publish the public key at `gone._domainkey.example.com`" in text  # the verdict's own fix
    fixes = {str(f["f"]): f for f in fix_values(answer)}
    assert fixes["dkim.key_missing"]["x"] == "gone"
    assert "x" not in fixes["spf.sender_missing"]
    slack.assert_no_violations()


def test_the_groups_line_escapes_what_came_from_outside() -> None:
    from bot.slack.blocks.failures import group_line

    group = FailureGroup(
        day="2026-01-01",
        source_ip="203.0.113.7",
        from_domain="sub.example.com",
        causes=("cause.no_dkim_signature",),
        count=2,
        first="",
        last="",
        dmarc_result="fail",
    )
    line = group_line(group, "<!channel> evil.example", "example.com")
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line
    assert "From sub.example.com" in line
