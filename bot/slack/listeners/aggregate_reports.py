"""Aggregate reports in Slack: shared report files ingested and answered, `/dmarc report`.

A report file shared where the bot is gets ingested and answered in its thread;
`/dmarc report DOMAIN [DAYS]` posts the summary and the daily chart.

The data belongs to the workspace that installed the app and received the event (its
`authorizations`, Bolt's `context.team_id`), never the event's outer `team_id`, which in a Slack
Connect channel names the sharing user's organisation. A file is fetched the way Slack
documents it: `files.info` for the URL (never a URL from the event payload, so the bot token is
only ever sent where Slack's own API pointed), then `url_private_download` with the bot token.
"""

from __future__ import annotations

import logging
from datetime import date
from functools import partial
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.config import Settings
from bot.reports.alerts import review_after_ingest
from bot.reports.failures import FailureReading
from bot.reports.ingest import FileOutcome, ingest_bytes, looks_like_report_name, one_team
from bot.reports.summary import build_summary, summarise_named
from bot.reports.tls_alerts import review_tls_after_ingest
from bot.slack.blocks.aggregate import render_file_answer, render_summary
from bot.slack.features import Feature
from bot.slack.files import FileRefused, download_file
from bot.slack.listeners.failure_reports import answer_shared_failure
from bot.slack.routing import Job, Subcommand, parse_domain_and_days
from bot.slack.turn import SlackTurn, installation_team
from bot.slack.work import WorkPool
from bot.store.stores import Stores
from handlers.dns.domain_name import display_name
from handlers.reports.archive import DEFAULT_LIMITS
from handlers.reports.tls_report import mentions_tls_report_fields

log = logging.getLogger("dmarcbot.reports")

DEFAULT_DAYS = 30


def parse_report_command(words: list[str]) -> Job:
    """Summarise a domain's DMARC aggregate reports: sources, failures, selectors, chart."""
    domain, days = parse_domain_and_days(words, "report DOMAIN [DAYS]", DEFAULT_DAYS)
    return Job(
        ack=f"Summarising the reports for {display_name(domain)}…",
        work="report",
        args={"domain": domain, "days": days},
    )


def report_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """Post the summary in the channel, then the chart in its thread."""
    reports = turn.stores.reports
    team = turn.team_id or ""
    domain, days = args["domain"], int(args["days"])
    summary = summarise_named(reports, team, domain, days, turn.settings.dns_session())
    text, blocks = render_summary(summary, team)
    answer = turn.post(text, blocks)
    if answer is None or not summary.messages:
        return  # shown to the requester alone, or nothing to chart
    from bot.reports.chart import render_chart  # matplotlib: loaded on the first chart only

    turn.client.files_upload_v2(
        channel=turn.channel_id,
        thread_ts=answer.get("ts"),
        file=render_chart(summary),
        filename=f"dmarc-{domain}-{days}d.png",
        title=f"{domain}: DMARC reports, last {days} days",
        alt_txt=f"Daily messages and DMARC pass rate for {domain}",
    )


# -- shared files ---------------------------------------------------------------------------------


class _ThreadReply:
    """A Respond look-alike for events (they have no response_url): answers in the file's thread."""

    def __init__(self, client: WebClient, channel: str, thread_ts: str | None) -> None:
        self.client, self.channel, self.thread_ts = client, channel, thread_ts

    def __call__(self, text: str = "", blocks: list[dict[str, Any]] | None = None, **_: Any) -> None:
        self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks)


def share_ts(info: dict[str, Any], channel: str) -> str | None:
    """The ts of the message that shared the file in `channel` (the thread to answer in)."""
    shares = info.get("shares") or {}
    for kind in ("public", "private"):
        for share in (shares.get(kind) or {}).get(channel) or []:
            return str(share.get("thread_ts") or share.get("ts") or "") or None
    return None


