"""Scheduled report digests: written by the monitor cycle with injected time, over a real database
file, the real DNS server and the Slack stand-in; once per period, across restarts and monitors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.monitor.cycle import check_watches
from bot.monitor.digests import digest_key, write_digest, write_due_digests
from bot.reports.digest import period_due
from bot.slack.blocks.report_digest import MAX_SENDERS_LISTED
from bot.store.database import iso
from bot.store.outbox import DIGEST_KIND, NewAlert
from bot.store.stores import Stores, open_stores
from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.reports.aggregate import parse_report
from handlers.reports.senders import sender_map
from tests.aggregate_xml import Row, report_xml
from tests.dnstest import NsdServer
from tests.slackstub import SlackStandIn
from tests.watchtest import PROVIDER, MonitorHarness, domain_zone, make_harness, provider_zone

DOMAIN = "example.test"
WEDNESDAY = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # ISO week 48
MONDAY = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # ISO week 49


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones(
        {
            PROVIDER: provider_zone(),
            DOMAIN: domain_zone(DOMAIN, dmarc=f"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}"),
        }
    )
    return nsd


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackStandIn, world: NsdServer) -> Iterator[MonitorHarness]:
    harness = make_harness(tmp_path, slack, world)
    harness.watch(DOMAIN, channel="C1")
    yield harness
    harness.stores.close()


def row(ip: str, count: int, **fields: Any) -> Row:
    return Row(ip, count, **{"header_from": DOMAIN, "dkim_domain": DOMAIN, "spf_domain": DOMAIN, **fields})


def add_day(stores: Stores, day: date, rows: list[Row], report_id: str | None = None) -> None:
    xml = report_xml(rows, day=day, domain=DOMAIN, report_id=report_id or f"r{day}")
    stores.reports.add_report("T1", parse_report(xml), "test")


def session(monitor: MonitorHarness) -> DnsSession:
    return DnsSession(nameservers=(parse_nameserver(monitor.dns.address),), timeout=1.0, attempts=1)


def cycle(monitor: MonitorHarness, now: datetime) -> int:
    """One `monitor --once` at `now`; returns the digests it wrote. Its positive signal that it
    finished: the watch's row says it was checked at `now`."""
    report = check_watches(monitor.stores, session(monitor), now=now)
    monitor.deliver()
    watch = monitor.stores.watches.watch("T1", DOMAIN)
    assert watch is not None and watch.last_checked_at == iso(now)
    return report.digests_written


def digests_posted(slack: SlackStandIn) -> list[dict[str, Any]]:
    return [
        c.params
        for c in slack.calls("chat.postMessage")
        if c.ok and "DMARC digest" in json.dumps(c.params.get("blocks"))
    ]


def test_period_due_is_the_last_whole_day_or_iso_week_from_noon_utc() -> None:
    assert period_due("daily", WEDNESDAY.replace(hour=11, minute=59)) is None
    daily = period_due("daily", WEDNESDAY)
    assert daily is not None and (daily.key, daily.first, daily.last) == ("2026-11-24",) * 3
    assert (daily.previous_first, daily.previous_last) == ("2026-11-23", "2026-11-23")
    assert period_due("weekly", MONDAY.replace(hour=11)) is None
    for moment in (MONDAY, MONDAY + timedelta(days=6, hours=10)):  # any time in the week after
        weekly = period_due("weekly", moment)
        assert weekly is not None and weekly.key == "2026-W48"
        assert (weekly.first, weekly.last) == ("2026-11-23", "2026-11-29")
        assert (weekly.previous_first, weekly.previous_last) == ("2026-11-16", "2026-11-22")
    new_year = period_due("weekly", datetime(2027, 1, 4, 12, tzinfo=UTC))
    assert new_year is not None and new_year.key == "2026-W53"  # ISO weeks cross years
    assert period_due("off", WEDNESDAY) is None


@pytest.mark.slow
def test_a_daily_digest_posts_once_a_day(monitor: MonitorHarness, slack: SlackStandIn) -> None:
    add_day(monitor.stores, date(2026, 11, 24), [row("192.0.2.10", 100)])
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    assert cycle(monitor, WEDNESDAY.replace(hour=9)) == 0  # before noon: yesterday's reports still come
    assert cycle(monitor, WEDNESDAY) == 1
    assert len(digests_posted(slack)) == 1
    assert digests_posted(slack)[0]["channel"] == "C1"
    # Later the same day: the cycle ran (the watch was checked again) and wrote no second digest.
    assert cycle(monitor, WEDNESDAY + timedelta(hours=5)) == 0
    assert len(digests_posted(slack)) == 1
    assert cycle(monitor, WEDNESDAY + timedelta(days=1)) == 1  # Thursday: Wednesday's digest
    posted = digests_posted(slack)
    assert len(posted) == 2 and "Wednesday 25 November 2026" in posted[1]["text"]
    slack.assert_no_violations()


