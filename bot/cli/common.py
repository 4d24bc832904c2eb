"""What every `dmarcbot` command shares: exit statuses, settings, the workspace, --nameserver.

The workspace is the one a command acts for; bad input (handlers.errors.BadInput) is exit status 2.
Every module of bot.cli imports at its top only what building the parser needs, and each command
imports its dependencies when it runs: `dmarcbot --version` and `--help` load none of them, and
`check` and `why` never load the database, the chart or checkdmarc (tests/test_cli_startup.py).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from handlers.errors import BadInput, ConfigurationError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store.stores import Stores
    from handlers.dns.resolver import Nameserver

EXIT_OK, EXIT_ERROR_FINDING, EXIT_BAD_INPUT, EXIT_DNS_UNREACHABLE = 0, 1, 2, 3


def load_settings(nameserver_flags: Sequence[str] | None = None) -> Settings:
    """Settings from the environment; --nameserver flags win over DMARCBOT_NAMESERVERS."""
    import dataclasses

    from bot.config import Settings
    from handlers.dns.resolver import parse_nameservers

    try:
        settings = Settings.from_env(os.environ)
        if nameserver_flags:
            settings = dataclasses.replace(settings, nameservers=parse_nameservers(nameserver_flags))
    except ConfigurationError as error:
        raise BadInput(str(error)) from None
    return settings


def open_command_stores(settings: Settings) -> Stores:
    """The stores over DMARCBOT_DB, migrated: a command that reads or writes the database opens it
    here, once. A file that cannot be opened raises bot.store.database.DatabaseUnavailable, which
    names the path and what to do."""
    from bot.store.stores import open_stores

    return open_stores(settings.db_path)


LOCAL_TEAM = "local"  # the workspace of a database no Slack workspace has used yet
TEAM_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def resolve_team(given: str | None, settings: Settings, known: Iterable[str]) -> str:
    """The workspace a command acts for: --team, else SLACK_TEAM_ID, else the only workspace the
    database knows (so a single-workspace bot's data is found without flags), else `local`."""
    team = (given or settings.default_team or "").strip()
    if team:
        if not TEAM_ID.match(team):
            raise BadInput(f"{team[:50]!r} is not a Slack team id (like T0123ABCD)")
        return team
    teams = sorted(set(known))
    if len(teams) > 1:
        raise BadInput(
            "this database holds several workspaces ("
            + ", ".join(teams[:10])
            + "): name one with --team or SLACK_TEAM_ID"
        )
    return teams[0] if teams else LOCAL_TEAM


def nameservers_from(flags: Sequence[str] | None) -> tuple[Nameserver, ...]:
    """The nameservers a command should ask: --nameserver flags, else DMARCBOT_NAMESERVERS,
    else () for the system resolver."""
    return load_settings(flags).nameservers


def add_nameserver_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nameserver",
        action="append",
        metavar="HOST[:PORT]",
        help="DNS server to ask instead of the system resolver (repeatable; "
        "also DMARCBOT_NAMESERVERS=host[:port],...)",
    )


# add(name, handler) makes the subcommand `name`, its help taken from the handler's docstring.
AddCommand = Callable[[str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]


def add_summary_arguments(parser: argparse.ArgumentParser, domain_help: str) -> None:
    """DOMAIN, `--days N`, `--json` and `--team`: the arguments every report summary takes."""
    from bot.reports import MAX_DAYS

    parser.add_argument("domain", metavar="DOMAIN", help=domain_help)
    parser.add_argument(
        "--days",
        type=int,
        default=30,
        metavar="N",
        help=f"the last N days, today included (1 to {MAX_DAYS}; default 30)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--team", metavar="TEAM_ID", help="the Slack team whose reports to read")


def domain_argument(text: str) -> str:
    """A domain typed on the command line, normalised, or a BadInput saying what was wrong."""
    from handlers.dns.domain_name import InvalidDomain, normalise_domain

    try:
        return normalise_domain(text)
    except InvalidDomain as error:
        raise BadInput(str(error)) from None


def summary_domain_and_days(args: argparse.Namespace) -> tuple[str, int]:
    """A summary's domain (normalised) and its --days, or BadInput saying what is wrong."""
    from bot.reports import MAX_DAYS

    domain = domain_argument(args.domain)
    if not 1 <= args.days <= MAX_DAYS:
        raise BadInput(f"--days must be from 1 to {MAX_DAYS}, not {args.days}")
    return domain, int(args.days)
