"""Real request payloads from Slack's own SDKs (tests/data/slack-payloads/), adapted only in ids and
URLs, signed and replayed at the app's endpoint; and, through the same endpoint, a Slack Connect
report file owned by the installation, an Enterprise Grid workspace installed through OAuth getting
its alerts, and a long Verify button that is never cut."""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest

from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import report_button_value
from bot.store.stores import open_stores
from tests.aggregate_xml import Row, days_ago, gz, open_reports, report_xml
from tests.conftest import AppFactory
from tests.dnstest import NsdServer, make_zone
from tests.slackapp import RunningApp
from tests.slackstub import SlackStandIn
from tests.slackstub.requests import new_trigger_id
from tests.test_fixit_slack import Modal, click_verify, submit, texts, verify_value
from tests.test_record_fixes import fixit_zones
from tests.test_slack_app import http_get
from tests.testdata import TESTDATA
from tests.watchtest import MonitorHarness, domain_zone, provider_zone

PAYLOADS = TESTDATA / "slack-payloads"
TIMEOUT = 20
REPORT_TS = "1700000000.000100"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def form(name: str) -> dict[str, str]:
    return dict(parse_qsl((PAYLOADS / name).read_text(encoding="utf-8"), keep_blank_values=True))


def send_form(app: RunningApp, fields: dict[str, str]) -> tuple[int, str]:
    return app.sim.post(urlencode(fields).encode(), "application/x-www-form-urlencoded")


def send_interaction(app: RunningApp, payload: dict[str, Any]) -> tuple[int, str]:
    return send_form(app, {"payload": json.dumps(payload)})


def send_event(app: RunningApp, payload: dict[str, Any]) -> tuple[int, str]:
    return app.sim.post(json.dumps(payload).encode(), "application/json")


def home_opened_signal(app: RunningApp, slack: SlackStandIn, user: str) -> None:
    """A later request whose answer is the positive signal that the app handled what came before."""
    app.sim.event({"type": "app_home_opened", "user": user, "channel": "D7", "tab": "home"})
    published = slack.wait_for("views.publish", 1, timeout=TIMEOUT)
    assert any(p.params["user_id"] == user for p in published)


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(fixit_zones())
    return nsd


@pytest.fixture
def app(world: NsdServer, make_app: AppFactory) -> RunningApp:
    return make_app(world, dns_timeout=0.5)


# -- replays ----------------------------------------------------------------------------------------


def test_url_verification_echoes_the_challenge(app: RunningApp) -> None:
    status, body = send_event(app, load("bolt-python/url_verification.json"))
    assert status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in body


def test_an_enterprise_grid_slash_command_is_answered(app: RunningApp, slack: SlackStandIn) -> None:
    fields = form("bolt-python/slash_command_enterprise.txt")
    assert fields["enterprise_id"] == "E111"  # the Grid fields stay as Slack sent them
    fields.update(command="/dmarc", text="help", team_id="T1", response_url=slack.response_url("grid"))
    status, body = send_form(app, fields)
    assert status == 200 and "/dmarc check" in body


def test_slacks_documented_slash_command_runs_a_check(app: RunningApp, slack: SlackStandIn) -> None:
    fields = form("java-slack-sdk/slash_command.txt")  # '/' and ':' left unencoded, as documented
    fields.update(
        command="/dmarc",
        text="check norua.test",
        team_id="T1",
        channel_id="C2147483705",
        response_url=slack.response_url("documented"),
        trigger_id=new_trigger_id(),
    )
    status, body = send_form(app, fields)
    assert status == 200 and "Checking norua.test" in body
    [report] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert report.params["channel"] == "C2147483705" and "norua.test" in report.text


def test_a_recheck_from_an_ephemeral_message_answers_through_the_response_url(
    app: RunningApp, slack: SlackStandIn
) -> None:
    payload = load("bolt-python/block_actions_ephemeral.json")
    assert payload["container"]["is_ephemeral"] and "message" not in payload
    payload["team"]["id"] = payload["user"]["team_id"] = "T1"
    payload["response_url"] = slack.response_url("ephemeral")
    payload["trigger_id"] = new_trigger_id()
    payload["actions"][0].update(
        action_id=slack_ids.ACTION_RECHECK, value=report_button_value("norua.test", []), type="button"
    )
    status, _ = send_interaction(app, payload)
    assert status == 200
    [answer] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "norua.test" in json.dumps(answer.params)
    assert slack.calls("chat.update") == []  # there is no message to update


def test_fix_it_from_the_home_tab_opens_the_modal(app: RunningApp, slack: SlackStandIn) -> None:
    payload = load("java-slack-sdk/block_actions_home_view.json")
    assert payload["container"]["type"] == "view" and "response_url" not in payload
    payload["team"]["id"] = payload["user"]["team_id"] = "T1"
    payload["trigger_id"] = new_trigger_id()
    payload["actions"][0].update(
        action_id=slack_ids.ACTION_FIX,
        value=json.dumps({"f": "dmarc.no_rua", "d": "norua.test", "o": "T1", "s": []}),
    )
    status, _ = send_interaction(app, payload)
    assert status == 200
    [opened] = slack.wait_for("views.open", 1, timeout=TIMEOUT)
    assert opened.ok and opened.params["view"]["callback_id"] == slack_ids.CALLBACK_FIX_MODAL


