"""Provenance recorded on every training run: code version, git commit, library versions."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import hearteye

LIBRARIES = ("mlflow", "numpy", "scipy", "wfdb", "xgboost-cpu", "torch", "scikit-learn", "pandas")


@dataclass(frozen=True)
class CodeVersion:
    """The code a model was trained with."""

    package: str
    git_commit: str | None
    git_dirty: bool

    @property
    def label(self) -> str:
        """``<package version>+g<short sha>[.dirty]``, or the package version alone outside git."""
        if self.git_commit is None:
            return self.package
        return f"{self.package}+g{self.git_commit[:10]}{'.dirty' if self.git_dirty else ''}"


def code_version() -> CodeVersion:
    """Package version plus the git commit of the source tree, when it is a git checkout."""
    root = Path(hearteye.__file__).resolve().parents[1]
    commit, dirty = None, False
    if (root / ".git").exists():
        try:
            commit = _git(root, "rev-parse", "HEAD")
            dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
        except (OSError, subprocess.CalledProcessError):
            commit = None
    return CodeVersion(package=hearteye.__version__, git_commit=commit, git_dirty=dirty)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a model (``lib.<name>`` tags)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
    )
    return result.stdout.strip()
