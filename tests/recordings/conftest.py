"""The serving app in-process (the fixtures of tests/serving) and PostgreSQL (tests/identity's)."""

from __future__ import annotations

from tests.identity.conftest import pg_admin_url  # noqa: F401 - fixture
from tests.serving.conftest import (  # noqa: F401 - fixtures, used by name
    _restore_logging,
    registry,
    settings_factory,
    start_api,
    xgb_store,
)
