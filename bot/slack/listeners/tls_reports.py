"""SMTP TLS reports in Slack: `/dmarc tls DOMAIN [DAYS]` posts what the stored reports say.

Shared TLS report files are read by the aggregate reports' file listener (one listener for every
report file); this module answers the command. The data read is the installing workspace's
(`turn.team_id`, from Bolt's context), never the clicking user's team.
"""

from __future__ import annotations

from typing import Any

from bot.reports.tls_summary import build_tls_summary
from bot.slack.blocks.tls_reports import render_tls_summary
from bot.slack.features import Feature
from bot.slack.routing import Job, Subcommand, parse_domain_and_days
from bot.slack.turn import SlackTurn
from handlers.dns.domain_name import display_name

DEFAULT_DAYS = 30


def parse_tls_command(words: list[str]) -> Job:
    """Summarise a domain's SMTP TLS reports: sessions, success rate, failures by MX host."""
    domain, days = parse_domain_and_days(words, "tls DOMAIN [DAYS]", DEFAULT_DAYS)
    return Job(
        ack=f"Summarising the TLS reports for {display_name(domain)}…",
        work="tls",
        args={"domain": domain, "days": days},
    )


def tls_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """Post the summary in the channel."""
    summary = build_tls_summary(
        turn.stores.tls_reports, turn.team_id or "", args["domain"], int(args["days"])
    )
    text, blocks = render_tls_summary(summary)
    turn.post(text, blocks)


TLS_REPORTS = Feature(
    name="tls",
    subcommands=(
        Subcommand(
            "tls",
            "tls DOMAIN [DAYS]",
            parse_tls_command,
            ("/dmarc tls example.com", "/dmarc tls example.com 7"),
        ),
    ),
    workers={"tls": tls_worker},
)
