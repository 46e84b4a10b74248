"""The platform database (users, prediction audit trail): configuration, engines, schema.

Typical start-up (serving lifespan, after the fork)::

    config = database_config(settings)
    upgrade_database(config.owner_url, app_role=config.app_role)
    engine = create_db_engine(config.url, pool_size=config.pool_size,
                              max_overflow=config.max_overflow)
    sessions = create_session_factory(engine)
"""

from hearteye_platform.db.config import (
    DatabaseConfig,
    database_config,
    default_database_url,
    normalise_database_url,
    redact,
)
from hearteye_platform.db.engine import create_db_engine, create_session_factory
from hearteye_platform.db.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    MigrationError,
    SchemaOutOfDateError,
)
from hearteye_platform.db.migrate import (
    UpgradeResult,
    check_schema,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade_database,
)

__all__ = [
    "DatabaseConfig",
    "DatabaseError",
    "DatabaseUnavailableError",
    "MigrationError",
    "SchemaOutOfDateError",
    "UpgradeResult",
    "check_schema",
    "create_db_engine",
    "create_session_factory",
    "current_revision",
    "database_config",
    "default_database_url",
    "ensure_schema",
    "head_revision",
    "normalise_database_url",
    "redact",
    "upgrade_database",
]
