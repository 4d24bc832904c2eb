"""Who sends as the domain, in Slack: `/dmarc report` through the signed endpoint, its senders by
category with their Fix it buttons as the stand-in received them, and a button pressed into the
real fix-it flow. The SPF chain and PTR names are served by NSD."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.slack import ids as slack_ids
from bot.slack.blocks.aggregate import MAX_MISCONFIGURED
from handlers.reports.aggregate import parse_report
from handlers.reports.senders import sender_map
from tests.aggregate_xml import Row, days_ago, open_reports, report_xml
from tests.conftest import AppFactory
from tests.dnstest import NsdServer, make_zone
from tests.slackstub import Call, SlackStandIn
from tests.test_fixit_slack import open_modal

TIMEOUT = 20


def serve(nsd: NsdServer) -> None:
    """example.test's SPF names a partner's include only; PTR names for Mailchimp, SendGrid and a
    forwarding service; SendGrid's own SPF, which the proposed include must reach."""
    nsd.set_zone(
        "example.test", make_zone("example.test", [("@", "TXT", "v=spf1 include:_spf.partner.test ~all")])
    )
    nsd.set_zone(
        "partner.test", make_zone("partner.test", [("_spf", "TXT", "v=spf1 ip4:198.51.100.0/28 -all")])
    )
    nsd.set_zone("sendgrid.net", make_zone("sendgrid.net", [("@", "TXT", "v=spf1 ip4:203.0.113.0/25 ~all")]))
    nsd.set_zone(
        "2.0.192.in-addr.arpa",
        make_zone(
            "2.0.192.in-addr.arpa",
            [
                ("7", "PTR", "o7.mail.mcsv.net."),
                ("30", "PTR", "o1.ptr.sendgrid.net."),
                ("9", "PTR", "mx1.forwardemail.net."),
            ],
        ),
    )


ROWS = [
    # Mailchimp: not in SPF, signs d=mcsv.net: misconfigured, its DKIM CNAMEs are the fix.
    Row("192.0.2.7", 300, dkim="fail", spf="fail", dkim_domain="mcsv.net", dkim_result="pass", selector="k1",
        header_from="example.test", spf_domain="mail.mcsv.net", spf_result="pass"),
    # SendGrid with the domain's own envelope, not in SPF: misconfigured, its include is the fix.
    Row("192.0.2.30", 200, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
        spf_domain="example.test", spf_result="fail"),
    # A partner in SPF with its own bounce domain (a hostile one): misconfigured, no catalog fix.
    Row("198.51.100.3", 120, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
        spf_domain="&lt;!channel&gt;.partner.test", spf_result="pass"),
    # A forwarding service: forwarded, quarantined.
    Row("192.0.2.9", 60, dkim="fail", spf="fail", dkim_domain="example.test", dkim_result="fail",
        header_from="example.test", spf_domain="example.test", spf_result="softfail",
        disposition="quarantine"),
    # Two unnamed failing sources, rejected: one "unknown" line.
    Row("192.0.2.66", 90, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
        spf_domain="example.test", spf_result="fail", disposition="reject"),
    Row("192.0.2.67", 10, dkim="fail", spf="fail", dkim_domain=None, header_from="example.test",
        spf_domain="example.test", spf_result="fail", disposition="reject"),
    # The partner's other host, aligned: in the partner's group, which stays misconfigured.
    Row("198.51.100.4", 5, header_from="example.test", dkim_domain=None, spf_domain="example.test"),
]  # fmt: skip


def sections(call: Call) -> list[dict[str, Any]]:
    return [b for b in call.blocks if b.get("type") == "section"]


