"""The Slack app end to end: signed requests into its real HTTP endpoint, its Web API calls going to
the Slack stand-in, its DNS going to a real NSD (through the fault proxy where a test needs faults).

Every assertion is on what reached the stand-in (text, blocks, channel, order) or on the HTTP
answer Slack would have seen; nothing inside the app is replaced.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.slack import ids as slack_ids
from bot.slack.app import FEATURES
from bot.slack.features import Feature, gather
from bot.slack.routing import Job, Subcommand
from tests.applog import capture_app_log, wait_for_log
from tests.conftest import AppFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.keys import rsa_public_key
from tests.slackapp import RunningApp
from tests.slackstub import Call, SlackClientSim, SlackStandIn, strings

# ------------------------------------------------------------------------------------------ zones


NASTY = "<!channel> <!here> <https://evil.example|Click>"
WORST_SELECTORS = [f"bad{i:02d}" for i in range(20)]


def world_records() -> list[tuple[str, str, str]]:
    """Every test domain under one `test` zone (so the DMARC tree walk ends authoritatively)."""
    records: list[tuple[str, str, str]] = [
        # good.test: DMARC reject, SPF, a 2048-bit DKIM key at a probed selector, MX
        ("good", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.good", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"),
        ("google._domainkey.good", "TXT", f"v=DKIM1; k=rsa; p={rsa_public_key(2048)}"),
        ("good", "MX", "10 mx.good.test."),
        ("mx.good", "A", "192.0.2.25"),
        # pnone.test: p=none
        ("pnone", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("_dmarc.pnone", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@pnone.test"),
        # nodmarc.test: SPF and nothing else
        ("nodmarc", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        # bigspf.test: eleven includes, one over SPF's limit of 10 lookups
        ("bigspf", "TXT", "v=spf1 " + " ".join(f"include:i{i}.bigspf.test" for i in range(11)) + " -all"),
        ("_dmarc.bigspf", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@bigspf.test"),
        *[(f"i{i}.bigspf", "TXT", "v=spf1 -all") for i in range(11)],
        # evil.test: untrusted text everywhere the report shows DNS data
        ("evil", "TXT", f"v=spf1 ip4:192.0.2.1 -all {NASTY}"),
        ("_dmarc.evil", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@evil.test; x={NASTY}"),
        ("sel._domainkey.evil", "TXT", f"v=DKIM1; k=rsa; n={NASTY}; p=not!base64"),
        ("kbad._domainkey.evil", "TXT", f"v=DKIM1; k={NASTY}; p=abc"),
        # worst.test: a huge SPF with a deprecated mechanism, a DMARC record with every deprecated tag,
        # twenty named selectors each with a weak key in test mode
        (
            "worst",
            "TXT",
            "v=spf1 "
            + " ".join(f"ip4:198.51.100.{i}" for i in range(1, 120))
            + " ptr "
            + " ".join(f"include:i{i}.bigspf.test" for i in range(11))
            + " ?all",
        ),
        ("_dmarc.worst", "TXT", "v=DMARC1; p=none; pct=50; rf=afrf; ri=3600; " + "x" * 300 + "=y"),
        *[
            (f"{s}._domainkey.worst", "TXT", f"v=DKIM1; k=rsa; t=y; p={rsa_public_key(1024)}")
            for s in WORST_SELECTORS
        ],
    ]
    return records


def world_zone() -> str:
    return make_zone("test", world_records())


# good.test's MX host has a reverse name that resolves back, so the good report has nothing to say
REVERSE_ZONE = make_zone("2.0.192.in-addr.arpa", [("25", "PTR", "mx.good.test.")])


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones({"test": world_zone(), "2.0.192.in-addr.arpa": REVERSE_ZONE})
    return nsd


# ---------------------------------------------------------------------------------------- helpers


def all_text(call: Call) -> str:
    """The fallback text and every string in the blocks of one post, joined."""
    return "\n".join([call.text or "", *strings(call.blocks)])


def blocks_of(call: Call, kind: str) -> list[dict[str, Any]]:
    return [b for b in call.blocks if b.get("type") == kind]


def section_texts(call: Call) -> list[str]:
    return [b["text"]["text"] for b in blocks_of(call, "section")]


def action_ids(call: Call) -> list[str]:
    return [e["action_id"] for b in blocks_of(call, "actions") for e in b["elements"]]


def finding_sections(call: Call) -> list[str]:
    icons = (":red_circle:", ":large_orange_circle:", ":information_source:")
    return [t for t in section_texts(call) if t.startswith(icons)]


def ack_of(status: int, body: str) -> dict[str, Any]:
    assert status == 200, body
    answer = json.loads(body)
    assert isinstance(answer, dict)
    return answer


def check(app: RunningApp, text: str, **kwargs: Any) -> tuple[dict[str, Any], Call]:
    """`/dmarc TEXT`: the ack (asserted ephemeral), then the report posted to the channel."""
    ack = ack_of(*app.sim.slash_command(text, **kwargs))
    assert ack["response_type"] == "ephemeral"
    post = app.slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)[-1]
    return ack, post


ANSWERED_IN_ACK = "answered in the acknowledgement"  # the command listener's last line, ack only


# ------------------------------------------------------------------------------- the report itself


@pytest.mark.slow
def test_good_domain_report(world: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    app = make_app(world)
    ack, post = check(app, "check Good.Test")
    assert ack["text"] == "Checking good.test…"
    assert post.params["channel"] == "C1"
    header = blocks_of(post, "header")[0]["text"]["text"]
    assert header == "good.test: can pass DMARC"
    assert post.text and post.text.startswith("DMARC check for good.test: can pass DMARC.")
    sections = section_texts(post)
    assert sections[0].startswith("Mail from good.test can pass DMARC today through SPF and DKIM")
    assert any(
        s.startswith("*DMARC*\n```v=DMARC1; p=reject; rua=mailto:dmarc@good.test```")
        and "policy for this domain: *reject*" in s
        for s in sections
    )
    spf = next(s for s in sections if s.startswith("*SPF*"))
    # ip4 costs no DNS lookup (RFC 7208 section 4.6.4): the count is exact, not merely "not 1"
    assert spf.startswith("*SPF*\n```v=spf1 ip4:192.0.2.1 -all```\n0 of 10 DNS lookups · 0 void")
    assert any(s.startswith("*DKIM* (probed") and "`google`: rsa, 2048 bits" in s for s in sections)
    assert any(s.startswith("*MX*") and "`10 mx.good.test`" in s for s in sections)
    assert not finding_sections(post) or all(
        s.startswith(":information_source:") for s in finding_sections(post)
    )
    context = [e["text"] for b in blocks_of(post, "context") for e in b["elements"]]
    assert any(re.search(r"Checked <!date\^\d+\^.*\|.* UTC> · \d+ DNS queries", c) for c in context)
    # no error or warning, so nothing to fix: Re-check and Watch only
    assert action_ids(post) == [slack_ids.ACTION_RECHECK, slack_ids.ACTION_WATCH]
    value = blocks_of(post, "actions")[0]["elements"][0]["value"]
    assert json.loads(value) == {"d": "good.test", "s": []}
    # exactly one ack, one report; nothing else posted
    assert [c.method for c in slack.posts()] == ["chat.postMessage"]
    slack.assert_no_violations()


@pytest.mark.slow
def test_policy_none_report(world: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    app = make_app(world)
    _, post = check(app, "check pnone.test")
    findings = finding_sections(post)
    assert any(
        f.startswith(":large_orange_circle: *Policy p=none")
        and "`dmarc.policy_none`" in f
        and "\n*Fix:* " in f
        for f in findings
    )
    assert any("```v=DMARC1; p=none; rua=mailto:dmarc@pnone.test```" in s for s in section_texts(post))
    assert slack_ids.ACTION_FIX in action_ids(post)
    slack.assert_no_violations()


@pytest.mark.slow
def test_no_dmarc_report(world: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    app = make_app(world)
    _, post = check(app, "check nodmarc.test")
    assert blocks_of(post, "header")[0]["text"]["text"] == "nodmarc.test: fails DMARC"
    assert section_texts(post)[0].startswith(
        "Mail from nodmarc.test cannot pass DMARC today: it has no usable DMARC record."
    )
    assert any(s.startswith("*DMARC*\n_no record_") for s in section_texts(post))
    findings = finding_sections(post)
    assert findings[0].startswith(":red_circle: *No DMARC record*  `dmarc.missing`")
    assert "*Fix:* " in findings[0]
    assert action_ids(post) == [slack_ids.ACTION_RECHECK, slack_ids.ACTION_WATCH, slack_ids.ACTION_FIX]
    slack.assert_no_violations()


@pytest.mark.slow
def test_spf_over_ten_lookups_report(world: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    app = make_app(world)
    _, post = check(app, "check bigspf.test")
    spf = next(s for s in section_texts(post) if s.startswith("*SPF*"))
    assert "include:i10.bigspf.test -all```" in spf
    assert re.search(r"\n1[01] of 10 DNS lookups", spf)
    assert any(
        f.startswith(":red_circle: *More than 10 DNS lookups") and "`spf.too_many_lookups`" in f
        for f in finding_sections(post)
    )
    slack.assert_no_violations()


def test_nxdomain_report(world: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    app = make_app(world)
    _, post = check(app, "check nosuch.test")
    assert blocks_of(post, "header")[0]["text"]["text"] == "nosuch.test: fails DMARC"
    assert "nosuch.test does not exist in DNS (NXDOMAIN)" in section_texts(post)[0]
    assert "*Domain*\nnosuch.test does not exist (NXDOMAIN)." in section_texts(post)
    assert any("`domain.nxdomain`" in f for f in finding_sections(post))
    assert "dmarc.missing" not in all_text(post)
    slack.assert_no_violations()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["servfail", "timeout"])
def test_dns_outage_report_is_unknown_never_missing(
    nsd: NsdServer, fault_proxy: FaultProxy, make_app: AppFactory, slack: SlackStandIn, fault: str
) -> None:
    nsd.set_zones({"test": world_zone()})
    fault_proxy.add_fault("*.test", fault)
    app = make_app(fault_proxy, dns_timeout=0.3)  # a dropped query costs 2 x 0.3 s, not 2 x 2 s
    _, post = check(app, "check good.test")
    text = all_text(post)
    assert blocks_of(post, "header")[0]["text"]["text"] == "good.test: unknown (DNS failed)"
    assert post.text and "unknown (DNS failed)" in post.text
    assert "`dns.temperror`" in text
    assert "result is unknown, not missing" in text
    for claim in (
        "dmarc.missing",
        "spf.missing",
        "dkim.key_missing",
        "No DMARC record",
        "No SPF record",
        "does not exist",
    ):
        assert claim not in text
    slack.assert_no_violations()


def test_named_selectors_are_checked(world: NsdServer, make_app: AppFactory, slack: SlackStandIn) -> None:
    app = make_app(world)
    ack, post = check(app, "check good.test google nokey")
    assert ack["text"] == "Checking good.test…"
    dkim = next(s for s in section_texts(post) if s.startswith("*DKIM*"))
    assert dkim.startswith("*DKIM* (named)")
    assert any("`dkim.key_missing`" in f and "nokey" in f for f in finding_sections(post))
    value = blocks_of(post, "actions")[0]["elements"][0]["value"]
    assert json.loads(value) == {"d": "good.test", "s": ["google", "nokey"]}
    slack.assert_no_violations()


# ------------------------------------------------------------------------------------ help, usage


def assert_usage(text: str) -> None:
    assert "*dmarcbot*" in text
    for row in gather(FEATURES).router.rows:
        assert f"`/dmarc {row.usage}`: {row.help}" in text
        for example in row.examples[:1]:
            assert f"e.g. `{example}`" in text


def test_the_app_starts_without_warnings(
    make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    # Bolt warns "As you gave client as well, token will be unused" at every start when it is given
    # both: a warning nobody can act on teaches operators to ignore warnings.
    caplog.set_level(logging.DEBUG)
    app = make_app("127.0.0.1:9")
    assert ack_of(*app.sim.slash_command("help"))["response_type"] == "ephemeral"  # it started
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


@pytest.mark.slow
@pytest.mark.parametrize("text", ["help", "", "   ", "HELP"])
def test_help_and_empty_give_usage(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    capture_app_log(caplog)
    app = make_app(world)
    ack = ack_of(*app.sim.slash_command(text))
    assert ack["response_type"] == "ephemeral"
    assert_usage(ack["text"])
    wait_for_log(caplog, ANSWERED_IN_ACK)  # the listener is over: the ack was the whole answer
    assert slack.posts() == []


@pytest.mark.slow
def test_unknown_subcommand_says_so_and_gives_usage(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(world)
    ack = ack_of(*app.sim.slash_command("frobnicate <!here> example.com"))
    assert ack["response_type"] == "ephemeral"
    assert ack["text"].startswith("I don't know the subcommand `frobnicate`.")
    assert_usage(ack["text"])
    ack = ack_of(*app.sim.slash_command("<!channel>"))
    assert "<!channel>" not in ack["text"]
    assert "`&lt;!channel&gt;`" in ack["text"]
    wait_for_log(caplog, ANSWERED_IN_ACK, count=2)
    assert slack.posts() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("check", "Give a domain name, as in `/dmarc check example.com`."),
        ("check 1.2.3.4", "is an IP address"),
        ("check exa_mple..com", "That is not a domain I can check"),
        ("check good.test bad/selector", "bad/selector"),
        ("check good.test " + " ".join(f"s{i}" for i in range(21)), "Give at most 20 DKIM selectors."),
        ("check <!channel>", "That is not a domain I can check"),
        ("check good.test <!here>", "not"),
    ],
)
def test_bad_input_is_explained_and_nothing_is_posted(
    world: NsdServer,
    make_app: AppFactory,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
    text: str,
    problem: str,
) -> None:
    capture_app_log(caplog)
    proxy = FaultProxy((world.host, world.port)).start()
    try:
        app = make_app(proxy)
        ack = ack_of(*app.sim.slash_command(text))
        assert ack["response_type"] == "ephemeral"
        assert problem in ack["text"]
        assert ack["text"].endswith("Usage: `/dmarc check DOMAIN [SELECTOR...]`")
        assert "<!channel>" not in ack["text"] and "<!here>" not in ack["text"]
        wait_for_log(caplog, ANSWERED_IN_ACK)
        assert slack.posts() == []
        assert proxy.count() == 0  # no DNS work for bad input
    finally:
        proxy.stop()


@pytest.mark.slow
def test_subcommand_without_a_worker_is_answered(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    """A routing-table row whose worker is not there must not turn into silence (or a 404)."""

    def parse_later(words: list[str]) -> Job:
        """A feature whose worker is not registered."""
        return Job(ack="Working on it…", work="no-such-worker")

    later = Feature(name="later", subcommands=(Subcommand("later", "later", parse_later, ()),))
    app = make_app(world, features=(*FEATURES, later))
    status, _ = app.sim.slash_command("later example.com")
    assert status == 200
    assert app.sim.last_elapsed < 1.5
    [told] = slack.wait_for("response_url", 1)
    assert told.params["response_type"] == "ephemeral"
    assert "not available yet" in told.params["text"]


# ------------------------------------------------------------------------------ signed requests


@pytest.mark.slow
@pytest.mark.parametrize("how", [{"forge_signature": True}, {"timestamp_offset": -600}])
def test_forged_or_stale_request_is_refused(
    nsd: NsdServer, fault_proxy: FaultProxy, make_app: AppFactory, slack: SlackStandIn, how: dict[str, Any]
) -> None:
    nsd.set_zones({"test": world_zone()})
    app = make_app(fault_proxy)
    status, _ = app.sim.slash_command("check good.test", **how)
    assert status == 401
    status, _ = app.sim.block_action(slack_ids.ACTION_RECHECK, '{"d":"good.test","s":[]}', **how)
    assert status == 401
    status, _ = app.sim.event({"type": "app_home_opened", "user": "U1", "tab": "home"}, **how)
    assert status == 401
    # The 401 is the signal: Bolt refuses a request before any listener is dispatched, so
    # nothing is left running once it has answered.
    assert slack.calls() == []
    assert fault_proxy.count() == 0


# ----------------------------------------------------------------------------------- the ack time


@pytest.mark.slow
def test_ack_is_fast_while_dns_is_slow(
    nsd: NsdServer, fault_proxy: FaultProxy, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones({"test": world_zone()})
    fault_proxy.latency = 2.0  # every DNS answer waits this long: one lookup before the ack shows
    app = make_app(fault_proxy, dns_timeout=5.0)  # slow, but not a timeout
    ack = ack_of(*app.sim.slash_command("check good.test google"))
    assert app.sim.last_elapsed < 1.0
    assert ack["text"] == "Checking good.test…"
    assert slack.calls("chat.postMessage") == []
    post = slack.wait_for("chat.postMessage", 1, timeout=20, ok_only=True)[0]
    assert blocks_of(post, "header")[0]["text"]["text"] == "good.test: can pass DMARC"

    # two commands at once: neither ack waits for the other's DNS
    slack.reset()
    elapsed: dict[str, float] = {}
    acks: dict[str, str] = {}

    def send(domain: str) -> None:
        sim = SlackClientSim(app.url, stand_in=slack)
        status, body = sim.slash_command(f"check {domain}")
        elapsed[domain] = sim.last_elapsed
        acks[domain] = ack_of(status, body)["text"]

    threads = [threading.Thread(target=send, args=(d,)) for d in ("good.test", "pnone.test")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert acks == {"good.test": "Checking good.test…", "pnone.test": "Checking pnone.test…"}
    assert max(elapsed.values()) < 1.0, elapsed
    posts = slack.wait_for("chat.postMessage", 2, timeout=20, ok_only=True)
    assert sorted(p.text.split(":")[0] for p in posts if p.text) == [
        "DMARC check for good.test",
        "DMARC check for pnone.test",
    ]


# ------------------------------------------------------------------------------------- Re-check


@pytest.mark.slow
def test_recheck_updates_the_same_message_with_fresh_dns(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world)
    _, post = check(app, "check pnone.test")
    ts = post.response["ts"]
    recheck = next(
        e
        for b in blocks_of(post, "actions")
        for e in b["elements"]
        if e["action_id"] == slack_ids.ACTION_RECHECK
    )

    records = [r for r in world_records() if r[0] != "_dmarc.pnone"]
    records.append(("_dmarc.pnone", "TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@pnone.test"))
    world.set_zones({"test": make_zone("test", records)})

    status, _ = app.sim.block_action(
        slack_ids.ACTION_RECHECK,
        recheck["value"],
        block_id=slack_ids.BLOCK_REPORT_ACTIONS,
        message_ts=ts,
        message=post.response["message"],
    )
    assert status == 200
    assert app.sim.last_elapsed < 1.0
    update = slack.wait_for("chat.update", 1, timeout=15, ok_only=True)[0]
    assert (update.params["channel"], update.params["ts"]) == ("C1", ts)
    assert any(
        "```v=DMARC1; p=quarantine; rua=mailto:dmarc@pnone.test```" in s for s in section_texts(update)
    )
    assert "p=none" not in "\n".join(section_texts(update))
    # the message in the channel now shows the new record; no second message was posted
    [message] = slack.messages("C1")
    assert message["ts"] == ts and "edited" in message
    assert "p=quarantine" in json.dumps(message["blocks"])
    assert len(slack.calls("chat.postMessage")) == 1
    slack.assert_no_violations()


@pytest.mark.slow
def test_recheck_of_a_report_only_the_user_sees_replaces_it_in_place(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """A report shown ephemerally (the bot was not in the channel) has no message to update:
    Slack sends no `message`, and the new report replaces the old through the response_url."""
    capture_app_log(caplog)
    app = make_app(world)
    value = '{"d":"pnone.test","s":[]}'
    records = [r for r in world_records() if r[0] != "_dmarc.pnone"]
    records.append(("_dmarc.pnone", "TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@pnone.test"))
    world.set_zones({"test": make_zone("test", records)})

    status, _ = app.sim.block_action(
        slack_ids.ACTION_RECHECK, value, block_id=slack_ids.BLOCK_REPORT_ACTIONS, ephemeral=True
    )
    assert status == 200
    [replaced] = slack.wait_for("response_url", 1, timeout=15)
    assert replaced.params["replace_original"] is True
    assert "p=quarantine" in json.dumps(replaced.params["blocks"])
    wait_for_log(caplog, "re-checking a domain: finished")
    assert slack.calls("chat.update") == [] and slack.calls("chat.postMessage") == []
    slack.assert_no_violations()


@pytest.mark.slow
def test_recheck_with_a_tampered_value_is_refused_politely(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(world)
    status, _ = app.sim.block_action(slack_ids.ACTION_RECHECK, '{"d":"not a domain!"}')
    assert status == 200
    [told] = slack.wait_for("response_url", 1)
    assert told.params["response_type"] == "ephemeral"
    assert "no longer works" in told.params["text"]
    wait_for_log(caplog, "re-checking a domain: finished")
    assert slack.calls("chat.update") == [] and slack.calls("response_url") == [told]


# ------------------------------------------------------------------------------------- escaping


def test_untrusted_txt_arrives_escaped_everywhere(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world)
    _, post = check(app, "check evil.test sel kbad")
    text = all_text(post)
    for raw in ("<!channel>", "<!here>", "<https://evil.example", "|Click>", "|click>"):
        assert raw not in text
    escaped = "&lt;!channel&gt; &lt;!here&gt; &lt;https://evil.example|Click&gt;"
    sections = "\n".join(section_texts(post))
    assert f"```v=spf1 ip4:192.0.2.1 -all {escaped}```" in sections  # the SPF record
    assert f"x={escaped}```" in sections  # the DMARC record
    assert f"n={escaped}; p=not!base64`" in sections  # the DKIM key record, in a finding
    assert "`kbad`: &lt;!channel&gt; &lt;!here&gt;" in sections  # its k= tag, in the DKIM section
    # nothing was double-escaped
    assert "&amp;lt;" not in text
    slack.assert_no_violations()


# ------------------------------------------------------------------------------------ worst case


@pytest.mark.slow
def test_worst_case_domain_stays_within_limits(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(world)
    _, post = check(app, "check worst.test " + " ".join(WORST_SELECTORS))
    assert len(post.blocks) <= 50
    for text in section_texts(post):
        assert len(text) <= 3000
    assert len(post.text or "") <= 3000
    shown = finding_sections(post)
    more = [
        e["text"] for b in blocks_of(post, "context") for e in b["elements"] if e["text"].startswith("…and ")
    ]
    assert len(more) == 1, "the findings that did not fit are counted"
    counted = re.match(r"…and (\d+) more findings: run `dmarcbot check worst.test`", more[0])
    assert counted, more[0]
    hidden = int(counted[1])
    assert len(shown) + hidden >= 45
    assert hidden > 0
    # the buttons are still there, with a value inside Block Kit's 2000 characters
    assert action_ids(post) == [slack_ids.ACTION_RECHECK, slack_ids.ACTION_WATCH, slack_ids.ACTION_FIX]
    for element in blocks_of(post, "actions")[0]["elements"]:
        assert len(element["value"]) <= 2000
        assert json.loads(element["value"])["s"] == WORST_SELECTORS
    slack.assert_no_violations()


# ---------------------------------------------------------------------------- Slack's answers


@pytest.mark.slow
def test_rate_limited_post_is_retried_after_retry_after(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    app = make_app(world)
    app.sim.slash_command("check good.test")
    first, second = slack.wait_for("chat.postMessage", 2, timeout=15)
    assert first.status == 429 and second.ok
    assert second.at - first.at >= 0.9  # waited out Retry-After: 1
    assert second.params["blocks"] == first.params["blocks"]
    wait_for_log(caplog, "running /dmarc check good.test: finished")  # anything it sent is recorded
    assert [c.method for c in slack.posts()] == ["chat.postMessage"]  # arrived once
    assert slack.calls("response_url") == []  # and nobody was told it failed
    slack.assert_no_violations()


def test_bot_not_in_channel_shows_report_ephemerally_and_says_how_to_invite(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    slack.set_channel("C1", is_member=False)
    app = make_app(world)
    app.sim.slash_command("check good.test")
    report, invite = slack.wait_for("response_url", 2, timeout=15)
    assert report.params["response_type"] == "ephemeral"
    assert blocks_of(report, "header")[0]["text"]["text"] == "good.test: can pass DMARC"
    assert invite.params["response_type"] == "ephemeral"
    assert "/invite @dmarcbot" in invite.params["text"]
    assert [c.response["error"] for c in slack.calls("chat.postMessage")] == ["not_in_channel"]
    slack.assert_no_violations()


@pytest.mark.slow
def test_slack_api_error_is_told_to_the_user(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    slack.fail_next("chat.postMessage", error="invalid_auth")
    app = make_app(world)
    app.sim.slash_command("check good.test")
    [told] = slack.wait_for("response_url", 1, timeout=15)
    assert told.params["response_type"] == "ephemeral"
    assert told.params["text"].startswith(
        ":warning: Slack refused a request while running /dmarc check good.test (invalid_auth)."
    )
    assert "Try again" in told.params["text"]


@pytest.mark.slow
def test_unreachable_slack_is_told_to_the_user(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    """Slack's Web API unreachable mid-way (an unexpected failure, not a Slack error answer): the
    user hears about it through the response_url, which lives elsewhere."""
    app = make_app(world)
    ack_of(*app.sim.slash_command("help"))  # the app has authorised itself once (auth.test)
    slack.stop()
    elsewhere = SlackStandIn().start()
    try:
        status, _ = app.sim.slash_command("check good.test", response_url=elsewhere.response_url("late"))
        assert status == 200
        [told] = elsewhere.wait_for("response_url", 1, timeout=15)
        assert told.params["response_type"] == "ephemeral"
        assert told.params["text"].startswith(
            ":warning: Something went wrong while running /dmarc check good.test."
        )
    finally:
        elsewhere.stop()


# --------------------------------------------------------------------------------- App Home, events


@pytest.mark.slow
def test_app_home_shows_usage(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(world)
    status, _ = app.sim.event({"type": "app_home_opened", "user": "U7", "channel": "D7", "tab": "home"})
    assert status == 200
    [publish] = slack.wait_for("views.publish", 1)
    assert publish.params["user_id"] == "U7"
    view = publish.params["view"]
    assert view["type"] == "home"
    assert_usage("\n".join(strings(view["blocks"])))
    # the Messages tab is not the Home tab
    app.sim.event({"type": "app_home_opened", "user": "U7", "channel": "D7", "tab": "messages"})
    wait_for_log(caplog, "'messages' tab by U7: nothing to publish")
    assert len(slack.calls("views.publish")) == 1
    slack.assert_no_violations()


def test_retried_and_unmatched_events_are_acknowledged(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(world)
    home = {"type": "app_home_opened", "user": "U7", "channel": "D7", "tab": "home"}
    for retry in (None, 1, 2, 3):
        status, _ = app.sim.event(home, retry_num=retry, event_id="EvSAME")
        assert status == 200
    # events the app has no use for must still get a 2xx, or Slack retries them (and eventually
    # turns the subscription off)
    mention = SlackClientSim.app_mention_event("hello")
    for retry in (None, 1):
        status, body = app.sim.event(mention, retry_num=retry)
        assert status == 200, body
    status, _ = app.sim.event(SlackClientSim.message_event("hello"))
    assert status == 200
    status, _ = app.sim.event(
        {
            "type": "reaction_added",
            "user": "U1",
            "reaction": "eyes",
            "item": {"type": "message", "channel": "C1", "ts": "1.2"},
        }
    )
    assert status == 200
    # every listener is over: the Home event published once and its three retries were dropped,
    # and each event nobody handles was logged by the catch-all
    slack.wait_for("views.publish", 1)
    wait_for_log(caplog, "Dropped a repeated delivery event:EvSAME", count=3)
    wait_for_log(caplog, "event app_mention: nothing to do", count=2)
    wait_for_log(caplog, "event message: nothing to do")
    wait_for_log(caplog, "event reaction_added: nothing to do")
    assert slack.posts() == []
    assert len(slack.calls("views.publish")) == 1


def test_url_verification_is_answered(world: NsdServer, make_app: AppFactory) -> None:
    app = make_app(world)
    status, body = app.sim.url_verification("challenge-123")
    assert status == 200 and "challenge-123" in body


# --------------------------------------------------------------------------------------- OAuth


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read().decode(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return (error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode())


@pytest.mark.slow
def test_oauth_install_stores_the_installation_and_its_token_is_used(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    import sqlite3

    app = make_app(
        world, slack_bot_token=None, slack_client_id="111.222", slack_client_secret="client-secret"
    )
    slack.set_oauth(team={"id": "T2", "name": "Other"}, access_token="xoxb-team-two")

    status, headers, page = http_get(app.url + "/slack/install")
    assert status == 200
    link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page)
    assert link, page
    query = parse_qs(urlsplit(link[1].replace("&amp;", "&")).query)
    assert query["client_id"] == ["111.222"]
    assert set(query["scope"][0].split(",")) >= {"commands", "chat:write"}
    state = query["state"][0]
    cookie = SimpleCookie(headers.get("set-cookie", ""))
    cookies = "; ".join(f"{k}={m.value}" for k, m in cookie.items())

    # a forged state is refused and exchanges nothing
    status, _, _ = http_get(app.url + "/slack/oauth_redirect?code=abc&state=forged", {"Cookie": cookies})
    assert status >= 400
    assert slack.calls("oauth.v2.access") == []

    status, _, page = http_get(
        app.url + f"/slack/oauth_redirect?code=the-code&state={state}", {"Cookie": cookies}
    )
    assert status == 200, page
    [exchange] = slack.calls("oauth.v2.access")
    assert exchange.params["code"] == "the-code"

    with sqlite3.connect(app.settings.db_path) as db:
        rows = db.execute("select team_id, bot_token from slack_bots").fetchall()
    assert rows == [("T2", "xoxb-team-two")]

    # a command from that team runs with that team's token
    check(app, "check good.test", team_id="T2")
    post = slack.last("chat.postMessage")
    assert post.headers.get("authorization") == "Bearer xoxb-team-two"

    # a team that never installed the app is not served
    slack.reset()
    status, _ = app.sim.slash_command("check good.test", team_id="T9")
    assert status == 200
    [told] = slack.wait_for("response_url", 1)
    assert "reinstall" in told.params["text"]
    # Bolt told the user before it answered the request, and it dispatches no listener for a
    # team it cannot authorise: nothing is left running that could still post.
    assert slack.calls("chat.postMessage") == []


def test_record_text_cannot_format_or_link_in_slack(
    world: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    records = [
        *world_records(),
        ("_dmarc.hostile", "TXT", "v=DMARC1; p=none; https://evil.example/reset-password; *urgent* ~x~ _y_"),
    ]
    world.set_zones({"test": make_zone("test", records)})
    app = make_app(world)
    _, post = check(app, "check hostile.test")
    rendered = "\n".join(finding_sections(post))
    assert "“`https://evil.example/reset-password`” is not a tag=value pair" in rendered
    assert "“`*urgent* ~x~ _y_`” is not a tag=value pair" in rendered
    # outside code spans nothing is left that mrkdwn would format or link
    outside = re.sub(r"`[^`]*`", "", rendered)
    assert "https://" not in outside and "*urgent*" not in outside and "~x~" not in outside
    slack.assert_no_violations()
