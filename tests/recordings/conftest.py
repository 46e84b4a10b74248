"""The serving app in-process for the recordings API (the fixtures of tests/serving)."""

from __future__ import annotations

from tests.serving.conftest import (  # noqa: F401 - fixtures, used by name
    _restore_logging,
    registry,
    settings_factory,
    start_api,
    xgb_store,
)
