"""The policy-progression modal reads its readiness from the team's aggregate reports: reports are
ingested into the app's own database file first, then the Fix it click goes through the app's
real endpoint and the modal the Slack stand-in receives is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.reports.aggregate import parse_report
from tests.aggregate_xml import Row, days_ago, open_reports, report_xml
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.slackapp import RunningApp
from tests.slackstub import SlackStandIn
from tests.test_fixit_slack import change, fix_value, open_modal, select
from tests.test_record_fixes import fixit_zones

DOMAIN = "pnone.test"


@pytest.fixture
def app(nsd: NsdServer, make_app: AppFactory) -> RunningApp:
    nsd.set_zones(fixit_zones())
    return make_app(nsd, dns_timeout=0.5)


def ingest(
    app: RunningApp, rows_by_day: dict[int, list[Row]], team: str = "T1", domain: str = DOMAIN
) -> None:
    """Store one report per day (`days back -> rows`) for `team` in the app's database file."""
    store, reports = open_reports(Path(app.settings.db_path))
    try:
        for back, rows in rows_by_day.items():
            xml = report_xml(rows, day=days_ago(back), domain=domain, report_id=f"r{back}")
            reports.add_report(team, parse_report(xml), "test")
    finally:
        store.close()


def row(ip: str, count: int, passing: bool = True) -> Row:
    result = "pass" if passing else "fail"
    return Row(ip, count, dkim=result, spf=result, header_from=DOMAIN, dkim_domain=DOMAIN, spf_domain=DOMAIN)


@pytest.mark.slow
def test_enough_passing_mail_says_ready(app: RunningApp, slack: SlackStandIn) -> None:
    ingest(app, {n: [row("192.0.2.1", 100)] for n in range(1, 6)})
    modal = open_modal(app, slack, fix_value("dmarc.policy_none", DOMAIN))
    assert (
        "*Readiness*: 100.0% of 500 messages in the last 14 days passed DMARC aligned: ready for quarantine."
    ) in modal.text
    assert ":white_check_mark: *Readiness*" in modal.text
    assert "No aggregate report data yet" not in modal.text
    slack.assert_no_violations()


@pytest.mark.slow
def test_failing_sources_are_named_and_the_step_is_not_ready(app: RunningApp, slack: SlackStandIn) -> None:
    ingest(
        app,
        {
            1: [row("192.0.2.1", 300), row("203.0.113.9", 80, passing=False)],
            3: [row("192.0.2.1", 100), row("198.51.100.7", 20, passing=False)],
            20: [row("203.0.113.66", 5000, passing=False)],
        },
    )  # outside the 14 days
    modal = open_modal(app, slack, fix_value("dmarc.policy_none", DOMAIN))
    assert (
        "*Readiness*: Only 80.0% of 500 messages in the last 14 days passed DMARC aligned "
        "(at least 98% is safe): fix the failing sources before quarantine."
    ) in modal.text
    assert "• 203.0.113.9 (80 messages failing)\n• 198.51.100.7 (20 messages failing)" in modal.text
    assert "203.0.113.66" not in modal.text
    # the verdict follows the policy chosen in the modal
    modal = change(app, slack, modal, "policy", select("reject"), updates_before=1)
    assert "fix the failing sources before reject." in modal.text
    slack.assert_no_violations()


def test_another_teams_reports_leave_the_checklist(app: RunningApp, slack: SlackStandIn) -> None:
    ingest(app, {1: [row("192.0.2.1", 1000)]}, team="T2")
    ingest(app, {1: [row("192.0.2.1", 1000)]}, domain="other.test")
    modal = open_modal(app, slack, fix_value("dmarc.policy_none", DOMAIN))
    assert "*Readiness*: No aggregate report data yet" in modal.text
    assert "Google Workspace (SPF `include:_spf.google.com`)" in modal.text


@pytest.mark.slow
def test_too_few_reported_messages_fall_back_to_the_checklist(app: RunningApp, slack: SlackStandIn) -> None:
    ingest(app, {1: [row("192.0.2.1", 40)]})
    modal = open_modal(app, slack, fix_value("dmarc.policy_none", DOMAIN))
    assert "*Readiness*: Too few aggregate reports to judge" in modal.text
    assert "DKIM selector google (Google Workspace)" in modal.text