@pytest.mark.slow
def test_a_weekly_digest_posts_once_a_week(monitor: MonitorHarness, slack: SlackStandIn) -> None:
    monitor.stores.watches.set_digest("T1", DOMAIN, "weekly")
    assert cycle(monitor, MONDAY) == 1
    assert "week 48 (23 November to 29 November 2026)" in digests_posted(slack)[0]["text"]
    for later in (timedelta(hours=3), timedelta(days=2), timedelta(days=6, hours=10)):
        assert cycle(monitor, MONDAY + later) == 0
    assert len(digests_posted(slack)) == 1
    assert cycle(monitor, MONDAY + timedelta(days=7)) == 1
    assert len(digests_posted(slack)) == 2
    slack.assert_no_violations()


@pytest.mark.slow
def test_off_stops_the_digest(monitor: MonitorHarness, slack: SlackStandIn) -> None:
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    assert cycle(monitor, WEDNESDAY) == 1
    monitor.stores.watches.set_digest("T1", DOMAIN, None)
    assert cycle(monitor, WEDNESDAY + timedelta(days=1)) == 0
    assert len(digests_posted(slack)) == 1
    assert [a.kind for a in monitor.stores.outbox.alerts("T1")] == [DIGEST_KIND]


def test_a_restart_does_not_post_the_period_again(
    monitor: MonitorHarness, slack: SlackStandIn, tmp_path: Path
) -> None:
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    assert write_due_digests(monitor.stores, session(monitor), WEDNESDAY) == 1
    restarted = open_stores(str(tmp_path / "monitor.db"))  # a new process on the same file
    try:
        assert write_due_digests(restarted, session(monitor), WEDNESDAY + timedelta(hours=1)) == 0
    finally:
        restarted.close()
    assert monitor.deliver().messages_posted == 1
    assert [a.state for a in monitor.stores.outbox.alerts("T1")] == ["posted"]