def test_dmarc_report_shows_senders_by_category_with_fix_buttons(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    serve(nsd)
    app = make_app(nsd)
    _store, reports = open_reports(Path(app.settings.db_path))
    xml = report_xml(ROWS, day=days_ago(1), domain="example.test")
    reports.add_report("T1", parse_report(xml), "test")
    status, _ = app.sim.slash_command("report example.test 7")
    assert status == 200
    [post] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    slack.assert_no_violations()  # Block Kit's limits, and no mention made of report text
    texts = [b["text"]["text"] for b in sections(post)]
    assert "*What the policy did:* 60 quarantined, 100 rejected." in texts[0]

    # Misconfigured first: a heading, then one section per sender, largest first.
    start = next(i for i, t in enumerate(texts) if t.startswith(":wrench: *Misconfigured senders*"))
    mailchimp, sendgrid, partner = sections(post)[start + 1 : start + 4]
    assert mailchimp["text"]["text"].startswith(
        "*Mailchimp* (300 messages, 0% pass DMARC): not in SPF; DKIM d=mcsv.net not aligned"
    )
    assert json.loads(mailchimp["accessory"]["value"]) == {
        "f": "dkim.key_missing",
        "d": "example.test",
        "o": "T1",
        "p": "mailchimp",
        "x": "k2",  # the first of the catalog's Mailchimp CNAME selectors
        "s": [],
    }
    assert sendgrid["text"]["text"].startswith(
        "*SendGrid* (200 messages, 0% pass DMARC): not in SPF; no DKIM signature\n"
        "*Fix:* Add include:sendgrid.net (SendGrid) to the SPF record of example.test"
    )
    assert sendgrid["accessory"]["action_id"] == slack_ids.ACTION_FIX
    assert json.loads(sendgrid["accessory"]["value"])["f"] == "spf.sender_missing"
    # The partner's bounce domain came from the report: escaped, never a mention.
    assert "&lt;!channel&gt;.partner.test" in partner["text"]["text"]
    assert "<!channel>" not in json.dumps(post.blocks)
    assert "accessory" not in partner and "Not in the Fix it catalog" in partner["text"]["text"]

    # Then the unnamed failing volume as one line, forwarded after it.
    unknown = next(t for t in texts if t.startswith(":grey_question: *Unknown*"))
    assert unknown.count("\n") == 1
    assert "• *No sender name*: 100 of 100 messages from 2 sources fail DMARC" in unknown
    forwarded = next(t for t in texts if t.startswith(":arrow_right_hook: *Forwarded*"))
    assert "*ForwardEmail.net* (60 messages, 0% pass DMARC)" in forwarded
    order = [texts.index(t) for t in (texts[start], unknown, forwarded)]
    assert order == sorted(order)

    # SendGrid's button opens the fix-it flow with its include already chosen.
    modal = open_modal(app, slack, sendgrid["accessory"]["value"])
    assert "include:sendgrid.net" in modal.proposed()
    assert "include:_spf.partner.test" in modal.proposed()
    slack.assert_no_violations()
    slack.wait_for("files.completeUploadExternal", 1, timeout=30, ok_only=True)  # the chart: all done


def test_an_unknown_provider_in_a_fix_button_is_refused(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    value = json.dumps({"f": "spf.sender_missing", "d": "example.test", "p": "<!channel>", "s": []})
    status, _ = app.sim.block_action(slack_ids.ACTION_FIX, value, team_id="T1")
    assert status == 200
    [told] = slack.wait_for("response_url", 1, timeout=TIMEOUT)
    assert "That Fix it button is from an older report" in told.params["text"]
    assert slack.calls("views.open") == []  # after the answer: no modal was opened


def test_many_senders_stay_within_block_kits_limits(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    # 60 misconfigured senders (each named by a DKIM d= from parsedmarc's map) and 300 unnamed
    # failing sources with long hostile bounce domains: still one message inside the limits.
    named = [d for d in sender_map() if d.isascii() and d.count(".") == 1][:60]
    rows = [
        Row(f"10.0.{n // 250}.{n % 250 + 1}", 100 + n, dkim="fail", spf="fail", dkim_domain=domain,
            dkim_result="pass", header_from="example.test", spf_domain=domain, spf_result="pass")
        for n, domain in enumerate(named)
    ] + [
        Row(f"10.9.{n // 250}.{n % 250 + 1}", 5, dkim="fail", spf="fail", dkim_domain=None,
            header_from="example.test", spf_domain=f"&lt;!channel&gt;{'x' * 50}{n}.test", spf_result="fail")
        for n in range(300)
    ]  # fmt: skip
    app = make_app(nsd)
    _store, reports = open_reports(Path(app.settings.db_path))
    reports.add_report("T1", parse_report(report_xml(rows, day=days_ago(1), domain="example.test")), "test")
    app.sim.slash_command("report example.test 7")
    [post] = slack.wait_for("chat.postMessage", 1, timeout=TIMEOUT, ok_only=True)
    slack.assert_no_violations()
    assert len(post.blocks) <= 50
    texts = [b["text"]["text"] for b in sections(post)]
    assert all(len(t) <= 3000 for t in texts)
    misconfigured = [t for t in texts if "pass DMARC):" in t and t.startswith("*")]
    assert len(misconfigured) == MAX_MISCONFIGURED
    more = re.search(r"…and (\d+) more misconfigured senders", json.dumps(post.blocks, ensure_ascii=False))
    assert more is not None and int(more.group(1)) > 0
    # every unnamed source is counted, though a sender lists at most 100 IPs
    unknown = next(t for t in texts if t.startswith(":grey_question: *Unknown*"))
    counted = re.search(r"messages from (\d+) sources fail DMARC", unknown)
    assert counted is not None and int(counted.group(1)) >= 300
    assert "<!channel>" not in json.dumps(post.blocks)
    slack.wait_for("files.completeUploadExternal", 1, timeout=30, ok_only=True)  # the chart: all done
