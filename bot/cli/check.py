"""`dmarcbot check DOMAIN` and `dmarcbot serve`: diagnose a domain; run the Slack bot."""

from __future__ import annotations

import argparse
import json
import sys

from bot.cli.common import (
    EXIT_DNS_UNREACHABLE,
    EXIT_ERROR_FINDING,
    EXIT_OK,
    AddCommand,
    add_nameserver_flag,
    load_settings,
)
from handlers.errors import BadInput


def command_check(args: argparse.Namespace) -> int:
    """Diagnose a domain's DMARC, SPF, DKIM and MX records and say what to fix."""
    import asyncio

    from handlers.dns.domain_name import InvalidDomain, normalise_domain
    from handlers.domain.check import check_domain, invalid_domain_json
    from handlers.domain.dkim_keys import InvalidSelector, validate_selector

    try:
        domain = normalise_domain(args.domain)
    except InvalidDomain as error:
        if args.json:  # the documented object, with its one finding, for scripts that read stdout
            print(json.dumps(invalid_domain_json(args.domain, str(error)), indent=2, ensure_ascii=False))
        raise BadInput(f"{error}") from None
    try:
        selectors = [validate_selector(s) for s in args.selector or []]
    except InvalidSelector as error:
        raise BadInput(f"{error}") from None
    settings = load_settings(args.nameserver)
    smtp = settings.smtp_prober() if args.smtp else None
    report = asyncio.run(
        check_domain(domain, settings.dns_session(), selectors, https=settings.https_client(), smtp=smtp)
    )
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
        raise BadInput("cannot start: " + "; ".join(problems))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings)
    return EXIT_OK


def register_commands(add: AddCommand) -> None:
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
    check.add_argument(
        "--smtp",
        action="store_true",
        help="also connect to each MX host on port 25 and check its STARTTLS and certificate "
        "(off by default: networks often block port 25)",
    )
    add("serve", command_serve)
