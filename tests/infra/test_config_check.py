"""Compose's one-shot ``config-check`` (the app image running ``python -m serving.config_check``)
runs before every other service and refuses, in production, any secret left unset or a
placeholder: the real check, run on the environment compose gives it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hearteye.settings import declared_variables
from hearteye_platform.deployment import DeploymentSettings
from hearteye_platform.placeholders import is_placeholder
from tests.infra.conftest import ENV_EXAMPLE, bare_env, run_compose

pytestmark = pytest.mark.compose


def _config_check_env(env_file: Path) -> dict[str, str]:
    result = run_compose("--env-file", str(env_file), "config", "--format", "json", env=bare_env())
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)["services"]["config-check"]["environment"]
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _run_check(env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.config_check"],
        cwd=home,  # no .env there
        env={**env, "HEARTEYE_HOME": str(home), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_config_check_runs_first_and_every_other_service_waits_for_it(
    compose_model: dict[str, Any],
) -> None:
    services = compose_model["services"]
    check = services["config-check"]
    assert check["image"] == services["serving"]["image"]
    assert check["command"] == ["python", "-m", "serving.config_check"]
    assert check["environment"]["HEARTEYE_ENV"] == "production"
    assert "depends_on" not in check
    for name, service in services.items():
        if name != "config-check":
            condition = service.get("depends_on", {}).get("config-check", {}).get("condition")
            assert condition == "service_completed_successfully", name


def test_config_check_gets_every_deployment_variable_and_serving_s_secrets(
    compose_model: dict[str, Any],
) -> None:
    env = compose_model["services"]["config-check"]["environment"]
    wanted = declared_variables(DeploymentSettings).keys() | {
        "HEARTEYE_JWT_SECRET",
        "HEARTEYE_DATABASE_URL",
        "HEARTEYE_DATABASE_OWNER_URL",
    }
    assert wanted <= env.keys(), sorted(wanted - env.keys())
    serving = compose_model["services"]["serving"]["environment"]
    for name, value in serving.items():
        if name.startswith("HEARTEYE_"):  # serving's settings, checked as serving gets them
            assert env.get(name) == value, name


def test_config_check_refuses_env_example_s_placeholders_and_names_each_secret(
    tmp_path: Path,
) -> None:
    env = _config_check_env(ENV_EXAMPLE)
    result = _run_check(env, tmp_path)
    assert result.returncode == 1, result.stderr
    for name, (_, field) in declared_variables(DeploymentSettings).items():
        if "SecretStr" in str(field.annotation):
            assert name in result.stderr, name
    assert "HEARTEYE_JWT_SECRET" in result.stderr
    for value in env.values():  # names, never values
        if is_placeholder(value) and len(value) > 12 and "://" not in value:
            assert value not in result.stderr


def test_config_check_passes_with_real_secrets(tmp_path: Path) -> None:
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, _, value = line.partition("=")
        if not line.startswith("#") and value.startswith("change-me"):
            value = secrets.token_urlsafe(24)
        lines.append(f"{name}={value}" if value or "=" in line else line)
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    result = _run_check(_config_check_env(env_file), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stderr
    # ... and one placeholder left anywhere is enough to stop the deployment.
    env = _config_check_env(env_file) | {"MLFLOW_AUTH_ADMIN_PASSWORD": "changeme"}
    result = _run_check(env, tmp_path)
    assert result.returncode == 1
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in result.stderr