def test_a_fix_modal_submitted_with_empty_values_is_answered(app: RunningApp, slack: SlackStandIn) -> None:
    payload = load("java-slack-sdk/view_submission_empty_state.json")
    assert payload["view"]["state"] == {"values": {}} and not payload["view"]["private_metadata"]
    payload["team"]["id"] = payload["user"]["team_id"] = payload["view"]["team_id"] = "T1"
    payload["view"]["callback_id"] = slack_ids.CALLBACK_FIX_MODAL
    status, _ = send_interaction(app, payload)
    assert status == 200
    # never silence: no field to mark, so the user is told in a message only they see
    [told] = slack.wait_for("chat.postEphemeral", 1, timeout=TIMEOUT)
    assert told.params["user"] == payload["user"]["id"]
    assert "That Fix it form no longer works" in told.params["text"]


def test_a_message_shortcut_on_an_email_app_file_gets_the_precise_answer(
    app: RunningApp, slack: SlackStandIn
) -> None:
    payload = load("bolt-python/message_action.json")
    email = load("slack-web/event_message_file_share_email.json")["event"]["files"][0]
    assert email["filetype"] == "email"
    payload["team"]["id"] = "T1"
    payload["callback_id"] = slack_ids.CALLBACK_WHY_SHORTCUT
    payload["response_url"] = slack.response_url("email")
    payload["trigger_id"] = new_trigger_id()
    payload["message"]["files"] = [email]
    payload["message"]["text"] = ""
    status, _ = send_interaction(app, payload)
    assert status == 200
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert (
        "forwarded into Slack by the Email app, which keeps no raw headers; attach the .eml instead"
        in (told.params["text"])
    )


def test_a_slack_connect_bot_message_is_acked_and_ignored(app: RunningApp, slack: SlackStandIn) -> None:
    payload = load("java-slack-sdk/event_message_shared_channel_authorizations.json")
    assert payload["team_id"] != payload["authorizations"][0]["team_id"]
    payload["authorizations"][0]["team_id"] = "T1"
    status, _ = send_event(app, payload)
    assert status == 200
    home_opened_signal(app, slack, "U8")
    assert [c.method for c in slack.calls() if c.method not in ("auth.test", "views.publish")] == []


def test_app_home_opened_publishes_the_home_tab(app: RunningApp, slack: SlackStandIn) -> None:
    payload = load("slack-web/event_app_home_opened_home.json")
    assert "view" not in payload["event"]
    payload["team_id"] = payload["authorizations"][0]["team_id"] = "T1"
    status, _ = send_event(app, payload)
    assert status == 200
    [published] = slack.wait_for("views.publish", 1, timeout=TIMEOUT)
    assert published.params["user_id"] == payload["event"]["user"]
    assert "/dmarc check" in texts(published.params["view"])


@pytest.mark.parametrize(
    "file_source",
    [
        "slack-web/event_message_file_share_slack_connect_stub.json",
        "slack-web/event_message_file_share_email.json",
    ],
)
def test_file_shared_for_a_file_slack_does_not_serve_is_ignored_quietly(
    app: RunningApp, slack: SlackStandIn, file_source: str
) -> None:
    """A Slack Connect stub (no URL) or an Email-app file shared in a channel: not a report, so no
    answer, and no traceback."""
    event = load("bolt-python/event_file_shared_slack_connect.json")
    original = load(file_source)["event"]["files"][0]
    served = slack.add_file(
        "forwarded", b"<html>hi</html>", mimetype="text/html", filetype=original.get("filetype")
    )
    event["authorizations"][0]["team_id"] = "T1"
    event["event"]["file_id"] = event["event"]["file"]["id"] = served["id"]
    event["event_id"] = f"Ev{served['id']}"
    status, _ = send_event(app, event)
    assert status == 200
    slack.wait_for("files.info", 1, timeout=TIMEOUT)
    home_opened_signal(app, slack, "U8")
    assert slack.calls("chat.postMessage") == [] and slack.calls("response_url") == []


# -- case 4: a report shared in a Slack Connect channel belongs to the installation ------------------


def test_a_report_shared_in_a_slack_connect_channel_is_stored_for_the_installation(
    app: RunningApp, slack: SlackStandIn
) -> None:
    event = load("bolt-python/event_file_shared_slack_connect.json")
    sharer = event["team_id"]
    assert sharer != event["authorizations"][0]["team_id"] and event["is_ext_shared_channel"]
    data = gz(report_xml([Row("192.0.2.1", 40)], day=days_ago(1)))
    info = slack.add_file(
        "google.com!example.com!1.xml.gz",
        data,
        mimetype="application/gzip",
        shares={"public": {event["event"]["channel_id"]: [{"ts": REPORT_TS}]}},
    )
    event["authorizations"][0]["team_id"] = "T1"  # the installation (auth.test of the bot token)
    event["event"]["file_id"] = event["event"]["file"]["id"] = info["id"]
    event["event_id"] = "EvCONNECT1"
    status, _ = send_event(app, event)
    assert status == 200
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert "Ingested 1 report" in texts(answer.blocks) + answer.text
    _store, reports = open_reports(Path(app.settings.db_path))
    day = days_ago(1).isoformat()
    assert reports.totals("T1", "example.com", day, day).messages == 40
    assert reports.totals(sharer, "example.com", day, day).messages == 0


