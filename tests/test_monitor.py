"""The monitor against real parts: NSD (through the fault proxy where faults are needed), a real
SQLite file, and the Slack stand-in receiving the alerts through the app's own WebClient."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.monitor.cycle import PROBE_EVERY, REPROBES_PER_CYCLE, check_watches, reprobes_now
from bot.monitor.watch_state import CANNOT_CHECK_AFTER, SETTLE_CHECKS, observe
from bot.reports.alerts import review_after_ingest
from bot.slack import ids as slack_ids
from bot.store.database import utcnow
from bot.store.watches import Watch
from handlers.dns.resolver import DnsSession, parse_nameserver
from handlers.domain.check import check_domain
from handlers.domain.findings import Severity, finding
from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, report_xml
from tests.dnstest import FaultProxy, NsdServer, make_zone, txt
from tests.slackstub import SlackStandIn
from tests.watchtest import (
    INCLUDE,
    INCLUDE_RECORD,
    PROVIDER,
    MonitorHarness,
    dkim_key_record,
    domain_zone,
    make_harness,
    provider_zone,
)

DOMAIN = "example.test"


@pytest.fixture
def world(nsd: NsdServer) -> NsdServer:
    nsd.set_zones({PROVIDER: provider_zone(), DOMAIN: domain_zone(DOMAIN)})
    return nsd


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackStandIn, world: NsdServer) -> Iterator[MonitorHarness]:
    harness = make_harness(tmp_path, slack, world)
    yield harness
    harness.stores.close()
    slack.assert_no_violations()


@pytest.fixture
def proxied(
    tmp_path: Path, slack: SlackStandIn, world: NsdServer, fault_proxy: FaultProxy
) -> Iterator[MonitorHarness]:
    harness = make_harness(tmp_path, slack, fault_proxy)
    yield harness
    harness.stores.close()
    slack.assert_no_violations()


def all_text(call_blocks: list[dict[str, Any]]) -> str:
    return json.dumps(call_blocks, ensure_ascii=False)


@pytest.mark.slow
def test_first_cycle_is_the_baseline_and_no_change_means_no_alert(
    monitor: MonitorHarness, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    for _ in range(3):
        checked, delivered = monitor.cycle()
        assert checked.alerts_written == 0 and delivered.messages_posted == 0
    assert slack.posts() == []
    watch = monitor.stores.watches.watch("T1", DOMAIN)
    assert watch is not None and watch.last_status == "pass" and watch.temperror_streak == 0
    snapshot = monitor.stores.watches.latest_snapshot("T1", watch.id)
    assert snapshot is not None and snapshot.checks == 3
    assert snapshot.records[f"SPF include:{INCLUDE}"] == INCLUDE_RECORD


@pytest.mark.slow
def test_a_change_in_the_include_chain_alerts_with_before_and_after(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    changed = "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 <!channel> ~all"
    world.set_zone(PROVIDER, provider_zone(changed))
    checked, delivered = monitor.cycle()
    assert checked.alerts_written == 1 and delivered.messages_posted == 1
    post = slack.posts()[0]
    assert post.params["channel"] == "C1"
    assert post.text.startswith(f"{DOMAIN}: DNS records changed")
    text = all_text(post.blocks)
    assert f"SPF `include:{INCLUDE}`* changed" in text
    assert f"*Before:* ```{INCLUDE_RECORD}```" in text
    # DNS text is escaped: the record cannot ping the channel
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "`spf.syntax`" in text  # the finding that appeared with it
    stored = monitor.stores.outbox.alerts("T1")
    assert [(a.kind, a.state, a.ts) for a in stored] == [("changed", "posted", post.response["ts"])]


@pytest.mark.slow
def test_dmarc_dkim_and_mx_changes_are_each_shown(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    world.set_zone(
        DOMAIN,
        domain_zone(
            DOMAIN,
            dmarc="v=DMARC1; p=quarantine; rua=mailto:d@example.test",
            dkim="v=DKIM1; k=rsa; p=",
            mx=False,
        ),
    )
    monitor.cycle()
    text = all_text(slack.posts()[0].blocks)
    assert f"DMARC `_dmarc.{DOMAIN}`* changed" in text and "p=quarantine" in text
    assert f"DKIM `sel._domainkey.{DOMAIN}`* changed" in text and "`dkim.key_revoked`" in text
    assert f"MX {DOMAIN}* removed" in text and "`mx.missing`" in text


@pytest.mark.slow
def test_alignment_failing_alert_has_the_fix_it_button_then_recovered(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    world.set_zone(DOMAIN, domain_zone(DOMAIN, spf=None, dkim=None))
    monitor.cycle()
    failing = slack.posts()[-1]
    assert failing.text.startswith(f"{DOMAIN}: mail now fails DMARC")
    buttons = [e for b in failing.blocks if b["type"] == "actions" for e in b["elements"]]
    # the button names the finding to fix and the team that owns the watch, as Fix it requires
    assert [(b["action_id"], json.loads(b["value"])) for b in buttons] == [
        (slack_ids.ACTION_FIX, {"f": "spf.missing", "d": DOMAIN, "o": "T1", "s": ["sel"]})
    ]
    assert "`spf.missing`" in all_text(failing.blocks)
    world.set_zone(DOMAIN, domain_zone(DOMAIN))
    monitor.cycle()
    recovered = slack.posts()[-1]
    assert recovered.text.startswith(f"{DOMAIN}: recovered")
    assert "*Cleared:*" in all_text(recovered.blocks)
    assert len(slack.posts()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["servfail", "timeout"])
def test_one_failed_cycle_is_not_an_alert(
    proxied: MonitorHarness, fault_proxy: FaultProxy, slack: SlackStandIn, fault: str
) -> None:
    proxied.watch(DOMAIN)
    proxied.cycle()
    fault_proxy.add_fault(f"_dmarc.{DOMAIN}", fault)
    checked, _ = proxied.cycle()
    assert checked.outages == 1 and checked.alerts_written == 0
    watch = proxied.stores.watches.watch("T1", DOMAIN)
    assert watch is not None and watch.temperror_streak == 1 and watch.last_status == "pass"
    fault_proxy.clear_faults()
    checked, _ = proxied.cycle()
    assert checked.alerts_written == 0 and slack.posts() == []
    snapshot = proxied.stores.watches.latest_snapshot("T1", watch.id)
    assert snapshot is not None and snapshot.checks == 2  # the outage cycle left it untouched


def test_an_outage_hiding_a_removed_record_is_never_reported_as_removed(
    proxied: MonitorHarness, fault_proxy: FaultProxy, world: NsdServer, slack: SlackStandIn
) -> None:
    proxied.watch(DOMAIN)
    proxied.cycle()
    fault_proxy.add_fault(INCLUDE, "servfail")
    proxied.cycle()
    proxied.cycle()
    assert slack.posts() == []  # two outage cycles: silence, not "include removed"


@pytest.mark.slow
def test_three_failed_cycles_say_cannot_check_once(
    proxied: MonitorHarness, fault_proxy: FaultProxy, slack: SlackStandIn
) -> None:
    proxied.watch(DOMAIN)
    proxied.cycle()
    fault_proxy.add_fault(INCLUDE, "timeout")
    for cycle in range(1, CANNOT_CHECK_AFTER + 2):
        proxied.cycle()
        assert len(slack.posts()) == (1 if cycle >= CANNOT_CHECK_AFTER else 0)
    post = slack.posts()[0]
    assert post.text.startswith(f"{DOMAIN}: cannot check")
    assert "unknown" in post.text and "removed" not in all_text(post.blocks)
    watch = proxied.stores.watches.watch("T1", DOMAIN)
    assert watch is not None and watch.last_status == "cannot_check"
    fault_proxy.clear_faults()
    proxied.cycle()
    assert len(slack.posts()) == 2
    assert slack.posts()[1].text.startswith(f"{DOMAIN}: checking again")


@pytest.mark.slow
def test_a_flapping_record_alerts_once(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    flip = {True: provider_zone("v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all"), False: provider_zone()}
    for n in range(6):
        world.set_zone(PROVIDER, flip[n % 2 == 0])
        monitor.cycle()
    assert len(slack.posts()) == 1
    assert "203.0.113.0/24" in all_text(slack.posts()[0].blocks)


@pytest.mark.slow
def test_a_flap_that_settles_is_announced_after_settle_checks(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    other = provider_zone("v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all")
    for zone in (other, provider_zone(), other):  # alert, held, back to what the channel knows
        world.set_zone(PROVIDER, zone)
        monitor.cycle()
    assert len(slack.posts()) == 1
    world.set_zone(PROVIDER, provider_zone())
    for _ in range(SETTLE_CHECKS - 1):
        monitor.cycle()
    assert len(slack.posts()) == 1  # still held
    monitor.cycle()
    assert len(slack.posts()) == 2  # it held for SETTLE_CHECKS checks: the channel is told
    assert "*Before:* ```v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all```" in all_text(
        slack.posts()[1].blocks
    )


@pytest.mark.slow
def test_flapping_between_passing_and_failing_says_each_once(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    broken, good = domain_zone(DOMAIN, spf=None, dkim=None), domain_zone(DOMAIN)
    for n in range(6):
        world.set_zone(DOMAIN, broken if n % 2 == 0 else good)
        monitor.cycle()
    assert [p.text.split(". ")[0] for p in slack.posts()] == [
        f"{DOMAIN}: mail now fails DMARC",
        f"{DOMAIN}: recovered: mail can pass DMARC again",
    ]


@pytest.mark.slow
def test_many_changes_in_one_channel_are_one_digest(
    monitor: MonitorHarness, world: NsdServer, fault_proxy: FaultProxy, slack: SlackStandIn
) -> None:
    domains = [f"d{n:02d}.test" for n in range(60)]
    world.set_zones({PROVIDER: provider_zone(), **{d: domain_zone(d) for d in domains}})
    monitor.dns = fault_proxy  # to count the queries
    # ~4,500 queries through the thread-per-query proxy: on a loaded machine some take longer than
    # the harness's 0.3 s, which would turn a domain into an outage. This test is about digests.
    monitor.timeout = 3.0
    for d in domains:
        monitor.watch(d, channel="C7")
    monitor.watch("d00.test", channel="C8", team="T2")
    monitor.cycle()
    assert fault_proxy.count(INCLUDE, "TXT") == 1  # one session per cycle: the include once
    world.set_zones(
        {
            PROVIDER: provider_zone("v=spf1 ip4:192.0.2.0/24 ip4:198.18.0.0/15 -all"),
            **{d: domain_zone(d) for d in domains[1:]},
            "d00.test": domain_zone("d00.test", dmarc="v=DMARC1; p=none; rua=mailto:x@d00.test"),
        }
    )
    checked, delivered = monitor.cycle()
    assert checked.domains == 60 and checked.alerts_written == 61
    assert delivered.messages_posted == 2  # one digest in C7, one alert in T2's C8
    by_channel = {p.params["channel"]: p for p in slack.posts()}
    digest = by_channel["C7"]
    assert digest.text.startswith("60 alerts for watched domains")
    sections = [b["text"]["text"] for b in digest.blocks if b["type"] == "section"]
    assert len(sections) == 2  # the shared include's change, and d00's own
    shared = sections[0]
    assert f"SPF `include:{INCLUDE}`* changed" in shared and "*59 domains:*" in shared
    assert all(d in shared for d in domains[1:])
    assert "*d00.test*" in sections[1] and "DMARC `_dmarc.d00.test`" in sections[1]
    assert by_channel["C8"].text.startswith("d00.test: DNS records changed")
    assert {a.state for a in monitor.stores.outbox.alerts("T1")} == {"posted"}


@pytest.mark.slow
def test_two_workspaces_watching_one_domain_see_only_their_own(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN, channel="C1", team="T1")
    monitor.watch(DOMAIN, channel="C2", team="T2", selectors=("sel",))
    monitor.cycle()
    world.set_zone(DOMAIN, domain_zone(DOMAIN, dmarc="v=DMARC1; p=none; rua=mailto:d@example.test"))
    checked, _ = monitor.cycle()
    assert checked.domains == 1 and checked.alerts_written == 2  # checked once, told twice
    assert sorted(p.params["channel"] for p in slack.posts()) == ["C1", "C2"]
    assert [w.channel_id for w in monitor.stores.watches.watches("T1")] == ["C1"]
    assert [w.channel_id for w in monitor.stores.watches.watches("T2")] == ["C2"]
    assert {a.channel_id for a in monitor.stores.outbox.alerts("T1")} == {"C1"}
    assert {a.channel_id for a in monitor.stores.outbox.alerts("T2")} == {"C2"}
    assert monitor.stores.watches.watches("T3") == []


@pytest.mark.slow
def test_a_429_during_an_alert_is_posted_once_after_retry_after(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    world.set_zone(PROVIDER, provider_zone("v=spf1 ip4:192.0.2.0/24 ~all"))
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    _, delivered = monitor.cycle()
    calls = slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.9  # Retry-After was honoured
    assert delivered.messages_posted == 1 and len(slack.posts()) == 1
    assert monitor.deliver().messages_posted == 0  # marked posted: never again


def test_a_5xx_keeps_the_alert_pending_for_the_next_pass(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.watch(DOMAIN)
    monitor.cycle()
    world.set_zone(PROVIDER, provider_zone("v=spf1 ip4:192.0.2.0/24 ~all"))
    slack.fail_next("chat.postMessage", status=500)
    _, delivered = monitor.cycle()
    assert delivered.messages_posted == 0 and delivered.alerts_pending == 1
    assert [a.state for a in monitor.stores.outbox.alerts("T1")] == ["pending"]
    assert monitor.deliver().messages_posted == 1
    assert monitor.deliver().messages_posted == 0
    assert len(slack.posts()) == 1
    assert [(a.state, a.attempts) for a in monitor.stores.outbox.alerts("T1")] == [("posted", 2)]


@pytest.mark.slow
def test_posts_to_one_channel_are_a_second_apart(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    monitor.pacer_spacing = 1.0
    monitor.watch(DOMAIN)
    monitor.cycle()
    from bot.monitor.alert_delivery import ChannelPacer, client_for_team_factory, deliver_pending

    pacer = ChannelPacer(1.0)  # one pacer for both passes, as in one process
    for record in ("v=spf1 ip4:192.0.2.0/24 ~all", "v=spf1 ip4:192.0.2.0/25 ~all"):
        world.set_zone(PROVIDER, provider_zone(record))
        monitor.deliver = lambda: deliver_pending(  # type: ignore[method-assign]
            monitor.stores.outbox, client_for_team_factory(monitor.settings), pacer
        )
        monitor.cycle()
    first, second = slack.calls("chat.postMessage")
    assert second.at - first.at >= 0.9


@pytest.mark.slow
def test_a_channel_the_bot_left_keeps_alerts_until_attempts_run_out(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    slack.set_channel("C1", is_member=False)
    monitor.watch(DOMAIN)
    monitor.cycle()
    world.set_zone(PROVIDER, provider_zone("v=spf1 ip4:192.0.2.0/24 ~all"))
    _, delivered = monitor.cycle()
    assert delivered.alerts_pending == 1 and delivered.errors == ["C1: not_in_channel"]
    slack.set_channel("C1", is_member=True)  # invited again
    assert monitor.deliver().messages_posted == 1


@pytest.mark.slow
def test_the_scheduler_runs_cycles_until_stopped(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    from bot.monitor.scheduler import MonitorScheduler, run_cycle

    monitor.watch(DOMAIN)
    scheduler = MonitorScheduler(monitor.settings, monitor.stores, run_cycle, interval=0.05)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while scheduler.cycles_run < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        scheduler.stop(timeout=10)
    assert scheduler.cycles_run >= 2
    assert not scheduler._thread or not scheduler._thread.is_alive()
    watch = monitor.stores.watches.watch("T1", DOMAIN)
    assert watch is not None and watch.last_status == "pass"


@pytest.mark.slow
def test_a_failing_cycle_does_not_stop_the_scheduler(monitor: MonitorHarness) -> None:
    from bot.monitor.scheduler import MonitorScheduler

    def broken_cycle(settings: object, store: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    scheduler = MonitorScheduler(monitor.settings, monitor.stores, broken_cycle, interval=0.01)
    scheduler.start()
    deadline = time.monotonic() + 5
    while scheduler.cycles_run < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop(timeout=5)
    assert scheduler.cycles_run >= 3


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param([f"v=spf1 include:{INCLUDE} mx:: -all"], id="stops-parsing"),
        pytest.param([f"v=spf1 include:{INCLUDE} -all", "v=spf1 ip4:203.0.113.9 -all"], id="second-record"),
    ],
)
def test_a_broken_own_spf_names_the_domains_record_not_its_includes(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn, broken: list[str]
) -> None:
    # RFC 7208 §4.5/§4.6: a second record or a term that does not parse is a permerror before any
    # include is reached, so the include chain is unknown, not removed; the provider changed nothing.
    monitor.watch(DOMAIN)
    monitor.cycle()
    records = [("@", "TXT", spf) for spf in broken]
    records += [("_dmarc", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}")]
    records += [("sel._domainkey", "TXT", dkim_key_record())]
    records += [("@", "MX", f"10 mx.{DOMAIN}."), ("mx", "A", "192.0.2.25")]
    world.set_zone(DOMAIN, make_zone(DOMAIN, records))
    monitor.cycle()
    world.set_zone(DOMAIN, domain_zone(DOMAIN))
    for _ in range(SETTLE_CHECKS):  # back to the baseline: held as a flap until it settles
        monitor.cycle()
    posts = slack.posts()
    assert len(posts) == 2
    broke, fixed = (all_text(p.blocks) for p in posts)
    assert f"SPF {DOMAIN}* changed" in broke and f"SPF {DOMAIN}* changed" in fixed
    assert all(f"include:{INCLUDE}*" not in text for text in (broke, fixed))
    assert f"include chain of SPF {DOMAIN} is not compared" in broke
    assert "ip4:203.0.113.9" in broke or "mx::" in broke


def test_the_same_change_at_several_domains_is_shown_once_with_before_and_after(
    monitor: MonitorHarness, world: NsdServer, slack: SlackStandIn
) -> None:
    domains = ["d1.test", "d2.test", "d3.test"]
    world.set_zones(
        {PROVIDER: provider_zone(), **{d: domain_zone(d) for d in domains}, "e1.test": domain_zone("e1.test")}
    )
    for d in [*domains, "e1.test"]:
        monitor.watch(d, channel="C7")
    monitor.cycle()
    new_spf = f"v=spf1 include:{INCLUDE} ip4:203.0.113.5 -all"
    world.set_zones(
        {
            PROVIDER: provider_zone(),
            **{d: domain_zone(d, spf=new_spf) for d in domains},
            "e1.test": domain_zone("e1.test", spf=f"v=spf1 include:{INCLUDE} ip4:198.51.100.7 -all"),
        }
    )
    checked, delivered = monitor.cycle()
    assert checked.alerts_written == 4 and delivered.messages_posted == 1
    sections = [b["text"]["text"] for b in slack.posts()[0].blocks if b["type"] == "section"]
    assert len(sections) == 2  # the shared change once, e1's own
    shared, own = sections
    assert shared.count(f"*Before:* `v=spf1 include:{INCLUDE} -all`") == 1
    assert shared.count(f"*After:* `{new_spf}`") == 1
    assert "*3 domains:* d1.test, d2.test, d3.test" in shared
    # a domain's own change in a digest also shows its before and after
    assert "*e1.test*" in own and "ip4:198.51.100.7" in own and "*Before:*" in own


# -- DKIM selectors: probed rarely, the known ones checked every cycle ------------------------------

PROBED = "probed.test"  # publishes a key at a common selector only


def probed_world(nsd: NsdServer, other_key: str | None = None) -> None:
    """PROBED with a key at `google`, and at `other_key` (a selector no probe tries) if given."""
    zone = domain_zone(PROBED, selector="google")
    if other_key:
        zone += f"\n{other_key}._domainkey IN TXT {txt(dkim_key_record())}\n"
    nsd.set_zones({PROVIDER: provider_zone(), DOMAIN: domain_zone(DOMAIN), PROBED: zone})


def test_selectors_are_probed_once_then_only_the_known_ones_are_checked(
    proxied: MonitorHarness, nsd: NsdServer, fault_proxy: FaultProxy, slack: SlackStandIn
) -> None:
    probed_world(nsd)
    proxied.watch(PROBED, selectors=())
    first, _ = proxied.cycle()
    assert first.probes == 1 and first.outages == 0
    assert fault_proxy.count(f"selector1._domainkey.{PROBED}") == 1  # probed
    watch = proxied.stores.watches.watch("T1", PROBED)
    assert watch is not None and watch.found_selectors == ("google",)
    listed = watch.to_json()
    assert listed["selectors"] == ["google"] and listed["selectors_probed_at"] == watch.selectors_probed_at
    assert watch.selectors_probed_at is not None

    fault_proxy.reset_counts()
    second, delivered = proxied.cycle()
    assert second.probes == 0 and second.domains == 1
    assert fault_proxy.count(f"google._domainkey.{PROBED}") == 1  # the known key, checked
    assert fault_proxy.count(f"selector1._domainkey.{PROBED}") == 0  # not probed again
    # The same state as the probe saw: checking the known selectors is no change.
    assert second.alerts_written == 0 and delivered.messages_posted == 0

    # A week later the common selectors are probed again.
    fault_proxy.reset_counts()
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.3, attempts=1)
    later = check_watches(proxied.stores, session, now=utcnow() + PROBE_EVERY + timedelta(minutes=1))
    assert later.probes == 1
    # No change alert: the one alert is the hint that its rua= has received no report in a week.
    assert [a.kind for a in proxied.stores.outbox.pending_alerts("T1")] == ["reports_never"]
    assert fault_proxy.count(f"selector1._domainkey.{PROBED}") == 1


def test_a_found_key_that_disappears_is_a_change(
    proxied: MonitorHarness, nsd: NsdServer, slack: SlackStandIn
) -> None:
    probed_world(nsd)
    proxied.watch(PROBED, selectors=())
    proxied.cycle()
    nsd.set_zones(
        {PROVIDER: provider_zone(), DOMAIN: domain_zone(DOMAIN), PROBED: domain_zone(PROBED, dkim=None)}
    )
    changed, delivered = proxied.cycle()
    assert changed.alerts_written == 1 and delivered.messages_posted == 1
    assert f"google._domainkey.{PROBED}" in all_text(slack.posts()[0].blocks)


def test_a_new_selector_seen_in_a_report_is_added_and_the_common_ones_probed_again(
    proxied: MonitorHarness, nsd: NsdServer, fault_proxy: FaultProxy
) -> None:
    probed_world(nsd, other_key="rep2024")
    proxied.watch(PROBED, selectors=())
    proxied.cycle()
    stored = proxied.stores.reports.add_report(
        "T1",
        parse_report(
            report_xml(
                [Row("192.0.2.1", 60, selector="rep2024", header_from=PROBED, dkim_domain=PROBED)],
                domain=PROBED,
                day=days_ago(1),
            )
        ),
        "test",
    )
    session = DnsSession(nameservers=(parse_nameserver(fault_proxy.address),), timeout=0.3, attempts=1)
    review_after_ingest(proxied.stores, [stored], session)
    watch = proxied.stores.watches.watch("T1", PROBED)
    assert watch is not None and watch.selectors == ("rep2024",) and watch.selectors_probed_at is None

    fault_proxy.reset_counts()
    again, _ = proxied.cycle()
    assert again.probes == 1 and again.outages == 0
    assert fault_proxy.count(f"rep2024._domainkey.{PROBED}") == 1  # the reported one, by name
    assert fault_proxy.count(f"selector1._domainkey.{PROBED}") == 1  # and a fresh probe
    watch = proxied.stores.watches.watch("T1", PROBED)
    assert watch is not None and watch.to_json()["selectors"] == ["rep2024", "google"]


@pytest.mark.slow
def test_many_unselected_watches_behind_a_burst_dropping_resolver_report_no_outage(
    tmp_path: Path, slack: SlackStandIn, nsd: NsdServer, fault_proxy: FaultProxy
) -> None:
    """The first cycle of 40 watches naming no selector probes 59 selectors each (about 2,600
    queries): behind a resolver that drops what exceeds 30 in flight, as dnsmasq does past its
    forward limit, none of them may be taken for the domain's DNS failing."""
    domains = [f"d{n}.fleet.test" for n in range(40)]
    nsd.set_zones({PROVIDER: provider_zone(), **{d: domain_zone(d, selector="google") for d in domains}})
    # 50 ms per answer: with up to 100 queries of ours in flight, a burst passes 30 at once however
    # fast or slow the machine issues them (at 10 ms, a slow one never had 30 out together)
    fault_proxy.latency = 0.05
    fault_proxy.burst_limit = 30
    harness = make_harness(tmp_path, slack, fault_proxy)
    try:
        for domain in domains:
            harness.watch(domain, selectors=())
        cycle, _ = harness.cycle()
        assert fault_proxy.dropped > 0  # the resolver did drop queries...
        assert cycle.errors == [] and cycle.outages == 0  # ...and no domain was called unreachable
        assert cycle.probes == len(domains)
        assert all(w.found_selectors == ("google",) for w in harness.stores.watches.watches("T1"))
    finally:
        harness.stores.close()


