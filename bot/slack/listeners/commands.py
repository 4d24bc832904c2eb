"""The `/dmarc` slash command (validate, acknowledge at once, then work) and its `check` feature."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import render_report
from bot.slack.features import Feature, Worker
from bot.slack.routing import Job, Router, Subcommand, parse_domain_argument, parse_selectors
from bot.slack.turn import SlackTurn, guarded, run_domain_check
from bot.store.stores import Stores
from handlers.dns.domain_name import display_name


def parse_check(words: list[str]) -> Job:
    """Diagnose a domain's DMARC, SPF, DKIM and MX, and say what to fix."""
    domain = parse_domain_argument(words, "check DOMAIN")
    selectors = parse_selectors(words[1:])
    return Job(
        ack=f"Checking {display_name(domain)}…", work="check", args={"domain": domain, "selectors": selectors}
    )


def check_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """Run the check and post the report in the channel for the team to see."""
    report = run_domain_check(turn.settings, args["domain"], args["selectors"])
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


def handle_dmarc_command(
    settings: Settings,
    stores: Stores,
    router: Router,
    workers: Mapping[str, Worker],
    ack: Ack,
    command: dict[str, Any],
    respond: Respond,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    # Parsing is pure, so the ack goes out well inside Slack's 3 seconds.
    job = router.parse_command_text(command.get("text", ""))
    if job.ack is None:
        ack()
    else:
        ack(text=job.ack, blocks=job.ack_blocks, response_type="ephemeral")
    if job.work is None:
        return
    turn = SlackTurn(
        client=client,
        respond=respond,
        settings=settings,
        stores=stores,
        channel_id=command.get("channel_id"),
        user_id=command.get("user_id"),
        team_id=command.get("team_id"),
    )
    work_name = job.work

    def run() -> None:
        # Looked up inside guarded(): a listener that raises after ack() makes Bolt answer 404.
        worker = workers.get(work_name)
        if worker is None:  # a routing-table row whose feature declared no worker of that name
            turn.tell("That subcommand is not available yet. `/dmarc help` lists what works.")
            return
        worker(job.args, turn, body)

    guarded(f"running /dmarc {command.get('text', '')[:80]}", turn, run)


def register(
    app: App, settings: Settings, stores: Stores, router: Router, workers: Mapping[str, Worker]
) -> None:
    """Attach the /dmarc command listener to `app`, routing through `router` to `workers`."""
    app.command(slack_ids.COMMAND)(partial(handle_dmarc_command, settings, stores, router, workers))
