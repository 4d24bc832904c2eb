"""The `/dmarc` routing table: one row per subcommand; usage and help are generated from it.

Each row is declared by the feature it belongs to and gathered by the app factory.

A subcommand's parser is pure (no I/O), so the dispatcher can validate the input and acknowledge
within Slack's 3 seconds before any DNS or database work starts. It returns a `Job`: what to say in
the ack, and the slow work to run after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.reports import MAX_DAYS
from bot.slack.mrkdwn import code, safe
from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.domain.dkim_keys import InvalidSelector, validate_selectors
from handlers.errors import BadInput


@dataclass(kw_only=True)
class Job:
    """What a parsed subcommand does: `ack` is the ephemeral acknowledgement (None acknowledges
    silently), `work` the name of the worker to run afterwards with `args`. `show_usage` asks the
    router for its usage text as the ack (only the router knows every row)."""

    ack: str | None
    work: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    ack_blocks: list[dict[str, Any]] | None = None
    show_usage: bool = False
    # Said instead of `ack` when the command was typed in a DM or group DM, for work that needs
    # a channel (alerts go to the channel the command came from).
    channel_problem: str | None = None


@dataclass(frozen=True)
class Subcommand:
    """One row of the routing table; the parser's docstring is the help line."""

    name: str
    usage: str
    parse: Callable[[list[str]], Job]
    examples: tuple[str, ...]

    @property
    def help(self) -> str:
        return (self.parse.__doc__ or "").strip().splitlines()[0]


def parse_domain_argument(words: list[str], usage: str) -> str:
    if not words:
        raise BadInput(f"Give a domain name, as in `/dmarc {usage.replace('DOMAIN', 'example.com')}`.")
    try:
        return normalise_domain(words[0])
    except InvalidDomain as error:
        raise BadInput(f"That is not a domain I can check: {error}") from None


def parse_domain_and_days(words: list[str], usage: str, default_days: int = 30) -> tuple[str, int]:
    """`DOMAIN [DAYS]`, as the report commands take them: DAYS from 1 to MAX_DAYS."""
    domain = parse_domain_argument(words, usage)
    days = default_days
    if len(words) > 1:
        if not (words[1].isascii() and words[1].isdigit()) or not 1 <= int(words[1]) <= MAX_DAYS:
            raise BadInput(f"DAYS must be a whole number from 1 to {MAX_DAYS}, not “{words[1][:20]}”.")
        days = int(words[1])
    if len(words) > 2:
        raise BadInput("Give a domain and, optionally, a number of days.")
    return domain, days


def parse_selectors(words: list[str]) -> list[str]:
    try:
        return validate_selectors(words)
    except InvalidSelector as error:
        raise BadInput(f"{error}.") from None


def parse_help(words: list[str]) -> Job:
    """Show what the bot does and every subcommand with an example."""
    return Job(ack=None, show_usage=True)


HELP = Subcommand("help", "help", parse_help, ("/dmarc help",))


@dataclass(frozen=True)
class Router:
    """The routing table: the rows in the order the help lists them."""

    rows: tuple[Subcommand, ...]

    def row(self, name: str) -> Subcommand | None:
        return next((row for row in self.rows if row.name == name), None)

    def usage_text(self, problem: str | None = None) -> str:
        """The usage message, generated from the routing table; `problem` leads when given."""
        lines = [problem, ""] if problem else []
        lines.append("*dmarcbot* tells you exactly why DMARC fails for a domain or a message.")
        for row in self.rows:
            lines.append(f"• `/dmarc {row.usage}`: {row.help}")
            lines.extend(f"      e.g. `{example}`" for example in row.examples[:2])
        return "\n".join(lines)

    def parse_command_text(self, text: str) -> Job:
        """Route the text after `/dmarc` to its subcommand; anything unusable gets the usage."""
        words = text.split()
        if not words:
            return Job(ack=self.usage_text())
        name = words[0].lower()
        row = self.row(name)
        if row is None:
            return Job(
                ack=self.usage_text(f"I don't know the subcommand {code(name, 40)}. Here is what I can do:")
            )
        try:
            job = row.parse(words[1:])
        except BadInput as problem:
            # the problem quotes what the user typed: escape it like any untrusted text
            return Job(ack=f"{safe(str(problem), 2500)}\nUsage: `/dmarc {row.usage}`")
        return Job(ack=self.usage_text()) if job.show_usage else job
