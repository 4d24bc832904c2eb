"""The schema, as the migrations that built it: one function per step, applied in order.

Append only: a released version is never edited, a change is a new version, so a database file
written by any earlier release opens and upgrades (bot.store.database.apply_migrations applies
the missing ones, once, in one transaction).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from bot.store.row_hashes import row_hash

# The columns of a stored row's key (bot.store.reports.RowKey), as they were when row_hash came.
ROW_KEY_COLUMNS = (
    "source_ip",
    "dmarc_pass",
    "spf_aligned",
    "dkim_aligned",
    "spf_why",
    "dkim_why",
    "disposition",
    "override_reasons",
    "header_from",
    "envelope_from",
    "dkim_domains",
    "dkim_selectors",
    "dkim_results",
    "spf_domains",
    "spf_scopes",
    "spf_results",
)


def _create_watches(db: sqlite_utils.Database) -> None:
    db.table("watches").create(
        {
            "id": int,
            "team_id": str,
            "channel_id": str,
            "domain": str,
            "selectors": str,
            "added_by": str,
            "created_at": str,
            "last_checked_at": str,
            "last_status": str,
            "temperror_streak": int,
            "alerted_snapshot_id": int,
        },
        pk="id",
        not_null={"team_id", "channel_id", "domain", "selectors", "created_at", "temperror_streak"},
        defaults={"selectors": "[]", "temperror_streak": 0},
    )
    db.table("watches").create_index(["team_id", "domain"], unique=True)


def _create_snapshots(db: sqlite_utils.Database) -> None:
    db.table("snapshots").create(
        {
            "id": int,
            "team_id": str,
            "watch_id": int,
            "fingerprint": str,
            "records": str,
            "findings": str,
            "verdict": str,
            "first_seen_at": str,
            "last_seen_at": str,
            "checks": int,
        },
        pk="id",
        not_null={"team_id", "watch_id", "fingerprint", "records", "findings", "verdict", "checks"},
        defaults={"checks": 1},
    )
    db.table("snapshots").create_index(["team_id", "watch_id", "id"])


def _create_alerts(db: sqlite_utils.Database) -> None:
    db.table("alerts").create(
        {
            "id": int,
            "team_id": str,
            "channel_id": str,
            "domain": str,
            "kind": str,
            "dedupe_key": str,
            "text": str,
            "blocks": str,
            "digest_block": str,
            "digest_group": str,
            "digest_summary": str,
            "state": str,
            "ts": str,
            "attempts": int,
            "last_error": str,
            "created_at": str,
            "posted_at": str,
        },
        pk="id",
        not_null={
            "team_id",
            "channel_id",
            "domain",
            "kind",
            "dedupe_key",
            "text",
            "blocks",
            "state",
            "attempts",
            "created_at",
        },
        defaults={"state": "pending", "attempts": 0},
    )
    db.table("alerts").create_index(["team_id", "dedupe_key"], unique=True)
    db.table("alerts").create_index(["team_id", "state", "channel_id"])


def _create_report_tables(db: sqlite_utils.Database) -> None:
    # The aggregate reports (bot.store.reports): one row per report, its rows grouped by source
    # and outcome, and the DKIM selectors receivers saw.
    db["agg_reports"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "team_id": str,
            "reporter": str,
            "report_id": str,
            "domain": str,
            "date_begin": str,
            "date_end": str,
            "day": str,
            "org_name": str,
            "messages": int,
            "records": int,
            "skipped_records": int,
            "truncated": int,
            "source": str,
            "ingested_at": str,
        },
        pk="id",
        not_null={
            "team_id",
            "reporter",
            "report_id",
            "domain",
            "date_begin",
            "date_end",
            "day",
            "messages",
            "records",
            "ingested_at",
        },
    )
    db["agg_reports"].create_index(  # type: ignore[union-attr]
        ["team_id", "reporter", "report_id", "domain", "date_begin", "date_end"], unique=True
    )
    db["agg_reports"].create_index(["team_id", "domain", "day"])  # type: ignore[union-attr]
    db["agg_rows"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "team_id": str,
            "report_pk": int,
            "domain": str,
            "day": str,
            "source_ip": str,
            "messages": int,
            "dmarc_pass": int,
            "spf_aligned": int,
            "dkim_aligned": int,
            "spf_why": str,
            "dkim_why": str,
        },
        pk="id",
        not_null={
            "team_id",
            "report_pk",
            "domain",
            "day",
            "source_ip",
            "messages",
            "dmarc_pass",
            "spf_aligned",
            "dkim_aligned",
        },
    )
    db["agg_rows"].create_index(["team_id", "domain", "day"])  # type: ignore[union-attr]
    db["agg_selectors"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "team_id": str,
            "report_pk": int,
            "domain": str,
            "day": str,
            "dkim_domain": str,
            "selector": str,
            "messages": int,
            "passed": int,
        },
        pk="id",
        not_null={"team_id", "report_pk", "domain", "day", "dkim_domain", "selector", "messages", "passed"},
    )
    db["agg_selectors"].create_index(["team_id", "domain", "day"])  # type: ignore[union-attr]


def _create_fix_plans(db: sqlite_utils.Database) -> None:
    # `plan_key` names the plan by what it publishes and where it was posted (FixPlan.key), so a
    # replayed submission stores it once and a Verify button finds its row.
    db.table("fix_plans").create(
        {
            "id": int,
            "team_id": str,
            "domain": str,
            "plan_key": str,
            "plan": str,
            "state": str,
            "created_at": str,
            "settled_at": str,
        },
        pk="id",
        not_null={"team_id", "domain", "plan_key", "plan", "state", "created_at"},
        defaults={"state": "pending"},
    )
    db.table("fix_plans").create_index(["team_id", "plan_key"], unique=True)
    db.table("fix_plans").create_index(["team_id", "domain", "state"])


def _add_alert_threads(db: sqlite_utils.Database) -> None:
    db.table("alerts").add_column("thread_ts", str)


def _create_flattened_includes(db: sqlite_utils.Database) -> None:
    db.table("flattened_includes").create(
        {
            "id": int,
            "team_id": str,
            "domain": str,
            "include": str,
            "terms": str,
            "problem": str,
            "since": str,
            "changed_at": str,
        },
        pk="id",
        not_null={"team_id", "domain", "include", "since"},
    )
    db.table("flattened_includes").create_index(["team_id", "domain", "include"], unique=True)


def _create_slack_deliveries(db: sqlite_utils.Database) -> None:
    # One row per event or interaction already taken: Slack re-sends an event it thinks was not
    # acknowledged (X-Slack-Retry-Num 1, 2, 3 over about an hour), and the copy must do nothing.
    # (if_not_exists: a database of the release that numbered this step differently)
    db.table("slack_deliveries").create(
        {"delivery_id": str, "received_at": str},
        pk="delivery_id",
        not_null={"received_at"},
        if_not_exists=True,
    )
    db.table("slack_deliveries").create_index(["received_at"], if_not_exists=True)


def _create_button_states(db: sqlite_utils.Database) -> None:
    # A button whose state does not fit Block Kit's 2,000-character value carries a short id
    # pointing at its row here instead, so no value is ever cut.
    db.table("button_states").create(
        {"id": str, "team_id": str, "state": str, "created_at": str},
        pk="id",
        not_null={"team_id", "state", "created_at"},
        if_not_exists=True,
    )


def _add_alert_leases(db: sqlite_utils.Database) -> None:
    # A pending alert is claimed by one delivery pass (its owner) until the lease's expiry, so
    # several monitors on one file (serve plus a cron `monitor --once`) never post it twice. Old
    # rows get NULL: unclaimed. A database whose release ran this step as version 8 has them.
    existing = db.table("alerts").columns_dict
    for column in ("claimed_by", "claimed_until"):
        if column not in existing:
            db.table("alerts").add_column(column, str)


def _add_selector_probes(db: sqlite_utils.Database) -> None:
    # The selectors a probe of the common ones found, and when it ran: the monitor checks those
    # every cycle and probes again only weekly (bot.monitor.cycle). NULL: never probed, so the
    # next cycle probes (every watch of an older database, once).
    db.table("watches").add_column("found_selectors", str, not_null_default="[]")
    db.table("watches").add_column("selectors_probed_at", str)


def _add_report_details(db: sqlite_utils.Database) -> None:
    # What a report's records carry beyond the outcome, for naming senders, the summary's
    # dispositions and From domains, and the parsedmarc-compatible CSV. Lists (one record may
    # carry several DKIM or SPF results) are joined with "," as parsedmarc's CSV joins them.
    # Rows stored before this step keep NULL here, and every reader treats NULL as "not known".
    rows = db.table("agg_rows")
    for column in (
        "disposition",
        "override_reasons",
        "header_from",
        "envelope_from",
        "dkim_domains",
        "dkim_selectors",
        "dkim_results",
        "spf_domains",
        "spf_scopes",
        "spf_results",
    ):
        rows.add_column(column, str)
    reports = db.table("agg_reports")
    for column in ("org_email", "adkim", "aspf", "p", "sp", "pct", "fo"):
        reports.add_column(column, str)


def _create_failure_reports(db: sqlite_utils.Database) -> None:
    # One row per DMARC failure report per team: the verdict computed when it was read and the
    # few headers it needs (redacted), never a body. `digest` (SHA-256 of the report as received)
    # is the dedupe: a report mailed twice or shared after arriving by IMAP is stored once.
    db.table("failure_reports").create(
        {
            "id": int,
            "team_id": str,
            "digest": str,
            "domain": str,
            "from_domain": str,
            "reporter": str,
            "source_ip": str,
            "mail_from": str,
            "day": str,
            "arrived_at": str,
            "dmarc_result": str,
            "causes": str,
            "verdict": str,
            "headers": str,
            "source": str,
            "ingested_at": str,
        },
        pk="id",
        not_null={"team_id", "digest", "domain", "from_domain", "reporter", "day", "arrived_at", "causes"},
    )
    db.table("failure_reports").create_index(["team_id", "digest"], unique=True)
    db.table("failure_reports").create_index(["team_id", "domain", "day"])
    db.table("failure_reports").create_index(["team_id", "from_domain", "day"])


def _create_mailbox_polls(db: sqlite_utils.Database) -> None:
    # How the last polls of each report mailbox went: when reports stop, a failing poll (and its
    # error) is the first cause to name. One row per mailbox (user@host/folder), no secret in it.
    db.table("mailbox_polls").create(
        {"mailbox": str, "last_ok_at": str, "last_error": str, "last_error_at": str},
        pk="mailbox",
    )


def _create_tls_reports(db: sqlite_utils.Database) -> None:
    # SMTP TLS reports (RFC 8460, bot.store.tls_reports): one row per report per team, de-duplicated
    # by its report-id (RFC 8460 §4.4: unique per report); its policies with their session counts;
    # and its failure details, one row each.
    db.table("tls_reports").create(
        {
            "id": int,
            "team_id": str,
            "report_id": str,
            "org_name": str,
            "contact": str,
            "date_begin": str,
            "date_end": str,
            "day": str,
            "source": str,
            "ingested_at": str,
        },
        pk="id",
        not_null={"team_id", "report_id", "org_name", "date_begin", "date_end", "day", "ingested_at"},
    )
    db.table("tls_reports").create_index(["team_id", "report_id"], unique=True)
    db.table("tls_policies").create(
        {
            "id": int,
            "team_id": str,
            "report_pk": int,
            "domain": str,
            "day": str,
            "org_name": str,
            "policy_type": str,
            "policy_strings": str,
            "mx_hosts": str,
            "successful": int,
            "failed": int,
        },
        pk="id",
        not_null={"team_id", "report_pk", "domain", "day", "policy_type", "successful", "failed"},
    )
    db.table("tls_policies").create_index(["team_id", "domain", "day"])
    db.table("tls_failures").create(
        {
            "id": int,
            "team_id": str,
            "report_pk": int,
            "policy_pk": int,
            "domain": str,
            "day": str,
            "result_type": str,
            "sending_ip": str,
            "receiving_mx": str,
            "receiving_ip": str,
            "failure_code": str,
            "sessions": int,
        },
        pk="id",
        not_null={"team_id", "report_pk", "policy_pk", "domain", "day", "result_type", "sessions"},
    )
    db.table("tls_failures").create_index(["team_id", "domain", "day"])


def _create_failure_notices(db: sqlite_utils.Database) -> None:
    # One row per failure group a watch's channel was told about (the group's day, source IP, From
    # domain and causes as `group_key`), written in the same transaction as the outbox alert that
    # tells it: a group is announced once, whichever monitor gets there first, across restarts.
    # `announced_at` spaces the messages about one domain (at most one an hour).
    db.table("failure_notices").create(
        {"team_id": str, "domain": str, "group_key": str, "announced_at": str},
        not_null={"team_id", "domain", "group_key", "announced_at"},
    )
    db.table("failure_notices").create_index(["team_id", "domain", "group_key"], unique=True)
    db.table("failure_notices").create_index(["team_id", "domain", "announced_at"])


def _create_apply_audit(db: sqlite_utils.Database) -> None:
    # A plan's record sets (before and after, in full): what an Apply writes and a Roll back
    # restores. The button only carries digests, so the values are kept with the stored plan.
    db.table("fix_plans").add_column("changes", str)
    # Every proposal, approval, refusal, write, provider error and rollback: one row each, never
    # updated or deleted (the triggers refuse it, whoever asks), so the trail is what happened.
    db.table("apply_audit").create(
        {
            "id": int,
            "team_id": str,
            "domain": str,
            "plan_id": int,
            "action": str,
            "actor": str,
            "approver": str,
            "provider": str,
            "zone": str,
            "records_before": str,
            "records_after": str,
            "result": str,
            "at": str,
        },
        pk="id",
        not_null={"team_id", "domain", "action", "actor", "result", "at"},
    )
    db.table("apply_audit").create_index(["team_id", "domain", "id"])
    db.table("apply_audit").create_index(["plan_id", "id"])
    for event in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER apply_audit_no_{event.lower()} BEFORE {event} ON apply_audit "
            "BEGIN SELECT RAISE(ABORT, 'the apply audit is append-only'); END"
        )


def _add_watch_digests(db: sqlite_utils.Database) -> None:
    # A watch's scheduled report digest: "daily", "weekly" or NULL (off, every older watch). The
    # outbox's unique dedupe key (one per watch and period) is what makes it go out once.
    db.table("watches").add_column("digest", str)
    # The summary of a window groups its rows by one integer (bot.store.row_hashes) read from an
    # index that also holds the day's totals, instead of sorting the rows by sixteen text
    # columns: a month of a million rows is summarised in about a second, not twenty. Rows stored
    # before this step get their hash here, once.
    db.table("agg_rows").add_column("row_hash", int)
    db.conn.create_function(
        "dmarcbot_row_hash", len(ROW_KEY_COLUMNS), lambda *values: row_hash(values), deterministic=True
    )
    db.execute(f"UPDATE agg_rows SET row_hash = dmarcbot_row_hash({', '.join(ROW_KEY_COLUMNS)})")
    db.execute(
        "CREATE INDEX agg_rows_window ON agg_rows (team_id, domain, day, row_hash, messages, dmarc_pass)"
    )


# Append only: a released version is never edited, a change is a new version.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "watches", _create_watches),
    (2, "snapshots", _create_snapshots),
    (3, "alerts outbox", _create_alerts),
    (4, "aggregate reports", _create_report_tables),
    (5, "fix plans", _create_fix_plans),  # the monitor verifies them
    (6, "threaded alerts", _add_alert_threads),  # a plan's "fixed" goes in its thread
    (7, "flattened includes", _create_flattened_includes),  # watched for drift once verified
    (8, "slack deliveries", _create_slack_deliveries),  # retried events and interactions done once
    (9, "button states", _create_button_states),  # large button state kept server-side
    (10, "alert leases", _add_alert_leases),  # exactly once with several monitors
    (11, "selector probes", _add_selector_probes),  # probe weekly, check the known ones each cycle
    (12, "report details", _add_report_details),  # senders named, dispositions, the CSV
    (13, "failure reports", _create_failure_reports),  # explained when read, stored redacted
    (14, "mailbox polls", _create_mailbox_polls),  # a failing poll named when reports stop
    (15, "watch digests", _add_watch_digests),  # a scheduled summary per watch, once per period
    (16, "apply audit", _create_apply_audit),  # plans' full records, and the append-only audit
    (19, "failure notices", _create_failure_notices),  # each new failure group told once
    (20, "tls reports", _create_tls_reports),  # SMTP TLS reports (RFC 8460)
]
