"""Poll the rua mailbox over IMAP (TLS, certificate verified) and ingest the reports mailed there.

Each message is ingested, its alerts reviewed, and only then moved: to `dmarcbot-processed`, or
to `dmarcbot-refused` when it holds no usable report (the log names it and why). Nothing is ever
deleted: a move is IMAP MOVE (RFC 6851), or COPY then flag when the server lacks MOVE. A crash
mid-way leaves the message in the folder, and the next poll ingests it again harmlessly: the
report store counts a report once.

Whose report is it? Every team watching the report's domain gets it; when none does, the
default team (a single-workspace install's own team) does; with neither, the mail is refused
with that reason and can be moved back once the domain is watched.
"""

from __future__ import annotations

import imaplib
import logging
import re
import sqlite3
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings, imap_address
from bot.reports.alerts import review_after_ingest
from bot.reports.failures import FailureReading
from bot.reports.ingest import FileOutcome, ingest_bytes
from bot.reports.owners import Owners
from bot.reports.tls_alerts import review_tls_after_ingest
from bot.store.mailbox_polls import MailboxPollStore
from bot.store.reports import ReportStore
from bot.store.stores import Stores
from bot.store.watches import WatchStore
from bot.supervision import SupervisedThread
from handlers.errors import DmarcbotError
from handlers.reports.archive import DEFAULT_LIMITS, ReportLimits

log = logging.getLogger("dmarcbot.imap")

PROCESSED_FOLDER = "dmarcbot-processed"
REFUSED_FOLDER = "dmarcbot-refused"
MAX_MESSAGES_PER_POLL = 200  # the rest wait for the next poll: one poll stays short
POLL_SECONDS = 300
IMAP_TIMEOUT_SECONDS = 60
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_HEADER = re.compile(rb"^(Subject|Message-ID):[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


class ImapFailure(DmarcbotError):
    """The server refused a command; the message names the command and the server's answer."""


@dataclass(frozen=True)
class MailOutcome:
    """What happened to one message: its label (subject and id), the ingest outcome, its new folder."""

    uid: str
    label: str
    outcome: FileOutcome
    folder: str


@dataclass
class PollReport:
    """One poll: the messages processed and refused, and the alerts written."""

    processed: list[MailOutcome] = field(default_factory=list)
    refused: list[MailOutcome] = field(default_factory=list)
    alerts: int = 0
    left_for_next_poll: int = 0


def owners_for(watches: WatchStore, default_team: str | None) -> Owners:
    """The teams watching a report's domain, else the default team, else nobody."""

    def owners(domain: str) -> list[str]:
        watching = [team for team in watches.teams() if watches.watch(team, domain)]
        return watching or ([default_team] if default_team else [])

    return owners


def _quote(mailbox: str) -> str:
    # imaplib sends mailbox names as given: quote them (RFC 3501 §4.3), so spaces work.
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(answer: tuple[str, Sequence[Any]], what: str) -> list[Any]:
    kind, data = answer
    if kind != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise ImapFailure(f"IMAP {what} failed: {kind} {detail[:200]}")
    return list(data)


def poll_once(
    settings: Settings,
    stores: Stores,
    default_team: str | None = None,
    limits: ReportLimits = DEFAULT_LIMITS,
) -> PollReport:
    """Connect, ingest every message in the folder (at most MAX_MESSAGES_PER_POLL), move each."""
    assert settings.imap_host and settings.imap_user and settings.imap_password
    host, port = imap_address(settings.imap_host)
    # Verified TLS, always: the mailbox password and strangers' reports cross this connection.
    context = ssl.create_default_context(cafile=settings.imap_cafile)
    reports = stores.reports
    owners = owners_for(stores.watches, default_team)
    result = PollReport()
    with imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=IMAP_TIMEOUT_SECONDS) as imap:
        _ok(imap.login(settings.imap_user, settings.imap_password), "LOGIN")
        capabilities = (
            b" ".join(d for d in _ok(imap.capability(), "CAPABILITY") if isinstance(d, bytes)).upper().split()
        )
        for folder in (PROCESSED_FOLDER, REFUSED_FOLDER):
            imap.create(_quote(folder))  # answered NO when it exists already: that is fine
        _ok(imap.select(_quote(settings.imap_folder)), f"SELECT {settings.imap_folder}")
        # UNDELETED: a message copied away by a server without MOVE stays flagged, not re-read.
        found = _ok(imap.uid("SEARCH", "UNDELETED"), "SEARCH")
        uids = [u.decode() for u in (found[0] or b"").split()] if isinstance(found[0], bytes) else []
        result.left_for_next_poll = max(0, len(uids) - MAX_MESSAGES_PER_POLL)
        for uid in uids[:MAX_MESSAGES_PER_POLL]:
            mail = _process(imap, uid, reports, owners, limits, FailureReading.of(settings))
            if mail.outcome.reports or mail.outcome.tls_reports:
                result.alerts += _review(stores, mail, settings)
            _move(imap, uid, mail.folder, b"MOVE" in capabilities)
            (result.processed if mail.outcome.ok else result.refused).append(mail)
            if mail.outcome.ok:
                log.info("IMAP: %s", mail.outcome.describe())
                for warning in mail.outcome.warnings[:5]:
                    log.warning("IMAP: %s: %s", mail.label, warning)
            else:
                log.warning("IMAP: moved to %s: %s", REFUSED_FOLDER, mail.outcome.describe())
        imap.close()
    return result


