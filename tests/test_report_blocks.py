"""The report's Block Kit, rendered from hand-made reports: limits (50 blocks, 3000 characters a
section, 2000 a button value), "…and N more", escaping, and the buttons."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import render_report, report_button_value
from handlers.domain.bimi import BimiReport
from handlers.domain.check import DomainReport
from handlers.domain.dkim_keys import DkimKey, DkimReport
from handlers.domain.dmarc import DmarcReport
from handlers.domain.dnssec import DnssecReport
from handlers.domain.findings import Finding, Severity
from handlers.domain.mta_sts import MtaStsPolicy, MtaStsReport
from handlers.domain.mx import MxHost, MxReport
from handlers.domain.spf import SpfReport
from handlers.domain.tls_rpt import TlsRptReport
from tests.slackstub import message_problems, strings

EVIL = "<!channel> <!here> <https://evil.example|Click> & `x`"


def evil_finding(i: int, severity: Severity = Severity.ERROR) -> Finding:
    return Finding(
        id="dkim.key_invalid",
        severity=severity,
        title=f"Title {i} {EVIL}",
        detail=f"Detail {i} " + EVIL * 80,
        fix=f"Fix {i} " + EVIL * 40,
        record=f"v=DKIM1; n={EVIL * 60}",
    )


def report(
    findings: list[Finding], *, domain: str = "example.test", exists: bool = True, with_parts: bool = True
) -> DomainReport:
    parts: dict[str, Any] = {"dmarc": None, "spf": None, "dkim": None, "mx": None}
    if with_parts:
        parts = {
            "dmarc": DmarcReport(
                domain=domain, record=None, location=domain, policy=None, findings=(), walked=()
            ),
            "spf": SpfReport(
                domain=domain,
                record="v=spf1 " + "ip4:192.0.2.1 " * 400 + EVIL + " -all",
                dns_lookups=11,
                void_lookups=0,
            ),
            "dkim": DkimReport(
                domain=domain,
                keys=tuple(
                    DkimKey(
                        selector=f"s{i}{EVIL}",
                        name=f"s{i}._domainkey.{domain}",
                        record=EVIL,
                        key_type=EVIL,
                        key_bits=None,
                        revoked=False,
                        testing=False,
                        problems=(),
                    )
                    for i in range(30)
                ),
                selectors_tried=("s",) * 30,
                probed=False,
                findings=(),
            ),
            "mx": MxReport(domain, tuple(MxHost(i, f"mx{i}.{domain}") for i in range(20)), False, ()),
        }
    return DomainReport(
        domain=domain,
        exists=exists,
        findings=tuple(findings),
        queries=99,
        dns_unreachable=False,
        checked_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        **parts,
    )


def sections(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def test_worst_case_stays_within_block_kit_limits() -> None:
    findings = [evil_finding(i) for i in range(120)]
    text, blocks = render_report(report(findings), ["sel"] * 20)
    assert len(blocks) <= 50
    assert all(len(s) <= 3000 for s in sections(blocks))
    assert len(text) <= 3000
    assert message_problems({"text": text, "blocks": blocks}) == []
    shown = [s for s in sections(blocks) if s.startswith(":red_circle:")]
    [more] = [
        e["text"]
        for b in blocks
        if b["type"] == "context"
        for e in b["elements"]
        if e["text"].startswith("…and")
    ]
    assert more.startswith(f"…and {120 - len(shown)} more findings: run `dmarcbot check example.test`")
    assert blocks[-1]["type"] == "actions"


def test_no_more_line_when_everything_fits() -> None:
    _, blocks = render_report(report([evil_finding(i) for i in range(5)]))
    assert not any("more findings" in s for s in strings(blocks))
    assert len([s for s in sections(blocks) if s.startswith(":red_circle:")]) == 5


def test_everything_from_dns_is_escaped() -> None:
    text, blocks = render_report(report([evil_finding(1), evil_finding(2, Severity.WARNING)]))
    everything = "\n".join([text, *strings(blocks)])
    for raw in ("<!channel>", "<!here>", "<https://evil.example"):
        assert raw not in everything
    assert "&lt;!channel&gt;" in everything
    # a backtick from DNS never closes a code span early: each section's backticks pair up
    for s in sections(blocks):
        assert s.count("`") % 2 == 0, s


def test_fallback_text_is_escaped() -> None:
    """The summary quotes the top finding's fix, which can carry text from DNS."""
    text, _ = render_report(report([evil_finding(1)], with_parts=False))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_buttons() -> None:
    _, blocks = render_report(report([evil_finding(1, Severity.INFO)]), ["google"])
    actions = blocks[-1]
    assert actions["block_id"] == slack_ids.BLOCK_REPORT_ACTIONS
    assert [e["action_id"] for e in actions["elements"]] == [slack_ids.ACTION_RECHECK, slack_ids.ACTION_WATCH]
    assert json.loads(actions["elements"][0]["value"]) == {"d": "example.test", "s": ["google"]}
    _, blocks = render_report(report([evil_finding(1, Severity.WARNING)]))
    assert [e["action_id"] for e in blocks[-1]["elements"]][-1] == slack_ids.ACTION_FIX


