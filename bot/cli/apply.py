"""`dmarcbot plans`, `dmarcbot apply PLAN_ID` and `dmarcbot audit`: fix plans applied from a terminal.

An operator at a terminal holds the provider credentials already, so `apply` asks for no approval;
the re-read check applies as in Slack, and the audit row names the operator's login.
"""

from __future__ import annotations

import argparse
import json

from bot.cli.common import (
    EXIT_ERROR_FINDING,
    EXIT_OK,
    AddCommand,
    domain_argument,
    load_settings,
    open_command_stores,
)
from bot.cli.terminal_text import terminal_safe
from handlers.errors import BadInput


def _domain(text: str | None) -> str | None:
    return None if text is None else domain_argument(text)


def command_plans(args: argparse.Namespace) -> int:
    """List the posted fix plans and their state: Verify's, and the last apply step."""
    settings = load_settings()
    stores = open_command_stores(settings)
    rows = stores.applies.plans(domain=_domain(args.domain))
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("No fix plans posted" + (f" for {args.domain}." if args.domain else "."))
        return EXIT_OK
    for row in rows:
        configured = bool(row.changes) and settings.dns_providers.for_name(row.plan.domain) is not None
        last = f"{row.last_action}: {row.last_result}" if row.last_action else "not applied"
        print(
            terminal_safe(
                f"{row.id}  {row.plan.domain}  {row.plan.finding_id}  posted {row.created_at} "
                f"by {row.plan.proposed_by or '?'} ({row.plan.team_id})  {row.state}  "
                f"{'can be applied' if configured else 'by hand'}  {last}"
            )
        )
        for change in row.changes or ():
            print(
                terminal_safe(
                    f"    {change.host} {change.rdtype}: {list(change.before)} -> {list(change.after)}"
                )
            )
    return EXIT_OK


def command_apply(args: argparse.Namespace) -> int:
    """Apply one posted fix plan through its zone's DNS provider (no approval: you hold the credentials)."""
    import getpass

    from bot.apply.service import run_plan

    settings = load_settings()
    stores = open_command_stores(settings)
    row = stores.applies.plan(args.plan_id)
    if row is None:
        raise BadInput(f"no fix plan {args.plan_id}: `dmarcbot plans` lists them with their ids")
    outcome = run_plan(settings, stores.applies, row, actor=getpass.getuser(), dry_run=args.dry_run)
    print(terminal_safe(f"plan {row.id} for {row.plan.domain}: {outcome.result}: {outcome.message}"))
    return EXIT_OK if outcome.result in ("applied", "dry_run") else EXIT_ERROR_FINDING


def command_audit(args: argparse.Namespace) -> int:
    """Print the apply audit: every proposal, approval, refusal, write, provider error and rollback."""
    settings = load_settings()
    stores = open_command_stores(settings)
    rows = stores.applies.audit(domain=_domain(args.domain), team_id=args.team)
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("The audit is empty" + (f" for {args.domain}." if args.domain else "."))
    for row in rows:
        who = row.actor + (f", approved by {row.approver}" if row.approver else "")
        where = f" {row.provider}:{row.zone}" if row.provider else ""
        print(
            terminal_safe(
                f"{row.at}  {row.team_id}  {row.domain}  plan {row.plan_id}  {row.action}  {who}{where}"
            )
        )
        for before in row.before:
            print(terminal_safe(f"    - {before}"))
        for after in row.after:
            print(terminal_safe(f"    + {after}"))
        print(terminal_safe(f"    {row.result}"))
    return EXIT_OK


def register_commands(add: AddCommand) -> None:
    """`plans`, `apply` and `audit`."""
    plans = add("plans", command_plans)
    plans.add_argument("--domain", metavar="DOMAIN", help="only this domain's plans")
    plans.add_argument("--json", action="store_true", help="print a JSON list")
    apply = add("apply", command_apply)
    apply.add_argument("plan_id", metavar="PLAN_ID", type=int, help="the plan's id, from `dmarcbot plans`")
    apply.add_argument(
        "--dry-run", action="store_true", help="check the live records against the plan; write nothing"
    )
    audit = add("audit", command_audit)
    audit.add_argument("--domain", metavar="DOMAIN", help="only this domain's rows")
    audit.add_argument("--team", metavar="TEAM_ID", help="only this Slack team's rows")
    audit.add_argument("--json", action="store_true", help="print a JSON list")
