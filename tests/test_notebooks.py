"""Every notebook in ``notebooks/`` runs top to bottom without an error (nbclient, the venv's kernel).

Each notebook runs in a temporary copy of ``notebooks/`` (so relative paths work and nothing is
written into the repository); the executed copy is kept under ``tests/_output/notebooks/`` for a look
when one fails. The kernel is ``python3`` as started by this interpreter's jupyter_client, which runs
it with ``sys.executable``: the same environment as the tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
OUTPUT = REPO / "tests" / "_output" / "notebooks"
CELL_TIMEOUT_S = 900  # training cells on a CPU are allowed to be slow, not to hang


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    work = tmp_path / "notebooks"
    shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(work / path.name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(work)}},
        allow_errors=False,
    )
    try:
        client.execute()
    finally:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, OUTPUT / path.name)


def test_notebooks_are_found_or_absent_on_purpose() -> None:
    """Guards the glob: when ``notebooks/`` exists it must hold notebooks to execute."""
    folder = REPO / "notebooks"
    if folder.is_dir():
        assert NOTEBOOKS, f"{folder} has no .ipynb files"
