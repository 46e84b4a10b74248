"""Which platform database to use, as whom: URL normalisation and the owner/app split.

Two URLs, one database:

* ``HEARTEYE_DATABASE_URL`` — the **application role** every process uses at runtime. In
  PostgreSQL it may read and insert audit records, never update or delete them.
* ``HEARTEYE_DATABASE_OWNER_URL`` — the **schema owner**, used only to run migrations
  (``ml db upgrade`` and the upgrade at start-up). Defaults to the runtime URL.

sqlite has no roles: one URL, and an owner URL that differs from it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from hearteye.errors import ConfigurationError
from hearteye.settings import HearteyeSettings

#: The only PostgreSQL driver installed with HeartEye (SQLAlchemy 2.1 defaults to psycopg 3).
POSTGRES_DRIVER = "postgresql+psycopg2"


def normalise_database_url(url: str) -> str:
    """Return ``url`` with an explicit, installed driver, or raise ``ConfigurationError``.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg2://``; ``sqlite://`` is
    kept; other drivers (psycopg 3, asyncpg, pg8000) and other databases are refused.
    """
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise ConfigurationError(f"database URL {url!r} is not a valid SQLAlchemy URL") from exc
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name() if "+" in parsed.drivername else None
    if backend in ("postgresql", "postgres"):
        if driver not in (None, "psycopg2"):
            raise ConfigurationError(
                f"database URL uses the driver {parsed.drivername!r}, which is not installed: "
                f"use {POSTGRES_DRIVER}://user:password@host:5432/dbname"
            )
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
        if not parsed.database:
            raise ConfigurationError(
                f"database URL {redact(parsed)} names no database: add /dbname at the end"
            )
    elif backend == "sqlite":
        if driver not in (None, "pysqlite"):
            raise ConfigurationError(
                f"database URL uses the driver {parsed.drivername!r}: use sqlite:///path/to/file.db"
            )
    else:
        raise ConfigurationError(
            f"database URL {redact(parsed)}: only sqlite:/// and {POSTGRES_DRIVER}:// are supported"
        )
    return parsed.render_as_string(hide_password=False)


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    """Whether ``url`` points at sqlite."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite URL; ``None`` for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def default_database_url(home: Path) -> str:
    """The embedded default: a sqlite file under ``HEARTEYE_HOME``."""
    return f"sqlite:///{(home / 'hearteye.db').resolve()}"


@dataclass(frozen=True)
class DatabaseConfig:
    """Resolved platform-database settings for one process."""

    #: Runtime URL (the application role).
    url: str
    #: Migration URL (the schema owner); equals ``url`` for sqlite and single-role setups.
    owner_url: str
    #: PostgreSQL role that migrations grant runtime rights to; ``None``: no grants.
    app_role: str | None
    pool_size: int = 5
    max_overflow: int = 5

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)


def database_config(settings: HearteyeSettings) -> DatabaseConfig:
    """Resolve the runtime URL, the owner URL and the application role from settings."""
    url = normalise_database_url(settings.database_url or default_database_url(settings.home))
    owner_url = normalise_database_url(settings.database_owner_url or url)
    app_role = settings.database_app_role
    if is_sqlite(url):
        if owner_url != url:
            raise ConfigurationError(
                "HEARTEYE_DATABASE_OWNER_URL differs from HEARTEYE_DATABASE_URL, but sqlite has "
                "no roles: leave the owner URL unset"
            )
        if app_role:
            raise ConfigurationError("HEARTEYE_DATABASE_APP_ROLE applies to PostgreSQL only")
        return DatabaseConfig(
            url, owner_url, None, settings.database_pool_size, settings.database_max_overflow
        )
    runtime, owner = make_url(url), make_url(owner_url)
    if is_sqlite(owner_url):
        raise ConfigurationError(
            "HEARTEYE_DATABASE_OWNER_URL is sqlite but HEARTEYE_DATABASE_URL is PostgreSQL: "
            "both must name the same database"
        )
    if (runtime.host, runtime.port, runtime.database) != (owner.host, owner.port, owner.database):
        raise ConfigurationError(
            f"the owner URL ({redact(owner)}) and the runtime URL ({redact(runtime)}) must name "
            "the same host, port and database"
        )
    if app_role is None and runtime.username and runtime.username != owner.username:
        app_role = runtime.username
    if app_role is not None:
        _check_role_name(app_role)
    return DatabaseConfig(
        url, owner_url, app_role, settings.database_pool_size, settings.database_max_overflow
    )


def _check_role_name(role: str) -> None:
    """Role names go into GRANT statements as quoted identifiers; keep them plain."""
    if not role or len(role) > 63 or not all(c.isalnum() or c in "_-" for c in role):
        raise ConfigurationError(
            f"database app role {role!r}: use 1-63 letters, digits, '_' or '-'"
        )
