"""The rua mailbox end to end against a real IMAP server (Dovecot on loopback, TLS verified against
a test CA): reports ingested, mail moved, nothing deleted, a broken one refused and named."""

from __future__ import annotations

import dataclasses
import imaplib
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, imap_address
from bot.reports.imap import (
    PROCESSED_FOLDER,
    REFUSED_FOLDER,
    ImapPoller,
    poll_once,
    start_imap_poller,
)
from bot.store.stores import Stores
from tests.aggregate_xml import Row, days_ago, gz, mail_with, open_reports, report_xml, zipped
from tests.dnstest import NsdServer
from tests.dovecot import PASSWORD, USER, DovecotServer


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[DovecotServer]:
    server = DovecotServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer, request: pytest.FixtureRequest) -> DovecotServer:
    """The module's server, with this test's own folder: mail from other tests never shows."""
    folder = f"t{abs(hash(request.node.nodeid)) % 10**9}"
    with dovecot_server.connect() as imap:
        imap.create(folder)
    dovecot_server.test_folder = folder  # type: ignore[attr-defined]
    return dovecot_server


def settings_for(dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer, **overrides: Any) -> Settings:
    from handlers.dns.resolver import parse_nameserver

    settings = Settings(
        imap_host=dovecot.host,
        imap_user=USER,
        imap_password=PASSWORD,
        imap_folder=dovecot.test_folder,  # type: ignore[attr-defined]
        imap_cafile=dovecot.ca_file,
        db_path=str(tmp_path / "imap.db"),
        nameservers=(parse_nameserver(nsd.address),),
        dns_timeout=0.5,
    )
    return dataclasses.replace(settings, **overrides)


def mine(messages: list[bytes], subject: str) -> list[bytes]:
    return [m for m in messages if subject.encode() in m]


@pytest.mark.slow
def test_one_poll_ingests_moves_and_deletes_nothing(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer, caplog: pytest.LogCaptureFixture
) -> None:
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    tag = folder  # subjects carry the test's tag: the processed folders are shared
    xml = report_xml(
        [Row("192.0.2.1", 30), Row("198.51.100.2", 5, dkim="fail", spf="fail")],
        day=days_ago(1),
        report_id=f"{tag}-1",
    )
    dovecot.append(mail_with(gz(xml), subject=f"{tag} gzip report"), folder)
    dovecot.append(
        mail_with(
            zipped(report_xml([Row("192.0.2.1", 7)], report_id=f"{tag}-2")),
            filename="r.zip",
            subject=f"{tag} zip report",
        ),
        folder,
    )
    dovecot.append(mail_with(gz(xml), subject=f"{tag} the same report again"), folder)
    dovecot.append(mail_with(b"\x1f\x8b\x08\x00broken", subject=f"{tag} broken attachment"), folder)
    store, reports = open_reports(tmp_path / "imap.db")
    settings = settings_for(dovecot, tmp_path, nsd)

    with caplog.at_level(logging.INFO, logger="dmarcbot.imap"):
        result = poll_once(settings, store, default_team="T1")

    assert len(result.processed) == 3 and len(result.refused) == 1
    assert reports.report_count("T1") == 2
    day = days_ago(1).isoformat()
    assert reports.totals("T1", "example.com", day, day).messages == 35  # the resent one counted once
    assert dovecot.mailbox(folder) == []
    processed = mine(dovecot.mailbox(PROCESSED_FOLDER), tag)
    refused = mine(dovecot.mailbox(REFUSED_FOLDER), tag)
    assert len(processed) == 3 and len(refused) == 1  # moved, all four still there
    assert b"broken attachment" in refused[0]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{tag} broken attachment" in warning and "the gzip data is" in warning


def test_a_crash_before_the_move_reingests_safely(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer
) -> None:
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    xml = report_xml([Row("192.0.2.1", 9)], report_id=f"{folder}-crash")
    store, reports = open_reports(tmp_path / "imap.db")
    # The report was ingested, then the process died before the mail was moved:
    from bot.reports.ingest import ingest_bytes, one_team

    ingest_bytes(reports, xml, "earlier", one_team("T1"), "imap")
    dovecot.append(mail_with(gz(xml), subject=f"{folder} crash"), folder)
    result = poll_once(settings_for(dovecot, tmp_path, nsd), store, default_team="T1")
    assert [m.outcome.reports[0].duplicate for m in result.processed] == [True]
    assert reports.report_count("T1") == 1
    assert dovecot.mailbox(folder) == []


@pytest.mark.slow
def test_reports_go_to_the_teams_watching_the_domain(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer
) -> None:
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    store, reports = open_reports(tmp_path / "imap.db")
    store.watches.add_watch("T7", "C7", "example.com", [], "U1")
    dovecot.append(
        mail_with(
            gz(report_xml([Row("192.0.2.1", 4)], report_id=f"{folder}-w")), subject=f"{folder} watched"
        ),
        folder,
    )
    dovecot.append(
        mail_with(
            gz(report_xml([Row("192.0.2.1", 4)], domain="nobody.example", report_id=f"{folder}-n")),
            subject=f"{folder} unwatched",
        ),
        folder,
    )
    result = poll_once(settings_for(dovecot, tmp_path, nsd), store, default_team=None)
    assert reports.report_count("T7") == 1
    [refused] = result.refused
    assert "no workspace watches nobody.example" in (refused.outcome.error or "")


