"""Strip notebooks to what is committed: sources only, no outputs, no execution counts.

    .venv/bin/python -m tests.notebooks.strip notebooks/*.ipynb

rewrites the given notebooks in place. ``tests/notebooks/test_notebooks.py`` checks that every
committed notebook is already stripped (stripping it again changes nothing).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

#: Notebook metadata kept: which kernel and language, nothing a front end or a run adds.
KEPT_NOTEBOOK_METADATA = ("kernelspec",)
#: Cell metadata kept: tags only (no execution timings, scroll or collapse state).
KEPT_CELL_METADATA = ("tags",)


def strip_notebook(nb: NotebookNode) -> NotebookNode:
    """A copy of ``nb`` without outputs, execution counts and front-end metadata."""
    out = copy.deepcopy(nb)
    metadata = {k: v for k, v in out.metadata.items() if k in KEPT_NOTEBOOK_METADATA}
    language = out.metadata.get("language_info", {}).get("name")
    if language:
        metadata["language_info"] = {"name": language}
    out.metadata = NotebookNode(metadata)
    for cell in out.cells:
        cell.metadata = NotebookNode(
            {k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA}
        )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.pop("attachments", None)
    return out


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        stripped = strip_notebook(nb)
        if stripped != nb:
            nbformat.write(stripped, path)
            print(f"stripped {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
