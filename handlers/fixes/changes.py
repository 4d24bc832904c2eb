"""A plan's changes as record sets: at which name and type, which records before, which after.

A plan owns only part of what lives at a name: at the apex, the one `v=spf1` TXT string (every other
TXT there, such as a site verification, is someone else's); at `_dmarc`, the DMARC records; under
`_domainkey`, the selector's whole TXT or CNAME set. Reading, comparing and writing all go through
`owned`, so a write never touches a record the plan did not show.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from handlers.domain.dmarc_record import is_dmarc_record
from handlers.domain.spf import is_spf_record
from handlers.errors import UnreadableValue
from handlers.fixes.records import Proposal, normalise_value

WRITABLE_TYPES = ("TXT", "CNAME")
MAX_CHANGES = 10
MAX_RECORDS_PER_CHANGE = 20


@dataclass(frozen=True)
class RecordChange:
    """The records of one type at one name the plan replaces: exactly `before` becomes `after`."""

    host: str
    rdtype: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def scope(self) -> str:
        """Which records at the name the plan owns: `spf`, `dmarc`, or `all` (a DKIM selector)."""
        if self.rdtype == "TXT" and self.host.startswith("_dmarc."):
            return "dmarc"
        if self.rdtype == "TXT" and any(is_spf_record(v) for v in (*self.before, *self.after)):
            return "spf"
        return "all"

    def owned(self, records: Iterable[str]) -> tuple[str, ...]:
        """The records of `records` (all the name's records of this type) that this change owns."""
        if self.scope == "dmarc":
            return tuple(r for r in records if is_dmarc_record(r))
        if self.scope == "spf":
            return tuple(r for r in records if is_spf_record(r))
        return tuple(records)

    def matches(self, live: Sequence[str], wanted: Sequence[str]) -> bool:
        """True when the owned part of `live` is exactly `wanted` (normalised, in any order)."""
        return _bag(self.rdtype, self.owned(live)) == _bag(self.rdtype, wanted)

    def reversed(self) -> RecordChange:
        """The change that restores `before` (a rollback is applied like any plan)."""
        return RecordChange(self.host, self.rdtype, self.after, self.before)

    def to_json(self) -> dict[str, Any]:
        return {"h": self.host, "t": self.rdtype, "b": list(self.before), "a": list(self.after)}

    @classmethod
    def from_json(cls, data: Any) -> RecordChange:
        """Read a change back; UnreadableValue when it is not one this module wrote."""
        try:
            change = cls(
                str(data["h"]),
                str(data["t"]),
                tuple(str(v) for v in data["b"]),
                tuple(str(v) for v in data["a"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UnreadableValue(f"not a record change: {error}") from None
        if change.rdtype not in WRITABLE_TYPES:
            raise UnreadableValue(f"not a record type a plan writes: {change.rdtype}")
        if len(change.before) > MAX_RECORDS_PER_CHANGE or len(change.after) > MAX_RECORDS_PER_CHANGE:
            raise UnreadableValue("too many records in one change")
        return change


def _bag(rdtype: str, values: Iterable[str]) -> Counter[str]:
    return Counter(normalise_value(rdtype, v) for v in values)


def changes_for(proposal: Proposal) -> tuple[RecordChange, ...]:
    """The record sets a posted proposal replaces, in the order they are safe to write.

    The proposal's own name and type replace `before` with its entries there; a CNAME that takes a
    selector's name first removes the TXT records it cannot live beside (RFC 1034 §3.6.2); any other
    entry's name is expected empty (its current records were not shown, so it is not overwritten)."""
    after: dict[tuple[str, str], list[str]] = {}
    for entry in proposal.entries:
        after.setdefault((entry.host, entry.rdtype), []).append(entry.value)
    changes: list[RecordChange] = []
    main = (proposal.host, proposal.rdtype)
    if proposal.rdtype == "CNAME" and proposal.delete:
        changes.append(RecordChange(proposal.host, "TXT", tuple(proposal.delete), ()))
    for (host, rdtype), values in after.items():
        before = tuple(proposal.before) if (host, rdtype) == main and rdtype == "TXT" else ()
        changes.append(RecordChange(host, rdtype, before, tuple(values)))
    return tuple(changes)


def changes_to_json(changes: Sequence[RecordChange]) -> list[dict[str, Any]]:
    return [c.to_json() for c in changes]


def changes_from_json(data: Any) -> tuple[RecordChange, ...]:
    """Read a plan's stored changes; UnreadableValue when they are not a list of changes."""
    if not isinstance(data, list) or len(data) > MAX_CHANGES:
        raise UnreadableValue("not a list of record changes")
    return tuple(RecordChange.from_json(item) for item in data)


def rollback_of(changes: Sequence[RecordChange]) -> tuple[RecordChange, ...]:
    """The changes that restore every `before`, in the reverse order (the last write undone first)."""
    return tuple(c.reversed() for c in reversed(changes))


__all__ = ["RecordChange", "changes_for", "changes_from_json", "changes_to_json", "rollback_of"]
