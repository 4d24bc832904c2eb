"""The fix-it flow end to end: signed clicks into the app's real endpoint, its Web API calls to the
Slack stand-in, its DNS to a real NSD serving `fixit_zones`.

For each fix kind: the click opens the modal (inside the trigger's 3 seconds, with a record both
parsers accept), an input change updates it, the submission posts the plan in the report's thread,
Verify before publishing says "not live yet", and after the plan's own BIND line is published in
the test zone Verify says "fixed". Then: invalid input gets `response_action: errors` on the field,
and a user of another team is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.slack import ids as slack_ids
from bot.slack.blocks.fixit import input_id
from tests.applog import capture_app_log, wait_for_log
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.keys import rsa_public_key
from tests.slackapp import RunningApp
from tests.slackstub import Call, SlackStandIn
from tests.test_record_fixes import fixit_zones

REPORT_TS = "1700000000.000100"
TIMEOUT = 20


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(fixit_zones())
    return nsd


# -- helpers --------------------------------------------------------------------------------------


def fix_value(finding_id: str, domain: str, owner: str = "T1", selector: str | None = None) -> str:
    data: dict[str, Any] = {"f": finding_id, "d": domain, "o": owner, "s": []}
    if selector:
        data["x"], data["s"] = selector, [selector]
    return json.dumps(data)


def texts(obj: Any) -> str:
    """Every string in a JSON value, joined (block texts, option labels, values)."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        return "\n".join(texts(v) for v in obj.values())
    if isinstance(obj, list):
        return "\n".join(texts(v) for v in obj)
    return ""


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class Modal:
    view_id: str
    view: dict[str, Any]

    @property
    def metadata(self) -> str:
        return str(self.view["private_metadata"])

    @property
    def text(self) -> str:
        return unescape(texts(self.view["blocks"]))

    def proposed(self) -> str:
        """The proposed records shown in the modal (code blocks of the *Proposed* section)."""
        section = next(
            b["text"]["text"]
            for b in self.view["blocks"]
            if b.get("type") == "section" and b["text"]["text"].startswith("*Proposed*")
        )
        return "\n".join(unescape(x) for x in re.findall(r"```(.*?)```", section, re.DOTALL))

    def state(self) -> dict[str, Any]:
        """The state Slack would send on submit if nobody touched the inputs."""
        values: dict[str, Any] = {}
        for block in self.view["blocks"]:
            if block.get("type") != "input":
                continue
            element = block["element"]
            kind = element["type"]
            if kind == "static_select":
                entry = {"type": kind, "selected_option": element.get("initial_option")}
            elif kind == "multi_static_select":
                entry = {"type": kind, "selected_options": element.get("initial_options", [])}
            else:
                entry = {"type": kind, "value": element.get("initial_value")}
            values[block["block_id"]] = {element["action_id"]: entry}
        return values


def open_modal(app: RunningApp, slack: SlackStandIn, value: str, team_id: str = "T1") -> Modal:
    status, _ = app.sim.block_action(slack_ids.ACTION_FIX, value, team_id=team_id, message_ts=REPORT_TS)
    assert status == 200
    [opened] = slack.wait_for("views.open", 1, timeout=TIMEOUT)
    assert opened.ok, opened.response
    view_id = opened.response["view"]["id"]
    slack.wait_for("views.update", 1, timeout=TIMEOUT, ok_only=True)
    return Modal(view_id, slack.view(view_id))


def change(
    app: RunningApp, slack: SlackStandIn, modal: Modal, name: str, action: dict[str, Any], updates_before: int
) -> Modal:
    """An input change, as Slack sends it for a dispatch_action input: the action and the state."""
    act = {"action_id": input_id(name), "block_id": input_id(name), **action}
    state = modal.state()
    state[input_id(name)] = {
        input_id(name): {k: v for k, v in act.items() if k not in ("action_id", "block_id")}
    }
    status, _ = app.sim.block_action(
        input_id(name),
        view={
            "id": modal.view_id,
            "callback_id": slack_ids.CALLBACK_FIX_MODAL,
            "private_metadata": modal.metadata,
            "blocks": modal.view["blocks"],
            "state": {"values": state},
        },
        action=act,
    )
    assert status == 200
    slack.wait_for("views.update", updates_before + 1, timeout=TIMEOUT, ok_only=True)
    return Modal(modal.view_id, slack.view(modal.view_id))


