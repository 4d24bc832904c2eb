"""The `/dmarc` slash command: validate, acknowledge at once, then do the slow work."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack import ids as slack_ids
from bot.slack.blocks.domain_report import render_report
from bot.slack.routing import Job, parse_command_text
from bot.slack.turn import SlackTurn, guarded, run_domain_check

log = logging.getLogger("dmarcbot.slack")

# Workers by Job.work name; later features add theirs with register_worker.
WORKERS: dict[str, Any] = {}


def register_worker(name: str, worker: Any) -> None:
    """worker(job_args, turn, body) runs after the ack of a subcommand whose Job names it."""
    WORKERS[name] = worker


def check_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """Run the check and post the report in the channel for the team to see."""
    report = run_domain_check(turn.settings, args["domain"], args["selectors"])
    text, blocks = render_report(report, args["selectors"], turn.team_id)
    turn.post(text, blocks)


register_worker("check", check_worker)


def register(app: App, settings: Settings) -> None:
    """Attach the /dmarc command listener to `app`."""

    @app.command(slack_ids.COMMAND)
    def handle_dmarc_command(
        ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, body: dict[str, Any]
    ) -> None:
        # Parsing is pure, so the ack goes out well inside Slack's 3 seconds.
        job: Job = parse_command_text(command.get("text", ""))
        if job.ack is None:
            ack()
        else:
            ack(text=job.ack, blocks=job.ack_blocks, response_type="ephemeral")
        if job.work is None:
            # One line per command, written when it is over: an operator can see that a command
            # arrived and that its answer was the ack alone (usage, bad input).
            log.info(
                "/dmarc %r (team=%s channel=%s user=%s): answered in the acknowledgement",
                command.get("text", "")[:80],
                command.get("team_id"),
                command.get("channel_id"),
                command.get("user_id"),
            )
            return
        turn = SlackTurn(
            client,
            respond,
            settings,
            command.get("channel_id"),
            command.get("user_id"),
            command.get("team_id"),
        )
        work_name = job.work

        def run() -> None:
            # Looked up inside guarded(): a listener that raises after ack() makes Bolt answer 404.
            worker = WORKERS.get(work_name)
            if worker is None:  # a routing-table row whose feature has not registered its worker
                turn.tell("That subcommand is not available yet. `/dmarc help` lists what works.")
                return
            worker(job.args, turn, body)

        guarded(f"running /dmarc {command.get('text', '')[:80]}", turn, run)
