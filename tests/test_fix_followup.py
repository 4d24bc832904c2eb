"""A watched domain verifies its fix plans on its own: the plan is posted through the app's real
endpoint (signed clicks and submissions, the Slack stand-in), stored in the real database file the
monitor then reads, and the monitor's cycle against NSD posts "fixed" in the plan's thread."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.monitor.alert_delivery import ChannelPacer, client_for_team_factory, deliver_pending
from bot.monitor.cycle import check_watches
from bot.slack import ids as slack_ids
from bot.store.database import utcnow
from bot.store.fix_plans import FixPlanStore
from bot.store.stores import open_stores
from handlers.dns.resolver import DnsSession, parse_nameserver
from tests.applog import capture_app_log, wait_for_log
from tests.conftest import AppFactory
from tests.dnstest import FaultProxy, NsdServer
from tests.slackapp import RunningApp
from tests.slackstub import Call, SlackStandIn
from tests.test_fixit_slack import (
    REPORT_TS,
    TIMEOUT,
    bind_lines,
    click_verify,
    fix_value,
    open_modal,
    publish,
    submit,
    texts,
    thread_posts,
    verify_value,
)
from tests.test_record_fixes import fixit_zones
from tests.watchtest import MonitorHarness

DOMAIN = "norua.test"
DROP = ["_dmarc.norua IN TXT"]  # the zone line the rua fix replaces


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(fixit_zones())
    return nsd


@pytest.fixture
def app(world: NsdServer, make_app: AppFactory) -> RunningApp:
    return make_app(world, dns_timeout=0.5)


@pytest.fixture
def monitor(app: RunningApp, slack: SlackStandIn, world: NsdServer) -> Iterator[MonitorHarness]:
    """The monitor on the app's own database file, as `dmarcbot serve` runs both."""
    harness = MonitorHarness(open_stores(app.settings.db_path), app.settings, slack, world)
    yield harness
    harness.stores.close()
    slack.assert_no_violations()


def post_plan(app: RunningApp, slack: SlackStandIn, team: str = "T1") -> Call:
    """Fix it on the report, submit the proposal as shown: the plan goes into the thread."""
    modal = open_modal(app, slack, fix_value("dmarc.no_rua", DOMAIN, owner=team), team_id=team)
    status, _ = submit(app, modal, team_id=team)
    assert status == 200
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    return plan


def fixed_replies(slack: SlackStandIn) -> list[Call]:
    return [c for c in thread_posts(slack) if "*Fixed*" in texts(c.blocks)]


def wait_for_stored_plan(store: FixPlanStore, team: str = "T1") -> None:
    """The plan is stored just after its post: wait for the listener's thread to get there."""
    deadline = time.monotonic() + TIMEOUT
    while not store.pending_fix_plans(team, DOMAIN):
        assert time.monotonic() < deadline, "the plan was never stored"
        time.sleep(0.02)


@pytest.mark.slow
def test_the_next_cycle_after_publishing_posts_fixed_in_the_plans_thread(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN, channel="C1", selectors=())
    monitor.cycle()  # the baseline
    plan = post_plan(app, slack)
    wait_for_stored_plan(monitor.stores.fix_plans)

    checked, _ = monitor.cycle()  # not published yet: nothing said, the plan keeps waiting
    assert checked.fixes_verified == 0 and fixed_replies(slack) == []
    assert len(monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN)) == 1

    publish(world, bind_lines(plan), DROP)
    checked, _ = monitor.cycle()
    assert checked.fixes_verified == 1
    [fixed] = fixed_replies(slack)
    assert fixed.params["channel"] == "C1" and fixed.params["thread_ts"] == REPORT_TS
    text = texts(fixed.blocks)
    assert f"the planned record for `{DOMAIN}` is live" in text
    assert "`dmarc.no_rua`" in text.split("Still present")[0]  # cleared
    assert "scheduled check" in text and "asked by" not in text
    # the watch's own change alert is a top-level message beside it, not in the thread
    changed = [p for p in slack.posts() if p.text.startswith(f"{DOMAIN}: DNS records changed")]
    assert len(changed) == 1 and "thread_ts" not in changed[0].params
    assert monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN) == []
    stored = [a for a in monitor.stores.outbox.alerts("T1") if a.kind == "fixed"]
    assert [(a.state, a.thread_ts, a.ts) for a in stored] == [("posted", REPORT_TS, fixed.response["ts"])]

    monitor.cycle()
    monitor.cycle()
    assert len(fixed_replies(slack)) == 1  # said once