def _review(stores: Stores, mail: MailOutcome, settings: Settings) -> int:
    """Alerts for the reports of one mail; a failure here is logged and the poll goes on (the
    reports are stored: the next report for the domain reviews it again)."""
    try:
        written = review_tls_after_ingest(stores, mail.outcome.tls_reports)
        if mail.outcome.reports:
            written += review_after_ingest(stores, mail.outcome.reports, settings.dns_session())
        return written
    except Exception:
        log.exception("IMAP: %s: stored, but reviewing its alerts failed", mail.label)
        return 0


def _process(
    imap: imaplib.IMAP4,
    uid: str,
    reports: ReportStore,
    owners: Owners,
    limits: ReportLimits,
    reading: FailureReading,
) -> MailOutcome:
    head = _ok(
        imap.uid("FETCH", uid, "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])"), f"FETCH {uid}"
    )
    # Each fetched item is (b'1 (UID 7 RFC822.SIZE 123 BODY[...] {80}', header bytes), b')'.
    prefixes = b" ".join(i[0] if isinstance(i, tuple) else i for i in head if isinstance(i, (bytes, tuple)))
    headers = b"".join(i[1] for i in head if isinstance(i, tuple) and len(i) > 1)
    label = _label(uid, headers)
    size = _SIZE.search(prefixes)
    if size is not None and int(size.group(1)) > limits.max_input_bytes:
        # Refused before download: anyone can mail the report address.
        outcome = FileOutcome(
            name=label,
            error=f"the message is {int(size.group(1)):,} bytes, over the "
            f"max_input_bytes cap of {limits.max_input_bytes:,}",
            refused_by_cap="max_input_bytes",
        )
    else:
        body = _ok(imap.uid("FETCH", uid, "(BODY.PEEK[])"), f"FETCH {uid}")
        raw = next((item[1] for item in body if isinstance(item, tuple) and len(item) > 1), b"")
        outcome = ingest_bytes(reports, bytes(raw), label, owners, "imap", limits, reading)
    return MailOutcome(uid, label, outcome, PROCESSED_FOLDER if outcome.ok else REFUSED_FOLDER)


def _label(uid: str, headers: bytes) -> str:
    """How the log names a message: its UID, Subject and Message-ID (clipped, one line)."""
    fields = {
        m.group(1).lower(): re.sub(rb"\s+", b" ", m.group(2)).strip() for m in _HEADER.finditer(headers)
    }
    subject = fields.get(b"subject", b"").decode("utf-8", "replace")[:120]
    message_id = fields.get(b"message-id", b"").decode("utf-8", "replace")[:120]
    return f"mail UID {uid} “{subject}” {message_id}".strip()


