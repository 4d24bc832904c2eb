"""Applying a fix plan from Slack, end to end: the plan posted through the app's signed endpoint, the
Apply button, the confirmation modal, the approval rules, the write through dns-lexicon to a real
PowerDNS (which is also the DNS the app reads), Verify, and Roll back; each refusal; a record changed
between plan and apply; a provider error half-way through a two-record plan."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bot.apply.providers import DnsProviders, ZoneProvider
from bot.slack import ids as slack_ids
from bot.slack.fix_plans import FixPlan
from bot.store.apply_audit import record_proposal
from bot.store.stores import open_stores
from handlers.fixes.changes import RecordChange
from handlers.fixes.session import ExpectedRecord
from tests.applytest import fresh_zone, pdns, pdns_zone, served
from tests.conftest import AppFactory
from tests.dnstest.pdns import PdnsServer
from tests.dnstest.zones import make_zone
from tests.slackapp import RunningApp
from tests.slackstub import Call, SlackStandIn
from tests.test_fixit_slack import REPORT_TS, TIMEOUT, fix_value, open_modal, submit, texts, unescape

__all__ = ["pdns"]

pytestmark = pytest.mark.slow

VERIFY = "google-site-verification=k3y"
SPF = "v=spf1 ip4:192.0.2.1 -all"
OLD_DMARC = "v=DMARC1; p=reject"
PROPOSER, APPROVER, OTHER = "U1", "U2", "U3"


@pytest.fixture
def world(pdns: PdnsServer) -> tuple[PdnsServer, ZoneProvider]:
    """A fresh zone with a DMARC record lacking rua (the dmarc.no_rua fix), served by PowerDNS with
    the parent zone, so every lookup of the check is answered there."""
    pdns.load_zone("test", make_zone("test", []))
    domain = fresh_zone("slack")
    zone = pdns_zone(
        pdns,
        domain,
        [("@", "TXT", VERIFY), ("@", "TXT", SPF), ("_dmarc", "TXT", OLD_DMARC)],
        propagation_timeout=5.0,
    )
    return pdns, zone


def start(make_app: AppFactory, world: tuple[PdnsServer, ZoneProvider], **settings: Any) -> RunningApp:
    server, zone = world
    return make_app(server.address, dns_timeout=0.5, dns_providers=DnsProviders((zone,)), **settings)


def post_plan(app: RunningApp, slack: SlackStandIn, domain: str) -> Call:
    modal = open_modal(app, slack, fix_value("dmarc.no_rua", domain))
    status, _ = submit(app, modal)
    assert status == 200
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    # The plan is stored just after its post: its Apply button works from then on.
    deadline = time.monotonic() + TIMEOUT
    while not audit_actions(app, domain):
        assert time.monotonic() < deadline, "the plan was never stored"
        time.sleep(0.02)
    return plan


def button(message: Call | dict[str, Any], action_id: str) -> str | None:
    blocks = message.blocks if isinstance(message, Call) else message["blocks"]
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    return None


def click(
    app: RunningApp, slack: SlackStandIn, action_id: str, value: str, user: str, team: str = "T1"
) -> None:
    status, _ = app.sim.block_action(action_id, value, user_id=user, team_id=team, message_ts=REPORT_TS)
    assert status == 200


def open_confirmation(
    app: RunningApp, slack: SlackStandIn, action_id: str, value: str, user: str
) -> dict[str, Any]:
    before = len(slack.calls("views.open"))
    click(app, slack, action_id, value, user)
    opened = slack.wait_for("views.open", before + 1, timeout=TIMEOUT)[-1]
    assert opened.ok, opened.response
    return slack.view(opened.response["view"]["id"])


def approve(app: RunningApp, view: dict[str, Any], user: str, team: str = "T1") -> None:
    status, _ = app.sim.view_submission(
        slack_ids.CALLBACK_APPLY_MODAL,
        {},
        private_metadata=view["private_metadata"],
        user_id=user,
        team_id=team,
    )
    assert status == 200


def wait_thread_post(slack: SlackStandIn, count: int) -> Call:
    """The `count`-th message posted in a thread after the plan itself."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        posts = [
            c
            for c in slack.calls("chat.postMessage")
            if c.ok and c.params.get("thread_ts") and not c.text.startswith("Fix planned")
        ]
        if len(posts) >= count:
            return posts[count - 1]
        assert time.monotonic() < deadline, "nothing posted in the thread"
        time.sleep(0.02)


