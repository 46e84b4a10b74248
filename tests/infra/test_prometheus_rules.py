"""The alert rules (infra/prometheus/alerts.yml) pass `promtool check rules` and their unit tests
(`promtool test rules alerts.test.yml`); every alert has a runbook section in docs/operations.md;
both Prometheus configurations (compose's file, the native stack's generated one) pass
`promtool check config` and load the same rules.

promtool comes with Debian's `prometheus` package (`scripts/ensure-system.sh prometheus`, run by
`make test`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "infra" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(found).is_file():
        pytest.fail("promtool not found: run `bash scripts/ensure-system.sh prometheus` (as root)")
    return found


def _run(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_rules_are_valid(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_has_a_runbook_section() -> None:
    alerts = [
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    required = {
        "HearteyeHighErrorRate", "HearteyeHighLatencyP99", "HearteyeNoModelLoaded",
        "HearteyeModelSwapFailing", "HearteyeRegistryUnreachable", "MlflowDown",
        "HearteyeAuditSpoolGrowing", "HearteyeDriftDetected",
    }  # fmt: skip
    assert required <= set(alerts)
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert set(alerts) <= tested, sorted(set(alerts) - tested)
    runbook = (REPO_ROOT / "docs" / "operations.md").read_text()
    headings = {h.strip() for h in re.findall(r"^#+ +(.+)$", runbook, flags=re.MULTILINE)}
    for alert in alerts:
        assert any(h.startswith(alert) for h in headings), f"no runbook heading for {alert}"


def test_compose_and_native_configurations_are_valid(promtool: str, tmp_path: Path) -> None:
    # compose's file names its rules at their container path: check a copy that points at the
    # repository's file.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = [str(RULES)]
    assert {job["job_name"] for job in config["scrape_configs"]} == {"hearteye-serving", "mlflow"}
    compose_copy = tmp_path / "compose-prometheus.yml"
    compose_copy.write_text(yaml.safe_dump(config))
    result = _run(promtool, "check", "config", str(compose_copy))
    assert result.returncode == 0, result.stdout + result.stderr

    import stack_config
    import stack_monitoring

    plan = stack_config.make_plan(stack_config.StackSettings(state_dir=tmp_path / "stack"))
    native = stack_monitoring.prometheus_config(plan)
    assert native["rule_files"] == [str(RULES)]
    assert {job["job_name"] for job in native["scrape_configs"]} == {"hearteye-serving", "mlflow"}
    native_file = tmp_path / "native-prometheus.yml"
    native_file.write_text(json.dumps(native))
    result = _run(promtool, "check", "config", str(native_file))
    assert result.returncode == 0, result.stdout + result.stderr
