"""Shared pieces of the run-directory and feedback tests: one small trained run per test session,
copies of it, and a test log with a message kind the training log never had."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from workbench.keymodel import KeyModelConfig
from workbench.parammodel import ParamModelConfig
from workbench.persistence import file_digest
from workbench.workbench import Workbench

FAST_KEY = KeyModelConfig(top_g="auto", hidden_size=16, max_epochs=6, patience=2)
FAST_PARAM = ParamModelConfig(max_epochs=2, hidden_size=8)
NOVEL = "Frobnicated the quantum flux capacitor of the hypervisor"
_RUNS: dict[str, Path] = {}


def trained_run(base: Path) -> Path:
    """A small trained workbench saved once per test session (``base``: a session temp dir)."""
    key = str(base)
    if key not in _RUNS:
        wb = Workbench.from_simulation(
            n_instances=80, test_instances=40, seed=5, key_config=FAST_KEY, param_config=FAST_PARAM
        )
        wb.fit()
        folder = base / "shared-trained-run"
        wb.save(folder)
        wb.close()
        _RUNS[key] = folder
    return _RUNS[key]


def copy_run(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def gen(d: Path) -> Path:
    """The generation folder the manifest names."""
    return d / json.loads((d / "run.json").read_text())["generation"]


def rewrite(d: Path, name: str, data: bytes, *, checksum: bool = True) -> None:
    """Replace one saved file and (by default) recompute its checksum in the manifest, as an
    attacker who edits a run directory would."""
    target = d / name if name == "run.json" else gen(d) / name
    target.write_bytes(data)
    if checksum and name != "run.json":
        m = json.loads((d / "run.json").read_text())
        m["files"][name] = file_digest(target)
        (d / "run.json").write_text(json.dumps(m))


_INSTANCE = re.compile(r"(\[instance: [0-9a-f-]{36}\] )(.*)$")


def novel_log(lines: list[str], n: int = 4, message: str = NOVEL) -> list[str]:
    """``lines`` with the message of one line in each of the first ``n`` instances replaced by a
    message kind never seen in training (each one an "unknown key" anomaly)."""
    out, seen = [], set()
    for line in lines:
        m = _INSTANCE.search(line)
        if m and m.group(1) not in seen and len(seen) < n and "Took" not in line:
            seen.add(m.group(1))
            line = line[: m.start(2)] + message + f" {len(seen)}"
        out.append(line)
    return out
