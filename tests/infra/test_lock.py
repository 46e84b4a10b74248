"""Installs are reproducible: uv.lock agrees with pyproject.toml, and `make install`, the images
and so CI (`.ci/run` -> `make test` -> `make install`) install from it."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.infra.conftest import COMPOSE_FILE, REPO_ROOT

DOCKER = REPO_ROOT / "infra" / "docker"
# First FastAPI release of each fastapi module the code imports (checked against the wheels).
FASTAPI_MODULE_SINCE = {
    "fastapi": (0, 115, 0),
    "fastapi.exception_handlers": (0, 115, 0),
    "fastapi.exceptions": (0, 115, 0),
    "fastapi.middleware.cors": (0, 115, 0),
    "fastapi.openapi.utils": (0, 115, 0),  # get_openapi (older than 0.115)
    "fastapi.responses": (0, 115, 0),
    "fastapi.routing": (0, 115, 0),
    "fastapi.security": (0, 115, 0),
    "fastapi.telemetry": (0, 142, 0),  # TelemetryConfig, FastAPI(telemetry=...)
    # APIRouter(strict_content_type=...) (serving/routes/oip.py) is 0.132's: below the bound.
}


def _uv() -> str:
    found = Path(sys.executable).parent / "uv"
    if not found.is_file():
        pytest.fail(f"uv not found at {found}: make install")
    return str(found)


def _lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_uv(), "lock", "--check", "--offline", "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_lock_is_in_step_with_pyproject() -> None:
    assert (REPO_ROOT / "uv.lock").is_file(), "no uv.lock: run `.venv/bin/uv lock` and commit it"
    result = _lock_check(REPO_ROOT)
    assert result.returncode == 0, result.stderr


def test_the_check_refuses_a_dependency_added_without_relocking(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('"httpx>=0.27,<1",', '"httpx>=0.27,<1",\n  "tabulate>=0.9",'))
    assert pyproject.read_text() != text
    assert _lock_check(tmp_path).returncode != 0


def test_the_lock_pins_torch_to_the_cpu_wheel() -> None:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"]}
    assert versions["torch"] == "2.13.0+cpu"
    # CUDA torch's companions; `tritonclient` (the V2 test client) is another project.
    assert not any(
        name.startswith("nvidia-") or name in {"triton", "pytorch-triton"} for name in versions
    )


def test_make_install_syncs_the_lock_as_it_is(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", f"VENV={venv}", "install"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    syncs = [line for line in result.stdout.splitlines() if " sync " in line]
    assert syncs, result.stdout
    assert "--frozen" in syncs[0]
    assert f"UV_PROJECT_ENVIRONMENT={venv}" in syncs[0]
    assert not re.search(r"uv pip install|pip install .*-e ", result.stdout), result.stdout


def test_the_images_install_from_the_lock() -> None:
    app = (DOCKER / "app.Dockerfile").read_text()
    mlflow = (DOCKER / "mlflow.Dockerfile").read_text()
    for text in (app, mlflow):
        assert re.search(r"^COPY .*\buv\.lock\b", text, flags=re.MULTILINE)
        # One way in: `uv sync --frozen`, never a requirements file or an export of the lock.
        assert not re.search(r"uv export|pip install .*-r\b|requirements", text), text
    # Nothing installed by name but uv itself and torch (the CPU wheel, uv.lock's version).
    for text in (app, mlflow):
        for command in _shell_commands(text):
            if "pip install" not in command:
                continue
            args = command.split("pip install", 1)[1].split()
            named = [a for a in args if not a.startswith("-") and "://" not in a]
            assert set(named) <= {"uv==0.13.9", "torch==2.13.0+cpu"}, named
    for name in ("app", "mlflow"):
        ignore = (DOCKER / f"{name}.Dockerfile.dockerignore").read_text().split()
        assert "!uv.lock" in ignore, name
    compose = COMPOSE_FILE.read_text()
    for name in ("app", "mlflow"):
        assert f"context: ..\n      dockerfile: infra/docker/{name}.Dockerfile" in compose


@pytest.mark.parametrize(
    ("image", "expected", "absent"),
    [
        ("app", {"hearteye", "gunicorn", "mlflow", "xgboost-cpu"}, {"torch", "pytest", "ruff"}),
        ("mlflow", {"mlflow", "psycopg2-binary", "boto3"}, {"hearteye", "torch", "xgboost-cpu"}),
    ],
)
def test_each_image_s_uv_sync_resolves_from_the_lock_alone(
    tmp_path: Path, image: str, expected: set[str], absent: set[str]
) -> None:
    """The image's own `uv sync` command, run as a dry run against the repository's lock,
    offline: it installs from the lock as it is (no resolution, no network) and picks the right
    packages."""
    (command,) = [c for c in _shell_commands((DOCKER / f"{image}.Dockerfile").read_text())
                  if c.startswith("uv sync")]  # fmt: skip
    args = command.split()[2:]
    assert "--frozen" in args, command
    result = subprocess.run(
        [_uv(), "sync", *args, "--dry-run", "--offline", "--project", str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
        },
    )
    assert result.returncode == 0, result.stderr
    planned = set(
        re.findall(r"^ \+ ([A-Za-z0-9_.-]+)(?:==| @ )", result.stderr, flags=re.MULTILINE)
    )
    assert expected <= planned, sorted(expected - planned)
    assert not absent & planned, sorted(absent & planned)


def _shell_commands(dockerfile: str) -> list[str]:
    """The commands of every RUN instruction (continuations joined, split at &&)."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    runs = re.findall(r"^RUN\s+(.*)$", joined, flags=re.MULTILINE)
    return [part.strip() for run in runs for part in run.split("&&")]


def _imported_fastapi_modules() -> set[str]:
    modules = set()
    for package in ("serving", "cli", "hearteye", "hearteye_platform"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                modules |= {n for n in names if n == "fastapi" or n.startswith("fastapi.")}
    return modules


def test_the_fastapi_lower_bound_has_every_module_the_code_imports() -> None:
    modules = _imported_fastapi_modules()
    unknown = modules - FASTAPI_MODULE_SINCE.keys()
    assert not unknown, f"add the first FastAPI release of {sorted(unknown)} to the table"
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (spec,) = [d for d in pyproject["project"]["dependencies"] if re.match(r"fastapi\s*[<>=]", d)]
    found = re.search(r">=\s*([0-9.]+)", spec)
    assert found, spec
    bound = tuple(int(part) for part in found.group(1).split("."))
    bound = bound + (0,) * (3 - len(bound))
    needed = max(FASTAPI_MODULE_SINCE[m] for m in modules)
    assert bound >= needed, f"{spec}: the code needs fastapi>={'.'.join(map(str, needed))}"
