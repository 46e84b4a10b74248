"""The end-to-end tier: the session's native stack (the same fixture, and the same stack, as
tests/integration), reached through nginx only; the run's summary printed at the end."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import SUMMARY, write_summary
from tests.integration.conftest import native_stack
from tests.integration.native_stack import NativeStack

__all__ = ["native_stack"]


@pytest.fixture(scope="session")
def stack(native_stack: NativeStack) -> NativeStack:
    """The native stack with its serving tier (two Gunicorn instances behind nginx)."""
    if not native_stack.serving_enabled:
        pytest.fail("the end-to-end tests need the serving tier: HEARTEYE_STACK_SERVING=on")
    return native_stack


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.write_sep("-", "HeartEye end to end")
        for line in SUMMARY:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(also in {write_summary()})")
