"""Every `make` target the docs name works on a fresh machine: it creates the virtualenv before it
uses it, and a target that needs nginx or PostgreSQL installs or starts them before it starts
anything (`make -n` with a virtualenv path that does not exist: nothing runs)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT

DOCS = ("README.md", "CONTRIBUTING.md", "docs/operations.md")
NAMED = re.compile(r"\bmake (?:-s )?([a-z][a-z-]+)\b")
# What each target needs outside Python, as scripts/ensure-system.sh names it.
SYSTEM_NEEDS = {
    "stack-up": {"nginx", "prometheus", "postgresql"},
    "test": {"nginx", "chromium", "prometheus", "postgresql"},
    "bench": {"wrk"},
}


def makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]+):.*## ", text, flags=re.MULTILINE))


def documented_targets() -> set[str]:
    names = set()
    for doc in DOCS:
        path = REPO_ROOT / doc
        if path.is_file():
            names |= set(NAMED.findall(path.read_text()))
    return names & makefile_targets()


def dry_run(target: str, venv: Path) -> list[str]:
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", f"VENV={venv}", target],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_docs_name_only_existing_targets() -> None:
    named = set()
    for doc in DOCS:
        path = REPO_ROOT / doc
        if path.is_file():
            named |= set(NAMED.findall(path.read_text()))
    prose = {"the", "sure", "it"}  # "make the …" in sentences
    assert named - prose <= makefile_targets(), sorted(named - prose - makefile_targets())


@pytest.mark.parametrize("target", sorted(documented_targets()))
def test_a_documented_target_sets_up_what_it_uses(target: str, tmp_path: Path) -> None:
    venv = tmp_path / "fresh" / ".venv"
    lines = dry_run(target, venv)
    uses_venv = [i for i, line in enumerate(lines) if f"{venv}/bin/" in line]
    if uses_venv:
        creates = [i for i, line in enumerate(lines) if f"-m venv {venv}" in line]
        assert creates, f"make {target} uses {venv} without creating it"
        assert creates[0] <= uses_venv[0]  # `test -x …/python || python3.11 -m venv …`
    needs = SYSTEM_NEEDS.get(target, set())
    if needs:
        ensure = [i for i, line in enumerate(lines) if "scripts/ensure-system.sh" in line]
        assert ensure, f"make {target} does not install/start {sorted(needs)}"
        assert needs <= set(lines[ensure[0]].split()), lines[ensure[0]]
        starts = [
            i
            for i, line in enumerate(lines)
            if "hearteye_stack.py up" in line
            or "bin/pytest" in line
            or "benchmarks/bench_serving.py" in line
        ]
        assert starts, lines
        assert ensure[0] < starts[0], f"make {target} starts before its system prerequisites"
