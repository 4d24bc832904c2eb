"""`/dmarc digest DOMAIN daily|weekly|off`: a watched domain's scheduled report digest.

The digest goes to the channel the domain's watch posts to (bot.monitor.digests); the setting is
read and written for the team the request came from only.
"""

from __future__ import annotations

from typing import Any

from bot.reports.digest import schedule_sentence
from bot.slack.features import Feature
from bot.slack.mrkdwn import safe
from bot.slack.routing import Job, Subcommand, parse_domain_argument
from bot.slack.turn import SlackTurn
from handlers.dns.domain_name import display_name
from handlers.errors import BadInput

USAGE = "digest DOMAIN daily|weekly|off"
CADENCES = ("daily", "weekly", "off")


def parse_digest(words: list[str]) -> Job:
    """Post a summary of a watched domain's aggregate reports to its channel daily, weekly or never (off)."""
    domain = parse_domain_argument(words, USAGE)
    if len(words) < 2:
        raise BadInput(f"Say how often: `daily`, `weekly` or `off`, as in `/dmarc digest {domain} weekly`.")
    every = words[1].lower()
    if every not in CADENCES or len(words) > 2:
        given = " ".join(words[1:])
        raise BadInput(
            # plain text: the router escapes every BadInput for mrkdwn
            f"`{given[:60].replace('`', 'ˋ')}` is not a digest schedule: give `daily`, `weekly` or `off`, "
            f"as in `/dmarc digest {domain} weekly`."
        )
    return Job(ack=None, work="digest", args={"domain": domain, "every": None if every == "off" else every})


def digest_worker(args: dict[str, Any], turn: SlackTurn, body: dict[str, Any]) -> None:
    """After the ack of `/dmarc digest`: set the team's watch's digest and say what it does now."""
    domain, every = args["domain"], args["every"]
    name = safe(display_name(domain), 300)
    watch = turn.stores.watches.set_digest(turn.team_id, domain, every) if turn.team_id else None
    if watch is None:
        turn.tell(
            f"{name} is not watched in this workspace, and the digest goes to the channel of its "
            f"watch: watch it first with `/dmarc watch {safe(domain, 255)}` in the channel that "
            f"should get it, then `/dmarc digest {safe(domain, 255)} {every or 'off'}`."
        )
    elif every is None:
        turn.tell(f"No more digests of {name}. Its alerts still go to <#{watch.channel_id}>.")
    else:
        turn.tell(f"{name} gets a {every} digest in <#{watch.channel_id}>: {schedule_sentence(every)}")


DIGEST = Feature(
    name="digest",
    subcommands=(
        Subcommand(
            "digest",
            USAGE,
            parse_digest,
            ("/dmarc digest example.com weekly", "/dmarc digest example.com off"),
        ),
    ),
    workers={"digest": digest_worker},
)