@pytest.mark.slow
def test_a_fixed_reply_is_never_folded_into_a_digest(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN, channel="C1", selectors=())
    monitor.watch("dup.test", channel="C1", selectors=())
    monitor.cycle()
    plan = post_plan(app, slack)
    wait_for_stored_plan(monitor.stores.fix_plans)
    publish(world, bind_lines(plan), [*DROP, "_dmarc.dup IN TXT"])  # two changes in C1, one fix
    _, delivered = monitor.cycle()
    assert delivered.messages_posted == 2
    digest, reply = slack.posts()[-2:]
    assert digest.text.startswith("2 alerts for watched domains") and "thread_ts" not in digest.params
    assert "*Fixed*" not in texts(digest.blocks)
    assert reply.params["thread_ts"] == REPORT_TS and "*Fixed*" in texts(reply.blocks)


@pytest.mark.slow
def test_a_crash_between_the_outbox_and_the_post_posts_fixed_once(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN, channel="C1", selectors=())
    monitor.cycle()
    plan = post_plan(app, slack)
    wait_for_stored_plan(monitor.stores.fix_plans)
    publish(world, bind_lines(plan), DROP)
    session = DnsSession(nameservers=(parse_nameserver(world.address),), timeout=1.0, attempts=1)
    assert check_watches(monitor.stores, session).fixes_verified == 1
    monitor.stores.close()  # the process dies before delivering

    restarted = open_stores(app.settings.db_path)
    try:
        again = DnsSession(nameservers=(parse_nameserver(world.address),), timeout=1.0, attempts=1)
        assert check_watches(restarted, again).fixes_verified == 0  # settled: not verified twice
        for _ in range(2):
            deliver_pending(restarted.outbox, client_for_team_factory(app.settings), ChannelPacer(0))
    finally:
        restarted.close()
    assert len(fixed_replies(slack)) == 1


@pytest.mark.slow
def test_a_dns_outage_never_verifies_and_never_gives_up_on_a_plan(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, fault_proxy: FaultProxy, slack: SlackStandIn
) -> None:
    monitor.dns = fault_proxy
    monitor.watch(DOMAIN, channel="C1", selectors=())
    monitor.cycle()
    plan = post_plan(app, slack)
    wait_for_stored_plan(monitor.stores.fix_plans)
    publish(world, bind_lines(plan), DROP)
    fault_proxy.add_fault(f"_dmarc.{DOMAIN}", "servfail")
    checked, _ = monitor.cycle()
    assert checked.outages == 1 and checked.fixes_verified == 0
    assert fixed_replies(slack) == [] and monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN)
    fault_proxy.clear_faults()
    checked, _ = monitor.cycle()
    assert checked.fixes_verified == 1 and len(fixed_replies(slack)) == 1


@pytest.mark.slow
def test_a_plan_verified_by_hand_is_not_announced_again(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN, channel="C1", selectors=())
    monitor.cycle()
    plan = post_plan(app, slack)
    wait_for_stored_plan(monitor.stores.fix_plans)
    publish(world, bind_lines(plan), DROP)
    click_verify(app, plan)
    slack.wait_for("chat.postMessage", 2, timeout=TIMEOUT, ok_only=True)
    assert len(fixed_replies(slack)) == 1
    plan_json = json.loads(verify_value(plan))
    assert plan_json["d"] == DOMAIN
    deadline = time.monotonic() + TIMEOUT
    while monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN):  # settled just after the reply
        assert time.monotonic() < deadline
        time.sleep(0.02)
    checked, _ = monitor.cycle()
    assert checked.fixes_verified == 0 and len(fixed_replies(slack)) == 1


@pytest.mark.slow
def test_a_plan_never_published_expires_after_the_wait(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    from bot.monitor.fix_followup import PLAN_WAIT

    monitor.watch(DOMAIN, channel="C1", selectors=())
    plan = post_plan(app, slack)
    wait_for_stored_plan(monitor.stores.fix_plans)
    session = DnsSession(nameservers=(parse_nameserver(world.address),), timeout=1.0, attempts=1)
    check_watches(monitor.stores, session, now=utcnow() + PLAN_WAIT - timedelta(hours=1))
    assert monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN)  # still waiting
    check_watches(monitor.stores, session, now=utcnow() + PLAN_WAIT + timedelta(hours=1))
    assert monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN) == []
    publish(world, bind_lines(plan), DROP)  # published too late: the monitor no longer says it
    monitor.cycle()
    assert fixed_replies(slack) == []


