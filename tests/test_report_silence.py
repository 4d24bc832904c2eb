"""Reports stopped and resumed, on real parts: monitor cycles against NSD (the DMARC record and an
external destination's authorization), a real SQLite file (reports, snapshots, the outbox, the
mailbox poll record), a real refused IMAP connection, and the Slack stand-in receiving the posts.
Time is injected: each cycle says when it runs and each report when it arrived."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.monitor.alert_delivery import DeliveryReport
from bot.monitor.cycle import CycleReport, check_watches
from bot.reports.imap import poll_and_record
from bot.store.database import utcnow
from bot.store.stores import open_stores
from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, report_xml
from tests.conftest import SessionFactory
from tests.dnstest import NsdServer, make_zone
from tests.slackstub import Call, SlackStandIn
from tests.slackstub.requests import free_port
from tests.watchtest import PROVIDER, MonitorHarness, domain_zone, make_harness, provider_zone

DOMAIN = "example.test"
OWN_RUA = f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}"
COLLECTOR_RUA = "v=DMARC1; p=reject; rua=mailto:reports@collector.test"
# Far enough back that every injected moment is in the past (a poll failure is recorded "now").
T0 = (utcnow() - timedelta(days=30)).replace(microsecond=0)
ARRIVED = T0 + timedelta(hours=1)
SILENT_AT = ARRIVED + timedelta(days=3, minutes=5)


def serve(nsd: NsdServer, dmarc: str = OWN_RUA, authorized: bool = True) -> None:
    collector = [(f"{DOMAIN}._report._dmarc", "TXT", "v=DMARC1")] if authorized else []
    nsd.set_zones(
        {
            PROVIDER: provider_zone(),
            DOMAIN: domain_zone(DOMAIN, dmarc=dmarc),
            "collector.test": make_zone("collector.test", [("www", "A", "192.0.2.80"), *collector]),
            # the tree walk asks _dmarc.test when the domain has no record: an answer, not REFUSED
            "test": make_zone("test", [("www", "A", "192.0.2.81")]),
        }
    )


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackStandIn, nsd: NsdServer) -> Iterator[MonitorHarness]:
    serve(nsd)
    harness = make_harness(tmp_path, slack, nsd)
    harness.stores.watches.add_watch("T1", "C1", DOMAIN, ["sel"], "U1", now=T0)
    yield harness
    harness.stores.close()
    slack.assert_no_violations()


def cycle(
    monitor: MonitorHarness, make_session: SessionFactory, now: datetime
) -> tuple[CycleReport, DeliveryReport]:
    """One `monitor --once` at `now`: check, then deliver (both return when done)."""
    checked = check_watches(monitor.stores, make_session(monitor.dns), now=now, reports_silence_days=3)
    assert checked.errors == []
    return checked, monitor.deliver()


def quiet(monitor: MonitorHarness, make_session: SessionFactory, now: datetime) -> None:
    """A cycle that finished, checked the watch, and had nothing to post."""
    checked, delivered = cycle(monitor, make_session, now)
    assert checked.watches >= 1 and checked.outages == 0
    assert checked.alerts_written == 0 and delivered.messages_posted == 0


def report_arrives(monitor: MonitorHarness, at: datetime, report_id: str) -> None:
    xml = report_xml(
        [Row("192.0.2.1", 10, header_from=DOMAIN)], day=days_ago(31), domain=DOMAIN, report_id=report_id
    )
    monitor.stores.reports.add_report("T1", parse_report(xml), "imap", now=at)


def one_post(monitor: MonitorHarness, make_session: SessionFactory, now: datetime, before: int) -> Call:
    checked, delivered = cycle(monitor, make_session, now)
    assert checked.alerts_written == 1 and delivered.messages_posted == 1
    posts = monitor.slack.posts()
    assert len(posts) == before + 1
    assert posts[-1].params["channel"] == "C1"
    return posts[-1]


def test_silence_is_said_once_and_resumption_once(
    monitor: MonitorHarness, make_session: SessionFactory
) -> None:
    quiet(monitor, make_session, T0)  # the baseline: no report yet, the watch is new
    report_arrives(monitor, ARRIVED, "r1")
    quiet(monitor, make_session, ARRIVED + timedelta(days=2, hours=23))  # not silent yet

    silent = one_post(monitor, make_session, SILENT_AT, 0)
    day = ARRIVED.date().isoformat()
    assert f"no aggregate reports for {DOMAIN} since {day}" in (silent.text or "")
    assert "None of the causes dmarcbot can see" in (silent.text or "")
    quiet(monitor, make_session, SILENT_AT + timedelta(hours=1))
    quiet(monitor, make_session, SILENT_AT + timedelta(days=5))  # still silent: nothing more

    back = SILENT_AT + timedelta(days=6)
    report_arrives(monitor, back, "r2")
    resumed = one_post(monitor, make_session, back + timedelta(hours=1), 1)
    assert f"aggregate reports for {DOMAIN} resumed" in (resumed.text or "")
    assert f"after none since {day}" in (resumed.text or "")
    quiet(monitor, make_session, back + timedelta(hours=2))

    # a new silence is a new alert, said once too
    again = one_post(monitor, make_session, back + timedelta(days=3, minutes=1), 2)
    assert f"since {back.date().isoformat()}" in (again.text or "")
    quiet(monitor, make_session, back + timedelta(days=3, hours=1))


@pytest.mark.parametrize(
    ("before", "after", "authorized_after", "cause"),
    [
        (OWN_RUA, "v=DMARC1; p=reject; rua=mailto:other@example.test", True,
         f"The rua= changed from mailto:dmarc@{DOMAIN} to mailto:other@example.test."),
        (OWN_RUA, "v=DMARC1; p=reject", True,
         f"The rua= tag disappeared from the DMARC record: it was mailto:dmarc@{DOMAIN}."),
        (OWN_RUA, "", True, f"The DMARC record is gone: it sent reports to mailto:dmarc@{DOMAIN}."),
        (COLLECTOR_RUA, COLLECTOR_RUA, False,
         "An external rua destination has no _report._dmarc authorization: Reports go to collector.test"),
    ],
    ids=["rua-changed", "rua-removed", "dmarc-gone", "authorization-lost"],
)  # fmt: skip
def test_silence_names_the_dns_cause_it_sees(
    monitor: MonitorHarness,
    make_session: SessionFactory,
    nsd: NsdServer,
    before: str,
    after: str,
    authorized_after: bool,
    cause: str,
) -> None:
    serve(nsd, before)
    quiet(monitor, make_session, T0)  # the snapshot in force when the report arrives
    report_arrives(monitor, ARRIVED, "r1")
    serve(nsd, after or "v=spf1 -all", authorized_after)  # "": no DMARC record at all
    changed = ARRIVED + timedelta(days=1)
    cycle(monitor, make_session, changed)  # the change itself is announced by the monitor as ever
    posts = len(monitor.slack.posts())
    silent = one_post(monitor, make_session, SILENT_AT, posts)
    assert f"Likely cause: {cause}" in (silent.text or "").replace("\u201c", '"')
    assert "None of the causes" not in (silent.text or "")


def test_a_failing_mailbox_poll_is_named_with_its_error(
    monitor: MonitorHarness, make_session: SessionFactory
) -> None:
    quiet(monitor, make_session, T0)
    report_arrives(monitor, ARRIVED, "r1")
    port = free_port()  # nothing listens there: the connection is refused
    settings = dataclasses.replace(
        monitor.settings,
        imap_host=f"127.0.0.1:{port}",
        imap_user="reports",
        imap_password="secret",
    )
    assert poll_and_record(settings, monitor.stores, "T1") is None
    silent = one_post(monitor, make_session, utcnow(), 0)
    text = silent.text or ""
    assert f"The report mailbox poll is failing: reports@127.0.0.1:{port}/INBOX" in text
    assert "ConnectionRefusedError" in text and "secret" not in text


def test_a_watched_rua_with_no_report_ever_gets_one_hint(
    monitor: MonitorHarness, make_session: SessionFactory, nsd: NsdServer
) -> None:
    # A second watch without rua= in another channel: nothing to expect, so no hint.
    nsd.set_zone("norua.test", domain_zone("norua.test", dmarc="v=DMARC1; p=none"))
    monitor.stores.watches.add_watch("T1", "C2", "norua.test", ["sel"], "U1", now=T0)
    quiet(monitor, make_session, T0)
    quiet(monitor, make_session, T0 + timedelta(days=2))
    hint = one_post(monitor, make_session, T0 + timedelta(days=3, minutes=1), 0)
    text = hint.text or ""
    assert f"no aggregate reports for {DOMAIN} yet" in text
    assert f"asks for reports at mailto:dmarc@{DOMAIN}" in text and "None of the causes" in text
    quiet(monitor, make_session, T0 + timedelta(days=4))
    assert [p.params["channel"] for p in monitor.slack.posts()] == ["C1"]


def test_two_monitors_and_a_restart_say_it_once(
    monitor: MonitorHarness, make_session: SessionFactory, tmp_path: Path
) -> None:
    quiet(monitor, make_session, T0)
    report_arrives(monitor, ARRIVED, "r1")
    other = dataclasses.replace(monitor, stores=open_stores(str(tmp_path / "monitor.db")))
    try:
        first = check_watches(
            monitor.stores, make_session(monitor.dns), now=SILENT_AT, reports_silence_days=3
        )
        second = check_watches(other.stores, make_session(monitor.dns), now=SILENT_AT, reports_silence_days=3)
        assert (first.alerts_written, second.alerts_written) == (1, 0)
        delivered = [other.deliver(), monitor.deliver()]
        assert sum(d.messages_posted for d in delivered) == 1
    finally:
        other.stores.close()
    restarted = dataclasses.replace(monitor, stores=open_stores(str(tmp_path / "monitor.db")))
    try:
        quiet(restarted, make_session, SILENT_AT + timedelta(hours=1))
    finally:
        restarted.stores.close()
    assert len(monitor.slack.posts()) == 1


def test_a_dns_outage_decides_nothing(
    monitor: MonitorHarness, make_session: SessionFactory, nsd: NsdServer
) -> None:
    quiet(monitor, make_session, T0)
    report_arrives(monitor, ARRIVED, "r1")
    nsd.set_zones({})  # every answer REFUSED: an outage, not a missing record
    checked, delivered = cycle(monitor, make_session, SILENT_AT)
    assert checked.outages == 1 and checked.alerts_written == 0 and delivered.messages_posted == 0
    serve(nsd)
    silent = one_post(monitor, make_session, SILENT_AT + timedelta(hours=1), 0)
    assert "None of the causes dmarcbot can see" in (silent.text or "")
