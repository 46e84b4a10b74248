"""The test tiers' markers match what the tests need: the unit tier (no marker) collects no test
that needs PostgreSQL, nginx, the compose binary or the native stack, and CONTRIBUTING's command
for it is the one checked here."""

from __future__ import annotations

import subprocess
import sys

from tests.infra.conftest import REPO_ROOT

UNIT_TIER = "not (slow or data or integration or e2e or notebook or postgres or nginx or compose)"
#: Modules whose every test needs one of those (they call the tool or use its fixture).
NEED_A_SERVICE = (
    "tests/infra/test_bootstrap.py",  # PostgreSQL
    "tests/infra/test_compose.py",  # the compose binary
    "tests/infra/test_config_check.py",  # the compose binary
    "tests/infra/test_nginx_config.py",  # nginx, the compose binary
)


def _collect(marker_expression: str, *paths: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", marker_expression, *paths],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 5), result.stdout + result.stderr
    return {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}


def test_the_unit_tier_collects_nothing_that_needs_a_service() -> None:
    unit = _collect(UNIT_TIER, "tests/infra", "tests/identity")
    assert "tests/infra/test_env_example.py" in unit  # pure checks stay in the tier
    assert "tests/infra/test_lock.py" in unit
    assert not unit & set(NEED_A_SERVICE), sorted(unit & set(NEED_A_SERVICE))
    needing = _collect("postgres or nginx or compose", "tests/infra", "tests/identity")
    assert set(NEED_A_SERVICE) <= needing
    assert "tests/identity/test_migrations.py" in needing  # its PostgreSQL cases (pg_database)


def test_contributing_documents_the_unit_tier_command() -> None:
    assert f'pytest -m "{UNIT_TIER}"' in (REPO_ROOT / "CONTRIBUTING.md").read_text()
