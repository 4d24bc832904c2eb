"""Answers a DNS expert would sign: what `check` says, in the terminal and in Slack, when records are
doubled, partly unreachable or unreachable altogether. Real NSD zones, the fault proxy, the Slack
stand-in."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.common import EXIT_BAD_INPUT
from bot.cli.terminal_report import render_domain_report
from handlers.domain.check import DomainReport, check_domain
from tests.conftest import AppFactory, SessionFactory
from tests.dnstest import FaultProxy, NsdServer, free_port, make_zone
from tests.slackstub import SlackStandIn
from tests.test_fixit_slack import fix_value, open_modal
from tests.test_slack_app import check, finding_sections, section_texts


def world() -> dict[str, str]:
    records = [
        # twospf.test: two SPF records
        ("twospf", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("twospf", "TXT", "v=spf1 include:_spf.provider.test -all"),
        ("_dmarc.twospf", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@twospf.test"),
        # partial.test: an include whose lookup fails (the proxy fails _spf.broken.test)
        ("partial", "TXT", "v=spf1 include:_spf.broken.test ip4:192.0.2.1 -all"),
        ("_dmarc.partial", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@partial.test"),
        ("_spf.broken", "TXT", "v=spf1 ip4:198.51.100.0/24 -all"),
        ("_spf.provider", "TXT", "v=spf1 ip4:198.51.100.0/24 -all"),
    ]
    return {"test": make_zone("test", records)}


def run(session: object, domain: str) -> DomainReport:
    return asyncio.run(check_domain(domain, session))  # type: ignore[arg-type]


def section_of(text: str, title: str) -> str:
    """The lines of one section of the terminal report (up to the next blank line)."""
    lines = text.splitlines()
    start = lines.index(title)
    end = lines.index("", start)
    return "\n".join(lines[start:end])


# ------------------------------------------------------------------------------- two SPF records


def test_two_spf_records_are_each_shown_in_the_terminal(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(world())
    text = render_domain_report(run(make_session(nsd), "twospf.test"))
    spf = section_of(text, "SPF")
    assert "(none)" not in spf
    assert "v=spf1 ip4:192.0.2.1 -all" in spf
    assert "v=spf1 include:_spf.provider.test -all" in spf
    assert "spf.multiple" in spf


def test_two_spf_records_are_each_in_their_own_code_block_in_slack(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones(world())
    _, post = check(make_app(nsd), "check twospf.test")
    spf = next(s for s in section_texts(post) if s.startswith("*SPF*"))
    assert "_no record_" not in spf
    assert "```v=spf1 ip4:192.0.2.1 -all```" in spf
    assert "```v=spf1 include:_spf.provider.test -all```" in spf
    multiple = next(f for f in finding_sections(post) if "`spf.multiple`" in f)
    # no inline code span across a newline: each record is a code block of its own
    assert "`v=spf1 ip4:192.0.2.1 -all\n" not in multiple
    assert "```v=spf1 ip4:192.0.2.1 -all```" in multiple
    assert "```v=spf1 include:_spf.provider.test -all```" in multiple
    slack.assert_no_violations()


# ------------------------------------------------------------------------------ partial failures


def test_a_failed_include_lookup_is_said_and_filed_under_spf(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    nsd.set_zones(world())
    fault_proxy.add_fault("_spf.broken.test", "servfail")
    report = run(make_session(fault_proxy), "partial.test")
    text = render_domain_report(report)
    spf = section_of(text, "SPF")
    assert "None" not in text
    assert "include:include:" not in text.replace(" ", "")
    assert "include:_spf.broken.test → unknown: TXT lookup for _spf.broken.test failed" in spf
    assert "dns.temperror" in spf
    assert "dns.temperror" not in section_of(text, "DMARC")
    include = report.to_json()["spf"]["includes"][0]  # type: ignore[index]
    assert include["record"] is None  # the JSON keeps its shape; the finding says why


def test_with_dns_down_dkim_is_unknown_not_missing(make_session: SessionFactory) -> None:
    report = run(make_session(f"127.0.0.1:{free_port()}", timeout=0.2), "good.test")
    dkim = section_of(render_domain_report(report), "DKIM")
    assert "unknown: DNS failed" in dkim
    assert "no key found" not in dkim


def test_with_dkim_lookups_failing_slack_says_unknown(
    nsd: NsdServer, fault_proxy: FaultProxy, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones(world())
    fault_proxy.add_fault("sel._domainkey.partial.test", "servfail")
    _, post = check(make_app(fault_proxy), "check partial.test sel")
    dkim = next(s for s in section_texts(post) if s.startswith("*DKIM*"))
    assert "unknown: DNS failed" in dkim
    assert "no key found" not in dkim
    slack.assert_no_violations()


# ------------------------------------------------------------------------------ domain.invalid


def test_bad_input_with_json_emits_domain_invalid_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    # a closed port: a lookup would time out, so the answer shows none ran
    code = main(["check", "exa mple.com", "--json", "--nameserver", f"127.0.0.1:{free_port()}"])
    out, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert err.startswith("dmarcbot check: ") and "contains spaces" in err
    data = json.loads(out)
    assert [f["id"] for f in data["findings"]] == ["domain.invalid"]
    assert "contains spaces" in data["findings"][0]["detail"]
    assert data["domain"] == "exa mple.com" and data["dns_queries"] == 0
    assert {"domain", "summary", "verdict", "dmarc", "spf", "dkim", "mx", "findings"} <= set(data)


# ------------------------------------------------------------------------- Fix it on a syntax error


def test_fix_it_keeps_every_valid_tag_and_reads_a_misspelt_policy_as_the_closest(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones(
        {
            "test": make_zone(
                "test",
                [
                    ("typo", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
                    ("_dmarc.typo", "TXT", "v=DMARC1; p=rejectt; fo=1; rua=mailto:dmarc@typo.test"),
                ],
            )
        }
    )
    modal = open_modal(make_app(nsd, dns_timeout=0.5), slack, fix_value("dmarc.syntax", "typo.test"))
    proposed = modal.proposed()
    assert "p=reject;" in proposed, modal.text
    assert "rua=mailto:dmarc@typo.test" in proposed and "fo=1" in proposed
    assert "p=rejectt is not a policy; it is read as p=reject" in modal.text
    policy = next(
        b["element"] for b in modal.view["blocks"] if b.get("type") == "input" and "policy" in b["block_id"]
    )
    assert policy["initial_option"]["value"] == "reject"
    slack.assert_no_violations()


def test_the_readme_counts_the_manifest_urls_to_replace() -> None:
    root = Path(__file__).resolve().parents[1]
    count = (root / "manifest.json").read_text().count("YOUR-APP-HOST")
    words = {2: "two", 3: "three", 4: "four", 5: "five"}
    assert f"in the manifest's {words[count]} URLs" in (root / "README.md").read_text()


# ------------------------------------------------------------- each surface names its own syntax


def test_no_selector_fix_names_the_terminals_flag(nsd: NsdServer, make_session: SessionFactory) -> None:
    nsd.set_zones(world())
    text = render_domain_report(run(make_session(nsd), "twospf.test"))
    fix = section_of(text, "DKIM")
    assert "dkim.no_selector" in fix
    assert "dmarcbot check twospf.test --selector NAME" in " ".join(fix.split())
    assert "/dmarc" not in fix


def test_no_selector_fix_names_the_slash_command_in_slack(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    nsd.set_zones(world())
    _, post = check(make_app(nsd), "check twospf.test")
    fix = next(f for f in finding_sections(post) if "`dkim.no_selector`" in f)
    assert "`/dmarc check twospf.test SELECTOR`" in fix
    assert "--selector" not in fix
    slack.assert_no_violations()


# ------------------------------------------------------------------------- IDN names, one way


def test_an_idn_report_in_slack_is_in_unicode_with_its_a_label_once(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    idn = make_zone(
        "xn--bcher-kva.test", [("@", "TXT", "v=spf1 -all"), ("_dmarc", "TXT", "v=DMARC1; p=none")]
    )
    nsd.set_zones({**world(), "xn--bcher-kva.test": idn})
    _, post = check(make_app(nsd), "check bücher.test")
    assert post.blocks[0]["text"]["text"] == "bücher.test (xn--bcher-kva.test): can pass DMARC"
    shown = "\n".join(section_texts(post))
    assert "xn--" not in shown and "`_dmarc.bücher.test`" in shown
    slack.assert_no_violations()
