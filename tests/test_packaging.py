"""Packaging: environment.yml names the same packages as pyproject.toml; the layout rule holds."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# conda-forge names of PyPI packages where they differ
CONDA_NAMES = {"torch": "pytorch"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in meta["dependencies"]} | {
        _name(r) for r in meta["optional-dependencies"]["test"]
    }
    wanted = {CONDA_NAMES.get(n, n) for n in wanted}
    text = (REPO / "environment.yml").read_text()
    listed = set()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"\s*-\s+([A-Za-z0-9_.\-]+)", line)
        if m and m.group(1) not in {"pip", "python", "-e"}:
            listed.add(_name(m.group(1)))
    assert listed == wanted


def test_core_never_imports_the_ui_layer():
    code = (
        "import sys, importlib, pkgutil, workbench\n"
        "for m in pkgutil.iter_modules(workbench.__path__):\n"
        "    importlib.import_module('workbench.' + m.name)\n"
        "bad = [m for m in ('ipywidgets', 'plotly', 'widgets') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