def _move(imap: imaplib.IMAP4, uid: str, folder: str, can_move: bool) -> None:
    if can_move:
        _ok(imap.uid("MOVE", uid, _quote(folder)), f"MOVE {uid}")
        return
    # No MOVE: copy, then flag the original; no EXPUNGE, so nothing anyone flagged is removed.
    _ok(imap.uid("COPY", uid, _quote(folder)), f"COPY {uid}")
    _ok(imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted \Seen)"), f"STORE {uid}")


# -- the background thread ----------------------------------------------------------------------


class ImapPoller:
    """Polls every `interval` seconds in a supervised daemon thread until `stop`: a failed poll is
    logged and retried at the next interval (the messages stay in the folder meanwhile), and a
    thread that dies anyway is restarted (bot.supervision)."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        default_team: Callable[[], str | None] = lambda: None,
        interval: float = POLL_SECONDS,
        restart_delay: float | None = None,
    ) -> None:
        self.settings, self.stores, self.default_team = settings, stores, default_team
        self.interval = interval
        delay = {} if restart_delay is None else {"restart_delay": restart_delay}
        self._thread = SupervisedThread("dmarcbot-imap", self._loop, **delay)

    @property
    def restarts(self) -> int:
        """How often the thread died and was restarted."""
        return self._thread.restarts

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._thread.stop(timeout)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            poll_and_record(self.settings, self.stores, self.default_team(), self.interval)
            stop.wait(self.interval)


def mailbox_label(settings: Settings) -> str:
    """The mailbox a poll reads, as its record names it: user@host/folder (never the password)."""
    return f"{settings.imap_user}@{settings.imap_host}/{settings.imap_folder}"


def poll_and_record(
    settings: Settings, stores: Stores, default_team: str | None, retry_in: float = POLL_SECONDS
) -> PollReport | None:
    """One poll, logged, and its outcome recorded (bot.store.mailbox_polls): when reports stop, a
    failing poll is named with its error. None when the poll failed."""
    polls = MailboxPollStore(stores.database)
    try:
        report = poll_once(settings, stores, default_team)
    except (imaplib.IMAP4.error, ImapFailure, OSError, sqlite3.Error, ValueError) as error:
        # ssl.SSLError (a certificate that does not verify) and timeouts are OSErrors.
        log.error("IMAP poll of %s failed: %s; retrying in %.0f s", settings.imap_host, error, retry_in)
        try:
            polls.record_failure(mailbox_label(settings), f"{type(error).__name__}: {error}")
        except sqlite3.Error as db_error:
            log.error("IMAP: recording the failed poll failed: %s", db_error)
        return None
    log.info(
        "IMAP poll: %d processed, %d refused, %d alerts, %d left for the next poll",
        len(report.processed),
        len(report.refused),
        report.alerts,
        report.left_for_next_poll,
    )
    polls.record_success(mailbox_label(settings))
    return report


def start_imap_poller(settings: Settings, stores: Stores) -> ImapPoller | None:
    """Start polling when DMARCBOT_IMAP_HOST, _USER and _PASSWORD are set (else None)."""
    if not (settings.imap_host and settings.imap_user and settings.imap_password):
        return None
    poller = ImapPoller(settings, stores, single_workspace_team(settings))
    poller.start()
    log.info("IMAP: polling %s folder %s every %d s", settings.imap_host, settings.imap_folder, POLL_SECONDS)
    return poller


def single_workspace_team(settings: Settings) -> Callable[[], str | None]:
    """The team of the bot token (auth.test, asked until it answers once); None with OAuth,
    where reports go only to the teams watching their domain."""
    found: list[str] = []

    def team() -> str | None:
        if settings.oauth or not settings.slack_bot_token:
            return None
        if not found:
            from slack_sdk.errors import SlackApiError

            from bot.slack.app import make_web_client  # here: it imports every listener

            try:
                answer = make_web_client(settings, settings.slack_bot_token).auth_test()
                found.append(str(answer["team_id"]))
            except (SlackApiError, OSError) as error:
                log.warning(
                    "IMAP: cannot tell the bot's team yet (auth.test: %s); reports for "
                    "unwatched domains wait",
                    error,
                )
                return None
        return found[0]

    return team
