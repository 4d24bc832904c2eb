"""`dmarcbot tls-report DOMAIN`: what a domain's SMTP TLS reports (RFC 8460) say."""

from __future__ import annotations

import argparse
import json

from bot.cli.common import (
    EXIT_OK,
    AddCommand,
    add_summary_arguments,
    load_settings,
    open_command_stores,
    resolve_team,
    summary_domain_and_days,
)
from bot.cli.terminal_text import terminal_safe


def command_tls_report(args: argparse.Namespace) -> int:
    """Summarise a domain's SMTP TLS reports: sessions, success rate, policies, failures, reporters."""
    from bot.reports.tls_summary import build_tls_summary, render_tls_text

    domain, _ = summary_domain_and_days(args)
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
    add_summary_arguments(tls, "the policy domain, e.g. example.com")
