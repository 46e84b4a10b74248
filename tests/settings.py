"""The test suite's own variables (``HEARTEYE_TEST_*``), declared like every other HeartEye
variable (tests/infra/test_env_example.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SuiteSettings(BaseSettings):
    """Where the tests find what they need from the machine (the environment only)."""

    model_config = SettingsConfigDict(env_prefix="HEARTEYE_TEST_", extra="ignore", frozen=True)

    postgres_url: str = Field(
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
        description="A PostgreSQL superuser's URL for the tests that create databases and roles; "
        "unreachable: the tests start a throwaway server with initdb.",
    )
    screenshots: str = Field(
        default="",
        validation_alias="HEARTEYE_SCREENSHOTS",
        description="The browser tests save their screenshots in this folder when set "
        "(docs/images: how the application's pictures in the docs are made).",
    )