def ingest_shared_file(
    stores: Stores,
    settings: Settings,
    client: WebClient,
    team_id: str,
    info: dict[str, Any],
    reply: _ThreadReply,
) -> FileOutcome | None:
    """Download, ingest and answer one shared file; None when it is not a report file."""
    name = str(info.get("name") or info.get("title") or "file")[:200]
    if not looks_like_report_name(name):
        log.info("shared file %r (team %s): not named like a report file, left alone", name, team_id)
        return None
    reports = stores.reports
    try:
        data = download_file(info, client.token or "", DEFAULT_LIMITS.max_input_bytes)
    except FileRefused as refused:
        outcome = FileOutcome(name=name, error=str(refused))
    else:
        if name.lower().endswith(".json") and not mentions_tls_report_fields(data):
            # a JSON file shared for some other reason (a config, an export): not ours to answer
            log.info("shared file %r (team %s): JSON that is no TLS report, left alone", name, team_id)
            return None
        outcome = ingest_bytes(
            reports, data, name, one_team(team_id), "slack", reading=FailureReading.of(settings)
        )
    if outcome.failures:
        answer_shared_failure(stores, settings, outcome, team_id, reply)
        return outcome
    if name.lower().endswith(".eml") and outcome.no_report:
        # a message shared for `/dmarc why`, not a report: not ours to answer
        log.info("shared message %r (team %s): carries no aggregate report, left alone", name, team_id)
        return outcome
    if outcome.tls_reports:
        from bot.slack.blocks.tls_reports import render_tls_file_answer

        text, blocks = render_tls_file_answer(outcome)
        reply(text=text, blocks=blocks)
        review_tls_after_ingest(stores, outcome.tls_reports)
        return outcome
    summaries = [
        build_summary(reports, team_id, domain, days=_span(first, last), first=first, last=last)
        for domain, (first, last) in _spans(outcome).items()
    ]
    text, blocks = render_file_answer(outcome, summaries)
    reply(text=text, blocks=blocks)
    review_after_ingest(stores, outcome.reports, settings.dns_session())
    return outcome


def _spans(outcome: FileOutcome) -> dict[str, tuple[str, str]]:
    """Each domain in the file with the first and last day its reports cover."""
    spans: dict[str, tuple[str, str]] = {}
    for stored in outcome.reports:
        first, last = spans.get(stored.domain, (stored.day, stored.day))
        spans[stored.domain] = (min(first, stored.day), max(last, stored.day))
    return spans


def _span(first: str, last: str) -> int:
    return (date.fromisoformat(last) - date.fromisoformat(first)).days + 1


def handle_file_shared(
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    event: dict[str, Any],
    body: dict[str, Any],
    client: WebClient,
    context: BoltContext,
) -> None:
    if event.get("user_id") and event.get("user_id") == context.bot_user_id:
        return  # our own chart upload
    channel = str(event.get("channel_id") or "")
    team_id = installation_team(context) or ""
    file_id = str(event.get("file_id") or (event.get("file") or {}).get("id") or "")
    if not channel or not file_id or not team_id:
        return
    reply = _ThreadReply(client, channel, None)
    turn = SlackTurn(
        client=client,
        respond=None,
        settings=settings,
        stores=stores,
        channel_id=channel,
        user_id=event.get("user_id"),
        team_id=team_id,
        pool=pool,
    )

    def work() -> None:
        info = client.files_info(file=file_id).get("file") or {}
        reply.thread_ts = share_ts(info, channel)
        ingest_shared_file(stores, settings, client, team_id, info, reply)

    turn.later("reading a shared report file", work)


def register(app: App, settings: Settings, stores: Stores, pool: WorkPool) -> None:
    """Attach the file_shared listener to `app`."""
    app.event("file_shared")(partial(handle_file_shared, settings, stores, pool))


REPORTS = Feature(
    name="report",
    subcommands=(
        Subcommand(
            "report",
            "report DOMAIN [DAYS]",
            parse_report_command,
            ("/dmarc report example.com", "/dmarc report example.com 7"),
        ),
    ),
    workers={"report": report_worker},
    register=register,
)
