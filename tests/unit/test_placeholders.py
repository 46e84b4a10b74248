"""One placeholder rule (hearteye_platform.placeholders) for every secret production checks: the
JWT signing secret, the platform database's passwords, every deployment secret."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from hearteye.errors import ConfigurationError
from hearteye_platform import auth_tokens
from hearteye_platform.deployment import DeploymentSettings
from hearteye_platform.placeholders import is_placeholder
from serving.settings import ServingSettings

PLACEHOLDERS = [
    "",
    "changeme",
    "change-me-to-64-random-hex-characters",
    "CHANGE_ME_the-postgres-password-please",
    "replace-me-with-a-real-secret-of-32-bytes",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "12121212121212121212121212121212",
]
REAL = [secrets.token_urlsafe(24), secrets.token_hex(32)]


@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_placeholders_are_placeholders(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", REAL)
def test_random_values_are_not(value: str) -> None:
    assert not is_placeholder(value)


def test_the_jwt_check_uses_the_one_rule() -> None:
    assert not hasattr(auth_tokens, "PLACEHOLDER_SECRETS")
    assert not hasattr(auth_tokens, "PLACEHOLDER_MARKERS")
    for value in [v for v in PLACEHOLDERS if v and len(v) >= 32] + REAL:
        try:
            auth_tokens.check_jwt_secret(value, production=True)
            refused = False
        except ConfigurationError:
            refused = True
        assert refused == is_placeholder(value), value


def _url(password: str) -> str:
    return f"postgresql+psycopg2://hearteye_app:{password}@db:5432/hearteye"


def test_serving_in_production_refuses_a_placeholder_database_password_and_never_shows_it() -> None:
    password = "change-me-platform-app-password"
    with pytest.raises(ValidationError, match="HEARTEYE_DATABASE_URL") as refused:
        ServingSettings(_env_file=None, env="production", database_url=_url(password))  # type: ignore[call-arg]
    assert password not in str(refused.value.errors(include_input=False))
    with pytest.raises(ValidationError, match="HEARTEYE_DATABASE_OWNER_URL"):
        ServingSettings(  # type: ignore[call-arg]
            _env_file=None, env="production", database_owner_url=_url("password")
        )
    real = ServingSettings(_env_file=None, env="production", database_url=_url(REAL[0]))  # type: ignore[call-arg]
    assert real.database_url == _url(REAL[0])
    assert ServingSettings(_env_file=None, database_url=_url(password)).env == "development"  # type: ignore[call-arg]


def _deployment(**values: str) -> DeploymentSettings:
    required = {
        name: secrets.token_urlsafe(24)
        for name in (
            "s3_access_key",
            "s3_secret_key",
            "POSTGRES_PASSWORD",
            "platform_db_owner_password",
            "platform_db_app_password",
            "MLFLOW_AUTH_ADMIN_PASSWORD",
            "MLFLOW_FLASK_SERVER_SECRET_KEY",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
            "mlflow_reader_password",
            "mlflow_serving_password",
        )
    }
    return DeploymentSettings(_env_file=None, env="production", **(required | values))  # type: ignore[arg-type]


def test_production_deployment_needs_every_secret_real() -> None:
    assert _deployment().env == "production"
    for name in ("POSTGRES_PASSWORD", "mlflow_reader_password", "s3_access_key"):
        with pytest.raises(ValidationError, match="production refuses"):
            _deployment(**{name: "change-me"})


def test_a_profile_s_secret_is_checked_only_when_set() -> None:
    assert _deployment(MINIO_ROOT_PASSWORD="", PGADMIN_DEFAULT_PASSWORD="").env == "production"
    with pytest.raises(ValidationError, match="PGADMIN_DEFAULT_PASSWORD"):
        _deployment(PGADMIN_DEFAULT_PASSWORD="change-me-pgadmin-password")
    with pytest.raises(ValidationError, match="MINIO_ROOT_PASSWORD"):
        _deployment(MINIO_ROOT_PASSWORD="password")
