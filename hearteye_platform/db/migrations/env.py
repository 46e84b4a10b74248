"""Alembic environment: runs on the connection ``hearteye_platform.db.migrate`` hands over (lock held).

There is no alembic.ini: ``hearteye_platform.db.migrate.alembic_config`` builds the configuration, and the
``alembic`` command line is not used (``ml db upgrade`` is).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from hearteye_platform.db.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run migrations through hearteye_platform.db.upgrade_database (or `ml db upgrade`), "
        "not the alembic command line"
    )
if context.is_offline_mode():  # pragma: no cover - SQL generation is not offered
    raise RuntimeError("offline (SQL script) migrations are not supported")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
