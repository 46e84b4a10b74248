"""Project settings shared by every HeartEye process (CLI, training, serving).

MLflow's own variables (``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_S3_ENDPOINT_URL``,
``AWS_*``) are read by MLflow itself and are deliberately not duplicated here.
Serving extends this class with its own fields (``serving.settings.ServingSettings``).
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
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
    gate_min_s_sensitivity: float = Field(
        default=0.76,
        ge=0.0,
        le=1.0,
        description="Promotion gate floor: a candidate's DS2 S sensitivity must exceed this "
        "(fraction). Default: de Chazal et al. 2004, 76 %.",
    )
    gate_min_s_ppv: float = Field(
        default=0.38,
        ge=0.0,
        le=1.0,
        description="Promotion gate floor: DS2 S positive predictivity (+P) must exceed this. "
        "Default: de Chazal et al. 2004, 38 %.",
    )
    gate_min_v_sensitivity: float = Field(
        default=0.77,
        ge=0.0,
        le=1.0,
        description="Promotion gate floor: DS2 V sensitivity must exceed this. "
        "Default: de Chazal et al. 2004, 77 %.",
    )
    gate_min_v_ppv: float = Field(
        default=0.82,
        ge=0.0,
        le=1.0,
        description="Promotion gate floor: DS2 V positive predictivity (+P) must exceed this. "
        "Default: de Chazal et al. 2004, 82 %.",
    )
    gate_regression_tolerance: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="Promotion gate: how far (absolute) a candidate may fall below the current "
        "production version on DS2 S/V sensitivity, S/V +P and macro-F1.",
    )
    gate_required_evaluations: str = Field(
        default="",
        description="Promotion gate: comma-separated data set digests (their first 16 hex digits "
        "or more, as `ml evaluate` prints them) on which a candidate must have a logged "
        "evaluation (`ml evaluate MODEL VERSION --records DIR --log`). Empty: none required.",
    )
    gate_min_evaluation_macro_f1: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Promotion gate: the macro-F1 (N, S, V, F) a candidate must reach on each "
        "required evaluation.",
    )
    promotion_lock_lease_s: float = Field(
        default=60.0,
        gt=0.0,
        description="A promotion holding the registry lock longer than this without finishing is "
        "taken as abandoned (crashed) and another promotion may take over.",
    )
    promotion_lock_timeout_s: float = Field(
        default=300.0,
        gt=0.0,
        description="How long `ml promote` / `ml rollback` wait for concurrent promotions of the "
        "same model before giving up.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret of the MLflow registry webhook (>= 32 bytes): `ml webhook "
        "register` gives it to MLflow, and serving checks every delivery's HMAC signature with it. "
        "Unset: serving refuses webhooks and finds promotions by polling alone. Production "
        "refuses a placeholder.",
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

    @field_validator("gate_required_evaluations")
    @classmethod
    def _digest_ids(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if len(item) < 16 or any(c not in "0123456789abcdefABCDEF" for c in item):
                raise ValueError(f"{item!r} is not a data set digest (16 or more hex digits)")
        return value

    def production_secrets(self) -> dict[str, str | None]:
        """The secrets production must not start with, by where they are set (None: unset):
        here the passwords in the platform database's URLs; subclasses add theirs. Serving and
        the deployment check refuse placeholders among them
        (``hearteye_platform.deployment.refuse_placeholder_secrets``)."""
        passwords = {
            f"the password in HEARTEYE_{name.upper()}": url_password(url)
            for name, url in (
                ("database_url", self.database_url),
                ("database_owner_url", self.database_owner_url),
            )
        }
        passwords["HEARTEYE_WEBHOOK_SECRET"] = self.webhook_secret_value()
        return {name: value for name, value in passwords.items() if value is not None}

    @property
    def required_evaluations(self) -> tuple[str, ...]:
        """The digest ids (first 16 hex digits) of the data sets the gate requires."""
        parts = (part.strip().lower() for part in self.gate_required_evaluations.split(","))
        return tuple(part[:16] for part in parts if part)

    def webhook_secret_value(self) -> str | None:
        return self.webhook_secret.get_secret_value() if self.webhook_secret is not None else None

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


def declared_variables(cls: type[BaseSettings]) -> dict[str, tuple[str, FieldInfo]]:
    """The environment variables a settings class declares itself (not those it inherits), each
    with its field: ``{"HEARTEYE_WORKERS": ("workers", FieldInfo), "WEB_CONCURRENCY": ...}``."""
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    found: dict[str, tuple[str, FieldInfo]] = {}
    for name in inspect.get_annotations(cls):
        field = cls.model_fields.get(name)
        if field is None:
            continue
        alias = field.validation_alias
        if isinstance(alias, str):
            names = [alias]
        elif isinstance(alias, AliasChoices):
            names = [str(choice) for choice in alias.choices]
        else:
            names = [f"{prefix}{name.upper()}"]
        found.update({env_name.upper(): (name, field) for env_name in names})
    return found


def url_password(url: str | None) -> str | None:
    """The (decoded) password in a database URL, None when it has none."""
    if not url or "://" not in url:
        return None
    password = urlsplit(url).password
    return unquote(password) if password is not None else None


@lru_cache(maxsize=1)
def get_settings() -> HearteyeSettings:
    """The process-wide settings, read once on first use (never at import)."""
    return HearteyeSettings()
