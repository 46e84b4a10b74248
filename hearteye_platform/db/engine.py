"""Engines and sessions for the platform database: one pool per process, sized by settings.

Create them after Gunicorn forks (in the app lifespan), never at import: a pool must not be
shared across processes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from hearteye.errors import first_line
from hearteye_platform.db.config import is_sqlite, normalise_database_url, redact, sqlite_path
from hearteye_platform.db.errors import DatabaseUnavailableError

#: Seconds a sqlite writer waits for another process's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0


def create_db_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    connect_timeout_s: int = 5,
    pooled: bool = True,
) -> Engine:
    """An engine for ``url`` (normalised first). ``pooled=False`` for one-shot jobs (migrations).

    PostgreSQL connections are checked before use (``pool_pre_ping``) so a restarted server does
    not surface as a failed request, and connecting gives up after ``connect_timeout_s``.
    A sqlite file gets its directory created, WAL journaling and a busy timeout, so several
    worker processes can share it.
    """
    url = normalise_database_url(url)
    pool_args: dict[str, Any] = (
        {"pool_size": pool_size, "max_overflow": max_overflow, "pool_pre_ping": True}
        if pooled
        else {"poolclass": NullPool}
    )
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **pool_args)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    return create_engine(
        url,
        connect_args={"connect_timeout": connect_timeout_s, "application_name": "hearteye"},
        pool_recycle=1800,
        **pool_args,
    )


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the database to WAL (a no-op once it is).

    While another connection holds a write lock, SQLite refuses the switch at once with
    "database is locked", without its busy timeout (waiting could deadlock): several workers
    starting together on a new database file race for it. So retry, as the busy timeout would.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.1)


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; use ``with sessions.begin() as session:`` per unit of work."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work (committed on success); "cannot reach the server" becomes
    ``DatabaseUnavailableError`` (503 for the API), other database errors pass through."""
    try:
        with sessions.begin() as session:
            yield session
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailableError(
                f"platform database unavailable: {first_line(exc)}"
            ) from exc
        raise


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database exception means "cannot reach the server" rather than "bad statement"."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def unavailable_error(engine: Engine, exc: BaseException) -> DatabaseUnavailableError:
    """A typed error naming the (redacted) database for a connection failure."""
    return DatabaseUnavailableError(
        f"platform database {redact(engine.url)} unavailable: {first_line(exc)}"
    )


def has_table(engine: Engine, name: str) -> bool:
    """Whether ``name`` exists (used by schema checks)."""
    return inspect(engine).has_table(name)
