"""infra/compose.yaml passes a real compose implementation's `config` check (Docker Compose v2,
no engine needed) and keeps the deployment rules: healthchecks everywhere, only nginx published,
an internal backend network, ordered start-up, required secrets from .env."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import COMPOSE_FILE, ENV_EXAMPLE, bare_env, run_compose

pytestmark = pytest.mark.compose

REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?")
ANY_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def _env_example() -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


def test_config_passes_with_env_example_for_every_profile_set() -> None:
    for profiles in ([], ["seaweedfs"], ["admin", "train"]):
        args = [arg for p in profiles for arg in ("--profile", p)]
        result = run_compose(
            "--env-file", str(ENV_EXAMPLE), *args, "config", "--quiet", env=bare_env()
        )
        assert result.returncode == 0, (profiles, result.stderr)


def test_config_refuses_a_missing_secret_with_its_message() -> None:
    result = run_compose("config", "--quiet", env=bare_env())
    assert result.returncode != 0
    assert "required variable" in result.stderr
    assert "in .env" in result.stderr  # the ${VAR:?message} names where to set it


def test_env_example_has_every_variable_compose_uses_with_placeholders_only() -> None:
    text = COMPOSE_FILE.read_text()
    example = _env_example()
    required = set(REQUIRED.findall(text))
    assert required, "compose.yaml declares no required variables"
    assert required <= example.keys(), sorted(required - example.keys())
    used = set(ANY_VARIABLE.findall(text))
    assert used <= example.keys(), sorted(used - example.keys())
    secrets = [k for k in example if re.search(r"PASSWORD|SECRET|_KEY$", k)]
    for key in secrets:
        # Empty only for an optional secret that compose passes as empty when unset.
        optional = example[key] == "" and f"${{{key}:-}}" in text
        assert optional or example[key].startswith("change-me"), f"{key} must be a placeholder"


def test_every_service_has_a_healthcheck(compose_model: dict[str, Any]) -> None:
    for name, service in compose_model["services"].items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"


def test_only_nginx_publishes_ports(compose_model: dict[str, Any]) -> None:
    published = {name for name, s in compose_model["services"].items() if s.get("ports")}
    assert published == {"nginx"}


def test_networks_backend_internal_and_nginx_bridges_frontend(
    compose_model: dict[str, Any],
) -> None:
    assert compose_model["networks"]["backend"]["internal"] is True
    assert compose_model["networks"]["frontend"].get("internal") is not True
    for name, service in compose_model["services"].items():
        networks = set(service["networks"])
        expected = {"frontend", "backend"} if name == "nginx" else {"backend"}
        assert networks == expected, (name, networks)


def test_dependants_wait_for_health_or_completion(compose_model: dict[str, Any]) -> None:
    allowed = {"service_healthy", "service_completed_successfully"}
    services = compose_model["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec["condition"] in allowed, (name, dependency, spec)
            one_shot = dependency.endswith("-init") or dependency == "config-check"
            expected = "service_completed_successfully" if one_shot else "service_healthy"
            assert spec["condition"] == expected, (name, dependency, spec)
    assert set(services["mlflow"]["depends_on"]) == {
        "config-check",
        "postgres",
        "minio-init",
        "seaweedfs-init",
    }
    assert set(services["nginx"]["depends_on"]) == {"config-check", "mlflow", "serving"}


def test_serving_is_scalable_and_mlflow_configured_as_required(
    compose_model: dict[str, Any],
) -> None:
    services = compose_model["services"]
    serving = services["serving"]
    assert "container_name" not in serving
    assert serving["command"][:3] == ["gunicorn", "-c", "serving/gunicorn.conf.py"]
    assert serving["command"][-1] == "serving.app:create_app()"
    mlflow = services["mlflow"]
    flags = " ".join(mlflow["command"])
    for flag in (
        "--serve-artifacts",
        "--artifacts-destination=s3://",
        "--workers=1",
        "--static-prefix=/mlflow",
        "--allowed-hosts=",
        "--app-name=basic-auth",
    ):
        assert flag in flags
    env = mlflow["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert services["pgadmin"]["profiles"] == ["admin"]
    assert services["trainer"]["profiles"] == ["train"]
    assert services["seaweedfs"]["profiles"] == ["seaweedfs"]


def test_minio_is_pinned_to_the_last_community_release(compose_model: dict[str, Any]) -> None:
    minio = compose_model["services"]["minio"]
    assert minio["build"]["args"]["MINIO_RELEASE"] == "RELEASE.2025-10-15T17-29-55Z"
    for name, service in compose_model["services"].items():
        image = service.get("image", "")
        assert ":" in image, (name, image)
        assert not image.endswith((":latest", ":edge")), (name, image)


def test_registry_webhook_wakes_every_replica(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    init = services["webhook-init"]
    assert init["command"] == [
        "ml", "webhook", "register", "http://serving:8000/api/v1/hooks/mlflow-registry",
    ]  # fmt: skip
    assert init["environment"]["HEARTEYE_ENV"] == "production"
    assert set(init["depends_on"]) == {"config-check", "mlflow-init", "serving"}
    serving = services["serving"]
    wake = serving["environment"]["HEARTEYE_WEBHOOK_WAKE_DIR"]
    assert [v["target"] for v in serving["volumes"]] == [wake]  # one volume, every replica
    assert serving["environment"]["HEARTEYE_WEBHOOK_SECRET"]
    mlflow = services["mlflow"]["environment"]
    assert mlflow["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"]
    assert mlflow["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] == "http,https"
