"""Database URLs: driver normalisation, the embedded default, the owner/app split."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearteye.errors import ConfigurationError
from hearteye.settings import HearteyeSettings
from hearteye_platform.db import database_config, normalise_database_url, redact


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/he", "postgresql+psycopg2://u:p@db:5432/he"),
        ("postgres://u:p@db/he", "postgresql+psycopg2://u:p@db/he"),
        ("postgresql+psycopg2://u@db/he", "postgresql+psycopg2://u@db/he"),
        ("sqlite:////var/lib/he.db", "sqlite:////var/lib/he.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_urls_are_normalised_to_installed_drivers(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://u@db/he", "not installed"),
        ("postgresql+asyncpg://u@db/he", "not installed"),
        ("mysql://u@db/he", "only sqlite"),
        ("postgresql://u@db", "names no database"),
        ("not a url", "not a valid"),
    ],
)
def test_unsupported_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        normalise_database_url(url)


def test_redact_hides_the_password() -> None:
    assert redact("postgresql+psycopg2://app:s3cret@db/he") == "postgresql+psycopg2://app:***@db/he"


def test_default_is_a_sqlite_file_under_home(tmp_path: Path) -> None:
    config = database_config(HearteyeSettings(home=tmp_path))
    assert config.url == f"sqlite:///{(tmp_path / 'hearteye.db').resolve()}"
    assert config.owner_url == config.url
    assert config.app_role is None
    assert config.is_sqlite


def test_app_role_is_the_runtime_user_when_owner_differs() -> None:
    config = database_config(
        HearteyeSettings(
            database_url="postgresql://hearteye_app:a@db:5432/hearteye",
            database_owner_url="postgresql://hearteye_owner:o@db:5432/hearteye",
            database_pool_size=3,
            database_max_overflow=1,
        )
    )
    assert config.url.startswith("postgresql+psycopg2://hearteye_app:a@")
    assert config.owner_url.startswith("postgresql+psycopg2://hearteye_owner:o@")
    assert config.app_role == "hearteye_app"
    assert (config.pool_size, config.max_overflow) == (3, 1)


def test_single_postgres_url_means_no_grants() -> None:
    config = database_config(HearteyeSettings(database_url="postgresql://he:x@db/hearteye"))
    assert config.owner_url == config.url
    assert config.app_role is None


def test_explicit_app_role_wins() -> None:
    config = database_config(
        HearteyeSettings(database_url="postgresql://he@db/h", database_app_role="reader_app")
    )
    assert config.app_role == "reader_app"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"database_url": "sqlite:////tmp/a.db", "database_owner_url": "sqlite:////tmp/b.db"},
            "sqlite has no roles",
        ),
        ({"database_url": "sqlite:////tmp/a.db", "database_app_role": "x"}, "PostgreSQL only"),
        (
            {
                "database_url": "postgresql://a@db/one",
                "database_owner_url": "postgresql://o@db/two",
            },
            "same host, port and database",
        ),
        ({"database_url": "postgresql://a@db/h", "database_app_role": "bad; drop"}, "app role"),
    ],
)
def test_inconsistent_database_settings_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        database_config(HearteyeSettings(**settings))  # type: ignore[arg-type]


def test_settings_read_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTEYE_DATABASE_URL", "postgresql://he@db/h")
    assert database_config(HearteyeSettings()).url == "postgresql+psycopg2://he@db/h"
