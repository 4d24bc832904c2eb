"""A posted fix plan, and the hook the monitor uses to verify it on its next cycle.

The plan travels in its message's "Verify" button (≤ 2000 characters: values are kept as digests),
so Verify works with no database. For a watched domain the monitor can verify pending plans itself:
`create_fix_plans_table` is the migration to append to bot/store.py's MIGRATIONS, `save_fix_plan`
and `pending_fix_plans` read and write it (every row scoped to one team), and `check_plan` plus
`render_fix_check` give the "fixed" message to post in the plan's thread.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from bot.config import Settings
from handlers.fix_session import ExpectedRecord, FixCheck, verify_fix

MAX_BUTTON_VALUE = 2000


class BadPlanValue(ValueError):
    """A Verify button value we did not write."""


@dataclass(frozen=True)
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
        return {"o": self.team_id, "c": self.channel_id, "ts": self.thread_ts, "d": self.domain,
                "k": self.kind, "f": self.finding_id,
                "e": [[e.host, e.rdtype, e.digest] for e in self.expected],
                "x": list(self.clears), "s": list(self.selectors),
                "w": list(self.watch_includes), "u": self.proposed_by}

    def button_value(self) -> str:
        """The plan as a Verify button value; long lists are cut to stay within Block Kit's 2000."""
        data = self.to_json()
        value = json.dumps(data, separators=(",", ":"))
        if len(value) > MAX_BUTTON_VALUE:
            data["w"], data["x"] = data["w"][:5], data["x"][:10]
            value = json.dumps(data, separators=(",", ":"))
        return value[:MAX_BUTTON_VALUE]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FixPlan:
        """Read a plan back; raises BadPlanValue when fields are missing or of the wrong type."""
        try:
            return cls(
                team_id=str(data["o"]), channel_id=str(data["c"]), thread_ts=str(data["ts"]),
                domain=str(data["d"]), kind=str(data["k"]), finding_id=str(data["f"]),
                expected=tuple(ExpectedRecord(str(h), str(t), str(g)) for h, t, g in data["e"]),
                clears=tuple(str(x) for x in data["x"]),
                selectors=tuple(str(s) for s in data.get("s", []))[:20],
                watch_includes=tuple(str(w) for w in data.get("w", [])),
                proposed_by=str(data.get("u", "")))
        except (KeyError, TypeError, ValueError) as error:
            raise BadPlanValue(str(error)) from None

    @classmethod
    def from_button_value(cls, value: str) -> FixPlan:
        """The plan a Verify button carries."""
        try:
            data = json.loads(value)
        except ValueError as error:
            raise BadPlanValue(str(error)) from None
        if not isinstance(data, dict):
            raise BadPlanValue("not an object")
        return cls.from_json(data)


def check_plan(settings: Settings, plan: FixPlan) -> FixCheck:
    """Verify a plan afresh (a new DnsSession: never an answer older than this call)."""
    return asyncio.run(verify_fix(settings.dns_session(), plan.domain, plan.expected, plan.clears,
                                  plan.selectors))


# -- storage, for the monitor -------------------------------------------------------------------

def create_fix_plans_table(db: sqlite_utils.Database) -> None:
    """Migration: the fix_plans table (append `(N, "fix plans", create_fix_plans_table)`)."""
    db["fix_plans"].create(  # type: ignore[union-attr]
        {"id": int, "team_id": str, "domain": str, "plan": str, "state": str, "created_at": str,
         "verified_at": str},
        pk="id", not_null={"team_id", "domain", "plan", "state", "created_at"},
        defaults={"state": "pending"})
    db["fix_plans"].create_index(["team_id", "domain", "state"])  # type: ignore[union-attr]


def save_fix_plan(db: sqlite_utils.Database, plan: FixPlan, created_at: str) -> None:
    """Remember a posted plan so the monitor verifies it with the domain's next check."""
    db["fix_plans"].insert({"team_id": plan.team_id, "domain": plan.domain,  # type: ignore[union-attr]
                            "plan": json.dumps(plan.to_json()), "state": "pending",
                            "created_at": created_at})


def pending_fix_plans(db: sqlite_utils.Database, team_id: str, domain: str
                      ) -> list[tuple[int, FixPlan]]:
    """The team's plans for `domain` not verified yet, oldest first, with their row ids."""
    rows = db["fix_plans"].rows_where("team_id = ? AND domain = ? AND state = 'pending'",
                                      [team_id, domain], order_by="id")
    return [(row["id"], FixPlan.from_json(json.loads(row["plan"]))) for row in rows]


def mark_fix_plan_verified(db: sqlite_utils.Database, team_id: str, plan_id: int,
                           verified_at: str) -> None:
    """The plan's records are live: the monitor has posted "fixed" in its thread."""
    db.execute("UPDATE fix_plans SET state = 'verified', verified_at = ? "
               "WHERE team_id = ? AND id = ?", [verified_at, team_id, plan_id])


__all__ = ["BadPlanValue", "FixPlan", "check_plan", "create_fix_plans_table",
           "mark_fix_plan_verified", "pending_fix_plans", "save_fix_plan"]
