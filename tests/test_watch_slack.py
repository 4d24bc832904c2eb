"""`/dmarc watch`, `unwatch`, `list`, the Watch button and App Home, through the app's real HTTP
endpoint with signed requests, its Web API calls going to the Slack stand-in, a real database file
and the real DNS server; then a monitor cycle over what the commands stored."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import report_button_value
from bot.store.database import Database
from bot.store.stores import Stores
from tests.applog import capture_app_log, wait_for_log
from tests.dnstest import NsdServer
from tests.slackapp import RunningApp
from tests.slackstub import SlackStandIn
from tests.watchtest import PROVIDER, MonitorHarness, domain_zone, provider_zone

DOMAIN = "example.test"
AppFactory = Callable[..., RunningApp]


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(
        {PROVIDER: provider_zone(), DOMAIN: domain_zone(DOMAIN), "other.test": domain_zone("other.test")}
    )
    return nsd


@pytest.fixture
def app(make_app: AppFactory, world: NsdServer, slack: SlackStandIn) -> RunningApp:
    running = make_app(world)
    return running


def store_of(app: RunningApp) -> Stores:
    return Stores.over(Database(app.settings.db_path))


def replies(slack: SlackStandIn) -> list[str]:
    """Everything said through response_urls (ephemeral answers), in order."""
    return [c.params.get("text") or "" for c in slack.calls("response_url")]


@pytest.mark.slow
def test_watch_in_a_channel_stores_it_and_posts_the_first_check(app: RunningApp, slack: SlackStandIn) -> None:
    status, _ = app.sim.slash_command(f"watch {DOMAIN} sel", channel_id="C1", team_id="T1", user_id="U7")
    assert status == 200
    assert app.sim.last_elapsed < 3
    post = slack.wait_for("chat.postMessage", ok_only=True)[0]
    # once Slack has said the bot is a member, before the first check's summary
    assert replies(slack) == ["Watching example.test for this channel: running its first check…"]
    assert post.params["channel"] == "C1"
    assert post.text.startswith(f"Now watching {DOMAIN} in this channel. First check: Mail from")
    store = store_of(app)
    try:
        watch = store.watches.watch("T1", DOMAIN)
        assert watch is not None and watch.channel_id == "C1" and watch.selectors == ("sel",)
        assert watch.added_by == "U7" and watch.last_status == "pass"
        assert store.watches.latest_snapshot("T1", watch.id) is not None  # the baseline
    finally:
        store.close()
    slack.assert_no_violations()


def test_watch_where_the_bot_is_not_a_member_says_how_to_invite_it(
    app: RunningApp, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    slack.set_channel("C5", is_member=False)
    status, body = app.sim.slash_command(f"watch {DOMAIN}", channel_id="C5")
    assert status == 200 and "Watching" not in body  # membership is checked before saying so
    slack.wait_for("response_url")
    assert len(replies(slack)) == 1 and "/invite @dmarcbot" in replies(slack)[0]
    wait_for_log(caplog, f"running /dmarc watch {DOMAIN}: finished")
    assert slack.calls("chat.postMessage") == []
    store = store_of(app)
    try:
        assert store.watches.watches("T1") == []
    finally:
        store.close()


def test_watch_with_bad_input_answers_with_usage(app: RunningApp, slack: SlackStandIn) -> None:
    status, body = app.sim.slash_command("watch <!channel>")
    assert status == 200
    assert "Usage: `/dmarc watch DOMAIN [SELECTOR...]`" in body and "<!channel>" not in body
    status, body = app.sim.slash_command("watch")
    assert "Give a domain name" in body


@pytest.mark.slow
def test_list_and_unwatch_see_only_their_own_workspace(app: RunningApp, slack: SlackStandIn) -> None:
    # The bot token is T1's: every request it serves belongs to T1, whatever team the request
    # names. T2's watch is another installation's row in the same database.
    store = store_of(app)
    try:
        store.watches.add_watch("T2", "C2", "other.test", [], "U2")
    finally:
        store.close()
    app.sim.slash_command(f"watch {DOMAIN}", channel_id="C1", team_id="T1")
    # "Watching…" (through the response_url), then the first check's summary in the channel
    slack.wait_for("chat.postMessage", 1, ok_only=True)
    assert len(slack.calls("response_url")) == 1
    app.sim.slash_command("list", team_id="T1")
    slack.wait_for("response_url", 2)
    listed = slack.calls("response_url")[-1]
    assert DOMAIN in listed.params["text"] and "other.test" not in json.dumps(listed.params)
    assert "<#C1>" in json.dumps(listed.params["blocks"])
    app.sim.slash_command("unwatch other.test", team_id="T1")  # T2's watch: not T1's to remove
    slack.wait_for("response_url", 3)
    assert "is not watched in this workspace" in replies(slack)[-1]
    # a command that names T2 (a Slack Connect user's team) is still T1's installation
    app.sim.slash_command("unwatch other.test", team_id="T2")
    slack.wait_for("response_url", 4)
    assert "is not watched in this workspace" in replies(slack)[-1]
    store = store_of(app)
    try:
        assert [w.domain for w in store.watches.watches("T1")] == [DOMAIN]
        assert [w.domain for w in store.watches.watches("T2")] == ["other.test"]
    finally:
        store.close()
    slack.assert_no_violations()


@pytest.mark.slow
def test_the_report_watch_button_watches(app: RunningApp, slack: SlackStandIn) -> None:
    app.sim.block_action(
        slack_ids.ACTION_WATCH, report_button_value(DOMAIN, ["sel"]), channel_id="C3", team_id="T1"
    )
    post = slack.wait_for("chat.postMessage", ok_only=True)[0]
    assert post.params["channel"] == "C3" and "Now watching" in post.text
    store = store_of(app)
    try:
        watch = store.watches.watch("T1", DOMAIN)
        assert watch is not None and watch.selectors == ("sel",)
    finally:
        store.close()


@pytest.mark.slow
def test_a_forged_watch_button_is_refused(app: RunningApp, slack: SlackStandIn) -> None:
    app.sim.block_action(slack_ids.ACTION_WATCH, '{"d": "not a domain!"}')
    slack.wait_for("response_url")
    assert "no longer works" in replies(slack)[0]


@pytest.mark.slow
def test_app_home_lists_the_workspace_watches(app: RunningApp, slack: SlackStandIn) -> None:
    store = store_of(app)
    try:
        store.watches.add_watch("T2", "C2", "other.test", [], "U2")  # another installation's
    finally:
        store.close()
    app.sim.slash_command(f"watch {DOMAIN}", channel_id="C1", team_id="T1")
    slack.wait_for("chat.postMessage", ok_only=True)
    app.sim.event({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"}, team_id="T1")
    view = slack.wait_for("views.publish")[0].params["view"]
    text = json.dumps(view)
    assert "Watched domains (1)" in text and DOMAIN in text and "other.test" not in text
    slack.assert_no_violations()


@pytest.mark.slow
def test_a_watch_made_in_slack_alerts_its_channel(
    app: RunningApp, world: NsdServer, slack: SlackStandIn
) -> None:
    app.sim.slash_command(f"watch {DOMAIN} sel", channel_id="C1", team_id="T1")
    slack.wait_for("chat.postMessage", ok_only=True)
    world.set_zone(DOMAIN, domain_zone(DOMAIN, spf=None, dkim=None))
    monitor = MonitorHarness(store_of(app), app.settings, slack, world)
    try:
        monitor.cycle()
    finally:
        monitor.stores.close()
    alert = slack.posts()[-1]
    assert alert.params["channel"] == "C1"
    assert alert.text.startswith(f"{DOMAIN}: mail now fails DMARC")
    fix = [e for b in alert.blocks if b["type"] == "actions" for e in b["elements"]]
    assert fix[0]["action_id"] == slack_ids.ACTION_FIX
    slack.assert_no_violations()


def test_an_idn_is_named_in_unicode_with_its_a_label_once(
    app: RunningApp, world: NsdServer, slack: SlackStandIn
) -> None:
    world.set_zone("xn--bcher-kva.test", domain_zone("xn--bcher-kva.test"))
    status, _ = app.sim.slash_command("watch bücher.test", channel_id="C1", team_id="T1")
    assert status == 200
    post = slack.wait_for("chat.postMessage", ok_only=True)[0]
    assert replies(slack)[0].startswith("Watching bücher.test (xn--bcher-kva.test) for this channel")
    assert post.text.startswith("Now watching bücher.test (xn--bcher-kva.test) in this channel")
    assert post.text.count("xn--") == 1
    shown = "\n".join(b["text"]["text"] for b in post.blocks if b["type"] == "section")
    assert "*bücher.test* (`xn--bcher-kva.test`)" in shown and shown.count("xn--") == 1
    slack.assert_no_violations()
