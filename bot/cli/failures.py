"""`dmarcbot failures DOMAIN`: a domain's DMARC failure reports, grouped, with their causes."""

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


def command_failures(args: argparse.Namespace) -> int:
    """Show a domain's DMARC failure reports: grouped by source IP, From domain and causes per day."""
    from bot.reports.failures import render_failures_text, summarise_failures
    from bot.reports.summary import resolve_names

    domain, _ = summary_domain_and_days(args)
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
    add_summary_arguments(failures, "the domain, e.g. example.com")
