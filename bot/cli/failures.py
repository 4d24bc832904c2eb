"""`dmarcbot failures DOMAIN`: a domain's DMARC failure reports, grouped, with their causes."""

from __future__ import annotations

import argparse
import json

from bot.cli.common import EXIT_OK, AddCommand, load_settings, open_command_stores, resolve_team
from bot.cli.terminal_text import terminal_safe
from bot.reports import MAX_DAYS
from handlers.errors import BadInput


def command_failures(args: argparse.Namespace) -> int:
    """Show a domain's DMARC failure reports: grouped by source IP, From domain and causes per day."""
    from bot.reports.failures import render_failures_text, summarise_failures
    from bot.reports.summary import resolve_names
    from handlers.dns.domain_name import InvalidDomain, normalise_domain

    try:
        domain = normalise_domain(args.domain)
    except InvalidDomain as error:
        raise BadInput(str(error)) from None
    if not 1 <= args.days <= MAX_DAYS:
        raise BadInput(f"--days must be from 1 to {MAX_DAYS}, not {args.days}")
    settings = load_settings()
    stores = open_command_stores(settings)
    team = resolve_team(args.team, settings, [*stores.watches.teams(), *stores.failures.teams()])
    summary = summarise_failures(
        stores.failures, team, domain, args.days, lambda ips: resolve_names(ips, settings.dns_session())
    )
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        print(terminal_safe(render_failures_text(summary)))
    return EXIT_OK


def register_commands(add: AddCommand) -> None:
    """`failures`."""
    failures = add("failures", command_failures)
    failures.add_argument("domain", metavar="DOMAIN", help="the domain, e.g. example.com")
    failures.add_argument(
        "--days",
        type=int,
        default=30,
        metavar="N",
        help=f"the last N days, today included (1 to {MAX_DAYS}; default 30)",
    )
    failures.add_argument("--json", action="store_true", help="print one JSON object")
    failures.add_argument("--team", metavar="TEAM_ID", help="the Slack team whose reports to read")