# -- case 5: an Enterprise Grid workspace installed through OAuth gets its alerts ---------------------


def oauth_install(app: RunningApp) -> None:
    """/slack/install, then the redirect back from Slack with its code and state."""
    status, headers, page = http_get(app.url + "/slack/install")
    assert status == 200
    link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page)
    assert link, page
    state = parse_qs(urlsplit(link[1].replace("&amp;", "&")).query)["state"][0]
    cookie = SimpleCookie(headers.get("set-cookie", ""))
    cookies = "; ".join(f"{k}={m.value}" for k, m in cookie.items())
    status, _, page = http_get(
        app.url + f"/slack/oauth_redirect?code=grid-code&state={state}", {"Cookie": cookies}
    )
    assert status == 200, page


@pytest.mark.slow
def test_an_enterprise_grid_workspace_installed_through_oauth_gets_its_alerts(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones({"provider.test": provider_zone(), "grid.test": domain_zone("grid.test")})
    app = make_app(nsd, slack_bot_token=None, slack_client_id="111.222", slack_client_secret="client-secret")
    slack.set_oauth(
        team={"id": "T5", "name": "Grid workspace"},
        enterprise={"id": "E5", "name": "Grid org"},
        access_token="xoxb-grid-workspace",
    )
    oauth_install(app)

    status, _ = app.sim.slash_command(
        "watch grid.test sel", team_id="T5", channel_id="C5", enterprise_id="E5"
    )
    assert status == 200
    [summary] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert summary.params["channel"] == "C5"
    assert summary.headers.get("authorization") == "Bearer xoxb-grid-workspace"

    # the domain's DMARC record changes; the monitor's next cycle alerts the watch's channel
    nsd.set_zones(
        {"provider.test": provider_zone(), "grid.test": domain_zone("grid.test", dmarc="v=DMARC1; p=none")}
    )
    stores = open_stores(app.settings.db_path)
    try:
        assert [w.team_id for w in stores.watches.watches("T5")] == ["T5"]
        _checked, delivered = MonitorHarness(stores, app.settings, slack, nsd).cycle()
        alerts = [c for c in slack.calls("chat.postMessage") if c is not summary]
        assert alerts and all(a.ok for a in alerts), delivered
        assert {a.params["channel"] for a in alerts} == {"C5"}
        assert {a.headers.get("authorization") for a in alerts} == {"Bearer xoxb-grid-workspace"}
        assert stores.outbox.pending_alerts("T5") == []  # nothing left undelivered
    finally:
        stores.close()


# -- case 10: a long Verify button through the endpoint ----------------------------------------------

# A long name and as many 63-character selectors as the Fix it button can carry (each
# selector._domainkey name stays within 253 characters): the plan's Verify button holds them all
# and more, so its state cannot fit in a 2,000-character value.
LONG_DOMAIN = f"{'a' * 63}.{'b' * 63}.{'c' * 14}.example"
SELECTORS = [f"s{i:02d}-{'x' * 59}" for i in range(26)]


@pytest.mark.slow
def test_a_long_domains_verify_button_stays_within_2000_characters_and_works(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones(
        {
            **fixit_zones(),
            LONG_DOMAIN: make_zone(
                LONG_DOMAIN,
                [("@", "TXT", "v=spf1 ip4:192.0.2.1 -all"), ("_dmarc", "TXT", "v=DMARC1; p=reject")],
            ),
        }
    )
    app = make_app(nsd, dns_timeout=0.5)
    value = json.dumps({"f": "dmarc.no_rua", "d": LONG_DOMAIN, "o": "T1", "s": SELECTORS})
    assert len(value) < 2000
    app.sim.block_action(slack_ids.ACTION_FIX, value, message_ts=REPORT_TS)
    [opened] = slack.wait_for("views.open", 1, timeout=TIMEOUT)
    view_id = opened.response["view"]["id"]
    slack.wait_for("views.update", 1, timeout=TIMEOUT, ok_only=True)
    status, _ = submit(app, Modal(view_id, slack.view(view_id)))
    assert status == 200
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    buttons = [e for b in plan.blocks if b.get("type") == "actions" for e in b["elements"]]
    verify = next(e for e in buttons if e["action_id"] == slack_ids.ACTION_FIX_VERIFY)
    assert len(verify["value"]) <= 2000
    slack.assert_no_violations()

    assert verify["value"] == verify_value(plan)
    click_verify(app, plan)  # on the plan's own message, in its thread, as Slack sends it
    answers = slack.wait_for("chat.postMessage", 2, timeout=TIMEOUT, ok_only=True)
    answer = texts(answers[-1].blocks)
    assert "Not live yet" in answer and "no longer works" not in answer, answer
