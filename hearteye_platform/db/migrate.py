"""Schema migrations: ``upgrade_database`` at start-up and from ``ml db upgrade``.

Safe when several Gunicorn workers start at once: PostgreSQL takes a session advisory lock around
the upgrade (the first worker migrates, the others wait, then find the schema at head); sqlite
takes a file lock next to the database file. After the upgrade the application role's rights are
converged (revoke all, grant exactly what it needs), so they are right even when the role was
created or renamed after the migration that first granted them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock, Timeout
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, ProgrammingError

from hearteye.errors import first_line
from hearteye_platform.db.config import is_sqlite, normalise_database_url, redact, sqlite_path
from hearteye_platform.db.engine import create_db_engine, is_unavailable, unavailable_error
from hearteye_platform.db.errors import MigrationError, SchemaOutOfDateError
from hearteye_platform.db.models import (
    ANALYSES_TABLE,
    AUDIT_TABLE,
    RECORDINGS_TABLE,
    REVOKED_TOKENS_TABLE,
    SIGNIN_THROTTLE_TABLE,
    USERS_TABLE,
)

logger = logging.getLogger(__name__)

#: Package path of the migration scripts (installed with the package, no alembic.ini).
SCRIPT_LOCATION = "hearteye_platform.db:migrations"
#: Session advisory-lock key serialising migrations ("HEARTEYE" as a 64-bit integer).
ADVISORY_LOCK_KEY = int.from_bytes(b"HEARTEYE", "big")
#: SQLSTATE of "permission denied".
INSUFFICIENT_PRIVILEGE = "42501"
#: What the application role may do, table by table. Nothing else (no UPDATE/DELETE on audit).
APP_PRIVILEGES: dict[str, tuple[str, ...]] = {
    AUDIT_TABLE: ("SELECT", "INSERT"),
    USERS_TABLE: ("SELECT", "INSERT", "UPDATE"),
    RECORDINGS_TABLE: ("SELECT", "INSERT", "UPDATE", "DELETE"),
    ANALYSES_TABLE: ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # Sign-out inserts; expired revocations are pruned.
    REVOKED_TOKENS_TABLE: ("SELECT", "INSERT", "DELETE"),
    # Failed sign-ins are counted, locks set and cleared; expired rows are pruned.
    SIGNIN_THROTTLE_TABLE: ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "alembic_version": ("SELECT",),
}


@dataclass(frozen=True)
class UpgradeResult:
    """What ``upgrade_database`` did."""

    url: str  # redacted
    from_revision: str | None
    to_revision: str | None

    @property
    def applied(self) -> bool:
        """Whether this call ran at least one migration."""
        return self.from_revision != self.to_revision


def alembic_config(connection: Connection | None = None, app_role: str | None = None) -> Config:
    """An Alembic configuration pointing at the packaged scripts, bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["app_role"] = app_role
    return config


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    revision = MigrationContext.configure(connection).get_current_revision()
    connection.commit()
    return revision


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` if it was never migrated."""
    engine = create_db_engine(url, pooled=False)
    try:
        with engine.connect() as connection:
            return _current(connection)
    except DBAPIError as exc:
        if is_unavailable(exc) and not is_sqlite(str(engine.url)):
            raise unavailable_error(engine, exc) from exc
        raise
    finally:
        engine.dispose()


def check_schema(engine: Engine) -> None:
    """Raise ``SchemaOutOfDateError`` unless the database behind ``engine`` is at head."""
    with engine.connect() as connection:
        current = _current(connection)
    head = head_revision()
    if current == head:
        return
    if current is None and _is_empty(engine):
        raise SchemaOutOfDateError(
            f"platform database {redact(engine.url)} is empty: run `ml db upgrade` as the schema "
            "owner (HEARTEYE_DATABASE_OWNER_URL), or start the serving tier, which creates it"
        )
    raise SchemaOutOfDateError(
        f"platform database {redact(engine.url)} is at revision {current or 'none'}, "
        f"this code needs {head}: run `ml db upgrade`"
    )


def ensure_schema(engine: Engine) -> None:
    """Make the database behind ``engine`` usable by this code, or raise ``SchemaOutOfDateError``.

    An embedded (sqlite file) database that holds nothing yet, as on a new ``HEARTEYE_HOME``, is
    created at head, as MLflow creates a new store. A database that holds anything is only
    checked: one at another revision needs an explicit ``ml db upgrade``. An empty PostgreSQL
    database is refused too: the runtime URL is the least-privileged application role, which may
    not create tables, and the schema must be created by its owner (who also grants that role
    its rights), never implicitly by whichever process touches it first.
    """
    url = engine.url.render_as_string(hide_password=False)
    if is_sqlite(url) and sqlite_path(url) is not None and _is_empty(engine):
        upgrade_database(url)
    check_schema(engine)


def _is_empty(engine: Engine) -> bool:
    """Whether the database holds no table at all (never migrated, nothing else in it)."""
    return not inspect(engine).get_table_names()


def upgrade_database(
    url: str, *, app_role: str | None = None, lock_timeout_s: float = 120.0
) -> UpgradeResult:
    """Bring the database at ``url`` (the owner's URL) to head, once, whoever else is trying.

    ``app_role`` (PostgreSQL): the runtime role to grant ``APP_PRIVILEGES`` to. Raises
    ``DatabaseUnavailableError`` when the server cannot be reached and ``MigrationError`` when
    the lock is not obtained within ``lock_timeout_s`` or the role lacks the rights to migrate.
    """
    url = normalise_database_url(url)
    engine = create_db_engine(url, pooled=False)
    try:
        with engine.connect() as connection, _migration_lock(connection, url, lock_timeout_s):
            before = _current(connection)
            if app_role and connection.dialect.name == "postgresql":
                _check_app_role(connection, app_role)
            try:
                command.upgrade(alembic_config(connection, app_role), "head")
                connection.commit()
            except ProgrammingError as exc:
                connection.rollback()
                hint = (
                    "; migrations need the schema owner's URL (HEARTEYE_DATABASE_OWNER_URL)"
                    if getattr(exc.orig, "pgcode", None) == INSUFFICIENT_PRIVILEGE
                    else ""
                )
                raise MigrationError(
                    f"migrating {redact(url)} from {before or 'empty'} failed: "
                    f"{first_line(exc)}{hint}"
                ) from exc
            after = _current(connection)
            if app_role and connection.dialect.name == "postgresql":
                apply_app_grants(connection, app_role)
    except DBAPIError as exc:
        if is_unavailable(exc) and not is_sqlite(url):
            raise unavailable_error(engine, exc) from exc
        raise
    finally:
        engine.dispose()
    result = UpgradeResult(redact(url), before, after)
    if result.applied:
        logger.info("platform database %s upgraded %s -> %s", result.url, before, after)
    return result


@contextmanager
def _migration_lock(connection: Connection, url: str, timeout_s: float) -> Iterator[None]:
    if connection.dialect.name == "postgresql":
        deadline = time.monotonic() + timeout_s
        while not connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        ).scalar_one():
            connection.commit()
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"another process has held the migration lock on {redact(url)} for "
                    f"{timeout_s:.0f} s; is a migration stuck?"
                )
            time.sleep(0.1)
        connection.commit()
        try:
            yield
        finally:
            if not connection.invalidated:
                connection.rollback()
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
                connection.commit()
        return
    path = sqlite_path(url)
    if path is None:  # in-memory: one connection, nobody to race with
        yield
        return
    lock = FileLock(str(path) + ".migrate.lock")
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout as exc:
        raise MigrationError(
            f"timed out after {timeout_s:.0f} s waiting for {lock.lock_file}"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _check_app_role(connection: Connection, role: str) -> None:
    row = connection.execute(
        text("SELECT rolsuper, current_user FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).one_or_none()
    if row is None:
        raise MigrationError(
            f"application role {role!r} does not exist: create it first, e.g. "
            f"CREATE ROLE \"{role}\" LOGIN PASSWORD '...'"
        )
    if role == row.current_user:
        raise MigrationError(
            f"the application role {role!r} is the schema owner: use a separate role for "
            "HEARTEYE_DATABASE_URL so the audit trail stays append-only"
        )
    if row.rolsuper:
        logger.warning("application role %r is a superuser: table rights do not bind it", role)
    connection.commit()


def apply_app_grants(connection: Connection, role: str) -> None:
    """Give ``role`` exactly ``APP_PRIVILEGES`` (revoke everything else) and commit."""
    _check_app_role(connection, role)
    quoted = connection.dialect.identifier_preparer.quote(role)
    for table, privileges in APP_PRIVILEGES.items():
        connection.execute(text(f"REVOKE ALL ON {table} FROM {quoted}"))
        connection.execute(text(f"GRANT {', '.join(privileges)} ON {table} TO {quoted}"))
    connection.commit()
