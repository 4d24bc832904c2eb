"""Every store over one database file, opened once by each process entry point and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.apply_audit import ApplyStore
from bot.store.database import Database, open_database
from bot.store.failures import FailureStore
from bot.store.fix_plans import FixPlanStore
from bot.store.outbox import AlertOutbox
from bot.store.reports import ReportStore
from bot.store.slack_state import SlackStateStore
from bot.store.tls_reports import TlsReportStore
from bot.store.watches import WatchStore


@dataclass(frozen=True, kw_only=True)
class Stores:
    """One store per concern, all over the same database (so they share each thread's connection)."""

    database: Database
    watches: WatchStore
    outbox: AlertOutbox
    fix_plans: FixPlanStore
    reports: ReportStore
    failures: FailureStore
    slack_state: SlackStateStore
    tls_reports: TlsReportStore
    applies: ApplyStore

    @classmethod
    def over(cls, database: Database) -> Stores:
        """The stores over an opened (migrated) database."""
        return cls(
            database=database,
            watches=WatchStore(database),
            outbox=AlertOutbox(database),
            fix_plans=FixPlanStore(database),
            reports=ReportStore(database),
            failures=FailureStore(database),
            slack_state=SlackStateStore(database),
            tls_reports=TlsReportStore(database),
            applies=ApplyStore(database),
        )

    def close(self) -> None:
        """Close the database's connections."""
        self.database.close()


def open_stores(path: str) -> Stores:
    """Migrate the file at `path` (once, here: call this once per process), then the stores over it."""
    return Stores.over(open_database(path))