def test_weekly_probes_are_spread_over_cycles_the_longest_waiting_first() -> None:
    now = utcnow()

    def watch(n: int, probed_days_ago: float | None) -> Watch:
        probed = None if probed_days_ago is None else (now - timedelta(days=probed_days_ago)).isoformat()
        return Watch(
            id=n,
            team_id="T1",
            channel_id="C1",
            domain=f"d{n}.test",
            selectors=(),
            added_by=None,
            created_at="",
            last_checked_at=None,
            last_status=None,
            temperror_streak=0,
            found_selectors=(),
            selectors_probed_at=probed,
        )

    fresh = [watch(n, 1) for n in range(3)]  # probed a day ago: not due
    due = [watch(100 + n, 7 + n / 1000) for n in range(REPROBES_PER_CYCLE + 5)]
    never = watch(999, None)  # never probed: always probed, outside the budget
    chosen = reprobes_now([*fresh, *reversed(due), never], now)
    assert len(chosen) == REPROBES_PER_CYCLE
    assert chosen == {w.id for w in due[5:]}  # the five most recently probed wait


def test_an_info_finding_alone_is_no_change_but_a_warning_is(world: NsdServer) -> None:
    # A check that learns to say more about what is absent (no BIMI record, an unsigned zone: info,
    # nothing to fix) must not make every watched domain "changed" after an upgrade.
    session = DnsSession(nameservers=(parse_nameserver(world.address),), timeout=1.0, attempts=1)
    report = asyncio.run(check_domain(DOMAIN, session, ("sel",)))
    before = observe(report).state.fingerprint
    info = finding("dmarc.inherited", "an info finding a newer check adds")
    assert info.severity is Severity.INFO and all(f.id != "dmarc.inherited" for f in report.findings)
    with_info = dataclasses.replace(report, findings=(*report.findings, info))
    assert observe(with_info).state.fingerprint == before
    warning = finding("spf.ptr", "a warning a newer check adds")
    assert warning.severity is Severity.WARNING and all(f.id != "spf.ptr" for f in report.findings)
    with_warning = dataclasses.replace(report, findings=(*report.findings, warning))
    assert observe(with_warning).state.fingerprint != before
