"""SMTP TLS reports stored and recognised on every ingest path: the store's dedupe by report-id,
`dmarcbot ingest` over every shared sample, a real Dovecot mailbox, and a file shared in Slack."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.reports.imap import PROCESSED_FOLDER, REFUSED_FOLDER, poll_once
from bot.reports.ingest import ingest_bytes, looks_like_report_name, one_team
from bot.store.stores import Stores, open_stores
from tests.aggregate_xml import days_ago
from tests.applog import capture_app_log, wait_for_log
from tests.conftest import AppFactory
from tests.dnstest import NsdServer
from tests.dovecot import DovecotServer
from tests.slackstub import SlackStandIn
from tests.test_imap_poller import mine, settings_for
from tests.test_reports_slack import all_text, file_shared, share
from tests.testdata import TESTDATA
from tests.tls_json import policy, tls_mail, tls_report

CRY_INC = TESTDATA / "dmarc-reports-cry-inc" / "smtp-tls-reports"
PARSEDMARC = TESTDATA / "dmarc-reports-parsedmarc" / "smtp_tls"
RFC_EXAMPLE = CRY_INC / "rfc-example.json"


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    opened = open_stores(str(tmp_path / "tls.db"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[DovecotServer]:
    server = DovecotServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer, request: pytest.FixtureRequest) -> DovecotServer:
    """The module's server, with this test's own folder (as in tests/test_imap_poller.py)."""
    folder = f"t{abs(hash(request.node.nodeid)) % 10**9}"
    with dovecot_server.connect() as imap:
        imap.create(folder)
    dovecot_server.test_folder = folder  # type: ignore[attr-defined]
    return dovecot_server


def rows(stores: Stores, table: str) -> int:
    return int(stores.database.connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_a_report_is_stored_with_its_policies_and_failures_and_counted_once_by_report_id(
    stores: Stores,
) -> None:
    first = ingest_bytes(stores.reports, RFC_EXAMPLE.read_bytes(), "rfc-example.json", one_team("T1"), "test")
    assert first.ok and [r.duplicate for r in first.tls_reports] == [False]
    assert first.describe() == (
        "rfc-example.json: SMTP TLS report for company-y.example from Company-X for 2016-04-01, "
        "5,629 sessions, 303 failed: ingested"
    )
    # parsedmarc's copy of the RFC example has the same report-id: the same report, counted once
    again = ingest_bytes(
        stores.reports, (PARSEDMARC / "rfc8460.json").read_bytes(), "r.json", one_team("T1"), "t"
    )
    assert [r.duplicate for r in again.tls_reports] == [True]
    assert "already ingested, not counted again" in again.describe()
    assert (rows(stores, "tls_reports"), rows(stores, "tls_policies"), rows(stores, "tls_failures")) == (
        1,
        1,
        3,
    )
    totals = stores.tls_reports.totals("T1", "company-y.example", "2016-04-01", "2016-04-01")
    assert (totals.sessions, totals.failed) == (5629, 303)
    # another team has its own copy; the first team's totals are untouched
    other = ingest_bytes(stores.reports, RFC_EXAMPLE.read_bytes(), "r.json", one_team("T2"), "test")
    assert [r.duplicate for r in other.tls_reports] == [False]
    assert stores.tls_reports.totals("T1", "company-y.example", "2016-04-01", "2016-04-01").sessions == 5629


def test_sessions_reported_under_two_policies_of_one_domain_are_counted_once(stores: Stores) -> None:
    # Microsoft reports each session under the domain's MTA-STS and its DANE policy
    outcome = ingest_bytes(
        stores.reports, (CRY_INC / "microsoft.json").read_bytes(), "m.json", one_team("T1"), "t"
    )
    assert outcome.tls_reports[0].sessions == 2
    assert stores.tls_reports.totals("T1", "random.net", "2025-05-23", "2025-05-23").sessions == 2
    assert stores.tls_reports.policies("T1", "random.net", "2025-05-23", "2025-05-23") == [
        ("sts", 2, 0),
        ("tlsa", 2, 0),
    ]


def test_a_tls_report_about_a_domain_nobody_watches_is_refused_whole(stores: Stores) -> None:
    outcome = ingest_bytes(stores.reports, RFC_EXAMPLE.read_bytes(), "r.json", lambda domain: [], "imap")
    assert outcome.error == (
        "no workspace watches company-y.example: watch the domain (`/dmarc watch DOMAIN`) so its reports "
        "have a channel, then ingest the file again"
    )
    assert rows(stores, "tls_reports") == 0


def test_report_file_names_include_json() -> None:
    assert looks_like_report_name("google.com!example.com!1!2!001.json")
    assert looks_like_report_name("google.com!example.com!1!2!001.json.gz")


def test_the_cli_stores_or_refuses_every_shared_sample_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DMARCBOT_DB", str(tmp_path / "cli.db"))
    samples = sorted([*CRY_INC.iterdir(), *PARSEDMARC.iterdir()])
    code = main(["ingest", *map(str, samples), "--team", "T1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = {line.split(": ", 1)[0]: line for line in out.splitlines()}
    for sample in samples:
        assert str(sample) in lines, sample
        assert "SMTP TLS report for " in lines[str(sample)]
    assert lines[str(CRY_INC / "no_ip_and_mx.json")].endswith(
        "SMTP TLS report for xxxxxxxx.xx from Microsoft Corporation for 2025-06-14, 3 sessions, 3 failed: "
        "ingested"
    )
    assert lines[str(PARSEDMARC / "google.com_smtp_tls_report.eml")].endswith(
        "SMTP TLS report for cardinalhealth.ca from Google Inc. for 2024-09-03, 48 sessions: ingested"
    )
    assert lines[str(CRY_INC / "google.json")].endswith("for 2025-05-22, 1 session: ingested")
    # the two copies of the RFC example: whichever is read second is the duplicate
    assert sum("already ingested" in line for line in lines.values()) == 1
    assert "warning: policies[0]: the failure details count 2 sessions, the summary 1 failed" in err
    stores = open_stores(str(tmp_path / "cli.db"))
    assert rows(stores, "tls_reports") == 9


def test_the_cli_names_a_refused_tls_report_and_stores_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DMARCBOT_DB", str(tmp_path / "cli.db"))
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b'{"organization-name": "x"' + b" " * (20 * 1024 * 1024) + b"}"))
    negative = tmp_path / "negative.json"
    data = json.loads(RFC_EXAMPLE.read_bytes())
    data["policies"][0]["summary"]["total-failure-session-count"] = -3
    negative.write_text(json.dumps(data))
    assert main(["ingest", str(bomb), str(negative), str(RFC_EXAMPLE), "--team", "T1"]) == 1
    out, err = capsys.readouterr()
    assert f"{bomb}: refused: the gzip data inflates more than 100 times its size" in err
    assert (
        f"{negative}: refused: policies[0].summary.total-failure-session-count is -3: "
        "a session count is never negative"
    ) in err
    assert "2 of 3 files refused" in err
    assert f"{RFC_EXAMPLE}: SMTP TLS report for company-y.example" in out


@pytest.mark.slow
def test_the_mailbox_ingests_tls_reports_and_refuses_one_for_nobody(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer
) -> None:
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    tag = folder
    day = days_ago(1)
    report = tls_report(
        day, [policy(900, [("starttls-not-supported", "mx2.example.com", "192.0.2.9", 100)])], tag
    )
    dovecot.append(tls_mail(report, subject=f"{tag} gzip"), folder)
    dovecot.append(tls_mail(report, subject=f"{tag} the same again", gzipped=False), folder)
    dovecot.append(
        (PARSEDMARC / "google.com_smtp_tls_report.eml")
        .read_bytes()
        .replace(b"Subject: Report Domain", f"Subject: {tag} Report Domain".encode()),
        folder,
    )
    stores = open_stores(str(tmp_path / "imap.db"))
    stores.watches.add_watch("T1", "CTLS", "example.com", [], "U1")
    settings = settings_for(dovecot, tmp_path, nsd)

    # no default team: a report goes to the workspaces watching its domain, else it is refused
    result = poll_once(settings, stores, default_team=None)

    assert len(result.processed) == 2 and len(result.refused) == 1
    assert "no workspace watches cardinalhealth.ca" in (result.refused[0].outcome.error or "")
    totals = stores.tls_reports.totals("T1", "example.com", day.isoformat(), day.isoformat())
    assert (totals.sessions, totals.failed) == (1000, 100)  # the resent one counted once
    assert len(mine(dovecot.mailbox(PROCESSED_FOLDER), tag)) == 2
    [refused] = mine(dovecot.mailbox(REFUSED_FOLDER), tag)
    assert b"TLS-Report-Domain: cardinalhealth.ca" in refused
    # a failure type new to the watched domain alerts its channel, once for both mails
    [alert] = stores.outbox.pending_alerts("T1")
    assert alert.channel_id == "CTLS" and alert.kind == "tls_new_failure_type"
    assert result.alerts == 1


def test_a_tls_report_shared_in_slack_is_ingested_and_answered_in_its_thread(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn
) -> None:
    app = make_app(nsd)
    day = days_ago(2)
    report = tls_report(
        day, [policy(90, [("certificate-expired", "mx1.example.com", None, 10)])], "<!channel>"
    )
    info = share(slack, "google.com!example.com!1!2!001.json.gz", gzip.compress(report))
    file_shared(app, info)
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert answer.params["thread_ts"] == "1700000000.000100"
    text = all_text(answer)
    assert "Ingested 1 SMTP TLS report" in text
    assert (
        f"SMTP TLS report for example.com from Google Inc. for {day.isoformat()}, 100 sessions, 10 failed"
        in text
    )
    slack.assert_no_violations()
    stores = open_stores(app.settings.db_path)
    assert stores.tls_reports.totals("T1", "example.com", day.isoformat(), day.isoformat()).failed == 10

    slack.reset()
    file_shared(app, share(slack, "again.json", report, mimetype="application/json"))
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "Ingested 0 SMTP TLS reports; 1 already ingested (counted once)" in all_text(answer)

    slack.reset()
    file_shared(app, share(slack, "broken.json", b'{"organization-name": 5}', mimetype="application/json"))
    [answer] = slack.wait_for("chat.postMessage", 1, timeout=15, ok_only=True)
    assert "I could not ingest *broken.json*" in all_text(answer)
    assert "organization-name is a JSON number, not a string" in all_text(answer)


def test_a_json_file_that_is_no_tls_report_is_left_alone_in_slack(
    nsd: NsdServer, make_app: AppFactory, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    capture_app_log(caplog)
    app = make_app(nsd)
    file_shared(app, share(slack, "package.json", b'{"name": "left-pad"}', mimetype="application/json"))
    wait_for_log(caplog, "'package.json' (team T1): JSON that is no TLS report, left alone")
    assert slack.calls("chat.postMessage") == []
    assert len(slack.calls("files.download")) == 1
