"""Fix plans posted from the Fix it flow, and the provider includes a verified plan flattened.

The monitor verifies a plan with the watched domain's checks, and watches flattened includes for
drift.

Settling a plan and updating an include write their alerts in the same transaction, through
bot.store.outbox.insert_alerts on the connection this store's transaction holds: a crash leaves
the plan pending with no alert, or settled with its alert, never one without the other. Every
query takes the team id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.slack.fix_plans import FixPlan
from bot.store.database import Database, iso, utcnow
from bot.store.outbox import NewAlert, insert_alerts


@dataclass(frozen=True)
class StoredFixPlan:
    """A fix plan the monitor verifies with the watched domain's checks, and when it was posted."""

    id: int
    plan: FixPlan
    created_at: str


@dataclass(frozen=True, kw_only=True)
class FlattenedInclude:
    """A provider's include flattened into a team's domain by a verified fix, and the addresses it
    authorised when last resolved (`terms` None: not resolved yet since the fix was verified)."""

    domain: str
    include: str
    terms: tuple[str, ...] | None
    problem: str | None  # why it could not be flattened when last resolved
    since: str


class FixPlanStore:
    """Fix plans and flattened includes of every team over `database`, each call scoped to one team."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def save_fix_plan(self, plan: FixPlan, now: datetime | None = None) -> bool:
        """Remember a posted plan so the monitor verifies it with the domain's checks; False when
        it was already stored (a replayed submission)."""
        with self.database.write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO fix_plans (team_id, domain, plan_key, plan, state, "
                "created_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                [plan.team_id, plan.domain, plan.key(), json.dumps(plan.to_json()), iso(now or utcnow())],
            )
            return cursor.rowcount == 1

    def pending_fix_plans(self, team_id: str, domain: str) -> list[StoredFixPlan]:
        """The team's plans for `domain` not settled yet, oldest first."""
        rows = self.database.connection.table("fix_plans").rows_where(
            "team_id = ? AND domain = ? AND state = 'pending'", [team_id, domain], order_by="id"
        )
        return [
            StoredFixPlan(row["id"], FixPlan.from_json(json.loads(row["plan"])), row["created_at"])
            for row in rows
        ]

    def settle_fix_plan(
        self,
        team_id: str,
        plan: FixPlan,
        state: str,
        alerts: Sequence[NewAlert] = (),
        now: datetime | None = None,
    ) -> bool:
        """Close a pending plan as `verified` or `expired` and write `alerts` to the outbox in the
        same transaction: a crash leaves the plan pending with no alert, or settled with its
        alert, never one without the other. False when it was not pending (already settled)."""
        if state not in ("verified", "expired"):
            raise ValueError(f"not a settled state: {state}")
        when = iso(now or utcnow())
        with self.database.write() as db:
            cursor = db.execute(
                "UPDATE fix_plans SET state = ?, settled_at = ? "
                "WHERE team_id = ? AND plan_key = ? AND state = 'pending'",
                [state, when, team_id, plan.key()],
            )
            if cursor.rowcount != 1:
                return False
            insert_alerts(db, team_id, alerts, when)
            if state == "verified":
                for include in plan.watch_includes:
                    # A re-flatten starts the include's history afresh: the next resolution
                    # is its baseline.
                    db.execute(
                        "INSERT INTO flattened_includes (team_id, domain, include, since) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (team_id, domain, include) DO UPDATE "
                        "SET terms = NULL, problem = NULL, since = excluded.since",
                        [team_id, plan.domain, include, when],
                    )
            return True

    def flattened_includes(self, team_id: str, domain: str) -> list[FlattenedInclude]:
        """The provider includes the team's verified fixes flattened into `domain`."""
        rows = self.database.connection.table("flattened_includes").rows_where(
            "team_id = ? AND domain = ?", [team_id, domain], order_by="include"
        )
        return [
            FlattenedInclude(
                domain=row["domain"],
                include=row["include"],
                terms=None if row["terms"] is None else tuple(json.loads(row["terms"])),
                problem=row["problem"],
                since=row["since"],
            )
            for row in rows
        ]

    def update_flattened_include(
        self,
        team_id: str,
        known: FlattenedInclude,
        terms: Sequence[str],
        problem: str | None,
        alerts: Sequence[NewAlert] = (),
        now: datetime | None = None,
    ) -> bool:
        """Store what `known.include` authorises now, with the alerts about the change, in one
        transaction, only if the row still holds `known` (two monitors never both alert).
        Returns whether it was written."""
        when = iso(now or utcnow())
        before = None if known.terms is None else json.dumps(list(known.terms))
        with self.database.write() as db:
            cursor = db.execute(
                "UPDATE flattened_includes SET terms = ?, problem = ?, changed_at = ? "
                "WHERE team_id = ? AND domain = ? AND include = ? AND terms IS ? AND problem IS ?",
                [
                    json.dumps(list(terms)),
                    problem,
                    when,
                    team_id,
                    known.domain,
                    known.include,
                    before,
                    known.problem,
                ],
            )
            if cursor.rowcount != 1:
                return False
            insert_alerts(db, team_id, alerts, when)
            return True
