"""Every ``HEARTEYE_*`` variable the repository uses (Python, shell, compose, Makefile, nginx
template, Dockerfiles, docs) is declared once, typed, with a default and a description, in a
pydantic-settings class; ``.env.example`` lists every deployment variable, each secret with a
placeholder that production refuses."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from hearteye.settings import declared_variables
from hearteye_platform.deployment import DeploymentSettings
from hearteye_platform.placeholders import is_placeholder
from tests.infra.conftest import ENV_EXAMPLE, REPO_ROOT

NAME = re.compile(r"\bHEARTEYE_[A-Z0-9_]+")
SETTINGS_MODULES = (
    "hearteye.settings",
    "serving.settings",
    "hearteye_platform.deployment",
    "stack_config",  # infra/native (on pytest's pythonpath)
    "stack_nginx",
    "tests.settings",
)
SETTINGS_SCRIPTS = (REPO_ROOT / "scripts" / "demo.py",)
#: Names that are no setting: nobody sets them, the code that writes them reads them back.
INTERNAL = {
    "HEARTEYE_METRICS_DIR_OWNED": "the Gunicorn master marks a metrics dir it created itself",
}
#: History: names that existed once.
NOT_SCANNED = {"CHANGELOG.md", "uv.lock"}


@functools.cache
def _settings_classes() -> list[type[BaseSettings]]:
    modules = {importlib.import_module(name).__name__ for name in SETTINGS_MODULES}
    for script in SETTINGS_SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"_settings_{script.stem}", script)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.add(module.__name__)
    found: list[type[BaseSettings]] = []
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__ in modules and cls not in found:
            found.append(cls)
    return found


def _declarations() -> dict[str, list[str]]:
    """Every declared variable, with the classes that declare it."""
    where: dict[str, list[str]] = {}
    for cls in _settings_classes():
        for name in declared_variables(cls):
            where.setdefault(name, []).append(cls.__qualname__)
    return where


def _repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    paths = [REPO_ROOT / name for name in listed if name and Path(name).name not in NOT_SCANNED]
    return [p for p in paths if p.is_file() and p.suffix not in {".png", ".ipynb", ".gz"}]


def _used_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in _repository_files():
        for name in NAME.findall(path.read_text(errors="ignore")):
            used.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    return used


def _env_example(commented: bool = True) -> dict[str, str]:
    """.env.example's assignments, and its commented-out examples (``# NAME=value``)."""
    line = r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$" if commented else r"^([A-Z][A-Z0-9_]*)=(.*)$"
    found = re.findall(line, ENV_EXAMPLE.read_text(), re.MULTILINE)
    return {name: value.strip() for name, value in found}


def test_every_settings_class_in_the_repository_is_checked() -> None:
    defining = {
        str(path.relative_to(REPO_ROOT))
        for path in _repository_files()
        if path.suffix == ".py"
        and re.search(r"^class \w+\(\w*Settings\):", path.read_text(), re.MULTILINE)
    }
    checked = {
        str(Path(importlib.import_module(cls.__module__).__file__ or "").relative_to(REPO_ROOT))
        for cls in _settings_classes()
        if not cls.__module__.startswith("_settings_")
    } | {str(script.relative_to(REPO_ROOT)) for script in SETTINGS_SCRIPTS}
    assert defining <= checked, sorted(defining - checked)


def test_every_variable_is_declared_exactly_once() -> None:
    twice = {name: classes for name, classes in _declarations().items() if len(classes) > 1}
    assert not twice, twice


def test_every_declared_variable_is_typed_with_a_default_and_a_description() -> None:
    for cls in _settings_classes():
        for name, (field_name, field) in declared_variables(cls).items():
            assert field.annotation not in (None, Any), (name, field_name)
            assert not field.is_required(), f"{name} ({cls.__qualname__}) has no default"
            assert (field.description or "").strip(), f"{name} ({cls.__qualname__})"


def test_every_heareye_variable_the_repository_uses_is_declared() -> None:
    declared = _declarations().keys() | INTERNAL.keys()
    used = _used_names()
    assert "HEARTEYE_BIND" in used  # the scan sees the code
    undeclared = {}
    for name, files in used.items():
        if name.endswith("_"):  # a family named in prose or built in code: HEARTEYE_GATE_*
            if not any(d.startswith(name) for d in declared):
                undeclared[name] = sorted(files)
        elif name not in declared:
            undeclared[name] = sorted(files)
    assert not undeclared, undeclared


def test_the_scan_would_catch_a_raw_read(tmp_path: Path) -> None:
    knob = "HEARTEYE_" + "NEW_KNOB"  # spelled apart: this file is scanned too
    names = NAME.findall(f'workers = int(os.environ.get("{knob}", "2"))')
    assert names == [knob]
    assert knob not in _declarations()


def test_env_example_lists_every_deployment_variable_with_placeholder_secrets() -> None:
    example = _env_example()
    deployment = declared_variables(DeploymentSettings)
    missing = sorted(deployment.keys() - example.keys())
    assert not missing, f".env.example lacks {missing}"
    secrets = [name for name, (_, f) in deployment.items() if f.annotation == SecretStr | None]
    secrets.append("HEARTEYE_JWT_SECRET")
    assert len(secrets) >= 11
    for name in secrets:
        assert is_placeholder(example[name]), f"{name} in .env.example must be a placeholder"
    # And nothing in it that no settings class declares (COMPOSE_PROFILES is compose's own).
    declared = _declarations().keys() | {"COMPOSE_PROFILES"}
    assert not example.keys() - declared, sorted(example.keys() - declared)


def test_production_refuses_every_deployment_secret_as_env_example_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = _env_example(commented=False)
    for name, value in example.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="production refuses") as refused:
        DeploymentSettings(_env_file=None, env="production")  # type: ignore[call-arg]
    message = str(refused.value)
    deployment = declared_variables(DeploymentSettings)
    for name, (_, field) in deployment.items():
        if field.annotation == SecretStr | None:
            assert name in message, name
    for value in example.values():
        if is_placeholder(value) and len(value) > 12:
            assert value not in message  # names, never values
