"""New failure groups told to the watch's channel through the outbox, with time injected: one
message per new group with the Fix it that matches its causes, at most one per domain per hour
(the rest folded into the next), each group told once across restarts and two monitors; posted
through the Slack stand-in, stored in a real SQLite file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.monitor.alert_delivery import ChannelPacer, client_for_team_factory, deliver_pending
from bot.monitor.scheduler import run_cycle
from bot.reports.failure_alerts import announce_failure_groups
from bot.slack import ids as slack_ids
from bot.store.failures import NewFailure
from bot.store.stores import Stores, open_stores
from tests.dnstest import NsdServer
from tests.messages.helpers import zones
from tests.slackapp import app_settings
from tests.slackstub import Call, SlackStandIn
from tests.test_failure_reports import RECORDS

T0 = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
STRANGER = "203.0.113.7"
NOT_IN_SPF = ("cause.spf_ip_not_authorized", "cause.no_dkim_signature")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "alerts.db"


@pytest.fixture
def stores(db: Path) -> Iterator[Stores]:
    opened = open_stores(str(db))
    opened.watches.add_watch("T1", "C7", "example.com", ["s1"], "U1")
    try:
        yield opened
    finally:
        opened.close()


def add_failures(
    stores: Stores,
    count: int,
    ip: str = STRANGER,
    causes: tuple[str, ...] = NOT_IN_SPF,
    domain: str = "example.com",
    start: int = 0,
) -> None:
    for n in range(start, start + count):
        stores.failures.add(
            NewFailure(
                team_id="T1",
                digest=f"{domain}-{ip}-{causes}-{n}",
                domain=domain,
                from_domain=domain,
                reporter="receiver.example",
                source_ip=ip,
                mail_from="*@example.com",
                arrived_at=T0.replace(hour=3, minute=n % 60),
                dmarc_result="fail",
                causes=causes,
                verdict={},
                headers="From: *@example.com",
                source="test",
            )
        )


def deliver(stores: Stores, slack: SlackStandIn, db: Path) -> list[Call]:
    """One delivery pass to the stand-in; the posts it made."""
    before = len(slack.posts())
    deliver_pending(
        stores.outbox, client_for_team_factory(app_settings(slack, db, "127.0.0.1")), ChannelPacer(0)
    )
    return slack.posts()[before:]


def fix_values(call: Call) -> list[dict[str, object]]:
    return [
        json.loads(block["accessory"]["value"])
        for block in call.blocks
        if (block.get("accessory") or {}).get("action_id") == slack_ids.ACTION_FIX
    ]


def test_a_new_group_is_told_once_and_later_groups_wait_for_the_hour(
    stores: Stores, slack: SlackStandIn, db: Path
) -> None:
    add_failures(stores, 14)
    assert announce_failure_groups(stores, now=T0) == 1
    [post] = deliver(stores, slack, db)
    assert post.params["channel"] == "C7"
    assert (
        "example.com: 14 failures from 203.0.113.7 (unknown sender): not in SPF, no DKIM signature"
        in post.text
    )
    text = json.dumps(post.blocks)
    assert "*14* failures from `203.0.113.7` (unknown sender): not in SPF, no DKIM signature" in text
    [fix] = fix_values(post)
    assert fix == {"f": "spf.sender_missing", "d": "example.com", "o": "T1", "s": ["s1"]}
    slack.assert_no_violations()

    # ten minutes later: a new group, and more of the told one; nothing is said within the hour
    add_failures(stores, 2, ip="198.51.100.9", causes=("cause.dkim_key_missing",))
    add_failures(stores, 3, start=14)
    assert announce_failure_groups(stores, now=T0 + timedelta(minutes=10)) == 0
    assert stores.outbox.pending_alerts("T1") == []
    assert announce_failure_groups(stores, now=T0 + timedelta(minutes=59)) == 0

    # after the hour, the next message carries what waited, and only that
    add_failures(stores, 1, ip="192.0.2.44", causes=("cause.dkim_body_modified",))
    assert announce_failure_groups(stores, now=T0 + timedelta(minutes=61)) == 1
    [post] = deliver(stores, slack, db)
    text = json.dumps(post.blocks)
    assert "2 new groups of DMARC failures" in text
    assert "*2* failures from `198.51.100.9` (unknown sender): no DKIM key at the selector" in text
    assert "*1* failure from `192.0.2.44` (unknown sender): body changed after signing" in text
    assert STRANGER not in text
    # a body rewritten on the way has no DNS fix: one button, for the missing key
    assert [f["f"] for f in fix_values(post)] == ["dkim.key_missing"]
    slack.assert_no_violations()

    assert announce_failure_groups(stores, now=T0 + timedelta(hours=5)) == 0  # nothing new
    assert len(stores.outbox.alerts("T1", "posted")) == 2


def test_each_group_is_told_once_across_two_monitors_and_a_restart(stores: Stores, db: Path) -> None:
    add_failures(stores, 5)
    other = open_stores(str(db))  # a second monitor: its own connections to the same file
    start = threading.Barrier(2)
    written: list[int] = []

    def monitor(own: Stores) -> None:
        start.wait()
        written.append(announce_failure_groups(own, now=T0))

    threads = [threading.Thread(target=monitor, args=(s,)) for s in (stores, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    other.close()
    assert sorted(written) == [0, 1]
    assert len(stores.outbox.alerts("T1")) == 1

    restarted = open_stores(str(db))
    try:
        assert announce_failure_groups(restarted, now=T0 + timedelta(hours=2)) == 0
        assert len(restarted.outbox.alerts("T1")) == 1
    finally:
        restarted.close()


def test_failures_of_a_domain_nobody_watches_are_told_to_nobody(stores: Stores) -> None:
    add_failures(stores, 3, domain="unwatched.example")
    assert stores.failures.recent_domains(T0.date().isoformat()) == [("T1", "unwatched.example")]
    assert announce_failure_groups(stores, now=T0) == 0
    assert stores.outbox.alerts("T1") == []


def test_the_monitor_cycle_tells_the_channel(
    stores: Stores, slack: SlackStandIn, db: Path, nsd: NsdServer
) -> None:
    nsd.set_zones(zones(RECORDS))
    add_failures(stores, 4, causes=("cause.no_dmarc_record",))
    # `serve`'s cycle: the watches checked, new failure groups told, the outbox delivered
    run_cycle(app_settings(slack, db, nsd.address), stores)
    posts = [p for p in slack.posts() if "failure" in (p.text or "")]
    [post] = posts
    assert "4 failures from 203.0.113.7" in post.text and "no DMARC record" in post.text
    assert [f["f"] for f in fix_values(post)] == ["dmarc.missing"]
    slack.assert_no_violations()
