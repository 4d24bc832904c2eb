"""The `dmarcbot` command line: the same diagnostics as the Slack app, with no Slack at all.

Each command's help text is its handler's docstring, so help and behaviour cannot drift apart.
Exit status: 0 no `error` finding, 1 an error finding, 2 bad input, 3 DNS unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence

from bot.config import Settings, SettingsError
from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.dns.resolver import Nameserver, NameserverError, parse_nameservers
from handlers.domain.check import check_domain
from handlers.domain.dkim_keys import InvalidSelector, validate_selector

EXIT_OK, EXIT_ERROR_FINDING, EXIT_BAD_INPUT, EXIT_DNS_UNREACHABLE = 0, 1, 2, 3

VERSION = "0.1.0"


class UsageError(Exception):
    """Bad input from the command line: the message says what was wrong and what would be right."""


def load_settings(nameserver_flags: Sequence[str] | None = None) -> Settings:
    """Settings from the environment; --nameserver flags win over DMARCBOT_NAMESERVERS."""
    try:
        settings = Settings.from_env(os.environ)
        if nameserver_flags:
            settings = dataclasses.replace(settings, nameservers=parse_nameservers(nameserver_flags))
    except (SettingsError, NameserverError) as error:
        raise UsageError(str(error)) from None
    return settings


LOCAL_TEAM = "local"  # the workspace of a database no Slack workspace has used yet
TEAM_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def resolve_team(given: str | None, settings: Settings, known: Iterable[str]) -> str:
    """The workspace a command acts for: --team, else SLACK_TEAM_ID, else the only workspace the
    database knows (so a single-workspace bot's data is found without flags), else `local`."""
    team = (given or settings.default_team or "").strip()
    if team:
        if not TEAM_ID.match(team):
            raise UsageError(f"{team[:50]!r} is not a Slack team id (like T0123ABCD)")
        return team
    teams = sorted(set(known))
    if len(teams) > 1:
        raise UsageError(
            "this database holds several workspaces ("
            + ", ".join(teams[:10])
            + "): name one with --team or SLACK_TEAM_ID"
        )
    return teams[0] if teams else LOCAL_TEAM


def nameservers_from(flags: Sequence[str] | None) -> tuple[Nameserver, ...]:
    """The nameservers a command should ask: --nameserver flags, else DMARCBOT_NAMESERVERS,
    else () for the system resolver."""
    return load_settings(flags).nameservers


def command_check(args: argparse.Namespace) -> int:
    """Diagnose a domain's DMARC, SPF, DKIM and MX records and say what to fix."""
    try:
        domain = normalise_domain(args.domain)
        selectors = [validate_selector(s) for s in args.selector or []]
    except (InvalidDomain, InvalidSelector) as error:
        raise UsageError(f"{error}") from None
    session = load_settings(args.nameserver).dns_session()
    report = asyncio.run(check_domain(domain, session, selectors))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        from bot.cli.terminal_report import render_domain_report

        print(render_domain_report(report, colour=sys.stdout.isatty()))
    if report.dns_unreachable:
        return EXIT_DNS_UNREACHABLE
    return EXIT_ERROR_FINDING if report.errors else EXIT_OK


def command_serve(args: argparse.Namespace) -> int:
    """Run the Slack bot: Socket Mode with SLACK_APP_TOKEN, otherwise HTTP on $PORT."""
    import logging

    from bot.slack.server import serve

    settings = load_settings()
    problems = settings.serve_problems()
    if problems:
        raise UsageError("cannot start: " + "; ".join(problems))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings)
    return EXIT_OK


def add_nameserver_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nameserver",
        action="append",
        metavar="HOST[:PORT]",
        help="DNS server to ask instead of the system resolver (repeatable; "
        "also DMARCBOT_NAMESERVERS=host[:port],...)",
    )


AddCommand = Callable[[str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]


def register_core_commands(add: AddCommand) -> None:
    """`check` and `serve`."""
    check = add("check", command_check)
    check.add_argument("domain", metavar="DOMAIN", help="the domain, e.g. example.com")
    check.add_argument(
        "--selector",
        action="append",
        metavar="SEL",
        help="DKIM selector to check (repeatable); without it common selectors are probed",
    )
    add_nameserver_flag(check)
    check.add_argument("--json", action="store_true", help="print one JSON object")
    add("serve", command_serve)


def command_registrars() -> list[Callable[[AddCommand], None]]:
    """Every module's `register_commands(add)`, in the order `dmarcbot --help` lists them.
    Imported here, not at the top, so `dmarcbot check` does not load the Slack stack."""
    from bot.cli import reports as cli_reports
    from bot.cli import watch as cli_watch
    from bot.cli import why as cli_why

    return [
        register_core_commands,
        cli_why.register_commands,
        cli_watch.register_commands,
        cli_reports.register_commands,
    ]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per handler, help from the handler's docstring."""
    parser = argparse.ArgumentParser(
        prog="dmarcbot", description="Explain why DMARC fails for a domain or a message."
    )
    parser.add_argument("--version", action="version", version=f"dmarcbot {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        doc = (handler.__doc__ or "").strip()
        sub = commands.add_parser(name, help=doc.splitlines()[0], description=doc)
        sub.set_defaults(handler=handler)
        return sub

    for register in command_registrars():
        register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dmarcbot` console script and of `python -m bot`."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on bad usage, 0 for --help/--version
        return int(exit_.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args))
    except UsageError as error:
        from bot.cli.terminal_text import terminal_safe  # a refusal may quote the input it refused

        print(f"dmarcbot {args.command}: {terminal_safe(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
