"""Apply a plan's changes to its zone: read again, refuse a change since the plan, write, undo on error, poll.

The order of a run: every record set is read from the zone's authoritative servers and compared
with the plan's "before" (an outage refuses too: an unread record is never overwritten); the
changes are written in the plan's order (handlers.fixes.changes puts a CNAME's TXT removal first);
a provider error writes each change already made back to its "before", last first; then the
authoritative servers are asked, with a fresh session each round, until they serve every "after"
or the zone's propagation timeout passes. Each step is reported to `record` as it happens, so the
audit holds what was written even when the process dies half-way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.apply.providers import RFC2136, ZoneProvider
from bot.apply.writers import ProviderError, ZoneWriter
from handlers.dns.resolver import DnsSession, DnsStatus, Lookup, Nameserver
from handlers.fixes.changes import RecordChange, rollback_of

CHANGED_SINCE_PLAN = "the record changed since the plan was made; make a new plan"
POLL_INTERVAL = 5.0  # seconds between two rounds of questions to the authoritative servers


@dataclass(frozen=True)
class ApplyEvent:
    """One step of a run, for the audit: `action` is write, provider_error, rollback or refusal."""

    action: str
    change: RecordChange | None
    result: str


@dataclass(frozen=True, kw_only=True)
class ApplyOutcome:
    """How a run ended: `result` is applied, not_live, refused, provider_error or dry_run."""

    result: str
    message: str
    live: bool = False
    written: tuple[RecordChange, ...] = ()
    rolled_back: bool = False


Record = Callable[[ApplyEvent], None]
SessionFactory = Callable[[Sequence[Nameserver]], DnsSession]


def writer_for(zone: ZoneProvider, timeout: float = 10.0) -> ZoneWriter:
    """The writer for the zone's provider (the module is loaded only when a fix is applied)."""
    if zone.provider == RFC2136:
        from bot.apply.rfc2136_writer import Rfc2136Writer

        return Rfc2136Writer(zone, timeout)
    from bot.apply.lexicon_writer import LexiconWriter

    return LexiconWriter(zone, timeout)


class NoAuthoritativeServers(ProviderError):
    """The zone's authoritative servers could not be found, so nothing can be read or checked."""


def authoritative_servers(session: DnsSession, zone: ZoneProvider) -> tuple[Nameserver, ...]:
    """The servers to read the zone from: the providers file's `nameservers`, else the addresses of
    the zone's NS hosts (asked through `session`, the configured resolver)."""
    if zone.nameservers:
        return zone.nameservers

    async def find() -> tuple[Nameserver, ...]:
        hosts = await session.lookup(zone.zone, "NS")
        if hosts.is_outage or not hosts.records:
            raise NoAuthoritativeServers(f"the NS records of {zone.zone}: {hosts.describe_failure()}")
        lookups = await session.lookup_many([(host, "A") for host in hosts.records[:8]])
        found = [Nameserver(a) for addresses in lookups for a in addresses.records[:2]]
        if not found:
            outage = next((lookup for lookup in lookups if lookup.is_outage), None)
            if outage is not None:  # a DNS failure, not hosts without addresses
                raise NoAuthoritativeServers(f"the NS hosts of {zone.zone}: {outage.describe_failure()}")
            raise NoAuthoritativeServers(f"none of the NS hosts of {zone.zone} has an address")
        return tuple(found)

    return asyncio.run(find())


def read_owned(session: DnsSession, change: RecordChange) -> Lookup:
    """The name's own records of the change's type, as the session's servers answer. A name that is
    an alias holds no TXT of its own (RFC 1034 §3.6.2), whatever its target's are: asked first, so
    the target (often in another zone) is never read as the name's records."""

    async def read() -> Lookup:
        if change.rdtype == "TXT":
            alias = await session.lookup(change.host, "CNAME")
            if alias.status is DnsStatus.OK and alias.records:
                return Lookup(name=change.host, rdtype="TXT", status=DnsStatus.NODATA)
        return await session.lookup(change.host, change.rdtype)

    return asyncio.run(read())


def live_differences(
    servers: Sequence[Nameserver],
    changes: Sequence[RecordChange],
    session_for: SessionFactory,
    want_after: bool,
) -> list[str]:
    """What the authoritative servers serve that is not each change's before (or after): empty when
    every owned set is as expected. An outage is a difference, named as one."""
    session = session_for(servers)
    differences = []
    for change in changes:
        lookup = read_owned(session, change)
        if lookup.is_outage:
            differences.append(lookup.describe_failure())
            continue
        wanted = change.after if want_after else change.before
        if not change.matches(lookup.records, wanted):
            live = "; ".join(change.owned(lookup.records)) or "no record"
            differences.append(f"{change.host} {change.rdtype}: live is {live}")
    return differences


def apply_changes(
    zone: ZoneProvider,
    writer: ZoneWriter,
    changes: Sequence[RecordChange],
    servers: Sequence[Nameserver],
    session_for: SessionFactory,
    record: Record,
    dry_run: bool = False,
    poll_interval: float = POLL_INTERVAL,
) -> ApplyOutcome:
    """Run the plan's `changes` on `zone` (see the module docstring); never raises ProviderError."""
    differences = live_differences(servers, changes, session_for, want_after=False)
    if differences:
        message = f"{CHANGED_SINCE_PLAN} ({'; '.join(differences)})"
        record(ApplyEvent("refusal", None, message))
        return ApplyOutcome(result="refused", message=message)
    if dry_run:
        return ApplyOutcome(
            result="dry_run", message="the live records are the plan's before: it can be applied"
        )
    written: list[RecordChange] = []
    for change in changes:
        try:
            writer.write(change)
        except ProviderError as error:
            record(ApplyEvent("provider_error", change, str(error)))
            # The failed change may be half-done (an update is a delete then a create on some
            # providers): it is restored too, and writing a "before" that is already there is a no-op.
            restored, failures = _restore(writer, [*written, change], record)
            message = str(error) + (
                "; every record written was restored"
                if not failures
                else "; restoring failed too, fix by hand: " + "; ".join(failures)
            )
            return ApplyOutcome(
                result="provider_error", message=message, written=tuple(written), rolled_back=restored
            )
        written.append(change)
        record(ApplyEvent("write", change, "written"))
    live = wait_until_served(servers, changes, session_for, zone.propagation_timeout, poll_interval)
    if live:
        return ApplyOutcome(
            result="applied",
            message="the authoritative servers serve the new records",
            live=True,
            written=tuple(written),
        )
    return ApplyOutcome(
        result="not_live",
        message=(
            f"written, but the authoritative servers did not serve it within {zone.propagation_timeout:g} s"
        ),
        written=tuple(written),
    )


def _restore(writer: ZoneWriter, written: Sequence[RecordChange], record: Record) -> tuple[bool, list[str]]:
    failures = []
    for change in rollback_of(written):
        try:
            writer.write(change)
        except ProviderError as error:
            failures.append(str(error))
            record(ApplyEvent("rollback", change, f"failed: {error}"))
            continue
        record(ApplyEvent("rollback", change, "restored"))
    return not failures, failures


def wait_until_served(
    servers: Sequence[Nameserver],
    changes: Sequence[RecordChange],
    session_for: SessionFactory,
    timeout: float,
    interval: float = POLL_INTERVAL,
) -> bool:
    """Ask the authoritative servers until every change's `after` is served; False after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if not live_differences(servers, changes, session_for, want_after=True):
            return True
        if time.monotonic() + interval > deadline:
            return False
        time.sleep(interval)