def test_the_server_certificate_is_verified(dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer) -> None:
    store: Stores = open_reports(tmp_path / "imap.db")[0]
    with pytest.raises(ssl.SSLCertVerificationError):
        poll_once(settings_for(dovecot, tmp_path, nsd, imap_cafile=None), store, "T1")


@pytest.mark.slow
def test_a_wrong_password_is_a_clear_error(tmp_path: Path, nsd: NsdServer) -> None:
    # A server of its own: Dovecot slows every later login from an address that failed one.
    server = DovecotServer().start()
    try:
        server.test_folder = "INBOX"  # type: ignore[attr-defined]
        store = open_reports(tmp_path / "imap.db")[0]
        with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED|Authentication failed"):
            poll_once(settings_for(server, tmp_path, nsd, imap_password="wrong"), store, "T1")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("imap.example.com", ("imap.example.com", 993)),
        ("127.0.0.1:1993", ("127.0.0.1", 1993)),
        ("[::1]:994", ("::1", 994)),
    ],
)
def test_imap_address(text: str, expected: tuple[str, int]) -> None:
    assert imap_address(text) == expected


def test_partial_imap_settings_stop_serve() -> None:
    settings = Settings(slack_bot_token="xoxb-1", slack_signing_secret="s", imap_host="imap.test")
    [problem] = settings.serve_problems()
    assert "DMARCBOT_IMAP_USER, DMARCBOT_IMAP_PASSWORD" in problem


def test_serve_polls_in_a_thread_only_when_configured(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer
) -> None:
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    store = open_reports(tmp_path / "imap.db")[0]
    assert start_imap_poller(Settings(db_path=str(tmp_path / "imap.db")), store) is None
    dovecot.append(
        mail_with(
            gz(report_xml([Row("192.0.2.1", 2)], report_id=f"{folder}-t")), subject=f"{folder} threaded"
        ),
        folder,
    )
    poller = ImapPoller(settings_for(dovecot, tmp_path, nsd), store, lambda: "T1", interval=60)
    poller.start()
    try:
        deadline = time.monotonic() + 10
        while dovecot.mailbox(folder) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        poller.stop()
    assert dovecot.mailbox(folder) == []
    assert open_reports(tmp_path / "imap.db")[1].report_count("T1") == 1


def test_a_poisoned_mail_is_refused_with_its_reason_and_the_poll_goes_on(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer, caplog: pytest.LogCaptureFixture
) -> None:
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    # Two records of 2^63-1 messages: their sum overflowed the database's integers, killing the poll.
    poison = report_xml([Row("192.0.2.7", 2**63 - 1), Row("192.0.2.8", 2**63 - 1)], report_id=f"{folder}-p")
    dovecot.append(mail_with(gz(poison), subject=f"{folder} poisoned"), folder)
    good = report_xml([Row("192.0.2.1", 4)], day=days_ago(1), report_id=f"{folder}-good")
    dovecot.append(mail_with(gz(good), subject=f"{folder} good"), folder)
    store, reports = open_reports(tmp_path / "imap.db")

    with caplog.at_level(logging.INFO, logger="dmarcbot.imap"):
        result = poll_once(settings_for(dovecot, tmp_path, nsd), store, default_team="T1")

    assert len(result.refused) == 1 and len(result.processed) == 1
    assert dovecot.mailbox(folder) == []
    [refused] = mine(dovecot.mailbox(REFUSED_FOLDER), folder)
    assert f"{folder} poisoned".encode() in refused
    assert len(mine(dovecot.mailbox(PROCESSED_FOLDER), folder)) == 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{folder} poisoned" in warning
    assert "count 9223372036854775807 does not fit in 32 bits" in warning
    day = days_ago(1).isoformat()
    assert reports.report_count("T1") == 1
    assert reports.totals("T1", "example.com", day, day).messages == 4


def test_a_poller_thread_that_dies_is_restarted_with_a_logged_error(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer, caplog: pytest.LogCaptureFixture
) -> None:
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    good = report_xml([Row("192.0.2.1", 2)], report_id=f"{folder}-r")
    dovecot.append(mail_with(gz(good), subject=f"{folder} after the restart"), folder)
    store = open_reports(tmp_path / "imap.db")[0]
    asked: list[int] = []

    def team_then_crash_once() -> str:
        # The first question about the bot's team fails with an error the poll does not expect.
        asked.append(1)
        if len(asked) == 1:
            raise RuntimeError("auth.test answered something unforeseen")
        return "T1"

    poller = ImapPoller(
        settings_for(dovecot, tmp_path, nsd), store, team_then_crash_once, interval=60, restart_delay=0.1
    )
    with caplog.at_level(logging.INFO):
        poller.start()
        try:
            deadline = time.monotonic() + 15
            while dovecot.mailbox(folder) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            poller.stop()
    assert dovecot.mailbox(folder) == []
    assert open_reports(tmp_path / "imap.db")[1].report_count("T1") == 1
    assert poller.restarts == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("Thread dmarcbot-imap died; restarting it" in r.getMessage() for r in errors)
    assert any(r.exc_info and "auth.test answered something unforeseen" in str(r.exc_info[1]) for r in errors)
