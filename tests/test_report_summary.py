"""The domain summary: its JSON shape and rates, the reverse-DNS names (concurrent, cached, bounded,
never waited on for long) from a real DNS server, the Slack rendering's escaping, the chart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.reports.chart import render_chart
from bot.reports.summary import (
    MAX_NAMED_SOURCES,
    NameCache,
    build_summary,
    readiness_stats,
    render_text,
    resolve_names,
)
from bot.slack.blocks.aggregate import render_summary
from bot.store.reports import ReportStore
from handlers.fixes.readiness import FailingSource
from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, open_reports, report_xml
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.slackstub import message_problems


@pytest.fixture
def reports(tmp_path: Path) -> ReportStore:
    return open_reports(tmp_path / "summary.db")[1]


def ptr_zone(count: int) -> str:
    return make_zone(
        "2.0.192.in-addr.arpa", [(str(i), "PTR", f"o{i}.mail.sendgrid.net.") for i in range(1, count + 1)]
    )


def test_json_shape_and_rates(reports: ReportStore) -> None:
    rows = [
        Row("192.0.2.1", 3),
        Row("192.0.2.1", 1, dkim="fail", spf="fail"),
        Row("2001:db8::1", 4, dkim="fail"),
    ]
    reports.add_report("T1", parse_report(report_xml(rows, day=days_ago(3))), "t")
    summary = build_summary(reports, "T1", "example.com", 7, names={"192.0.2.1": "mx.example.net"})
    assert summary.to_json() == {
        "domain": "example.com",
        "days": 7,
        "messages": 8,
        "dmarc_pass_rate": 0.875,
        "sources": [
            {
                "ip": "192.0.2.1",
                "name": "mx.example.net",
                "messages": 4,
                "dmarc_pass_rate": 0.75,
                "spf_aligned": 0.75,
                "dkim_aligned": 0.75,
                "sender": None,
                "sender_source": None,
                "category": "unknown",
                "reason": "no sender name; 1 of 4 messages fail DMARC (SPF fail for example.com; "
                "DKIM d=example.com s=s1 fail): possibly spoofing, which the policy should stop",
            },
            {
                "ip": "2001:db8::1",
                "name": None,
                "messages": 4,
                "dmarc_pass_rate": 1.0,
                "spf_aligned": 1.0,
                "dkim_aligned": 0.0,
                "sender": None,
                "sender_source": None,
                "category": "compliant",
                "reason": "passes DMARC through aligned SPF",
            },
        ],
        "selectors": ["s1"],
        "senders": [
            {
                "name": None,
                "category": "unknown",
                "reason": "no sender name; 1 of 8 messages fail DMARC (SPF fail for example.com; "
                "DKIM d=example.com s=s1 fail): possibly spoofing, which the policy should stop",
                "messages": 8,
                "dmarc_pass_rate": 0.875,
                "ips": ["192.0.2.1", "2001:db8::1"],
                "fix": None,
            }
        ],
        "dispositions": {"none": 8, "quarantine": 0, "reject": 0},
        "override_reasons": {},
        "from_domains": [{"domain": "example.com", "messages": 8, "dmarc_pass_rate": 0.875}],
        "reporters": {"google.com": 8},
    }


def test_an_empty_window_has_null_rate_and_says_where_the_data_is(reports: ReportStore) -> None:
    reports.add_report("T1", parse_report(report_xml([Row("192.0.2.1", 3)], day=days_ago(40))), "t")
    summary = build_summary(reports, "T1", "example.com", 7)
    assert summary.to_json()["dmarc_pass_rate"] is None and summary.to_json()["sources"] == []
    assert f"the most recent one is for {days_ago(40).isoformat()}" in render_text(summary)


@pytest.mark.slow
def test_reverse_names_are_concurrent_cached_and_bounded(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    nsd.set_zone("2.0.192.in-addr.arpa", ptr_zone(60))
    fault_proxy.latency = 0.2
    cache = NameCache()
    ips = [f"192.0.2.{i}" for i in range(1, 61)]
    started = time.monotonic()
    names = resolve_names(ips, make_session(fault_proxy, timeout=2.0), cache)
    assert time.monotonic() - started < 2.0  # 50 lookups of 0.2 s each, 16 at a time
    assert len(names) == MAX_NAMED_SOURCES and names["192.0.2.7"] == "o7.mail.sendgrid.net"
    asked = fault_proxy.count()
    assert asked == MAX_NAMED_SOURCES
    again = resolve_names(ips, make_session(fault_proxy, timeout=2.0), cache)
    assert again == names and fault_proxy.count() == asked  # all from the cache


def test_a_slow_resolver_does_not_hold_the_summary(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    nsd.set_zone("2.0.192.in-addr.arpa", ptr_zone(3))
    fault_proxy.latency = 3.0
    cache = NameCache()
    started = time.monotonic()
    names = resolve_names(
        ["192.0.2.1", "192.0.2.2"], make_session(fault_proxy, timeout=5.0), cache, budget=0.3
    )
    assert names == {} and time.monotonic() - started < 1.5
    # an answer that never came is not remembered as "no name"
    assert cache.get((fault_proxy.address, "192.0.2.1")) == (False, None)


def test_a_dns_failure_is_not_cached_as_no_name(
    nsd: NsdServer, fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    nsd.set_zone("2.0.192.in-addr.arpa", ptr_zone(3))
    fault_proxy.add_fault("1.2.0.192.in-addr.arpa", "servfail")
    cache = NameCache()
    session = make_session(fault_proxy)
    assert resolve_names(["192.0.2.1", "192.0.2.2"], session, cache) == {"192.0.2.2": "o2.mail.sendgrid.net"}
    fault_proxy.clear_faults()
    assert resolve_names(["192.0.2.1"], make_session(fault_proxy), cache) == {
        "192.0.2.1": "o1.mail.sendgrid.net"
    }


def test_the_slack_summary_escapes_report_text_and_fits_block_kit(reports: ReportStore) -> None:
    rows = [
        Row(
            f"198.51.100.{i}",
            10 + i,
            dkim="fail",
            spf="fail",
            spf_domain=f"&lt;!channel&gt;{'x' * 200}.test",
            selector=f"sel{i}",
        )
        for i in range(1, 120)
    ]
    reports.add_report("T1", parse_report(report_xml(rows)), "t")
    names = {f"198.51.100.{i}": f"<https://evil.example|click>{i}.example" for i in range(1, 120)}
    text, blocks = render_summary(build_summary(reports, "T1", "example.com", 7, names=names))
    assert message_problems({"text": text, "blocks": blocks}) == []
    rendered = str(blocks)
    assert "<!channel>" not in rendered and "&lt;!channel&gt;" in rendered
    assert "<https://evil" not in rendered


@pytest.mark.slow
def test_the_chart_is_a_png(reports: ReportStore) -> None:
    for n in range(0, 5):
        reports.add_report(
            "T1",
            parse_report(report_xml([Row("192.0.2.1", 10 * n + 1)], day=days_ago(n), report_id=f"{n}")),
            "t",
        )
    png = render_chart(build_summary(reports, "T1", "example.com", 14))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_readiness_reads_the_last_14_days(reports: ReportStore) -> None:
    assert readiness_stats(reports, "T1", "example.com") is None
    reports.add_report(
        "T1",
        parse_report(
            report_xml(
                [Row("192.0.2.1", 97), Row("203.0.113.5", 3, dkim="fail", spf="fail")], day=days_ago(2)
            )
        ),
        "t",
    )
    reports.add_report(
        "T1",
        parse_report(
            report_xml([Row("203.0.113.9", 500, dkim="fail", spf="fail")], day=days_ago(20), report_id="old")
        ),
        "t",
    )
    stats = readiness_stats(reports, "T1", "example.com")
    assert stats is not None
    assert (stats.messages, stats.aligned_pass_share) == (100, 0.97)
    assert stats.failing_sources == (FailingSource("203.0.113.5", 3),)
