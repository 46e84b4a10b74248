"""The native stack for integration tests: started once per session through the same launcher as
`make stack-up` (infra/native/hearteye_stack.py), on free ports, in a temporary state dir, and
stopped (processes, databases, data) at the end.

Tests reach everything through ``native_stack``: the public URL (nginx), the MLflow tracking URI
behind it, and the stack's credentials. ``stack_mlflow_env`` points MLflow's own variables at the
stack for one test.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.native_stack import NativeStack

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"


_STARTUP: dict[str, float] = {}


class _SharedStack:
    """The session's one stack, shared by every conftest that imports ``native_stack`` (tests/e2e
    does): each import is a fixture definition of its own, so they count their users here and the
    last one to finish stops the stack."""

    stack: NativeStack | None = None
    users: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def native_stack() -> Iterator[NativeStack]:
    """Start the native stack (about 15 s) for the session; tear it down afterwards."""
    if _SharedStack.stack is None:
        _SharedStack.stack = _start_stack()
    _SharedStack.users += 1
    stack = _SharedStack.stack
    try:
        yield stack
    finally:
        _SharedStack.users -= 1
        if _SharedStack.users == 0:
            _SharedStack.stack = None
            _stop_stack(stack.state_dir)


def _start_stack() -> NativeStack:
    import hearteye_stack

    # Under /tmp rather than pytest's 0700 tmp dirs: run as root, nginx's workers (`nobody`) must
    # traverse the path to their html/ and tmp/ directories.
    state = Path(tempfile.mkdtemp(prefix="hearteye-stack-"))
    # The environment's stack settings (HEARTEYE_STACK_SERVING, HEARTEYE_STACK_TIMEOUT_S, ...)
    # with this session's state dir and a free port.
    settings = hearteye_stack.settings_from_env(state_dir=state, http_port=_free_port())
    began = time.monotonic()
    try:
        plan = hearteye_stack.up(settings, quiet=True)
    except hearteye_stack.StackError as exc:
        _keep_logs(state)
        shutil.rmtree(state, ignore_errors=True)
        pytest.fail(
            f"native stack failed to start: {exc} (logs in {ARTIFACTS / 'native-stack-logs'})"
        )
    startup_s = time.monotonic() - began
    _STARTUP["native stack up (s)"] = startup_s
    return NativeStack(
        url=plan.url,
        mlflow_uri=f"{plan.url}/mlflow",
        admin=(plan.admin_username, plan.admin_password),
        reader=(plan.reader_username, plan.reader_password),
        serving_user=(plan.serving_username, plan.serving_password),
        serving_enabled=bool(plan.serving_ports),
        env=plan.environment(),
        state_dir=state,
        startup_s=startup_s,
    )


def _stop_stack(state: Path) -> None:
    import hearteye_stack

    hearteye_stack.down(state, quiet=True)
    _keep_logs(state)
    shutil.rmtree(state, ignore_errors=True)


def _keep_logs(state: Path) -> None:
    """Copy the stack's logs to test-artifacts/ (git-ignored) for a post-mortem."""
    logs = state / "logs"
    if logs.is_dir():
        target = ARTIFACTS / "native-stack-logs"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(logs, target)


@pytest.fixture
def stack_mlflow_env(native_stack: NativeStack, monkeypatch: pytest.MonkeyPatch) -> NativeStack:
    """MLflow pointed at the stack (through nginx) as the admin user, for one test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", native_stack.mlflow_uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", native_stack.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", native_stack.admin[1])
    return native_stack


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, value in _STARTUP.items():
        terminalreporter.write_line(f"{name}: {value:.1f}")
