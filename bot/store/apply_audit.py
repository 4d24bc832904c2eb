"""Applying plans: each plan's record sets, and the append-only audit of every step of the flow.

The audit's rows are only ever inserted (the table's triggers refuse an UPDATE or a DELETE), so
it says who proposed, approved, applied or rolled back what, with which provider, and how it went.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.slack.fix_plans import FixPlan
from bot.store.database import Database, iso, utcnow
from handlers.errors import UnreadableValue
from handlers.fixes.changes import RecordChange, changes_from_json, changes_to_json

AUDIT_ACTIONS = (
    "proposal",
    "approval",
    "refusal",
    "write",
    "provider_error",
    "rollback",
    "applied",
    "not_live",
)
LAST_STEP = "SELECT {} FROM apply_audit a WHERE a.plan_id = p.id ORDER BY a.id DESC LIMIT 1"
MAX_RESULT = 2000  # characters of a result kept: a provider's message is bounded before, this is the net


@dataclass(frozen=True, kw_only=True)
class AuditRow:
    """One step of the flow, as stored: who, for which plan and domain, with what result."""

    team_id: str
    domain: str
    action: str
    actor: str
    result: str
    plan_id: int | None = None
    approver: str | None = None
    provider: str | None = None
    zone: str | None = None
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    at: str = ""
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "team_id": self.team_id,
            "domain": self.domain,
            "plan_id": self.plan_id,
            "action": self.action,
            "actor": self.actor,
            "approver": self.approver,
            "provider": self.provider,
            "zone": self.zone,
            "records_before": list(self.before),
            "records_after": list(self.after),
            "result": self.result,
        }


@dataclass(frozen=True, kw_only=True)
class PlanRow:
    """A posted plan as stored: its id, the plan, its Verify state, its record sets (None: posted
    before plans kept them, so it cannot be applied), and the last audit step for it."""

    id: int
    plan: FixPlan
    state: str
    created_at: str
    changes: tuple[RecordChange, ...] | None
    last_action: str | None = None
    last_result: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": self.plan.team_id,
            "domain": self.plan.domain,
            "finding_id": self.plan.finding_id,
            "proposed_by": self.plan.proposed_by,
            "channel_id": self.plan.channel_id,
            "created_at": self.created_at,
            "state": self.state,
            "changes": None if self.changes is None else changes_to_json_full(self.changes),
            "last_action": self.last_action,
            "last_result": self.last_result,
        }


def changes_to_json_full(changes: Sequence[RecordChange]) -> list[dict[str, Any]]:
    return [
        {"host": c.host, "type": c.rdtype, "before": list(c.before), "after": list(c.after)} for c in changes
    ]


class ApplyStore:
    """Plans' record sets and the apply audit over `database`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def save_changes(self, plan: FixPlan, changes: Sequence[RecordChange]) -> None:
        """Keep the record sets of a stored plan (the full before and after an Apply needs)."""
        with self.database.write() as db:
            db.execute(
                "UPDATE fix_plans SET changes = ? WHERE team_id = ? AND plan_key = ? AND changes IS NULL",
                [json.dumps(changes_to_json(changes)), plan.team_id, plan.key()],
            )

    def plan_id(self, plan: FixPlan) -> int | None:
        """The stored id of `plan`, or None when it was never stored."""
        rows = list(
            self.database.connection.query(
                "SELECT id FROM fix_plans WHERE team_id = ? AND plan_key = ?", [plan.team_id, plan.key()]
            )
        )
        return int(rows[0]["id"]) if rows else None

    def plan_by_key(self, team_id: str, plan_key: str) -> PlanRow | None:
        """The team's stored plan with `plan_key` (FixPlan.key), or None."""
        rows = list(
            self.database.connection.query(
                "SELECT id FROM fix_plans WHERE team_id = ? AND plan_key = ?", [team_id, plan_key[:40]]
            )
        )
        return self.plan(int(rows[0]["id"]), team_id) if rows else None

    def plan(self, plan_id: int, team_id: str | None = None) -> PlanRow | None:
        """The stored plan `plan_id` (of `team_id` when given), or None."""
        rows = self.plans(team_id=team_id, plan_id=plan_id)
        return rows[0] if rows else None

    def plans(
        self, domain: str | None = None, team_id: str | None = None, plan_id: int | None = None
    ) -> list[PlanRow]:
        """Posted plans, newest first, with the last audit step of each."""
        where, params = ["1 = 1"], []
        for column, value in (("domain", domain), ("team_id", team_id), ("id", plan_id)):
            if value is not None:
                where.append(f"p.{column} = ?")
                params.append(value)
        rows = self.database.connection.query(
            f"SELECT p.*, ({LAST_STEP.format('action')}) AS last_action, "
            f"({LAST_STEP.format('result')}) AS last_result "
            f"FROM fix_plans p WHERE {' AND '.join(where)} ORDER BY p.id DESC",
            params,
        )
        found = []
        for row in rows:
            try:
                changes = changes_from_json(json.loads(row["changes"])) if row["changes"] else None
            except (ValueError, UnreadableValue):
                changes = None
            found.append(
                PlanRow(
                    id=int(row["id"]),
                    plan=FixPlan.from_json(json.loads(row["plan"])),
                    state=str(row["state"]),
                    created_at=str(row["created_at"]),
                    changes=changes,
                    last_action=row["last_action"],
                    last_result=row["last_result"],
                )
            )
        return found

    def record(self, row: AuditRow, now: datetime | None = None) -> int:
        """Append one step to the audit; its id."""
        if row.action not in AUDIT_ACTIONS:
            raise ValueError(f"not an audit action: {row.action}")
        with self.database.write() as db:
            cursor = db.execute(
                "INSERT INTO apply_audit (team_id, domain, plan_id, action, actor, approver, provider, zone, "
                "records_before, records_after, result, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    row.team_id,
                    row.domain,
                    row.plan_id,
                    row.action,
                    row.actor,
                    row.approver,
                    row.provider,
                    row.zone,
                    json.dumps(list(row.before)),
                    json.dumps(list(row.after)),
                    row.result[:MAX_RESULT],
                    iso(now or utcnow()),
                ],
            )
            return int(cursor.lastrowid or 0)

    def audit(self, domain: str | None = None, team_id: str | None = None) -> list[AuditRow]:
        """The audit, oldest first, for one domain and/or team when given."""
        where, params = ["1 = 1"], []
        for column, value in (("domain", domain), ("team_id", team_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self.database.connection.query(
            f"SELECT * FROM apply_audit WHERE {' AND '.join(where)} ORDER BY id", params
        )
        return [
            AuditRow(
                id=int(row["id"]),
                team_id=row["team_id"],
                domain=row["domain"],
                plan_id=row["plan_id"],
                action=row["action"],
                actor=row["actor"],
                approver=row["approver"],
                provider=row["provider"],
                zone=row["zone"],
                before=tuple(json.loads(row["records_before"] or "[]")),
                after=tuple(json.loads(row["records_after"] or "[]")),
                result=row["result"],
                at=row["at"],
            )
            for row in rows
        ]


def record_proposal(store: ApplyStore, plan: FixPlan, changes: Sequence[RecordChange]) -> None:
    """Keep a just-stored plan's record sets, and its proposal in the audit."""
    if changes:
        store.save_changes(plan, changes)
    store.record(
        AuditRow(
            team_id=plan.team_id,
            domain=plan.domain,
            plan_id=store.plan_id(plan),
            action="proposal",
            actor=plan.proposed_by or "?",
            before=tuple(f"{c.host} {c.rdtype} {v}" for c in changes for v in c.before),
            after=tuple(f"{c.host} {c.rdtype} {v}" for c in changes for v in c.after),
            result=f"posted in {plan.channel_id}",
        )
    )
