"""The SQLite database file every store works on: opening it, its transactions, its migrations.

REFERENCE.md "Storage": WAL so readers never block the writer, a busy timeout so a second writer
waits instead of failing, `BEGIN IMMEDIATE` for every read-then-write (a deferred transaction that
later wants to write fails with "database is locked" when another writer got there first), and one
connection per thread (a sqlite3 connection may not cross threads). Migrations run once per
process, at start-up, before listeners and the scheduler: each entry point calls `open_database`
(through bot.store.stores.open_stores) once and passes the result down.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import sqlite_utils

from bot.store.migrations import MIGRATIONS
from handlers.errors import ConfigurationError

BUSY_TIMEOUT_SECONDS = 10.0

Migration = tuple[int, str, Callable[[sqlite_utils.Database], None]]


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: every stored time is UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A moment as stored: ISO 8601 in UTC, to the second."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _connect(path: str, check_same_thread: bool = True) -> sqlite_utils.Database:
    # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE), sqlite3 must not.
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=check_same_thread
    )
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    return sqlite_utils.Database(conn)


def _enable_wal(db: sqlite_utils.Database) -> None:
    """WAL is a property of the file: set once, every later connection uses it. Switching needs the
    file to itself and SQLite does not wait for that (no busy handler), so two processes starting
    on a new file retry here instead of failing."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def apply_migrations(path: str, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Bring the database file at `path` to the latest schema (or to the last of `migrations`);
    returns the versions applied."""
    db = _connect(path)
    try:
        _enable_wal(db)
        db.execute("BEGIN IMMEDIATE")  # two processes starting at once: one migrates, one waits
        try:
            if "migrations" not in db.table_names():
                db.table("migrations").create({"version": int, "name": str, "applied_at": str}, pk="version")
            done = {row["version"]: row["name"] for row in db.table("migrations").rows}
            applied = []
            for version, name, migrate in migrations:
                if done.get(version) == name:
                    continue
                # A version recorded under another name comes from a release that numbered its
                # steps differently (alert leases were 8 before slack deliveries and button states
                # took 8 and 9): the step is run, and such steps find what is already there.
                migrate(db)
                db.table("migrations").insert(
                    {"version": version, "name": name, "applied_at": iso(utcnow())}, replace=True
                )
                applied.append(version)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return applied
    finally:
        db.close()


class Database:
    """The database file at `path`: a connection per thread, and transactions on it. Every store
    (watches, the outbox, fix plans, reports) takes one of these, so stores built over the same
    Database share each thread's connection and can write in one transaction together."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite_utils.Database] = []
        self._all_lock = threading.Lock()
        self._reader: sqlite_utils.Database | None = None
        self._reader_lock = threading.Lock()

    @property
    def connection(self) -> sqlite_utils.Database:
        """This thread's connection (a sqlite3 connection must not be shared across threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = _connect(self.path)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    @contextlib.contextmanager
    def shared_reader(self) -> Iterator[sqlite_utils.Database]:
        """One connection for short reads from threads that come and go, such as the HTTP server's
        thread per request: a connection of their own would be opened for one query and kept until
        close(). The lock hands it to one thread at a time; a read in WAL mode never waits for a
        writer, so holding it is brief. Never write through it."""
        with self._reader_lock:
            if self._reader is None:
                self._reader = _connect(self.path, check_same_thread=False)
            yield self._reader

    def close(self) -> None:
        """Close this thread's connection, and the others' when their threads are gone."""
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._all_lock:
            for db in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):
                    db.close()
            self._all.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A read-then-write transaction: BEGIN IMMEDIATE takes the write lock up front. Every
        statement on this thread's connection until the block ends is part of it, whichever
        store issues it. Nested in another, it is a savepoint of the outer one."""
        db = self.connection
        if db.conn.in_transaction:
            # Inside another write on this thread (the monitor writes a batch of checks in one
            # commit): a savepoint, so this block still succeeds or fails as a whole.
            db.execute("SAVEPOINT nested_write")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK TO nested_write")
                db.execute("RELEASE nested_write")
                raise
            db.execute("RELEASE nested_write")
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class DatabaseUnavailable(ConfigurationError):
    """DMARCBOT_DB cannot be opened or written; the message names the path and what to do."""


# What SQLite says when the file or its folder cannot be used: the first statement on a new
# connection reports it (sqlite3.connect itself never fails for these).
_UNUSABLE_FILE = ("unable to open database file", "readonly database", "disk i/o error", "not a database")


def open_database(path: str) -> Database:
    """Apply any pending migrations to the file at `path`, then return the database over it.
    A file that cannot be opened or written raises DatabaseUnavailable naming it and what to do."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DatabaseUnavailable(
            f"DMARCBOT_DB is {path}, but the folder {folder} does not exist: create it "
            f"(mkdir -p {folder}) or set DMARCBOT_DB to a file in a folder that exists"
        )
    try:
        apply_migrations(path)
    except sqlite3.DatabaseError as error:
        if not any(phrase in str(error).lower() for phrase in _UNUSABLE_FILE):
            raise
        raise DatabaseUnavailable(
            f"DMARCBOT_DB is {path}, and SQLite cannot use it ({error}): the file must be an SQLite "
            f"database, and it and its folder {folder} writable by this user (SQLite writes the "
            "-wal and -shm files beside it); change the permissions or set DMARCBOT_DB to a file "
            "in a folder this user can write"
        ) from None
    return Database(path)
