"""Fix it for MTA-STS, TLS-RPT and BIMI, end to end: signed clicks into the app's real endpoint, its
Web API calls to the Slack stand-in, its DNS to a real NSD serving the fix-it test zones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.slack import ids as slack_ids
from bot.slack.blocks.fixit import input_id
from handlers.domain.mta_sts import parse_policy
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.httpstest import HttpsServer, LocalCa, Page
from tests.slackstub import SlackStandIn
from tests.test_fixit_slack import (
    REPORT_TS,
    TIMEOUT,
    bind_lines,
    change,
    click_verify,
    fix_value,
    open_modal,
    publish,
    submit,
    texts,
    thread_posts,
    typed,
    unescape,
)
from tests.test_record_fixes import fixit_zones


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(fixit_zones())
    return nsd


def steps(text: str) -> str:
    return text[text.index("*Steps*") :]


def test_mta_sts_proposes_a_fresh_record_and_the_policy_file_in_testing_mode(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, tmp_path: Path
) -> None:
    ca = LocalCa(tmp_path)
    app = make_app(world, dns_timeout=0.5, ca_file=str(ca.ca_file))
    modal = open_modal(app, slack, fix_value("mta_sts.missing", "pnone.test"))
    assert "Not offered" not in modal.text
    (record,) = modal.proposed().splitlines()[:1]
    assert re.fullmatch(r"v=STSv1; id=\d{8}T\d{6}", record), record
    assert "https://mta-sts.pnone.test/.well-known/mta-sts.txt" in steps(modal.text)
    policy = served_file(modal.text)
    assert policy == "version: STSv1\nmode: testing\nmx: mx.pnone.test\nmax_age: 604800\n"
    parsed, problems = parse_policy(policy)  # what the check itself would read
    assert problems == [] and parsed is not None and parsed.mode == "testing"

    status, body = submit(app, modal, {})
    assert status == 200 and body in ("", "{}"), body
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert plan.params["thread_ts"] == REPORT_TS
    plan_text = unescape(texts(plan.blocks))
    assert served_file(plan_text) == policy
    (line,) = bind_lines(plan)
    # the plan is made again from fresh records when the form is submitted: its id= is the time
    # then, the modal's or a second later, never an old one
    planned = re.fullmatch(r'_mta-sts\.pnone\.test\. 3600 IN TXT "v=STSv1; id=(\d{8}T\d{6})"', line)
    assert planned is not None and planned.group(1) >= record.split("id=")[1], line

    # the record published, the file not served yet: not live, and the answer says why
    publish(world, [line], [])
    click_verify(app, plan)
    slack.wait_for("chat.postMessage", 2, timeout=TIMEOUT, ok_only=True)
    answer = unescape(texts(thread_posts(slack)[-1].blocks))
    assert "Not live yet" in answer and "mta-sts.pnone.test has no address" in answer

    # the file served as the plan shows it, on a host with a certificate from the CA configured
    with HttpsServer(ca) as server:
        server.add("mta-sts.pnone.test", ca.leaf(["mta-sts.pnone.test"]), Page(body=policy.encode()))
        publish(world, [line, f"mta-sts.pnone.test. 3600 IN A {server.address}"], [])
        click_verify(app, plan)
        slack.wait_for("chat.postMessage", 3, timeout=TIMEOUT, ok_only=True)
    fixed = texts(thread_posts(slack)[-1].blocks)
    assert "*Fixed*" in fixed and "`mta_sts.missing`" in fixed, fixed
    slack.assert_no_violations()


def served_file(text: str) -> str:
    """The content of the "File to serve" section of a modal or plan."""
    return re.search(r"\*File to serve\* at .*?```(.*?)```", text, re.DOTALL)[1]  # type: ignore[index]


def test_a_domain_without_mx_hosts_is_not_offered_an_mta_sts_policy(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("mta_sts.missing", "nodmarc.test"))
    assert "Not offered" in modal.text
    assert "nodmarc.test publishes no MX host" in modal.text


def test_tls_rpt_reports_to_the_teams_address_or_asks_for_it(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    # the team's report mailbox is known from its DMARC record: proposed at once
    modal = open_modal(app, slack, fix_value("tls_rpt.missing", "pnone.test"))
    assert modal.proposed() == "v=TLSRPTv1; rua=mailto:dmarc@pnone.test"
    # unknown: the modal asks for it, and offers nothing until it is given
    app = make_app(world, dns_timeout=0.5)
    slack.reset()
    modal = open_modal(app, slack, fix_value("tls_rpt.missing", "nodmarc.test"))
    assert "Not offered" in modal.text and "no address for TLS reports yet" in modal.text
    status, body = submit(app, modal)
    assert status == 200 and body in ("", "{}")
    [refused] = slack.wait_for("chat.postEphemeral", 1, timeout=TIMEOUT)
    assert "The plan was not posted: no address for TLS reports yet" in refused.params["text"]
    assert not slack.calls("chat.postMessage")
    # a typed address that is not one is answered on its field
    state = modal.state()
    state[input_id("tls_rua")] = {input_id("tls_rua"): typed("not an address")}
    status, body = submit(app, modal, state)
    assert status == 200
    errors = json.loads(body)["errors"]
    assert "is not a mail address: write it like tls-reports@nodmarc.test" in errors[input_id("tls_rua")]
    # typed: the proposal follows, and the plan is posted
    modal = change(app, slack, modal, "tls_rua", typed("tls@nodmarc.test"), updates_before=1)
    assert modal.proposed() == "v=TLSRPTv1; rua=mailto:tls@nodmarc.test"
    status, _ = submit(app, modal)
    assert status == 200
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert "_smtp._tls.nodmarc.test. 3600 IN TXT" in bind_lines(plan)[0]
    slack.assert_no_violations()


def test_bimi_puts_dmarc_enforcement_first_and_links_the_policy_step(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("bimi.missing", "pnone.test"))
    assert modal.proposed() == "v=BIMI1; l=https://pnone.test/bimi/logo.svg"
    shown = steps(modal.text)
    assert shown.index("1. First move DMARC to enforcement") < shown.index("Publish the record below")
    assert "dmarc.policy_none" in shown
    modal = change(app, slack, modal, "logo", typed("https://cdn.pnone.test/brand.svg"), updates_before=1)
    assert modal.proposed() == "v=BIMI1; l=https://cdn.pnone.test/brand.svg"
    status, _ = submit(app, modal)
    assert status == 200
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    (actions,) = [b for b in plan.blocks if b.get("type") == "actions"]
    verify, first = actions["elements"]
    assert verify["action_id"] == slack_ids.ACTION_FIX_VERIFY
    assert first["action_id"] == slack_ids.ACTION_FIX
    assert json.loads(first["value"])["f"] == "dmarc.policy_none"
    assert json.loads(first["value"])["d"] == "pnone.test"
    # the linked button opens the policy-progression fix
    updates = len(slack.calls("views.update"))
    status, _ = app.sim.block_action(slack_ids.ACTION_FIX, first["value"], message_ts=plan.response["ts"])
    assert status == 200
    opened = slack.wait_for("views.open", 2, timeout=TIMEOUT)[-1]
    view_id = opened.response["view"]["id"]
    slack.wait_for("views.update", updates + 1, timeout=TIMEOUT, ok_only=True)
    progression = unescape(texts(slack.view(view_id)))
    assert "Next DMARC policy step" in progression and "v=DMARC1; p=quarantine" in progression
    slack.assert_no_violations()


def test_bimi_at_enforcement_has_no_prerequisite(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("bimi.missing", "norua.test"))  # p=reject
    assert "First move DMARC" not in modal.text
    status, _ = submit(app, modal)
    assert status == 200
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    (actions,) = [b for b in plan.blocks if b.get("type") == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [slack_ids.ACTION_FIX_VERIFY]
