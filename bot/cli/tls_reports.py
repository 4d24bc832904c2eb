"""`dmarcbot tls-report DOMAIN`: what a domain's SMTP TLS reports (RFC 8460) say."""

from __future__ import annotations

import argparse
import json

from bot.cli.common import EXIT_OK, AddCommand, load_settings, open_command_stores, resolve_team
from bot.cli.terminal_text import terminal_safe
from bot.reports import MAX_DAYS
from handlers.errors import BadInput


def command_tls_report(args: argparse.Namespace) -> int:
    """Summarise a domain's SMTP TLS reports: sessions, success rate, policies, failures, reporters."""
    from bot.reports.tls_summary import build_tls_summary, render_tls_text
    from handlers.dns.domain_name import InvalidDomain, normalise_domain

    try:
        domain = normalise_domain(args.domain)
    except InvalidDomain as error:
        raise BadInput(str(error)) from None
    if not 1 <= args.days <= MAX_DAYS:
        raise BadInput(f"--days must be from 1 to {MAX_DAYS}, not {args.days}")
    settings = load_settings()
    stores = open_command_stores(settings)
    team = resolve_team(args.team, settings, [*stores.watches.teams(), *stores.tls_reports.teams()])
    summary = build_tls_summary(stores.tls_reports, team, domain, args.days)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        print(terminal_safe(render_tls_text(summary)))
    return EXIT_OK


def register_commands(add: AddCommand) -> None:
    """`tls-report`."""
    tls = add("tls-report", command_tls_report)
    tls.add_argument("domain", metavar="DOMAIN", help="the policy domain, e.g. example.com")
    tls.add_argument(
        "--days",
        type=int,
        default=30,
        metavar="N",
        help=f"the last N days, today included (1 to {MAX_DAYS}; default 30)",
    )
    tls.add_argument("--json", action="store_true", help="print one JSON object")
    tls.add_argument("--team", metavar="TEAM_ID", help="the Slack team whose reports to read")
