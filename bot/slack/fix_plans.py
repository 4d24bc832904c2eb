"""A posted fix plan: what it publishes, where it was posted, and how Verify reads it back.

The plan travels in its message's "Verify" button (values are kept as digests, so it usually fits
Block Kit's 2,000 characters and Verify needs no database); a plan too large for that (a long
domain, many selectors or includes) is kept server-side and the button carries its short id.
It is also stored (bot.store.fix_plans, one row per team and plan) so the monitor verifies it
with the watched domain's next check (bot.monitor.fix_followup).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from handlers.errors import UnreadableValue
from handlers.fixes.session import ExpectedRecord, FixCheck, verify_fix

MAX_BUTTON_VALUE = 2000


@dataclass(frozen=True, kw_only=True)
class FixPlan:
    """Who proposed what for which domain, where it was posted, and what Verify looks for."""

    team_id: str
    channel_id: str
    thread_ts: str
    domain: str
    kind: str
    finding_id: str
    expected: tuple[ExpectedRecord, ...]
    clears: tuple[str, ...]
    selectors: tuple[str, ...] = ()
    watch_includes: tuple[str, ...] = ()
    proposed_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "o": self.team_id,
            "c": self.channel_id,
            "ts": self.thread_ts,
            "d": self.domain,
            "k": self.kind,
            "f": self.finding_id,
            "e": [[e.host, e.rdtype, e.digest] for e in self.expected],
            "x": list(self.clears),
            "s": list(self.selectors),
            "w": list(self.watch_includes),
            "u": self.proposed_by,
        }

    def key(self) -> str:
        """The plan's identity: where it was posted and what it publishes. The button value may
        cut the longer lists, never these fields, so a Verify button names its stored row."""
        identity = [
            self.team_id,
            self.channel_id,
            self.thread_ts,
            self.domain,
            self.finding_id,
            [[e.host, e.rdtype, e.digest] for e in self.expected],
        ]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:40]

    def button_value(self, keep: Callable[[dict[str, Any]], str]) -> str:
        """The plan as a Verify button value: the plan itself when it fits Block Kit's 2,000
        characters, else `{"ref": id}` where `keep(plan)` stored it and returned the id."""
        data = self.to_json()
        value = json.dumps(data, separators=(",", ":"))
        if len(value) <= MAX_BUTTON_VALUE:
            return value
        return json.dumps({"ref": keep(data)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FixPlan:
        """Read a plan back; raises UnreadableValue when fields are missing or of the wrong type."""
        try:
            return cls(
                team_id=str(data["o"]),
                channel_id=str(data["c"]),
                thread_ts=str(data["ts"]),
                domain=str(data["d"]),
                kind=str(data["k"]),
                finding_id=str(data["f"]),
                expected=tuple(ExpectedRecord(str(h), str(t), str(g)) for h, t, g in data["e"]),
                clears=tuple(str(x) for x in data["x"]),
                selectors=tuple(str(s) for s in data.get("s", []))[:20],
                watch_includes=tuple(str(w) for w in data.get("w", [])),
                proposed_by=str(data.get("u", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UnreadableValue(str(error)) from None

    @classmethod
    def from_button_value(cls, value: str, stored: Callable[[str], dict[str, Any] | None]) -> FixPlan:
        """The plan a Verify button carries, or the one `stored(id)` holds for its `ref`."""
        try:
            data = json.loads(value)
        except ValueError as error:
            raise UnreadableValue(str(error)) from None
        if not isinstance(data, dict):
            raise UnreadableValue("not an object")
        if "ref" in data:
            kept = stored(str(data["ref"])[:40])
            if kept is None:
                raise UnreadableValue("no stored plan for that button")
            data = kept
        return cls.from_json(data)


def check_plan(settings: Settings, plan: FixPlan) -> FixCheck:
    """Verify a plan afresh (a new DnsSession: never an answer older than this call)."""
    return asyncio.run(
        verify_fix(
            settings.dns_session(),
            plan.domain,
            plan.expected,
            plan.clears,
            plan.selectors,
            https=settings.https_client(),
        )
    )


__all__ = ["FixPlan", "UnreadableValue", "check_plan"]
