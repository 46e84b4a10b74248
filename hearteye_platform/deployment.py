"""Settings of the deployment as a whole (compose, ``.env``): ports, TLS, database names and roles,
S3, MLflow's users, and every secret they need.

Compose interpolates these into the services' environments; its one-shot ``config-check`` service
(``python -m serving.config_check``, the app image) validates them here before anything else
starts. Variables that a third-party image reads under its own name (``POSTGRES_PASSWORD``,
``MINIO_ROOT_PASSWORD``, ``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MLFLOW_FLASK_SERVER_SECRET_KEY``,
``PGADMIN_DEFAULT_PASSWORD``) keep that name (a validation alias); they are declared here so that
production can refuse their placeholders like every other secret (``hearteye_platform.placeholders``).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hearteye.settings import HearteyeSettings, declared_variables
from hearteye_platform.placeholders import refused

#: Marks a secret that only a compose profile uses: checked when set, not required.
PROFILE = "profile"


def refuse_placeholder_secrets(settings: HearteyeSettings) -> None:
    """In production, raise ValueError naming every secret of ``settings`` that is unset or a
    placeholder (``settings.production_secrets()``, the rule of ``hearteye_platform.placeholders``);
    the validator of ``DeploymentSettings`` and of ``ServingSettings``."""
    if settings.env != "production":
        return
    secrets = settings.production_secrets()
    bad = refused(list(secrets), {k: v for k, v in secrets.items() if v is not None})
    if bad:
        raise ValueError(
            f"production refuses unset or placeholder secrets: {', '.join(bad)} "
            "(make each one: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )


def _secret(description: str, alias: str | None = None, profile: str | None = None) -> Any:
    """A secret field: unset by default; ``profile`` when only that compose profile needs it."""
    extra: dict[str, Any] | None = {PROFILE: profile} if profile else None
    return Field(
        default=None, validation_alias=alias, description=description, json_schema_extra=extra
    )


class DeploymentSettings(HearteyeSettings):
    """What compose (``infra/compose.yaml``) and ``.env`` configure, beyond each process's own
    settings. Every field here is listed in ``.env.example``."""

    model_config = SettingsConfigDict(populate_by_name=True)

    # -- public entry (nginx, the only published ports) --------------------------------------
    public_host: str = Field(
        default="localhost",
        min_length=1,
        description="The host name clients use (nginx's server_name, MLflow's allowed hosts).",
    )
    http_port: int = Field(
        default=8080, ge=1, le=65535, description="nginx's published HTTP port on the host."
    )
    https_port: int = Field(
        default=8443, ge=1, le=65535, description="nginx's published HTTPS port on the host."
    )
    tls: Literal["on", "off"] = Field(
        default="off",
        description="`on`: HTTPS with tls.crt/tls.key from `tls_certs_dir` "
        "(infra/nginx/certs/README.md).",
    )
    tls_certs_dir: str = Field(
        default="./nginx/certs",
        description="Host directory (relative to infra/) holding tls.crt and tls.key.",
    )
    backend_subnet: str = Field(
        default="172.30.42.0/24",
        description="The internal backend network; serving believes X-Forwarded-For and "
        "X-Request-ID from it (nginx). Change it only if it collides with a host network.",
    )

    # -- S3 server -----------------------------------------------------------------------------
    s3_endpoint: str = Field(
        default="http://minio:9000",
        description="MLflow's S3 endpoint: http://minio:9000 (profile minio) or "
        "http://seaweedfs:8333 (profile seaweedfs).",
    )
    s3_bucket: str = Field(
        default="mlflow", min_length=3, description="The bucket holding MLflow's artifacts."
    )
    s3_access_key: SecretStr | None = _secret(
        "The key pair MLflow uses for its artifacts: a bucket-scoped MinIO user created by "
        "minio-init, or SeaweedFS's single identity. Required."
    )
    s3_secret_key: SecretStr | None = _secret("The secret of `s3_access_key`. Required.")
    minio_root_user: str | None = Field(
        default=None,
        validation_alias="MINIO_ROOT_USER",
        description="MinIO's root user (profile minio; read by the MinIO image).",
    )
    minio_root_password: SecretStr | None = _secret(
        "MinIO's root password (profile minio; read by the MinIO image).",
        alias="MINIO_ROOT_PASSWORD",
        profile="minio",
    )

    # -- PostgreSQL: one server, three databases -----------------------------------------------
    postgres_user: str = Field(
        default="hearteye",
        validation_alias="POSTGRES_USER",
        description="PostgreSQL's superuser (read by the postgres image); owns MLflow's databases.",
    )
    postgres_password: SecretStr | None = _secret(
        "The superuser's password (read by the postgres image). Required.",
        alias="POSTGRES_PASSWORD",
    )
    mlflow_db: str = Field(default="mlflow", description="MLflow's tracking and registry store.")
    mlflow_auth_db: str = Field(
        default="mlflow_auth", description="MLflow's basic-auth user database."
    )
    platform_db: str = Field(
        default="hearteye", description="The platform database (users, audit trail)."
    )
    platform_db_owner: str = Field(
        default="hearteye_owner",
        description="The platform database's owner role (runs the migrations; not a superuser).",
    )
    platform_db_owner_password: SecretStr | None = _secret(
        "The owner role's password (goes into a URL: URL-safe characters). Required."
    )
    platform_db_app_role: str = Field(
        default="hearteye_app",
        description="Serving's runtime role: INSERT/SELECT on the audit trail, nothing more.",
    )
    platform_db_app_password: SecretStr | None = _secret(
        "The application role's password (goes into a URL: URL-safe characters). Required."
    )

    # -- MLflow (basic-auth app) ---------------------------------------------------------------
    mlflow_admin_username: str = Field(
        default="admin",
        validation_alias="MLFLOW_AUTH_ADMIN_USERNAME",
        description="MLflow's admin user (read by mlflow server).",
    )
    mlflow_admin_password: SecretStr | None = _secret(
        "MLflow's admin password (read by mlflow server). Required.",
        alias="MLFLOW_AUTH_ADMIN_PASSWORD",
    )
    mlflow_flask_secret_key: SecretStr | None = _secret(
        "The MLflow UI's session signing key (read by mlflow server). Required.",
        alias="MLFLOW_FLASK_SERVER_SECRET_KEY",
    )
    mlflow_webhook_secret_encryption_key: SecretStr | None = _secret(
        "The Fernet key mlflow server encrypts the stored registry-webhook secrets with (read by "
        "mlflow; make one: `python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'`). Required.",
        alias="MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
    )
    mlflow_reader_password: SecretStr | None = _secret(
        "Password of MLflow's `reader` user (created by mlflow-init, permission READ). Required."
    )
    mlflow_serving_password: SecretStr | None = _secret(
        "Password of MLflow's `serving` user, the serving tier's. Required."
    )

    # -- pgAdmin (profile admin) and the trainer (profile train) -------------------------------
    pgadmin_email: str | None = Field(
        default=None,
        validation_alias="PGADMIN_DEFAULT_EMAIL",
        description="pgAdmin's login (profile admin; read by the pgAdmin image).",
    )
    pgadmin_password: SecretStr | None = _secret(
        "pgAdmin's password (profile admin; read by the pgAdmin image).",
        alias="PGADMIN_DEFAULT_PASSWORD",
        profile="admin",
    )
    mitdb_host_dir: str | None = Field(
        default=None,
        description="The MIT-BIH records on the host, mounted read-only into the trainer "
        "(profile train).",
    )

    @field_validator("backend_subnet")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"backend_subnet: {exc}") from None
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> DeploymentSettings:
        refuse_placeholder_secrets(self)
        return self

    def production_secrets(self) -> dict[str, str | None]:
        """The platform database URLs' passwords and every deployment secret, by environment
        variable; a secret only a compose profile uses is left out while it is unset or empty."""
        found = super().production_secrets()
        own = declared_variables(DeploymentSettings)
        for name, (field_name, field) in own.items():
            value = getattr(self, field_name)
            if field.annotation != SecretStr | None:
                continue
            extra = field.json_schema_extra
            text = value.get_secret_value() if value is not None else None
            if not text and isinstance(extra, dict) and extra.get(PROFILE):
                continue
            found[name] = text
        return found


class MlflowServerSettings(BaseSettings):
    """What the mlflow image's entrypoint (infra/mlflow/entrypoint.sh) reads besides MLflow's own
    variables. Compose builds it from the deployment settings, the native stack from its own
    roles; the image carries no HeartEye, so the entrypoint reads it itself."""

    model_config = SettingsConfigDict(env_prefix="HEARTEYE_MLFLOW_", extra="ignore", frozen=True)

    auth_database_uri: SecretStr | None = Field(
        default=None,
        description="MLflow's basic-auth user database (a SQLAlchemy URL), written into the "
        "auth config file (the ini has no variable of its own).",
    )