def wait_ephemeral(slack: SlackStandIn, count: int = 1) -> Call:
    return slack.wait_for("chat.postEphemeral", count, timeout=TIMEOUT)[-1]


def audit_actions(app: RunningApp, domain: str) -> list[tuple[str, str, str | None]]:
    stores = open_stores(app.settings.db_path)
    try:
        return [(r.action, r.actor, r.approver) for r in stores.applies.audit(domain=domain)]
    finally:
        stores.close()


def test_apply_approve_live_verify_and_roll_back(
    world: tuple[PdnsServer, ZoneProvider], make_app: AppFactory, slack: SlackStandIn
) -> None:
    server, zone = world
    domain = zone.zone
    app = start(make_app, world)
    plan = post_plan(app, slack, domain)
    value = button(plan, slack_ids.ACTION_FIX_APPLY)
    assert value is not None, "a plan for a configured zone has an Apply button"

    # The proposer alone may not approve: the modal says who can, and offers no submit.
    view = open_confirmation(app, slack, slack_ids.ACTION_FIX_APPLY, value, PROPOSER)
    shown = unescape(texts(view["blocks"]))
    assert view.get("submit") is None
    assert "You proposed this plan, so you cannot approve it alone" in shown
    assert f"other than <@{PROPOSER}> who proposed it" in shown
    assert f"Zone `{domain}` through *powerdns*" in shown and OLD_DMARC in shown
    assert f"proposed by <@{PROPOSER}>" in shown

    view = open_confirmation(app, slack, slack_ids.ACTION_FIX_APPLY, value, APPROVER)
    assert view["submit"]["text"] == "Approve and apply"
    approve(app, view, APPROVER)
    applied = wait_thread_post(slack, 1)
    assert applied.params["thread_ts"] == REPORT_TS and applied.params["channel"] == "C1"
    head = unescape(texts(applied.blocks))
    assert f"Applied by <@{PROPOSER}>, approved by <@{APPROVER}>" in head
    assert "*Fixed*: the planned record" in head  # the existing Verify's answer
    [after] = served(server, f"_dmarc.{domain}")
    assert after.startswith("v=DMARC1; p=reject") and f"rua=mailto:dmarc-reports@{domain}" in after
    assert served(server, domain) == sorted([VERIFY, SPF])  # the other apex TXT records survive

    rollback = button(applied, slack_ids.ACTION_FIX_ROLLBACK)
    assert rollback is not None
    view = open_confirmation(app, slack, slack_ids.ACTION_FIX_ROLLBACK, rollback, OTHER)
    assert view["submit"]["text"] == "Approve and roll back"
    approve(app, view, OTHER)
    rolled = wait_thread_post(slack, 2)
    assert f"Rolled back by <@{PROPOSER}>, approved by <@{OTHER}>" in unescape(texts(rolled.blocks))
    assert button(rolled, slack_ids.ACTION_FIX_ROLLBACK) is None
    assert served(server, f"_dmarc.{domain}") == [OLD_DMARC]
    assert served(server, domain) == sorted([VERIFY, SPF])

    assert audit_actions(app, domain) == [
        ("proposal", PROPOSER, None),
        ("approval", PROPOSER, APPROVER),
        ("write", PROPOSER, APPROVER),
        ("applied", PROPOSER, APPROVER),
        ("approval", PROPOSER, OTHER),
        ("write", PROPOSER, OTHER),
        ("rollback", PROPOSER, OTHER),
    ]
    slack.assert_no_violations()


def test_each_refusal_writes_nothing_and_is_audited(
    world: tuple[PdnsServer, ZoneProvider], make_app: AppFactory, slack: SlackStandIn
) -> None:
    server, zone = world
    domain = zone.zone
    slack.set_usergroup("S0APPROVE", [APPROVER, PROPOSER])
    app = start(make_app, world, approvers=("S0APPROVE",))
    value = button(post_plan(app, slack, domain), slack_ids.ACTION_FIX_APPLY)
    assert value is not None

    view = open_confirmation(app, slack, slack_ids.ACTION_FIX_APPLY, value, OTHER)
    assert "You are not one of the approvers" in unescape(texts(view["blocks"]))
    assert "<!subteam^S0APPROVE>" in unescape(texts(view["blocks"])) and view.get("submit") is None

    # Submissions the modal never offered (forged, or from an older modal) are judged again.
    approve(app, view, OTHER)
    assert "You are not one of the approvers" in wait_ephemeral(slack, 1).params["text"]
    approve(app, view, PROPOSER)
    assert "cannot approve it alone" in wait_ephemeral(slack, 2).params["text"]
    approve(app, view, "U9", team="T2")  # a Slack Connect user of another organisation
    assert "another organisation" in wait_ephemeral(slack, 3).params["text"]
    click(app, slack, slack_ids.ACTION_FIX_APPLY, value, "U9", team="T2")
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "another organisation" in told.params["text"]

    assert served(server, f"_dmarc.{domain}") == [OLD_DMARC]
    assert [a for a, _, _ in audit_actions(app, domain)] == [
        "proposal",
        "refusal",
        "refusal",
        "refusal",
        "refusal",
    ]
    assert [c for c in slack.calls("chat.postMessage") if c.params.get("thread_ts")][1:] == []