def test_two_monitors_post_one_digest(monitor: MonitorHarness, slack: SlackStandIn, tmp_path: Path) -> None:
    add_day(monitor.stores, date(2026, 11, 24), [row("192.0.2.10", 100)])
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    watch = monitor.stores.watches.watch("T1", DOMAIN)
    period = period_due("daily", WEDNESDAY)
    assert watch is not None and period is not None
    written: list[int] = []
    start = threading.Barrier(2)

    def one_monitor() -> None:
        stores = open_stores(str(tmp_path / "monitor.db"))
        try:
            start.wait()
            # Both past the "already written?" check at once: the outbox's key decides.
            written.append(write_digest(stores, watch, period, session(monitor), WEDNESDAY))
        finally:
            stores.close()

    threads = [threading.Thread(target=one_monitor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == [0, 1]
    assert monitor.stores.outbox.has_alert("T1", digest_key(DOMAIN, period))
    reports = [monitor.deliver(), monitor.deliver()]
    assert [r.messages_posted for r in reports] == [1, 0]
    assert len(digests_posted(slack)) == 1


@pytest.mark.slow
def test_the_digest_gives_the_figures(monitor: MonitorHarness, slack: SlackStandIn) -> None:
    day, before = date(2026, 11, 24), date(2026, 11, 23)
    # The day before: 1,000 messages from the domain's own provider (192.0.2.0/24 in its SPF), 95% passing.
    add_day(monitor.stores, before, [row("192.0.2.10", 950), row("192.0.2.11", 50, dkim="fail", spf="fail")])
    add_day(
        monitor.stores,
        day,
        [
            row("192.0.2.10", 800),
            # Mailchimp signing as itself, its own bounce domain: named, failing alignment
            Row(
                "198.51.100.7",
                100,
                dkim="fail",
                spf="fail",
                header_from=DOMAIN,
                dkim_domain="mcsv.net",
                dkim_result="pass",
                spf_domain="mcsv.net",
                spf_result="pass",
                disposition="quarantine",
            ),
            # a source never seen, unnamed, failing: possibly spoofing
            row("203.0.113.5", 100, dkim="fail", spf="fail", disposition="reject", dkim_domain=None),
        ],
    )
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    assert cycle(monitor, WEDNESDAY) == 1
    (posted,) = digests_posted(slack)
    blocks = json.dumps(posted["blocks"], ensure_ascii=False)
    assert posted["blocks"][0]["text"]["text"] == f"Daily DMARC digest: {DOMAIN}"
    # 800 of 1,000 passed: 80%, 15 points under the day before's 95%
    assert (
        "1,000 messages, *80%* passed DMARC (:arrow_down_small: -15.0 points from 95% the day before)"
        in blocks
    )
    assert "*Mailchimp* · *new* · misconfigured" in blocks
    assert "*Unnamed sources* · *new* · unknown" in blocks
    assert "100 messages, 0% passed" in blocks
    assert "192.0.2.10" not in blocks and "provider.test" not in blocks  # compliant and known: not listed
    assert "800 delivered as usual, 100 quarantined, 100 rejected" in blocks
    # p=none: the next step is quarantine; 1,750 of 2,000 passed over 14 days
    assert "Next policy step* (p=none → p=quarantine)" in blocks
    assert "Only 87.5% of 2000 messages in the last 14 days passed DMARC aligned" in blocks
    assert posted["text"].startswith(
        f"Daily DMARC digest: {DOMAIN}: 1,000 messages on Tuesday 24 November 2026"
    )
    slack.assert_no_violations()


@pytest.mark.slow
def test_hostile_report_text_is_escaped(monitor: MonitorHarness, slack: SlackStandIn) -> None:
    # an unnamed source whose reason quotes the d= a forger chose
    add_day(
        monitor.stores,
        date(2026, 11, 24),
        [row("198.51.100.9", 5, dkim="fail", spf="fail", dkim_domain="&lt;!channel&gt;x.test")],
    )
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    assert cycle(monitor, WEDNESDAY) == 1
    (posted,) = digests_posted(slack)
    text = json.dumps(posted, ensure_ascii=False)
    assert "d=&lt;!channel&gt;x.test" in text and "<!channel>" not in text  # shown, escaped
    slack.assert_no_violations()


@pytest.mark.slow
def test_many_senders_stay_within_limits(monitor: MonitorHarness, slack: SlackStandIn) -> None:
    services = sorted(sender_map())[:30]  # 30 named senders (by DKIM d=), each failing alignment
    rows = [
        Row(
            f"203.0.113.{n}",
            10,
            dkim="fail",
            spf="fail",
            header_from=DOMAIN,
            dkim_domain=service,
            dkim_result="pass",
            spf_domain=service,
        )
        for n, service in enumerate(services, start=1)
    ]
    add_day(monitor.stores, date(2026, 11, 24), rows)
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    assert cycle(monitor, WEDNESDAY) == 1
    (posted,) = digests_posted(slack)
    text = json.dumps(posted, ensure_ascii=False)
    assert text.count("misconfigured:") == MAX_SENDERS_LISTED
    assert f"…and {len(services) - MAX_SENDERS_LISTED} more" in text
    assert len(posted["blocks"]) <= 7
    slack.assert_no_violations()  # the stand-in checks Block Kit's limits


def test_a_digest_is_a_message_of_its_own_beside_alerts(monitor: MonitorHarness, slack: SlackStandIn) -> None:
    monitor.stores.watches.set_digest("T1", DOMAIN, "daily")
    assert write_due_digests(monitor.stores, session(monitor), WEDNESDAY) == 1
    for n in (1, 2):  # two alerts for the same channel: one message of alerts
        monitor.stores.outbox.add_alerts(
            "T1",
            [
                NewAlert(
                    channel_id="C1",
                    domain=f"d{n}.test",
                    kind="changed",
                    dedupe_key=f"a{n}",
                    text=f"alert {n}",
                    blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"alert {n}"}}],
                    digest_block={"type": "section", "text": {"type": "mrkdwn", "text": f"alert {n}"}},
                )
            ],
        )
    assert monitor.deliver().messages_posted == 2
    posts = [c.params for c in slack.calls("chat.postMessage") if c.ok]
    assert [p["text"].startswith("Daily DMARC digest") for p in posts] == [False, True]
    assert "DMARC digest" not in json.dumps(posts[0])
