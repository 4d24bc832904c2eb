"""The `/dmarc` slash command (validate, acknowledge at once, then work) and its `check` feature."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from functools import partial
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import render_report
from bot.slack.features import Feature, Worker
from bot.slack.routing import Job, Router, Subcommand, parse_domain_argument, parse_selectors
from bot.slack.turn import SlackTurn, guarded, installation_team
from bot.slack.work import BUSY, WorkPool
from bot.store.stores import Stores
from handlers.dns.domain_name import display_name

log = logging.getLogger("dmarcbot.slack")


def parse_check(words: list[str]) -> Job:
    """Diagnose a domain's DMARC, SPF, DKIM and MX, and say what to fix."""
    domain = parse_domain_argument(words, "check DOMAIN")
    selectors = parse_selectors(words[1:])
    return Job(
        ack=f"Checking {display_name(domain)}…", work="check", args={"domain": domain, "selectors": selectors}
    )


def check_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """Run the check and post the report in the channel for the team to see."""
    report = turn.check(args["domain"], args["selectors"])
    text, blocks = render_report(report, args["selectors"], turn.team_id)
    turn.post(text, blocks)


CHECK = Feature(
    name="check",
    subcommands=(
        Subcommand(
            "check",
            "check DOMAIN [SELECTOR...]",
            parse_check,
            ("/dmarc check example.com", "/dmarc check example.com google selector1"),
        ),
    ),
    workers={"check": check_worker},
)


DIRECT_MESSAGE_NAMES = ("directmessage",)


def in_direct_message(command: dict[str, Any]) -> bool:
    """A slash command typed in a DM or a group DM: Slack names those channels `directmessage`
    and `mpdm-…`, and their ids start with D (a DM)."""
    name = str(command.get("channel_name") or "")
    return (
        name in DIRECT_MESSAGE_NAMES
        or name.startswith("mpdm-")
        or str(command.get("channel_id") or "").startswith("D")
    )


def _answered_in_the_ack(command: dict[str, Any]) -> None:
    # One line per command, written when it is over: an operator can see that a command arrived and
    # that its answer was the ack alone (usage, bad input, a DM refused).
    log.info(
        "/dmarc %r (team=%s channel=%s user=%s): answered in the acknowledgement",
        command.get("text", "")[:80],
        command.get("team_id"),
        command.get("channel_id"),
        command.get("user_id"),
    )


def handle_dmarc_command(
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    router: Router,
    workers: Mapping[str, Worker],
    ack: Ack,
    command: dict[str, Any],
    respond: Respond,
    client: WebClient,
    body: dict[str, Any],
    context: BoltContext,
) -> None:
    # Parsing is pure, so the ack goes out well inside Slack's 3 seconds.
    job = router.parse_command_text(command.get("text", ""))
    if job.work is None:
        ack() if job.ack is None else ack(text=job.ack, blocks=job.ack_blocks, response_type="ephemeral")
        _answered_in_the_ack(command)
        return
    if job.channel_problem and in_direct_message(command):
        ack(text=job.channel_problem, response_type="ephemeral")
        _answered_in_the_ack(command)
        return
    turn = SlackTurn(
        client=client,
        respond=respond,
        settings=settings,
        stores=stores,
        channel_id=command.get("channel_id"),
        user_id=command.get("user_id"),
        team_id=installation_team(context),
        pool=pool,
    )
    work_name = job.work
    acked = threading.Event()

    def run() -> None:
        acked.wait(3)  # the ack's "Checking…" goes out before any answer
        # Looked up inside guarded(): a listener that raises after ack() makes Bolt answer 404.
        worker = workers.get(work_name)
        if worker is None:  # a routing-table row whose feature declared no worker of that name
            turn.tell("That subcommand is not available yet. `/dmarc help` lists what works.")
            return
        worker(job.args, turn, body)

    what = f"running /dmarc {command.get('text', '')[:80]}"
    # Submitted before the ack, so that a full pool is said in the ack itself.
    if not pool.submit(lambda: guarded(what, turn, run)):
        ack(text=BUSY, response_type="ephemeral")
        return
    try:
        ack() if job.ack is None else ack(text=job.ack, blocks=job.ack_blocks, response_type="ephemeral")
    finally:
        acked.set()


def register(
    app: App,
    settings: Settings,
    stores: Stores,
    pool: WorkPool,
    router: Router,
    workers: Mapping[str, Worker],
) -> None:
    """Attach the /dmarc command listener to `app`, routing through `router` to `workers`."""
    app.command(slack_ids.COMMAND)(partial(handle_dmarc_command, settings, stores, pool, router, workers))