def test_button_value_stays_within_2000() -> None:
    domain = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters
    value = report_button_value(domain, ["s" * 63] * 20)
    assert len(value) <= 2000 and json.loads(value)["d"] == domain
    value = report_button_value(domain, ["s" * 200] * 50)
    assert len(value) <= 2000
    assert json.loads(value)["d"] == domain
    assert len(json.loads(report_button_value("x.test", [str(i) for i in range(50)]))["s"]) == 20


def test_nxdomain_report() -> None:
    text, blocks = render_report(
        report(
            [
                Finding(
                    id="domain.nxdomain",
                    severity=Severity.ERROR,
                    title="The domain does not exist",
                    detail="d",
                    fix="f",
                )
            ],
            domain="nosuch.test",
            exists=False,
            with_parts=False,
        )
    )
    assert blocks[0]["text"]["text"] == "nosuch.test: fails DMARC"
    assert "*Domain*\nnosuch.test does not exist (NXDOMAIN)." in sections(blocks)
    assert message_problems({"text": text, "blocks": blocks}) == []


def transport_parts(domain: str = "example.test") -> dict[str, Any]:
    """Every part after MX published at its worst: long hostile records, many MX patterns."""
    return {
        "mta_sts": MtaStsReport(
            domain=domain,
            record="v=STSv1; id=1; " + EVIL * 50,
            policy=MtaStsPolicy("enforce", 86400, tuple(f"mx{i}.{EVIL}" for i in range(50))),
            policy_text=None,
            certificate_expires=None,
            findings=(),
        ),
        "tls_rpt": TlsRptReport(f"_smtp._tls.{domain}", "v=TLSRPTv1; " + EVIL * 50, (), ()),
        "bimi": BimiReport(
            domain=domain, record="v=BIMI1; l=" + EVIL * 50, logo_url="https://" + EVIL * 50, findings=()
        ),
        "dnssec": DnssecReport(zone=domain, signed=True, valid=False, findings=()),
    }


def family_finding(finding_id: str, i: int = 0) -> Finding:
    return Finding(
        id=finding_id,
        severity=Severity.ERROR,
        title=f"Title {i} {EVIL}",
        detail=f"Detail {i} " + EVIL * 80,
        fix="Fix " + EVIL * 40,
    )


def test_worst_case_with_every_part_after_mx_stays_within_50_blocks() -> None:
    base = report([])
    parts = transport_parts()
    families = ("mta_sts.policy_invalid", "tls_rpt.invalid", "bimi.logo_invalid", "dnssec.invalid")
    findings = [evil_finding(i) for i in range(100)]
    findings += [family_finding(f, i) for i in range(10) for f in families]
    full = replace(base, findings=tuple(findings), **parts)
    text, blocks = render_report(full, ["sel"] * 20)
    assert len(blocks) == 50
    assert all(len(s) <= 3000 for s in sections(blocks))
    assert message_problems({"text": text, "blocks": blocks}) == []
    titles = [s.split("\n", 1)[0] for s in sections(blocks)]
    assert titles[1:9] == [
        "*DMARC*",
        "*SPF*",
        "*DKIM* (named)",
        "*MX*",
        "*MTA-STS*",
        "*TLS-RPT*",
        "*BIMI*",
        "*DNSSEC*",
    ]
    assert "<!channel>" not in json.dumps(blocks)
    assert not any("Also checked" in s for s in strings(blocks))
    assert blocks[-1]["type"] == "actions"


def test_parts_with_nothing_to_say_collapse_into_one_line() -> None:
    full = replace(report([family_finding("bimi.dmarc_not_enforced")]), **transport_parts())
    _, blocks = render_report(full)
    titles = [s.split("\n", 1)[0] for s in sections(blocks)]
    assert "*BIMI*" in titles
    assert not {"*MTA-STS*", "*TLS-RPT*", "*DNSSEC*"} & set(titles)
    assert "Also checked, nothing to report: MTA-STS, TLS-RPT, DNSSEC." in strings(blocks)
    quiet = replace(report([]), **transport_parts())
    _, blocks = render_report(quiet)
    assert "Also checked, nothing to report: MTA-STS, TLS-RPT, BIMI, DNSSEC." in strings(blocks)
    assert not {"*MTA-STS*", "*BIMI*"} & {s.split("\n", 1)[0] for s in sections(blocks)}