@pytest.mark.slow
def test_only_the_team_that_planned_the_fix_verifies_it(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN, channel="C9", team="T2", selectors=())  # another workspace's watch
    monitor.cycle()
    plan = post_plan(app, slack, team="T1")
    wait_for_stored_plan(monitor.stores.fix_plans)
    publish(world, bind_lines(plan), DROP)
    checked, _ = monitor.cycle()
    assert checked.fixes_verified == 0 and fixed_replies(slack) == []
    assert monitor.stores.fix_plans.pending_fix_plans("T2", DOMAIN) == []
    assert len(monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN)) == 1
    assert {a.channel_id for a in monitor.stores.outbox.alerts("T2")} == {"C9"}


@pytest.mark.slow
def test_a_replayed_submission_stores_the_plan_once(
    app: RunningApp, monitor: MonitorHarness, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    modal = open_modal(app, slack, fix_value("dmarc.no_rua", DOMAIN))
    submit(app, modal)
    submit(app, modal)  # Slack may deliver a request twice inside the signature window
    slack.wait_for("chat.postMessage", 2, timeout=TIMEOUT, ok_only=True)
    # both listeners have written: one stored the plan, the other found it there
    wait_for_log(caplog, f"fix plan for {DOMAIN} (dmarc.no_rua) in C1: stored")
    wait_for_log(caplog, f"fix plan for {DOMAIN} (dmarc.no_rua) in C1: already stored")
    assert len(monitor.stores.fix_plans.pending_fix_plans("T1", DOMAIN)) == 1


# -- flattened includes are watched for drift ------------------------------------------------------

BIG = "big.test"
FLATTENED = "i0.big.test"  # the include the default flatten plan for big.test replaces
MOVED = [
    'i0.big IN TXT "v=spf1 ip6:2001:db8:: include:extra.big.test -all"',
    'extra.big IN TXT "v=spf1 ip4:203.0.113.7 -all"',
]  # a new address, down its own chain


def drift_posts(slack: SlackStandIn) -> list[Call]:
    return [p for p in slack.posts() if p.text.startswith(f"{BIG}: flattened SPF is stale")]


def flatten_and_verify(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> list[str]:
    """Watch big.test, post the flatten plan through the endpoint, publish it, and let the monitor
    verify it; returns the plan's zone lines."""
    monitor.watch(BIG, channel="C1", selectors=())
    monitor.cycle()
    modal = open_modal(app, slack, fix_value("spf.too_many_lookups", BIG))
    submit(app, modal)
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert json.loads(verify_value(plan))["w"] == [FLATTENED]
    deadline = time.monotonic() + TIMEOUT
    while not monitor.stores.fix_plans.pending_fix_plans("T1", BIG):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    lines = bind_lines(plan)
    publish(world, lines, ['big IN TXT "v=spf1'])
    checked, _ = monitor.cycle()
    assert checked.fixes_verified == 1
    return lines


@pytest.mark.slow
def test_a_provider_changing_a_flattened_include_alerts_once_with_a_reflatten_button(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    lines = flatten_and_verify(app, monitor, world, slack)
    [tracked] = monitor.stores.fix_plans.flattened_includes("T1", BIG)
    assert tracked.include == FLATTENED
    assert tracked.terms == ("ip4:198.51.100.0", "ip6:2001:db8::")  # the baseline, same cycle
    monitor.cycle()
    assert drift_posts(slack) == []  # no change, no alert

    publish(world, [*lines, *MOVED], ['big IN TXT "v=spf1', "i0.big IN TXT"])
    monitor.cycle()
    [alert] = drift_posts(slack)
    assert alert.params["channel"] == "C1" and "thread_ts" not in alert.params
    text = texts(alert.blocks)
    assert f"include:{FLATTENED}" in text and "the flattened SPF is stale" in text
    assert "*New addresses:* `ip4:203.0.113.7`" in text
    assert "*No longer the provider's:* `ip4:198.51.100.0`" in text
    [button] = [e for b in alert.blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == slack_ids.ACTION_FIX
    assert json.loads(button["value"]) == {
        "f": "spf.flattened_stale",
        "d": BIG,
        "o": "T1",
        "s": [],
        "i": FLATTENED,
        "r": ["ip4:198.51.100.0"],
        "a": ["ip4:203.0.113.7"],
    }
    [tracked] = monitor.stores.fix_plans.flattened_includes("T1", BIG)
    assert tracked.terms == ("ip4:203.0.113.7", "ip6:2001:db8::")
    monitor.cycle()
    assert len(drift_posts(slack)) == 1  # said once

    # the button re-flattens: the old address out, the new one in, the rest of the record kept
    posted = len(slack.calls("views.update"))
    status, _ = app.sim.block_action(slack_ids.ACTION_FIX, button["value"], team_id="T1")
    assert status == 200
    slack.wait_for("views.update", posted + 1, timeout=TIMEOUT, ok_only=True)
    view = slack.calls("views.update")[-1].params["view"]
    proposed = texts(view["blocks"])
    record = next(line for line in proposed.splitlines() if "v=spf1" in line and "203.0.113.7" in line)
    assert "ip4:198.51.100.0 " not in record and "ip6:2001:db8:: " in record
    assert "include:i1.big.test" in record and "Not offered" not in proposed


@pytest.mark.slow
def test_an_outage_on_a_flattened_include_is_never_a_change(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, fault_proxy: FaultProxy, slack: SlackStandIn
) -> None:
    lines = flatten_and_verify(app, monitor, world, slack)
    monitor.dns = fault_proxy
    fault_proxy.add_fault("extra.big.test", "servfail")
    fault_proxy.add_fault(FLATTENED, "servfail")
    publish(world, [*lines, *MOVED], ['big IN TXT "v=spf1', "i0.big IN TXT"])
    for _ in range(3):
        monitor.cycle()
    assert drift_posts(slack) == []
    [tracked] = monitor.stores.fix_plans.flattened_includes("T1", BIG)
    assert tracked.terms == ("ip4:198.51.100.0", "ip6:2001:db8::")  # left as it was
    fault_proxy.clear_faults()
    monitor.cycle()
    assert len(drift_posts(slack)) == 1


@pytest.mark.slow
def test_another_teams_flattening_is_its_own(
    app: RunningApp, monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    lines = flatten_and_verify(app, monitor, world, slack)
    monitor.watch(BIG, channel="C9", team="T2", selectors=())
    publish(world, [*lines, *MOVED], ['big IN TXT "v=spf1', "i0.big IN TXT"])
    monitor.cycle()
    assert [p.params["channel"] for p in drift_posts(slack)] == ["C1"]
    assert monitor.stores.fix_plans.flattened_includes("T2", BIG) == []


def test_a_forged_reflatten_button_is_refused(
    app: RunningApp, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    value = json.dumps(
        {
            "f": "spf.flattened_stale",
            "d": BIG,
            "o": "T1",
            "s": [],
            "i": FLATTENED,
            "r": ["include:attacker.example"],
            "a": [],
        }
    )
    app.sim.block_action(slack_ids.ACTION_FIX, value, team_id="T1")
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "Re-check" in told.params["text"]
    wait_for_log(caplog, "opening the fix-it flow: finished")
    assert slack.calls("views.open") == []


def test_a_posted_plan_keeps_its_records_and_its_proposal_is_audited(
    app: RunningApp, monitor: MonitorHarness, slack: SlackStandIn
) -> None:
    post_plan(app, slack)
    deadline = time.monotonic() + TIMEOUT
    while not monitor.stores.applies.audit(domain=DOMAIN):
        assert time.monotonic() < deadline, "the proposal was never audited"
        time.sleep(0.02)
    [row] = monitor.stores.applies.plans(domain=DOMAIN)
    assert row.changes is not None
    [change] = row.changes
    assert (change.host, change.rdtype) == (f"_dmarc.{DOMAIN}", "TXT")
    [after] = change.after
    assert after.startswith("v=DMARC1") and "rua=" in after
    [proposal] = monitor.stores.applies.audit(domain=DOMAIN)
    assert (proposal.action, proposal.team_id, proposal.plan_id) == ("proposal", "T1", row.id)
    assert proposal.actor == row.plan.proposed_by != ""
    assert proposal.after == (f"_dmarc.{DOMAIN} TXT {after}",)