def select(value: str) -> dict[str, Any]:
    return {
        "type": "static_select",
        "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
    }


def multi(*values: str) -> dict[str, Any]:
    return {
        "type": "multi_static_select",
        "selected_options": [{"text": {"type": "plain_text", "text": v}, "value": v} for v in values],
    }


def typed(value: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def submit(
    app: RunningApp, modal: Modal, values: dict[str, Any] | None = None, team_id: str = "T1"
) -> tuple[int, str]:
    return app.sim.view_submission(
        slack_ids.CALLBACK_FIX_MODAL,
        values or modal.state(),
        private_metadata=modal.metadata,
        view_id=modal.view_id,
        blocks=modal.view["blocks"],
        team_id=team_id,
    )


def thread_posts(slack: SlackStandIn) -> list[Call]:
    return [c for c in slack.calls("chat.postMessage") if c.ok and c.params.get("thread_ts")]


def verify_value(plan: Call) -> str:
    actions = [b for b in plan.blocks if b.get("type") == "actions"]
    return str(actions[0]["elements"][0]["value"])


def click_verify(app: RunningApp, plan: Call, **kwargs: Any) -> tuple[int, str]:
    """Verify clicked on the plan's own message, in its channel and thread, as Slack sends it."""
    return app.sim.block_action(
        slack_ids.ACTION_FIX_VERIFY,
        verify_value(plan),
        channel_id=plan.params["channel"],
        message_ts=plan.response["ts"],
        message=plan.response["message"],
        **kwargs,
    )


def bind_lines(plan: Call) -> list[str]:
    out = []
    for block in plan.blocks:
        text = (block.get("text") or {}).get("text", "")
        if text.startswith("*BIND zone line*"):
            out.append(unescape(re.search(r"```(.*?)```", text, re.DOTALL)[1]))  # type: ignore[index]
    return out


def publish(nsd: NsdServer, lines: list[str], drop: list[str]) -> None:
    """Put the plan's BIND lines in the test zone, removing the zone lines that start with `drop`."""
    zones = fixit_zones()
    kept = [
        line for line in zones["test"].splitlines() if not any(line.startswith(prefix) for prefix in drop)
    ]
    zones["test"] = "\n".join([*kept, *lines]) + "\n"
    nsd.set_zones(zones)


# -- every fix kind, end to end -------------------------------------------------------------------


@dataclass
class Case:
    name: str
    finding: str
    domain: str
    initial: str  # in the first proposal
    input_name: str | None
    action: dict[str, Any]
    after: str  # in the proposal after the change
    drop: list[str]  # zone lines the published fix replaces
    selector: str | None = None
    cleared: list[str] = field(default_factory=list)


KEY = rsa_public_key(2048)
CASES = [
    Case(
        "dmarc policy (new record)",
        "dmarc.missing",
        "nodmarc.test",
        "v=DMARC1; p=none; rua=mailto:dmarc-reports@nodmarc.test",
        "policy",
        select("quarantine"),
        "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@nodmarc.test",
        [],
        cleared=["dmarc.missing"],
    ),
    Case(
        "dmarc syntax",
        "dmarc.syntax",
        "syntax.test",
        "v=DMARC1; p=none",
        "aspf",
        select("s"),
        "v=DMARC1; p=none; aspf=s",
        ["_dmarc.syntax IN TXT"],
        cleared=["dmarc.syntax"],
    ),
    Case(
        "dmarc rua",
        "dmarc.no_rua",
        "norua.test",
        "v=DMARC1; p=reject; rua=mailto:dmarc-reports@norua.test",
        "rua",
        typed("reports@norua.test"),
        "v=DMARC1; p=reject; rua=mailto:reports@norua.test",
        ["_dmarc.norua IN TXT"],
        cleared=["dmarc.no_rua"],
    ),
    Case(
        "dmarc duplicates",
        "dmarc.multiple",
        "dup.test",
        "v=DMARC1; p=none; rua=mailto:a@dup.test,mailto:b@dup.test",
        "policy",
        select("quarantine"),
        "v=DMARC1; p=quarantine; rua=mailto:a@dup.test,mailto:b@dup.test",
        ["_dmarc.dup IN TXT"],
        cleared=["dmarc.multiple"],
    ),
    Case(
        "dmarc deprecated tags",
        "dmarc.deprecated_tag",
        "deprec.test",
        "v=DMARC1; p=reject; rua=mailto:d@deprec.test",
        "adkim",
        select("s"),
        "v=DMARC1; p=reject; adkim=s; rua=mailto:d@deprec.test",
        ["_dmarc.deprec IN TXT"],
        cleared=["dmarc.deprecated_tag"],
    ),
    Case(
        "dmarc progression",
        "dmarc.policy_none",
        "pnone.test",
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@pnone.test",
        "testing",
        select("y"),
        "v=DMARC1; p=quarantine; t=y; rua=mailto:dmarc@pnone.test",
        ["_dmarc.pnone IN TXT"],
    ),
    Case(
        "spf add provider",
        "spf.missing",
        "nospf.test",
        "v=spf1 ~all",
        "providers",
        multi("google"),
        "v=spf1 include:_spf.google.com ~all",
        [],
        cleared=["spf.missing"],
    ),
    Case(
        "spf merge",
        "spf.multiple",
        "twospf.test",
        "v=spf1 ip4:192.0.2.1 include:_spf.google.com -all",
        "all",
        select("~"),
        "v=spf1 ip4:192.0.2.1 include:_spf.google.com ~all",
        ['twospf IN TXT "v=spf1'],
        cleared=["spf.multiple"],
    ),
    Case(
        "spf all",
        "spf.pass_all",
        "passall.test",
        "v=spf1 ip4:192.0.2.1 ~all",
        "all",
        select("-"),
        "v=spf1 ip4:192.0.2.1 -all",
        ['passall IN TXT "v=spf1'],
        cleared=["spf.pass_all"],
    ),
    Case(
        "spf flatten",
        "spf.too_many_lookups",
        "big.test",
        "v=spf1 ip4:198.51.100.0 ip6:2001:db8:: include:i1.big.test",
        "flatten",
        multi("i0.big.test", "i1.big.test"),
        "v=spf1 ip4:198.51.100.0 ip6:2001:db8:: ip4:198.51.100.1 ip6:2001:db8::1 include:i2",
        ['big IN TXT "v=spf1'],
        cleared=["spf.too_many_lookups"],
    ),
    Case(
        "dkim weak key",
        "dkim.weak_key",
        "weak.test",
        "dkim2.mcsv.net",
        "key",
        typed(f"v=DKIM1; k=rsa; p={KEY}"),
        f"v=DKIM1; k=rsa; p={KEY}",
        ["k2._domainkey.weak IN TXT"],
        selector="k2",
        cleared=["dkim.weak_key"],
    ),
    Case(
        "dkim missing key",
        "dkim.key_missing",
        "nodmarc.test",
        "",
        "provider",
        select("mailchimp"),
        "dkim2.mcsv.net",
        [],
        selector="s1",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fix_kind_end_to_end(world: NsdServer, make_app: AppFactory, slack: SlackStandIn, case: Case) -> None:
    app = make_app(world, dns_timeout=0.5)
    slack.set_user("U1")
    modal = open_modal(app, slack, fix_value(case.finding, case.domain, selector=case.selector))
    opened = slack.calls("views.open")[0]
    assert opened.params["view"]["callback_id"] == slack_ids.CALLBACK_FIX_MODAL
    if case.initial:
        assert case.initial in modal.proposed(), modal.text
        assert "Not offered" not in modal.text
        assert modal.view["submit"]["text"] == "Post the plan"
    assert case.input_name is not None
    modal = change(app, slack, modal, case.input_name, case.action, updates_before=1)
    assert case.after in modal.proposed(), modal.text
    assert "Not offered" not in modal.text

    status, body = submit(app, modal)
    assert status == 200 and body in ("", "{}"), body
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert plan.params["thread_ts"] == REPORT_TS and plan.params["channel"] == "C1"
    plan_text = unescape(texts(plan.blocks))
    assert "by <@U1>" in plan_text and "*Before*" in plan_text and "*DNS entry*" in plan_text
    assert case.after in plan_text
    lines = bind_lines(plan)
    assert lines and all(" 3600 IN " in line for line in lines)

    # Verify before publishing: not live yet
    click_verify(app, plan)
    slack.wait_for("chat.postMessage", 2, timeout=TIMEOUT, ok_only=True)
    not_yet = thread_posts(slack)[-1]
    assert "Not live yet" in texts(not_yet.blocks), texts(not_yet.blocks)
    assert not_yet.params["thread_ts"] == REPORT_TS

    # publish the plan's own BIND lines, then Verify: fixed
    publish(world, lines, case.drop)
    click_verify(app, plan)
    slack.wait_for("chat.postMessage", 3, timeout=TIMEOUT, ok_only=True)
    fixed = texts(thread_posts(slack)[-1].blocks)
    assert "*Fixed*" in fixed, fixed
    for finding_id in case.cleared:
        cleared_line = next(line for line in fixed.splitlines() if line.startswith("Cleared:"))
        assert f"`{finding_id}`" in cleared_line, fixed
    slack.assert_no_violations()


@pytest.mark.slow
def test_dkim_test_mode_end_to_end(world: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    """t=y removal has nothing to choose: the modal shows the key without t=y and posts it."""
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("dkim.testing", "dkimt.test", selector="sel"))
    assert f"v=DKIM1; k=rsa; p={KEY}" in modal.proposed()
    assert "t=y" not in modal.proposed()
    status, _ = submit(app, modal, {})
    assert status == 200
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    click_verify(app, plan)
    slack.wait_for("chat.postMessage", 2, timeout=TIMEOUT, ok_only=True)
    assert "Not live yet" in texts(thread_posts(slack)[-1].blocks)
    publish(world, bind_lines(plan), ["sel._domainkey.dkimt IN TXT"])
    click_verify(app, plan)
    slack.wait_for("chat.postMessage", 3, timeout=TIMEOUT, ok_only=True)
    fixed = texts(thread_posts(slack)[-1].blocks)
    assert "*Fixed*" in fixed and "`dkim.testing`" in fixed.split("Still present")[0]
    slack.assert_no_violations()


def test_progression_shows_a_readiness_checklist(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("dmarc.policy_none", "pnone.test"))
    assert "*Readiness*: No aggregate report data yet" in modal.text
    assert "Google Workspace (SPF `include:_spf.google.com`)" in modal.text
    assert "DKIM selector google (Google Workspace)" in modal.text


@pytest.mark.slow
def test_flatten_plan_says_the_include_must_be_watched(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("spf.too_many_lookups", "big.test"))
    assert "10 of 10 DNS lookups" in modal.text
    assert "Watch the domain" in modal.text and "include:i0.big.test" in modal.text
    submit(app, modal)
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    assert json.loads(verify_value(plan))["w"] == ["i0.big.test"]


@pytest.mark.slow
def test_too_many_lookups_without_flattening_is_not_offered(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("spf.too_many_lookups", "big.test"))
    modal = change(app, slack, modal, "flatten", multi(), updates_before=1)
    assert "Not offered" in modal.text and "11 DNS lookups" in modal.text
    submit(app, modal)
    [told] = slack.wait_for("chat.postEphemeral", 1, timeout=TIMEOUT)
    assert told.params["text"].startswith("The plan was not posted:")
    assert "11 DNS lookups" in told.params["text"]
    wait_for_log(caplog, "posting the fix plan: finished")
    assert slack.calls("chat.postMessage") == []


# -- invalid input ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("finding", "domain", "selector", "field_name", "value", "words"),
    [
        ("dmarc.no_rua", "norua.test", None, "rua", typed("not-an-address"), "dmarc-reports@norua.test"),
        ("spf.pass_all", "passall.test", None, "terms", typed("ip4:300.1.1.1"), "ip4:192.0.2.0/24"),
        (
            "dkim.weak_key",
            "weak.test",
            "k2",
            "key",
            typed("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"),
            "private key",
        ),
        ("dkim.weak_key", "weak.test", "k2", "key", typed(rsa_public_key(1024)), "2048-bit"),
    ],
)
def test_invalid_input_gets_errors_on_the_field(
    world: NsdServer,
    make_app: AppFactory,
    slack: SlackStandIn,
    finding: str,
    domain: str,
    selector: str | None,
    field_name: str,
    value: dict[str, Any],
    words: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture_app_log(caplog)
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value(finding, domain, selector=selector))
    values = modal.state()
    values[input_id(field_name)] = {input_id(field_name): value}
    status, body = submit(app, modal, values)
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [input_id(field_name)]
    assert words in answer["errors"][input_id(field_name)]
    assert "BEGIN PRIVATE" not in body
    wait_for_log(caplog, f"fix form for {domain} from U1: the {field_name} field is invalid")
    assert slack.calls("chat.postMessage") == []


@pytest.mark.slow
def test_invalid_input_while_editing_is_shown_in_the_modal(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("dmarc.no_rua", "norua.test"))
    modal = change(app, slack, modal, "rua", typed("nope"), updates_before=1)
    assert modal.view["blocks"][0]["text"]["text"].startswith(":warning: “nope” is not a mail")


# -- another organisation --------------------------------------------------------------------------


def test_a_user_from_another_team_cannot_open_the_modal(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(world, dns_timeout=0.5)
    status, _ = app.sim.block_action(
        slack_ids.ACTION_FIX, fix_value("dmarc.no_rua", "norua.test"), team_id="T2", user_id="U9"
    )
    assert status == 200
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert told.params["response_type"] == "ephemeral"
    assert "another organisation" in told.params["text"]
    wait_for_log(caplog, "opening the fix-it flow: finished")
    assert slack.calls("views.open") == []


@pytest.mark.slow
def test_the_owner_defaults_to_the_team_that_posted_the_report(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(world, dns_timeout=0.5)
    message = {
        "type": "message",
        "subtype": "bot_message",
        "text": "",
        "user": "UBOT",
        "bot_id": "BBOT",
        "team": "T1",
        "ts": REPORT_TS,
        "blocks": [],
    }
    app.sim.block_action(
        slack_ids.ACTION_FIX,
        json.dumps({"f": "dmarc.no_rua", "d": "norua.test"}),
        team_id="T2",
        user_id="U9",
        message=message,
    )
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "another organisation" in told.params["text"]
    wait_for_log(caplog, "opening the fix-it flow: finished")
    assert slack.calls("views.open") == []


@pytest.mark.slow
def test_a_user_from_another_team_cannot_submit_or_verify(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("dmarc.no_rua", "norua.test"))
    status, body = submit(app, modal, team_id="T2")
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert "another organisation" in next(iter(answer["errors"].values()))
    submit(app, modal)
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    click_verify(app, plan, team_id="T2", user_id="U9")
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "another organisation" in told.params["text"]
    assert len(slack.calls("chat.postMessage")) == 1


@pytest.mark.parametrize("where", ["another channel", "another thread"])
def test_a_verify_value_naming_another_place_is_refused(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, where: str
) -> None:
    app = make_app(world, dns_timeout=0.5)
    modal = open_modal(app, slack, fix_value("dmarc.no_rua", "norua.test"))
    submit(app, modal)
    [plan] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    value = json.loads(verify_value(plan))
    # the same plan, its value edited to send the answer elsewhere
    forged = {**value, "c": "C666"} if where == "another channel" else {**value, "ts": "1600000000.000001"}
    assert forged != value
    app.sim.block_action(
        slack_ids.ACTION_FIX_VERIFY,
        json.dumps(forged),
        channel_id=plan.params["channel"],
        message_ts=plan.response["ts"],
        message=plan.response["message"],
    )
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "That Verify button does not belong to this message's thread" in told.params["text"]
    assert len(slack.calls("chat.postMessage")) == 1  # the plan itself, nothing else


# -- the report's buttons ----------------------------------------------------------------------------


@pytest.mark.slow
def test_each_fixable_finding_has_its_own_fix_button(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    app.sim.slash_command("check big.test")
    [report] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    accessories = [b["accessory"] for b in report.blocks if b.get("type") == "section" and "accessory" in b]
    values = [json.loads(a["value"]) for a in accessories]
    assert all(a["action_id"] == slack_ids.ACTION_FIX for a in accessories)
    # the owner comes from `team_id` when the caller passes it, else from the message's team
    assert {"f": "spf.too_many_lookups", "d": "big.test", "s": []} in [
        {k: v for k, v in value.items() if k != "o"} for value in values
    ]
    assert len(report.blocks) <= 50
    # the report-wide button fixes the most important finding
    actions = next(b for b in report.blocks if b.get("type") == "actions")["elements"]
    assert json.loads(actions[-1]["value"])["f"] == "spf.too_many_lookups"
    slack.assert_no_violations()


def test_a_button_from_an_older_report_is_answered(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world, dns_timeout=0.5)
    app.sim.block_action(slack_ids.ACTION_FIX, '{"d":"good.test","s":[]}')
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "Re-check" in told.params["text"]