def test_a_record_changed_between_plan_and_apply_is_refused(
    world: tuple[PdnsServer, ZoneProvider], make_app: AppFactory, slack: SlackStandIn
) -> None:
    server, zone = world
    domain = zone.zone
    app = start(make_app, world)
    value = button(post_plan(app, slack, domain), slack_ids.ACTION_FIX_APPLY)
    assert value is not None
    changed = "v=DMARC1; p=quarantine; rua=mailto:someone@elsewhere.test"
    server.load_zone(
        domain, make_zone(domain, [("@", "TXT", VERIFY), ("@", "TXT", SPF), ("_dmarc", "TXT", changed)])
    )
    approve(app, open_confirmation(app, slack, slack_ids.ACTION_FIX_APPLY, value, APPROVER), APPROVER)
    answer = unescape(texts(wait_thread_post(slack, 1).blocks))
    assert "the record changed since the plan was made; make a new plan" in answer
    assert button(wait_thread_post(slack, 1), slack_ids.ACTION_FIX_ROLLBACK) is None
    assert served(server, f"_dmarc.{domain}") == [changed]
    assert audit_actions(app, domain)[-1][0] == "refusal"


def test_a_provider_error_half_way_leaves_the_zone_as_it_was(
    world: tuple[PdnsServer, ZoneProvider], make_app: AppFactory, slack: SlackStandIn
) -> None:
    server, zone = world
    domain = zone.zone
    key = "v=DKIM1; k=rsa; p=MIGfMA0"
    server.load_zone(
        domain,
        make_zone(
            domain,
            [
                ("@", "TXT", VERIFY),
                ("@", "TXT", SPF),
                ("_dmarc", "TXT", OLD_DMARC),
                ("s1._domainkey", "TXT", key),
            ],
        ),
    )
    app = start(make_app, world)
    plan = FixPlan(
        team_id="T1",
        channel_id="C1",
        thread_ts=REPORT_TS,
        domain=domain,
        kind="dmarc",
        finding_id="dmarc.no_rua",
        expected=(ExpectedRecord(f"_dmarc.{domain}", "TXT", "x"),),
        clears=("dmarc.no_rua",),
        proposed_by=PROPOSER,
    )
    # Two record sets; PowerDNS refuses the second (a CNAME beside the selector's TXT, RFC 1034
    # §3.6.2), after the first was written.
    changes = [
        RecordChange(f"_dmarc.{domain}", "TXT", (OLD_DMARC,), ("v=DMARC1; p=reject; rua=mailto:d@x.test",)),
        RecordChange(f"s1._domainkey.{domain}", "CNAME", (), ("s1.dkim.provider.test",)),
    ]
    stores = open_stores(app.settings.db_path)
    try:
        assert stores.fix_plans.save_fix_plan(plan)
        record_proposal(stores.applies, plan, changes)
    finally:
        stores.close()
    value = json.dumps({"k": plan.key()})
    approve(app, open_confirmation(app, slack, slack_ids.ACTION_FIX_APPLY, value, APPROVER), APPROVER)
    answer = wait_thread_post(slack, 1)
    text = texts(answer.blocks)
    assert "The DNS provider refused the change" in text and "HTTP 422" in text
    assert "every record written was restored" in text
    assert "<" not in text.split("refused the change", 1)[1].replace("<@", "")  # escaped
    assert served(server, f"_dmarc.{domain}") == [OLD_DMARC]
    assert served(server, f"s1._domainkey.{domain}") == [key]
    assert served(server, domain) == sorted([VERIFY, SPF])
    assert [a for a, _, _ in audit_actions(app, domain)] == [
        "proposal",
        "approval",
        "write",
        "provider_error",
        "rollback",
        "rollback",
    ]
