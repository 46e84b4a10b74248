"""PostgreSQL with the machine's own ``pg_dump`` / ``pg_restore``: dump one database from an
exported snapshot (so its row counts are those of the dump), restore into an empty one, wipe one.

Passwords go to the tools through ``PGPASSWORD``, never on their command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError

from hearteye.errors import first_line
from hearteye_platform.backup.errors import BackupError
from hearteye_platform.db.config import is_sqlite, normalise_database_url, redact
from hearteye_platform.db.engine import create_db_engine

# Schemas outside PostgreSQL's own (pg_catalog, information_schema, pg_toast, pg_temp_N).
_SCHEMAS = (
    "SELECT nspname FROM pg_namespace "
    "WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'"
)
_TABLES = (
    "SELECT nspname, relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE relkind IN ('r', 'p') "
    "AND nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2"
)
_RELATIONS = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
    "AND nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'"
)


@dataclass(frozen=True)
class DumpInfo:
    """What one ``pg_dump`` saw: versions, the schema revision and every table's row count."""

    server_version: str
    pg_dump_version: str
    alembic_revision: str | None
    tables: dict[str, int]


def postgres_url(url: str, label: str) -> str:
    """``url`` normalised (psycopg2 driver), or a ``BackupError`` if it is not PostgreSQL."""
    if is_sqlite(url):
        raise BackupError(
            f"the {label} database is sqlite ({redact(url)}): ml backup covers the PostgreSQL "
            "stack; an embedded store is backed up by copying HEARTEYE_HOME while nothing runs"
        )
    return normalise_database_url(url)


def tool(name: str) -> tuple[str, int, str]:
    """The path, major version and version line of a PostgreSQL client tool, or a ``BackupError``."""
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} not found on PATH: install PostgreSQL's client tools "
            "(Debian: apt-get install postgresql-client)"
        )
    line = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", line)
    if match is None:
        raise BackupError(f"cannot read the version of {path}: {line.strip()!r}")
    return path, int(match.group(1)), line.strip()


def _libpq_env(url: str) -> dict[str, str]:
    """The environment that points libpq (pg_dump, pg_restore) at ``url``."""
    parsed = make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    values = {
        "PGHOST": parsed.host,
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password,
        "PGDATABASE": parsed.database,
        "PGCONNECT_TIMEOUT": "10",
    }
    env.update({k: v for k, v in values.items() if v})
    return env


@contextmanager
def _connected(url: str, label: str) -> Iterator[Connection]:
    engine = create_db_engine(url, pooled=False, connect_timeout_s=10)
    try:
        with engine.connect() as connection:
            yield connection
    except DBAPIError as exc:
        raise BackupError(f"the {label} database {redact(url)}: {first_line(exc)}") from exc
    finally:
        engine.dispose()


def _major(server_version: str) -> int:
    return int(server_version.split(".")[0].split()[0])


def _tables(connection: Connection) -> dict[str, int]:
    names = connection.execute(text(_TABLES)).all()
    quote = connection.dialect.identifier_preparer.quote
    counts = {}
    for schema, table in names:
        key = table if schema == "public" else f"{schema}.{table}"
        counts[key] = connection.execute(
            text(f"SELECT count(*) FROM {quote(schema)}.{quote(table)}")  # noqa: S608
        ).scalar_one()
    return counts


def _revision(connection: Connection, tables: dict[str, int]) -> str | None:
    if "alembic_version" not in tables:
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def dump(url: str, label: str, dest: Path) -> DumpInfo:
    """``pg_dump --format=custom`` of the database at ``url`` into ``dest``.

    The dump reads the snapshot of an open REPEATABLE READ transaction (``--snapshot``), and the
    row counts and schema revision recorded with it are read in that same transaction.
    """
    pg_dump, pg_dump_major, pg_dump_line = tool("pg_dump")
    with _connected(url, label) as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            server = str(connection.execute(text("SHOW server_version")).scalar_one())
            if pg_dump_major < _major(server):
                raise BackupError(
                    f"{pg_dump} is version {pg_dump_major}, the {label} database's server is "
                    f"{server}: pg_dump must be at least the server's major version"
                )
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            tables = _tables(connection)
            revision = _revision(connection, tables)
            _run(
                [pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--file={dest}"],
                url,
                f"dumping the {label} database {redact(url)}",
            )
    return DumpInfo(server, pg_dump_line, revision, tables)


def relation_count(url: str, label: str) -> int:
    """How many tables, views and sequences the database holds outside PostgreSQL's schemas."""
    with _connected(url, label) as connection:
        return int(connection.execute(text(_RELATIONS)).scalar_one())


def table_counts(url: str, label: str) -> dict[str, int]:
    """Every table's row count (to compare a restored database with its manifest)."""
    with _connected(url, label) as connection:
        return _tables(connection)


def wipe(url: str, label: str) -> None:
    """Drop every schema but PostgreSQL's, then recreate ``public`` as a new database has it."""
    with _connected(url, label) as connection, connection.begin():
        schemas = connection.execute(text(_SCHEMAS)).scalars()
        quote = connection.dialect.identifier_preparer.quote
        for schema in list(schemas):
            connection.execute(text(f"DROP SCHEMA {quote(schema)} CASCADE"))
        connection.execute(text("CREATE SCHEMA public AUTHORIZATION pg_database_owner"))
        connection.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))


def check_restorable(url: str, label: str, dumped_with: str) -> None:
    """Refuse when this machine's ``pg_restore`` is older than the ``pg_dump`` that wrote the
    archive, or older than the target server."""
    pg_restore, restore_major, _ = tool("pg_restore")
    match = re.search(r"(\d+)", dumped_with)
    dump_major = int(match.group(1)) if match else 0
    if restore_major < dump_major:
        raise BackupError(
            f"{pg_restore} is version {restore_major}; the {label} dump was written by "
            f"{dumped_with}: use a pg_restore at least as new"
        )
    with _connected(url, label) as connection:
        server = str(connection.execute(text("SHOW server_version")).scalar_one())
    if restore_major < _major(server):
        raise BackupError(
            f"{pg_restore} is version {restore_major}, the {label} database's server is {server}"
        )


def restore(url: str, label: str, archive: Path) -> None:
    """``pg_restore`` into the (empty) database at ``url``, in one transaction: all or nothing.

    Objects become the restoring role's (``--no-owner``) and no grants are replayed
    (``--no-privileges``): the role in ``url`` is the database's owner, and the platform's
    application-role grants are re-applied by its migration step afterwards.
    """
    pg_restore, _, _ = tool("pg_restore")
    database = make_url(url).database or ""
    _run(
        [
            pg_restore,
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={database}",
            str(archive),
        ],
        url,
        f"restoring the {label} database {redact(url)}",
    )


def _run(command: list[str], url: str, doing: str) -> None:
    result = subprocess.run(
        command, env=_libpq_env(url), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{doing} failed: {detail[0] if detail else 'no output'}")


def describe(info: DumpInfo) -> dict[str, Any]:
    """The manifest's view of a dump."""
    return {
        "server_version": info.server_version,
        "pg_dump_version": info.pg_dump_version,
        "alembic_revision": info.alembic_revision,
        "tables": info.tables,
    }
