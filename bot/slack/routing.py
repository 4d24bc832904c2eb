"""The `/dmarc` routing table: one row per subcommand; usage and help are generated from it.

A subcommand's parser is pure (no I/O), so the dispatcher can validate the input and acknowledge
within Slack's 3 seconds before any DNS or database work starts. It returns a `Job`: what to say in
the ack, and the slow work to run after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.slack.mrkdwn import code, safe
from handlers.dns.domain_name import InvalidDomain, display_name, normalise_domain
from handlers.domain.dkim_keys import InvalidSelector, validate_selectors


class UsageProblem(ValueError):
    """The user's input was wrong; the message says what, and the usage line says what is right."""


@dataclass
class Job:
    """What a parsed subcommand does: `ack` is the ephemeral acknowledgement (None acknowledges
    silently), `work` the name of the worker to run afterwards with `args`."""

    ack: str | None
    work: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    ack_blocks: list[dict[str, Any]] | None = None


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
        raise UsageProblem(f"Give a domain name, as in `/dmarc {usage.replace('DOMAIN', 'example.com')}`.")
    try:
        return normalise_domain(words[0])
    except InvalidDomain as error:
        raise UsageProblem(f"That is not a domain I can check: {error}") from None


def parse_selectors(words: list[str]) -> list[str]:
    try:
        return validate_selectors(words)
    except InvalidSelector as error:
        raise UsageProblem(f"{error}.") from None


def parse_check(words: list[str]) -> Job:
    """Diagnose a domain's DMARC, SPF, DKIM and MX, and say what to fix."""
    domain = parse_domain_argument(words, "check DOMAIN")
    selectors = parse_selectors(words[1:])
    return Job(f"Checking {display_name(domain)}…", "check", {"domain": domain, "selectors": selectors})


def parse_help(words: list[str]) -> Job:
    """Show what the bot does and every subcommand with an example."""
    return Job(usage_text(), None, ack_blocks=None)


def parse_why(words: list[str]) -> Job:
    """Explain why one message failed DMARC: opens a form to paste its headers."""
    return Job(None, "why_modal")


SUBCOMMANDS: dict[str, Subcommand] = {
    row.name: row
    for row in (
        Subcommand(
            "check",
            "check DOMAIN [SELECTOR...]",
            parse_check,
            ("/dmarc check example.com", "/dmarc check example.com google selector1"),
        ),
        Subcommand("why", "why", parse_why, ("/dmarc why",)),
        Subcommand("help", "help", parse_help, ("/dmarc help",)),
    )
}


def register_subcommand(row: Subcommand) -> None:
    """Add a row (used by later features: watch, report, …); the help picks it up."""
    SUBCOMMANDS[row.name] = row


def usage_text(problem: str | None = None) -> str:
    """The usage message, generated from the routing table; `problem` leads when given."""
    lines = [problem, ""] if problem else []
    lines.append("*dmarcbot* tells you exactly why DMARC fails for a domain or a message.")
    for row in SUBCOMMANDS.values():
        lines.append(f"• `/dmarc {row.usage}`: {row.help}")
        lines.extend(f"      e.g. `{example}`" for example in row.examples[:2])
    return "\n".join(lines)


def parse_command_text(text: str) -> Job:
    """Route the text after `/dmarc` to its subcommand; anything unusable gets the usage."""
    words = text.split()
    if not words:
        return Job(usage_text())
    name = words[0].lower()
    row = SUBCOMMANDS.get(name)
    if row is None:
        return Job(usage_text(f"I don't know the subcommand {code(name, 40)}. Here is what I can do:"))
    try:
        return row.parse(words[1:])
    except UsageProblem as problem:
        # the problem quotes what the user typed: escape it like any untrusted text
        return Job(f"{safe(str(problem), 2500)}\nUsage: `/dmarc {row.usage}`")
