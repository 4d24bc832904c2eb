"""The writer interface: make one record set of a zone what a plan says, through the zone's provider.

A writer is told a RecordChange and makes the owned records at its name and type (see
handlers.fixes.changes) exactly `after`, leaving every other record there alone. Writing twice is
harmless, which is what lets a rollback simply write each change's reverse. A failure is a
ProviderError carrying the provider's own words (with any credential blanked out); it is plain text
from outside, to be escaped wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bot.apply.providers import ZoneProvider
from handlers.errors import DmarcbotError
from handlers.fixes.changes import RecordChange
from handlers.fixes.records import normalise_value

MAX_PROVIDER_MESSAGE = 500  # characters of a provider's error kept: enough to say what it refused


class ProviderError(DmarcbotError):
    """The DNS provider refused or failed a write; the message is the provider's own, bounded."""


class ZoneWriter(Protocol):
    """Writes one zone's record sets through its provider."""

    zone: ZoneProvider

    def write(self, change: RecordChange) -> None:
        """Make the owned records at the change's name and type exactly `change.after`, or raise
        ProviderError."""


def provider_error(zone: ZoneProvider, what: str, detail: str) -> ProviderError:
    """A ProviderError saying what failed, with the provider's words bounded and no secret in them."""
    return ProviderError(f"{zone.provider} {what}: {_redact(detail, zone)}"[:MAX_PROVIDER_MESSAGE])


def _redact(text: str, zone: ZoneProvider) -> str:
    for secret in zone.secrets.values():
        value = secret.reveal()
        if value:
            text = text.replace(value, "***")
    return text


def plan_of_edits(
    change: RecordChange, current: Iterable[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]]]:
    """From the provider's owned `current` records (value, provider id), what to do so the set is
    exactly `change.after`: (updates in place as (id, new value), creates, deletes as (value, id)).

    Replacing in place comes first, deleting last: a domain with one SPF record keeps one through the
    write (on providers whose update is atomic), and a merge goes from several records to one,
    never through none."""
    wanted = list(dict.fromkeys(change.after))
    have = list(current)
    keep = {normalise_value(change.rdtype, v) for v in wanted}
    present = {normalise_value(change.rdtype, v) for v, _ in have}
    removable = [(v, i) for v, i in have if normalise_value(change.rdtype, v) not in keep]
    missing = [v for v in wanted if normalise_value(change.rdtype, v) not in present]
    updates: list[tuple[str, str]] = []
    while removable and missing:
        (_, identifier), value = removable.pop(0), missing.pop(0)
        updates.append((identifier, value))
    return updates, missing, removable


__all__ = ["ProviderError", "ZoneWriter", "plan_of_edits", "provider_error"]
