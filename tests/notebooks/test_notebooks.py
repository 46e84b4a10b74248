"""The notebooks in notebooks/: committed without outputs, and executed top to bottom.

Each notebook runs in a fresh kernel of this virtual environment's Python (a kernelspec written
into a temporary directory, so no Jupyter installation outside the venv is needed), from its own
folder, with ``HEARTEYE_HOME`` set to a temporary directory, ``HEARTEYE_MITDB_DIR`` passed
through, and no ``MLFLOW_*`` or other ``HEARTEYE_*`` variables: the notebooks train against the
embedded store. Any cell error fails the test, and so does running past the notebook's time
budget. The executed copies (with outputs) are kept in ``test-artifacts/notebooks/``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

from tests.notebooks.strip import strip_notebook

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "notebooks"
KERNEL_NAME = "hearteye-venv"
#: Wall-clock budget per notebook (s), generous for a shared 2-core machine: 01 and 02 take
#: 40-70 s each there.
DEFAULT_BUDGET_S = 420
BUDGET_S: dict[str, int] = {}


def _ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} carry outputs or execution counts; run "
        f"`.venv/bin/python -m tests.notebooks.strip notebooks/*.ipynb`"
    )
    assert strip_notebook(nb) == nb, (
        f"{path.name} carries run or front-end metadata; run "
        f"`.venv/bin/python -m tests.notebooks.strip notebooks/*.ipynb`"
    )
    expected_errors = [
        index
        for index, cell in enumerate(nb.cells)
        if "raises-exception" in cell.metadata.get("tags", [])
    ]
    assert not expected_errors, f"{path.name}: cells {expected_errors} are allowed to fail"


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data dir holding one kernelspec: this interpreter (the venv's Python)."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(
        root / "kernels" / KERNEL_NAME, overrides={"display_name": "HeartEye (.venv)"}
    )
    return root


def _files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(
    path: Path,
    jupyter_path: Path,
    mitdb_dir: Path,
    beat_cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbclient import NotebookClient

    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(beat_cache_dir)  # share the session's dataset cache
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HEARTEYE_"))}
    env.update(
        HEARTEYE_HOME=str(home),
        HEARTEYE_MITDB_DIR=str(mitdb_dir),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    # The kernelspec comes from our temporary data dir; connection files go to a temporary
    # runtime dir, not ~/.local/share/jupyter.
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))

    nb = nbformat.read(path, as_version=4)
    budget = BUDGET_S.get(path.stem, DEFAULT_BUDGET_S)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        record_timing=True,
    )
    deadline = time.monotonic() + budget
    # Each cell may use what is left of the notebook's budget: a per-notebook timeout.
    client.timeout_func = lambda cell: max(1, round(deadline - time.monotonic()))

    before = _files(NOTEBOOK_DIR)
    started = time.monotonic()
    try:
        client.execute(env=env)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, ARTIFACTS / path.name)
    elapsed = time.monotonic() - started
    print(f"{path.name}: executed in {elapsed:.1f} s (budget {budget} s)")
    assert _files(NOTEBOOK_DIR) == before, "the notebook left files in notebooks/"
