"""`dmarcbot digest DOMAIN --every daily|weekly|off`: a watched domain's scheduled report digest.

The digest goes to the watch's channel (bot.monitor.digests); the workspace is chosen as for
`dmarcbot watch` (`--team`, else SLACK_TEAM_ID, else the database's only workspace, else `local`).
"""

from __future__ import annotations

import argparse

from bot.cli.common import (
    EXIT_OK,
    AddCommand,
    domain_argument,
    load_settings,
    open_command_stores,
    resolve_team,
)
from handlers.errors import BadInput

EVERY_CHOICES = ("daily", "weekly", "off")


def every_argument(text: str) -> str:
    """--every's value, lower-cased: daily, weekly or off."""
    every = text.strip().lower()
    if every not in EVERY_CHOICES:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not a digest schedule: give daily, weekly or off (e.g. --every weekly)"
        )
    return every


def command_digest(args: argparse.Namespace) -> int:
    """Send a watched domain's report digest to its channel daily or weekly, or stop it (off)."""
    from bot.reports.digest import schedule_sentence
    from handlers.dns.domain_name import first_mention

    domain, settings = domain_argument(args.domain), load_settings()
    store = open_command_stores(settings).watches
    team = resolve_team(args.team, settings, store.teams())
    every = None if args.every == "off" else args.every
    watch = store.set_digest(team, domain, every)
    if watch is None:
        raise BadInput(
            f"{domain} is not watched for team {team}: watch it first with "
            f"`dmarcbot watch {domain} --channel CHANNEL_ID`, then set its digest"
        )
    if every is None:
        print(f"No more digests of {first_mention(domain)} for team {team}.")
    else:
        print(
            f"{first_mention(domain)} (team {team}) gets a {every} digest in channel "
            f"{watch.channel_id}: {schedule_sentence(every)}"
        )
    return EXIT_OK


def register_commands(add: AddCommand) -> None:
    """`digest`."""
    digest = add("digest", command_digest)
    digest.add_argument("domain", metavar="DOMAIN", help="a watched domain, e.g. example.com")
    digest.add_argument(
        "--every",
        required=True,
        type=every_argument,
        metavar="daily|weekly|off",
        help="how often the digest is posted to the watch's channel; off stops it",
    )
    digest.add_argument(
        "--team",
        metavar="TEAM_ID",
        help="the Slack workspace id (default: $SLACK_TEAM_ID, else the database's only "
        "workspace, else 'local')",
    )
