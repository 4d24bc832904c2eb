"""Failure reports in Slack: `/dmarc failures DOMAIN [DAYS]`, and a shared failure report answered.

`/dmarc failures` shows the requester alone (ephemeral) the groups `dmarcbot failures` prints, from
the same summary code, for the workspace that installed the app (never the requesting user's own
organisation in a shared channel). A failure report shared in a channel is stored by the shared
file listener (bot.slack.listeners.aggregate_reports), which hands the answer to this module: the
causes and their fixes, in the file's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config import Settings
from bot.reports.failures import summarise_failures
from bot.reports.ingest import FileOutcome
from bot.slack.blocks.failures import render_failure_answer, render_failure_summary
from bot.slack.features import Feature
from bot.slack.routing import Job, Subcommand, parse_domain_and_days
from bot.slack.turn import SlackTurn
from bot.store.stores import Stores
from handlers.dns.domain_name import display_name

DEFAULT_DAYS = 30

# reply(text=..., blocks=...) answers in the shared file's thread.
ThreadReply = Callable[..., None]


def parse_failures_command(words: list[str]) -> Job:
    """List a domain's DMARC failure reports, grouped, with each cause and its fix."""
    domain, days = parse_domain_and_days(words, "failures DOMAIN [DAYS]", DEFAULT_DAYS)
    return Job(
        ack=f"Reading the failure reports for {display_name(domain)}…",
        work="failures",
        args={"domain": domain, "days": days},
    )


def failures_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """Tell the requester the domain's failure groups, the causes and their fixes."""
    from bot.reports.summary import resolve_names

    team = turn.team_id or ""
    domain, days = args["domain"], int(args["days"])
    summary = summarise_failures(
        turn.stores.failures, team, domain, days, lambda ips: resolve_names(ips, turn.settings.dns_session())
    )
    watch = turn.stores.watches.watch(team, domain)
    selectors = watch.checked_selectors if watch else ()
    text, blocks = render_failure_summary(summary, turn.team_id, selectors)
    turn.tell(text, blocks)


def answer_shared_failure(
    stores: Stores, settings: Settings, outcome: FileOutcome, team_id: str, reply: ThreadReply
) -> None:
    """Answer a shared failure report in its thread: what failed, the causes and their fixes."""
    stored = next((s for s in outcome.failures if s.team_id == team_id), outcome.failures[0])
    groups = stores.failures.groups(team_id, stored.domain, stored.day, stored.day)
    group = next(
        (
            g
            for g in groups
            if g.source_ip == stored.source_ip
            and g.from_domain == stored.from_domain
            and g.causes == stored.causes
        ),
        None,
    )
    details = stores.failures.group_causes(team_id, group) if group else []
    text, blocks = render_failure_answer(outcome.name, stored, group, team_id, details)
    reply(text=text, blocks=blocks)


FAILURES = Feature(
    name="failures",
    subcommands=(
        Subcommand(
            "failures",
            "failures DOMAIN [DAYS]",
            parse_failures_command,
            ("/dmarc failures example.com", "/dmarc failures example.com 7"),
        ),
    ),
    workers={"failures": failures_worker},
)
