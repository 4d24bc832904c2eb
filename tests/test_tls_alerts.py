"""Alerts from SMTP TLS reports on a real database: each threshold on both sides, the outbox rows
they write (to the watch's channel, never twice), what they say of MTA-STS, and their delivery
to the Slack stand-in exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.monitor.alert_delivery import ChannelPacer, client_for_team_factory, deliver_pending
from bot.reports.ingest import ingest_bytes, one_team
from bot.reports.tls_alerts import review_tls_after_ingest, transport_context
from bot.store.outbox import Alert
from bot.store.stores import Stores, open_stores
from bot.store.tls_reports import StoredTlsReport
from bot.store.watches import Decision, ObservedState
from tests.dnstest import NsdServer
from tests.slackapp import app_settings
from tests.slackstub import SlackStandIn
from tests.tls_json import Failure, policy, tls_report

# A fixed day: nothing here reads the clock (reports are dated by their own ranges).
DAY = date(2026, 6, 15)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    opened = open_stores(str(tmp_path / "alerts.db"))
    opened.watches.add_watch("T1", "CALERTS", "example.com", [], "U1")
    yield opened
    opened.close()


def add(
    stores: Stores, day: date, successful: int, failures: list[Failure], team: str = "T1", name: str = ""
) -> list[StoredTlsReport]:
    data = tls_report(day, [policy(successful, failures)], report_id=f"{team}-{day}-{name}")
    outcome = ingest_bytes(stores.reports, data, f"{day}.json", one_team(team), "test")
    assert outcome.ok, outcome.error
    return list(outcome.tls_reports)


def baseline(stores: Stores, successful: int = 990, failed: int = 10) -> None:
    """The 14 days before DAY: 1,000 sessions a day, 99% successful, failing validation."""
    for n in range(1, 15):
        add(
            stores,
            DAY - timedelta(days=n),
            successful,
            [("validation-failure", "mx1.example.com", None, failed)],
        )


def review(stores: Stores, stored: list[StoredTlsReport]) -> list[Alert]:
    review_tls_after_ingest(stores, stored)
    return stores.outbox.pending_alerts("T1")


@pytest.mark.parametrize(("successful_today", "alerts"), [(930, 1), (940, 0), (990, 0)])
def test_a_success_rate_drop_alerts_only_past_5_points(
    stores: Stores, successful_today: int, alerts: int
) -> None:
    baseline(stores)
    # 99% before; 93% today is 6 points down (alert), 94% is exactly 5 (no alert: "more than")
    failed = 1000 - successful_today
    today = add(
        stores, DAY, successful_today, [("validation-failure", "mx1.example.com", "192.0.2.1", failed)]
    )
    found = [a for a in review(stores, today) if a.kind == "tls_success_rate_drop"]
    assert len(found) == alerts
    if alerts:
        assert found[0].channel_id == "CALERTS" and found[0].domain == "example.com"
        assert (
            "On 2026-06-15, 93.0% of 1,000 TLS sessions to the MX hosts succeeded, against 99.0% of 14,000 "
            "over the 14 days before. Most failures: validation-failure at mx1.example.com (70)."
        ) in found[0].text


@pytest.mark.parametrize(("today_sessions", "baseline_sessions"), [(99, 1000), (1000, 99)])
def test_fewer_than_100_sessions_on_the_day_or_in_the_baseline_alert_nobody(
    stores: Stores, today_sessions: int, baseline_sessions: int
) -> None:
    add(stores, DAY - timedelta(days=3), baseline_sessions, [])
    today = add(stores, DAY, 0, [("validation-failure", None, None, today_sessions)])
    assert [a for a in review(stores, today) if a.kind == "tls_success_rate_drop"] == []


@pytest.mark.parametrize(("sessions", "alerts"), [(10, 1), (9, 0)])
def test_a_new_failure_type_with_10_sessions_alerts_naming_the_mx_host(
    stores: Stores, sessions: int, alerts: int
) -> None:
    baseline(stores)
    today = add(stores, DAY, 990 - sessions, [("certificate-expired", "mx1.example.com", None, sessions)])
    found = review(stores, today)
    assert len(found) == alerts
    if alerts:
        [alert] = found
        assert alert.kind == "tls_new_failure_type" and alert.channel_id == "CALERTS"
        assert alert.text.startswith("example.com: the TLS certificate of mx1.example.com expired.")
        assert (
            "On 2026-06-15, 10 TLS sessions to example.com failed with certificate-expired at "
            "mx1.example.com: the MX host's certificate has expired. Not seen in the 14 days before. "
            "Fix: renew the MX host's certificate."
        ) in alert.text


def test_a_failure_type_seen_in_the_14_days_before_is_not_new(stores: Stores) -> None:
    # (fewer than 100 sessions before: no rate alert muddles this)
    add(stores, DAY - timedelta(days=14), 50, [("starttls-not-supported", "mx2.example.com", None, 1)])
    today = add(stores, DAY, 100, [("starttls-not-supported", "mx2.example.com", None, 50)])
    assert review(stores, today) == []
    # 15 days back is outside the baseline: the same type then is new again
    later = add(
        stores, DAY + timedelta(days=15), 100, [("starttls-not-supported", "mx2.example.com", None, 50)]
    )
    [alert] = review(stores, later)
    assert alert.text.startswith("example.com: new TLS failure: starttls-not-supported.")
    assert "Fix: enable STARTTLS on the MX host." in alert.text


def test_each_alert_is_written_once_however_often_the_day_is_reviewed(stores: Stores) -> None:
    baseline(stores)
    first = add(stores, DAY, 800, [("sts-policy-fetch-error", None, None, 200)])
    assert len(review(stores, first)) == 2  # the rate drop, and the new type
    # the same file again, and another report for the same day: no new alert
    again = add(stores, DAY, 800, [("sts-policy-fetch-error", None, None, 200)])
    assert again[0].duplicate
    more = add(stores, DAY, 500, [("sts-policy-fetch-error", None, None, 500)], name="second")
    assert len(review(stores, again + more)) == 2
    assert "serve the policy at https://mta-sts.example.com/.well-known/mta-sts.txt" in "".join(
        a.text for a in stores.outbox.pending_alerts("T1")
    )


def test_unwatched_domains_and_other_teams_get_no_alerts(stores: Stores) -> None:
    other = add(stores, DAY, 0, [("certificate-expired", "mx1.example.com", None, 500)], team="T2")
    assert review_tls_after_ingest(stores, other) == 0
    data = tls_report(
        DAY, [policy(0, [("certificate-expired", None, None, 500)], domain="unwatched.example")]
    )
    outcome = ingest_bytes(stores.reports, data, "u.json", one_team("T1"), "test")
    assert review_tls_after_ingest(stores, list(outcome.tls_reports)) == 0
    assert stores.outbox.pending_alerts("T1") == [] and stores.outbox.pending_alerts("T2") == []


def checked(stores: Stores, finding_ids: list[str]) -> None:
    """Record a check of the watch whose findings are `finding_ids`, as the monitor would."""
    watch = stores.watches.watch("T1", "example.com")
    assert watch is not None
    findings = [
        {"key": f"{i}:warning", "id": i, "severity": "warning", "title": i, "detail": i} for i in finding_ids
    ]
    state = ObservedState("|".join(finding_ids), {}, findings, "pass")
    stores.watches.apply_check("T1", watch.id, state, lambda history: Decision([], True), datetime.now(UTC))


@pytest.mark.parametrize(
    ("findings", "says"),
    [
        (
            None,
            "The domain has not been checked yet, so whether it publishes an MTA-STS policy is not known.",
        ),
        (["mta_sts.missing"], "example.com publishes no MTA-STS policy (the last check found none)"),
        (["mta_sts.testing"], "example.com's MTA-STS policy is published in testing mode"),
        (
            ["mta_sts.policy_unreachable"],
            "published but the last check could not use it (mta_sts.policy_unreachable)",
        ),
        ([], "example.com publishes an MTA-STS policy in enforce mode"),
        (["tls_rpt.missing"], "The last check found no TLS-RPT record (_smtp._tls)"),
    ],
)
def test_the_alert_says_what_the_last_check_found_of_mta_sts_and_tls_rpt(
    stores: Stores, findings: list[str] | None, says: str
) -> None:
    if findings is not None:
        checked(stores, findings)
    watch = stores.watches.watch("T1", "example.com")
    assert watch is not None
    assert says in transport_context(stores.watches.latest_snapshot("T1", watch.id), "example.com")
    today = add(stores, DAY, 0, [("certificate-expired", "mx1.example.com", None, 20)])
    [alert] = review(stores, today)
    assert says in alert.text


def test_an_alert_reaches_the_watchs_channel_exactly_once(
    tmp_path: Path, nsd: NsdServer, slack: SlackStandIn
) -> None:
    settings = app_settings(slack, tmp_path / "deliver.db", nsd.address)
    stores = open_stores(settings.db_path)
    try:
        stores.watches.add_watch("T1", "CALERTS", "example.com", [], "U1")
        today = add(stores, DAY, 0, [("certificate-expired", "mx1.example.com", None, 20)])
        assert review_tls_after_ingest(stores, today) == 1
        for _ in range(2):  # a second pass (another monitor, a restart) finds nothing to post
            deliver_pending(stores.outbox, client_for_team_factory(settings), ChannelPacer(0))
        assert review_tls_after_ingest(stores, today) == 0
        deliver_pending(stores.outbox, client_for_team_factory(settings), ChannelPacer(0))
    finally:
        stores.close()
    [post] = slack.calls("chat.postMessage")
    assert post.params["channel"] == "CALERTS"
    assert "the TLS certificate of mx1.example.com expired" in (post.text or "")
    slack.assert_no_violations()
