"""Failure reports in the report mailbox, against a real IMAP server (Dovecot on loopback, TLS
verified) and real DNS (NSD): each mail read, explained by the `why` verdict, grouped, stored
redacted and moved; a report without its machine-readable part refused and moved aside."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.reports.failure_alerts import announce_failure_groups
from bot.reports.imap import PROCESSED_FOLDER, REFUSED_FOLDER, poll_once
from bot.store.stores import open_stores
from tests.dnstest import NsdServer
from tests.dovecot import DovecotServer
from tests.messages.helpers import zones
from tests.test_failure_reports import (
    FAILURES,
    RECORDS,
    STRANGER,
    YESTERDAY,
    at,
    failure_report,
    signed,
    unsigned,
)
from tests.test_imap_poller import settings_for


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[DovecotServer]:
    server = DovecotServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer, request: pytest.FixtureRequest) -> DovecotServer:
    """The module's server, with this test's own folder."""
    folder = f"f{abs(hash(request.node.nodeid)) % 10**9}"
    with dovecot_server.connect() as imap:
        imap.create(folder)
    dovecot_server.test_folder = folder  # type: ignore[attr-defined]
    return dovecot_server


def with_subject(report: bytes, subject: str) -> bytes:
    return report.replace(b"Subject: DMARC failure report", f"Subject: {subject}".encode(), 1)


def test_failure_reports_in_the_mailbox_are_read_explained_grouped_and_stored(
    dovecot: DovecotServer, tmp_path: Path, nsd: NsdServer
) -> None:
    nsd.set_zones(zones(RECORDS))
    folder = dovecot.test_folder  # type: ignore[attr-defined]
    tag = folder  # the processed folders are shared by the tests: subjects carry the tag
    for n in range(3):
        report = failure_report(unsigned(f"<{tag}-{n}@example.com>"), arrival=at(YESTERDAY, 10 + n))
        dovecot.append(with_subject(report, f"{tag} stranger {n}"), folder)
    key_missing = failure_report(signed(selector="gone"), source_ip="198.51.100.9", headers_only=True)
    dovecot.append(with_subject(key_missing, f"{tag} key missing"), folder)
    plain = (FAILURES / "exim_plain_text_only_no_arf_part.eml").read_bytes()
    dovecot.append(plain.replace(b"Subject: ", f"Subject: {tag} ".encode(), 1), folder)
    stores = open_stores(str(tmp_path / "imap.db"))
    try:
        stores.watches.add_watch("T1", "C3", "example.com", [], "U1")
        result = poll_once(settings_for(dovecot, tmp_path, nsd), stores)

        assert len(result.processed) == 4 and len(result.refused) == 1
        assert "without the machine-readable message/feedback-report part" in (
            result.refused[0].outcome.error or ""
        )
        assert dovecot.mailbox(folder) == []
        processed = [m for m in dovecot.mailbox(PROCESSED_FOLDER) if tag.encode() in m]
        assert len(processed) == 4
        assert len([m for m in dovecot.mailbox(REFUSED_FOLDER) if tag.encode() in m]) == 1

        day = YESTERDAY.date().isoformat()
        groups = stores.failures.groups("T1", "example.com", day, day)
        assert [(g.source_ip, g.count) for g in groups] == [(STRANGER, 3), ("198.51.100.9", 1)]
        assert set(groups[0].causes) == {"cause.spf_ip_not_authorized", "cause.no_dkim_signature"}
        assert "cause.dkim_key_missing" in groups[1].causes

        connection = sqlite3.connect(tmp_path / "imap.db")
        rows = connection.execute(
            "SELECT mail_from, headers, verdict, source FROM failure_reports"
        ).fetchall()
        connection.close()
        assert len(rows) == 4
        for mail_from, headers, verdict, source in rows:
            assert mail_from == "*@example.com" and "alice@" not in headers + verdict
            assert "Hello" not in headers and json.loads(verdict)["causes"]
            assert source.startswith("imap")

        # the monitor's next step tells the watch's channel: one message for both new groups
        assert announce_failure_groups(stores, now=YESTERDAY + timedelta(hours=12)) == 1
        [alert] = stores.outbox.pending_alerts("T1")
        assert alert.channel_id == "C3" and "*3* failures from `203.0.113.7`" in json.dumps(alert.blocks)
        buttons = [json.loads(b["accessory"]["value"]) for b in alert.blocks if "accessory" in b]
        # the key the signature named, read from the stored verdict: its Fix it opens on that selector
        assert {"f": "dkim.key_missing", "d": "example.com", "o": "T1", "x": "gone", "s": []} in buttons
        assert {"f": "spf.sender_missing", "d": "example.com", "o": "T1", "s": []} in buttons
    finally:
        stores.close()
