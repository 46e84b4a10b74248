"""Project settings shared by every HeartEye process (CLI, training, serving).

MLflow's own variables (``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_S3_ENDPOINT_URL``,
``AWS_*``) are read by MLflow itself and are deliberately not duplicated here.
Serving extends this class with its own fields (``serving.settings.ServingSettings``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HearteyeSettings(BaseSettings):
    """Settings read from ``HEARTEYE_*`` environment variables (and a ``.env`` file if present)."""

    model_config = SettingsConfigDict(
        env_prefix="HEARTEYE_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(
        default=Path(".hearteye"),
        description="Local state: dataset cache, the embedded MLflow store, the default database.",
    )
    mitdb_dir: Path | None = Field(
        default=None,
        description="Directory holding the MIT-BIH Arrhythmia Database records "
        "(NNN.hea/.dat/.atr). Default: <home>/data/mitdb, where `ml data fetch` downloads it.",
    )
    env: Literal["development", "production"] = Field(
        default="development",
        description="Deployment environment; `production` refuses placeholder secrets.",
    )
    database_url: str | None = Field(
        default=None,
        description="Platform database (users, prediction audit trail; not MLflow's) that "
        "processes use at runtime, as the application role. `sqlite:///path` or "
        "`postgresql+psycopg2://user:pass@host/db` (`postgresql://` is read as psycopg2). "
        "Default: sqlite:///<home>/hearteye.db.",
    )
    database_owner_url: str | None = Field(
        default=None,
        description="PostgreSQL only: the schema owner's URL, used for migrations "
        "(`ml db upgrade`, start-up upgrade); the same database as `database_url`. "
        "Default: `database_url`.",
    )
    database_app_role: str | None = Field(
        default=None,
        description="PostgreSQL only: the role migrations grant runtime rights to (INSERT and "
        "SELECT on the audit trail, no UPDATE/DELETE). Default: the user in `database_url` "
        "when it differs from the owner's.",
    )
    database_pool_size: int = Field(
        default=5,
        ge=1,
        description="Connections each process (each Gunicorn worker) keeps open to the platform "
        "database; workers × (pool size + overflow) must stay under max_connections.",
    )
    database_max_overflow: int = Field(
        default=5,
        ge=0,
        description="Extra connections a process may open beyond the pool under a burst.",
    )

    @property
    def mitdb_path(self) -> Path:
        """The effective MIT-BIH directory."""
        return self.mitdb_dir if self.mitdb_dir is not None else self.home / "data" / "mitdb"

    @property
    def cache_dir(self) -> Path:
        """Where built datasets are cached, keyed by their digest."""
        return self.home / "cache"

    @property
    def audit_spool_dir(self) -> Path:
        """Where audit records wait, fsynced, while the platform database is unreachable."""
        return self.home / "audit-spool"


@lru_cache(maxsize=1)
def get_settings() -> HearteyeSettings:
    """The process-wide settings, read once on first use (never at import)."""
    return HearteyeSettings()
