"""`dmarcbot ingest FILE...` and `dmarcbot report DOMAIN`: aggregate reports from the command line.

Rows belong to a team (a Slack workspace), chosen by bot.cli.common.resolve_team.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.common import (
    EXIT_ERROR_FINDING,
    EXIT_OK,
    AddCommand,
    add_nameserver_flag,
    load_settings,
    open_command_stores,
    resolve_team,
    summary_domain_and_days,
)
from bot.cli.terminal_text import terminal_safe
from bot.reports import MAX_DAYS
from handlers.errors import BadInput

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.reports.ingest import FileOutcome
    from bot.store.stores import Stores


def team_for(settings: Settings, stores: Stores, given: str | None) -> str:
    """The workspace whose reports the command reads or writes (see bot.cli.common.resolve_team)."""
    return resolve_team(given, settings, [*stores.watches.teams(), *stores.reports.teams()])


def command_ingest(args: argparse.Namespace) -> int:
    """Store report files: DMARC aggregate (xml, xml.gz, zip, .eml), failure and SMTP TLS (.json) reports."""
    from bot.reports.alerts import review_after_ingest
    from bot.reports.failures import FailureReading
    from bot.reports.ingest import FileOutcome, ingest_bytes, one_team
    from bot.reports.tls_alerts import review_tls_after_ingest
    from handlers.reports.archive import DEFAULT_LIMITS

    settings = load_settings()
    stores = open_command_stores(settings)
    reports = stores.reports
    team = team_for(settings, stores, args.team)
    outcomes: list[FileOutcome] = []
    for path_text in args.files:
        path = Path(path_text)
        try:
            if path.stat().st_size > DEFAULT_LIMITS.max_input_bytes:
                # Checked before reading: a stray disk image must not be loaded into memory.
                outcome = FileOutcome(
                    name=path_text,
                    error=(
                        f"the file is {path.stat().st_size:,} bytes, over the max_input_bytes cap of "
                        f"{DEFAULT_LIMITS.max_input_bytes:,} bytes"
                    ),
                    refused_by_cap="max_input_bytes",
                )
            else:
                outcome = ingest_bytes(
                    reports,
                    path.read_bytes(),
                    path_text,
                    one_team(team),
                    "cli",
                    reading=FailureReading.of(settings),
                )
        except OSError as error:
            outcome = FileOutcome(name=path_text, error=f"cannot read it: {error.strerror or error}")
        outcomes.append(outcome)
        # Report names, reporters and warnings quote the report's own text.
        print(terminal_safe(outcome.describe(), one_line=True), file=sys.stdout if outcome.ok else sys.stderr)
        for warning in outcome.warnings[:5]:
            print(f"  warning: {terminal_safe(warning, one_line=True)}", file=sys.stderr)
    alerts = review_after_ingest(stores, [r for o in outcomes for r in o.new_reports], settings.dns_session())
    alerts += review_tls_after_ingest(stores, [r for o in outcomes for r in o.tls_reports])
    if alerts:
        print(f"{alerts} alerts added to the outbox of the watching channels")
    refused = [o for o in outcomes if not o.ok]
    if refused:
        print(
            f"dmarcbot ingest: {len(refused)} of {len(outcomes)} files refused: "
            + terminal_safe(", ".join(o.name for o in refused[:10]), one_line=True),
            file=sys.stderr,
        )
        return EXIT_ERROR_FINDING
    return EXIT_OK


def command_report(args: argparse.Namespace) -> int:
    """Summarise a domain's aggregate reports: volume, DMARC pass rate, sources, failures, selectors."""
    from bot.reports.summary import render_text, summarise_named

    domain, _ = summary_domain_and_days(args)
    # Output files are checked before any work: a typo costs nothing.
    chart = _output_path("--chart", args.chart, "chart.png") if args.chart else None
    csv_file = _output_path("--csv", args.csv, "report.csv") if args.csv else None
    settings = load_settings(args.nameserver)
    stores = open_command_stores(settings)
    reports = stores.reports
    team = team_for(settings, stores, args.team)
    summary = summarise_named(reports, team, domain, args.days, settings.dns_session())
    if chart:
        from bot.reports.chart import render_chart

        try:
            chart.write_bytes(render_chart(summary))
        except OSError as error:
            raise BadInput(f"--chart {args.chart}: cannot write it: {error.strerror or error}") from None
    if csv_file:
        from bot.reports.csv_export import write_csv

        try:
            with csv_file.open("w", encoding="utf-8", newline="") as handle:
                rows = write_csv(reports, team, summary, handle)
        except OSError as error:
            raise BadInput(f"--csv {args.csv}: cannot write it: {error.strerror or error}") from None
        print(f"{rows:,} rows written to {args.csv}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        print(terminal_safe(render_text(summary)))
    return EXIT_OK


def _output_path(flag: str, text: str, example: str) -> Path:
    """The file named by `flag`, once its folder is known to exist."""
    path = Path(text)
    folder = path.resolve().parent
    if not folder.is_dir():
        raise BadInput(
            f"{flag} {text}: the folder {folder} does not exist: create it, or name a file in a folder "
            "that exists"
        )
    if path.is_dir():
        raise BadInput(f"{flag} {text} is a folder: name a file, such as {path / example}")
    return path


def register_commands(add: AddCommand) -> None:
    """`ingest` and `report`."""
    ingest = add("ingest", command_ingest)
    ingest.add_argument("files", metavar="FILE", nargs="+", help="report files to store")
    ingest.add_argument("--team", metavar="TEAM_ID", help="the Slack team the reports belong to")
    report = add("report", command_report)
    report.add_argument("domain", metavar="DOMAIN", help="the policy domain, e.g. example.com")
    report.add_argument(
        "--days",
        type=int,
        default=30,
        metavar="N",
        help=f"the last N days, today included (1 to {MAX_DAYS}; default 30)",
    )
    report.add_argument("--json", action="store_true", help="print one JSON object")
    report.add_argument("--chart", metavar="PNG", help="also write the daily chart to this file")
    report.add_argument(
        "--csv",
        metavar="FILE",
        help="also write the report rows to FILE in parsedmarc's aggregate CSV columns",
    )
    report.add_argument("--team", metavar="TEAM_ID", help="the Slack team whose reports to read")
    add_nameserver_flag(report)
