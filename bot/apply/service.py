"""Apply or roll back one stored plan for a person: the zone found, every step written to the audit.

The one path the command line (`dmarcbot apply`) and the Slack Apply and Roll back buttons share:
which rules allow the person to ask is the caller's business; what is written, checked and
recorded is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.apply.apply import (
    POLL_INTERVAL,
    ApplyEvent,
    ApplyOutcome,
    apply_changes,
    authoritative_servers,
    writer_for,
)
from bot.apply.providers import ZoneProvider
from bot.apply.writers import ProviderError
from bot.config import Settings
from bot.store.apply_audit import ApplyStore, AuditRow, PlanRow
from handlers.dns.resolver import DnsSession, Nameserver
from handlers.errors import BadInput
from handlers.fixes.changes import RecordChange, rollback_of


class CannotApply(BadInput):
    """This plan cannot be applied by the bot (its zone is not configured, or it has no records)."""


def zone_for_plan(settings: Settings, row: PlanRow) -> ZoneProvider:
    """The one configured zone that holds every name the plan writes; CannotApply when there is none."""
    if not row.changes:
        raise CannotApply(
            f"plan {row.id} for {row.plan.domain} has no records the bot can write (a plan posted by an "
            "older version, or steps to follow at a provider): publish it by hand, then press Verify"
        )
    found = [settings.dns_providers.for_name(change.host) for change in row.changes]
    zones = {zone.zone if zone else None for zone in found}
    if None in zones or len(zones) != 1:
        raise CannotApply(
            f"{row.plan.domain} is not in the DNS providers file (DMARCBOT_DNS_PROVIDERS): "
            "publish the plan's record by hand, then press Verify"
        )
    zone = found[0]
    assert zone is not None
    return zone


def run_plan(
    settings: Settings,
    store: ApplyStore,
    row: PlanRow,
    actor: str,
    approver: str | None = None,
    rollback: bool = False,
    dry_run: bool = False,
    poll_interval: float = POLL_INTERVAL,
) -> ApplyOutcome:
    """Apply `row` (or restore its "before" when `rollback`) as `actor`, approved by `approver`;
    every step is an audit row. Raises CannotApply when the bot cannot write this plan at all."""
    zone = zone_for_plan(settings, row)
    assert row.changes is not None
    changes = rollback_of(row.changes) if rollback else row.changes

    def audit(action: str, result: str, change: RecordChange | None = None) -> None:
        shown: Sequence[RecordChange] = [change] if change else changes
        store.record(
            AuditRow(
                team_id=row.plan.team_id,
                domain=row.plan.domain,
                plan_id=row.id,
                action=action,
                actor=actor,
                approver=approver,
                provider=zone.provider,
                zone=zone.zone,
                before=tuple(f"{c.host} {c.rdtype} {v}" for c in shown for v in c.before),
                after=tuple(f"{c.host} {c.rdtype} {v}" for c in shown for v in c.after),
                result=result,
            )
        )

    def on_event(event: ApplyEvent) -> None:
        audit(event.action, event.result, event.change)

    try:
        servers = authoritative_servers(settings.dns_session(), zone)
    except ProviderError as error:
        audit("refusal", str(error))
        return ApplyOutcome(result="refused", message=str(error))

    def session_for(chosen: Sequence[Nameserver]) -> DnsSession:
        return DnsSession(nameservers=tuple(chosen), timeout=settings.dns_timeout)

    outcome = apply_changes(
        zone,
        writer_for(zone),
        changes,
        servers,
        session_for,
        on_event,
        dry_run=dry_run,
        poll_interval=poll_interval,
    )
    if outcome.result in ("applied", "not_live"):
        audit("rollback" if rollback else outcome.result, outcome.message)
    return outcome
