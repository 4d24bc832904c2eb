"""Report-based alerts, on a real database and a real DNS server: each threshold on both sides,
the outbox rows they write (to the watch's channel), and nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.monitor.alert_delivery import client_for_team_factory, deliver_pending
from bot.reports.alerts import DEFAULT_THRESHOLDS, Thresholds, review_after_ingest
from bot.slack import ids as slack_ids
from bot.store.outbox import Alert
from bot.store.reports import ReportStore, StoredReport
from bot.store.stores import Stores
from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, open_reports, report_xml
from tests.conftest import SessionFactory
from tests.dnstest import FaultProxy, NsdServer, make_zone
from tests.slackapp import app_settings
from tests.slackstub import SlackStandIn

KEY = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Stores, ReportStore]:
    store, reports = open_reports(tmp_path / "alerts.db")
    store.watches.add_watch("T1", "CALERTS", "example.com", [], "U1")
    return store, reports


@pytest.fixture
def dns(nsd: NsdServer, make_session: SessionFactory) -> SessionFactory:
    nsd.set_zone("example.com", make_zone("example.com", [("s1._domainkey", "TXT", KEY)]))
    return make_session


def add_day(
    reports: ReportStore, days_back: int, rows: list[Row], team: str = "T1", report_id: str | None = None
) -> StoredReport:
    xml = report_xml(rows, day=days_ago(days_back), report_id=report_id or f"d{days_back}")
    return reports.add_report(team, parse_report(xml), "test")


def baseline(reports: ReportStore, passing: int = 190, failing: int = 10) -> None:
    """14 days of 200 messages a day from a known source, 95% passing."""
    for n in range(1, 15):
        add_day(reports, n, [Row("192.0.2.1", passing), Row("192.0.2.2", failing, dkim="fail", spf="fail")])


def review(
    stores: tuple[Stores, ReportStore],
    stored: list[StoredReport],
    nsd: NsdServer,
    make_session: SessionFactory,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Alert]:
    store, _reports = stores
    review_after_ingest(store, stored, make_session(nsd), thresholds)
    return store.outbox.pending_alerts("T1")


@pytest.mark.parametrize(("passing_today", "alerts"), [(160, 1), (170, 0), (190, 0)])
def test_pass_rate_drop_alerts_only_past_the_threshold(
    stores: tuple[Stores, ReportStore],
    nsd: NsdServer,
    dns: SessionFactory,
    passing_today: int,
    alerts: int,
) -> None:
    _store, reports = stores
    baseline(reports)
    # 95% before; 80% today is 15 points down (alert), 85% is exactly 10 (no alert: "more than")
    today = add_day(
        reports,
        0,
        [Row("192.0.2.1", passing_today), Row("192.0.2.2", 200 - passing_today, dkim="fail", spf="fail")],
    )
    found = [a for a in review(stores, [today], nsd, dns) if a.kind == "report_pass_rate_drop"]
    assert len(found) == alerts
    if alerts:
        assert found[0].channel_id == "CALERTS" and found[0].domain == "example.com"
        assert "80% of 200 messages passed DMARC, against 95% of 2,800" in found[0].text


def test_a_handful_of_forged_messages_alerts_nobody(
    stores: tuple[Stores, ReportStore], nsd: NsdServer, dns: SessionFactory
) -> None:
    _store, reports = stores
    baseline(reports)
    today = add_day(reports, 0, [Row("192.0.2.2", 30, dkim="fail", spf="fail")])  # 0%, 30 messages
    assert review(stores, [today], nsd, dns) == []


def test_a_new_source_with_real_volume_failing_alignment_alerts_once(
    stores: tuple[Stores, ReportStore], nsd: NsdServer, dns: SessionFactory
) -> None:
    _store, reports = stores
    baseline(reports)
    today = add_day(
        reports,
        0,
        [
            Row("192.0.2.1", 190),
            Row("192.0.2.2", 60, dkim="fail", spf="fail"),  # known source
            Row("203.0.113.50", 60, dkim="fail", spf="fail", spf_domain="forger.test"),  # new
            Row("203.0.113.51", 40, dkim="fail", spf="fail"),  # new, under the volume threshold
            Row("203.0.113.52", 80),
        ],
    )  # new, passing
    found = [a for a in review(stores, [today], nsd, dns) if a.kind == "report_new_failing_source"]
    assert len(found) == 1
    assert "A new source, 203.0.113.50, sent 60 messages" in found[0].text
    assert "SPF fail for forger.test" in found[0].text
    # another report for the same day, and the same review again: no second alert
    more = add_day(reports, 0, [Row("203.0.113.50", 70, dkim="fail", spf="fail")], report_id="more")
    again = [a for a in review(stores, [today, more], nsd, dns) if a.kind == "report_new_failing_source"]
    assert len(again) == 1


def test_selectors_seen_are_added_to_the_watch_and_a_vanished_one_alerts(
    stores: tuple[Stores, ReportStore], nsd: NsdServer, dns: SessionFactory
) -> None:
    store, reports = stores
    stored = add_day(
        reports,
        1,
        [
            Row("192.0.2.1", 50, selector="s1"),
            Row("192.0.2.1", 50, selector="gone"),
            Row("192.0.2.9", 5, dkim="fail", spf="fail", selector="forged"),
        ],
    )
    found = [a for a in review(stores, [stored], nsd, dns) if a.kind == "report_selector_missing"]
    assert [a.dedupe_key for a in found] == [
        f"report_selector_missing:example.com:selector:gone:{days_ago(1).isoformat()}"
    ]
    assert "gone._domainkey.example.com does not exist (NXDOMAIN)" in found[0].text
    watch = store.watches.watch("T1", "example.com")
    assert watch is not None and watch.selectors == ("gone", "s1")  # "forged" never passed


def test_a_dns_outage_is_never_taken_for_a_removed_selector(
    stores: tuple[Stores, ReportStore], fault_proxy: FaultProxy, make_session: SessionFactory
) -> None:
    store, reports = stores
    fault_proxy.add_fault("gone._domainkey.example.com", "servfail")
    stored = add_day(reports, 1, [Row("192.0.2.1", 50, selector="gone")])
    review_after_ingest(store, [stored], make_session(fault_proxy))
    assert store.outbox.pending_alerts("T1") == []


def test_unwatched_domains_and_other_teams_get_no_alerts(
    stores: tuple[Stores, ReportStore], nsd: NsdServer, dns: SessionFactory
) -> None:
    store, reports = stores
    other = add_day(reports, 0, [Row("203.0.113.50", 500, dkim="fail", spf="fail")], team="T2")
    unwatched = reports.add_report(
        "T1",
        parse_report(report_xml([Row("203.0.113.50", 500, dkim="fail", spf="fail")], domain="other.example")),
        "t",
    )
    review_after_ingest(store, [other, unwatched], dns(nsd))
    assert store.outbox.pending_alerts("T1") == [] and store.outbox.pending_alerts("T2") == []


def test_the_thresholds_are_settings(
    stores: tuple[Stores, ReportStore], nsd: NsdServer, dns: SessionFactory
) -> None:
    _store, reports = stores
    baseline(reports)
    today = add_day(reports, 0, [Row("192.0.2.1", 180), Row("192.0.2.2", 20, dkim="fail", spf="fail")])
    strict = Thresholds(drop=0.04)  # 95% -> 90% is 5 points
    assert [a.kind for a in review(stores, [today], nsd, dns, strict)] == ["report_pass_rate_drop"]


def test_a_new_source_alert_names_its_sender_and_category(
    stores: tuple[Stores, ReportStore],
    nsd: NsdServer,
    make_session: SessionFactory,
    slack: SlackStandIn,
    tmp_path: Path,
) -> None:
    # The domain's SPF and Mailchimp's PTR name are served by NSD: the sender is named and
    # judged as `report` does; an unnamed source reads as before.
    nsd.set_zone(
        "example.com",
        make_zone("example.com", [("@", "TXT", "v=spf1 ip4:192.0.2.1 -all"), ("s1._domainkey", "TXT", KEY)]),
    )
    nsd.set_zone(
        "2.0.192.in-addr.arpa", make_zone("2.0.192.in-addr.arpa", [("7", "PTR", "o7.mail.mcsv.net.")])
    )
    _store, reports = stores
    baseline(reports)
    today = add_day(
        reports,
        0,
        [
            Row("192.0.2.1", 190),
            Row("192.0.2.7", 60, dkim="fail", spf="fail", dkim_domain="mcsv.net", dkim_result="pass",
                selector="k1", spf_domain="mail.mcsv.net", spf_result="pass"),
            Row("203.0.113.50", 60, dkim="fail", spf="fail", dkim_domain=None, spf_domain="forger.test"),
        ],
    )  # fmt: skip
    found = {
        a.dedupe_key.rsplit(":", 1)[-1]: a
        for a in review(stores, [today], nsd, make_session)
        if a.kind == "report_new_failing_source"
    }
    assert set(found) == {"192.0.2.7", "203.0.113.50"}
    assert found["192.0.2.7"].text == (
        "example.com: new source failing DMARC: Mailchimp (misconfigured). "
        "Mailchimp (misconfigured): not in SPF; DKIM d=mcsv.net not aligned. A new source, 192.0.2.7, "
        f"sent 60 messages as example.com on {days_ago(0).isoformat()}; 60 failed DMARC. Fix: Set up "
        "Mailchimp's DKIM CNAME records for example.com, so its mail is signed d=example.com."
    )
    unnamed = found["203.0.113.50"].text
    assert unnamed.startswith("example.com: new source failing DMARC. A new source, 203.0.113.50, sent 60")
    assert "SPF fail for forger.test" in unnamed and "(unknown)" not in unnamed
    # Mailchimp's alert carries its Fix it button; delivered (one digest), it passes Block Kit's checks.
    button = found["192.0.2.7"].digest_block["accessory"]
    assert button["action_id"] == slack_ids.ACTION_FIX
    assert json.loads(button["value"]) == {
        "f": "dkim.key_missing", "d": "example.com", "o": "T1", "p": "mailchimp", "x": "k2", "s": []
    }  # fmt: skip
    assert "accessory" not in found["203.0.113.50"].digest_block
    store, _reports = stores
    settings = app_settings(slack, tmp_path / "alerts.db", nsd.address)
    assert deliver_pending(store.outbox, client_for_team_factory(settings)).messages_posted == 1
    [post] = slack.posts()
    assert any(b.get("accessory", {}).get("action_id") == slack_ids.ACTION_FIX for b in post.blocks)
    slack.assert_no_violations()
