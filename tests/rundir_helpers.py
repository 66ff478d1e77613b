"""Shared pieces of the run-directory and feedback tests: one small trained run per test session,
copies of it, and a test log with a message kind the training log never had."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from workbench.keys.model import KeyModelConfig
from workbench.params.config import ParamModelConfig
from workbench.store.files import file_digest
from workbench.workbench import Workbench

FAST_KEY = KeyModelConfig(top_g="auto", hidden_size=16, max_epochs=6, patience=2)
FAST_PARAM = ParamModelConfig(max_epochs=2, hidden_size=8)
NOVEL = "Frobnicated the quantum flux capacitor of the hypervisor"
REPO = Path(__file__).resolve().parent.parent
_RUNS: dict[str, Path] = {}


def trained_run(base: Path) -> Path:
    """A small trained workbench saved once per test session (``base``: a session temp dir)."""
    key = str(base)
    if key not in _RUNS:
        wb = Workbench.from_simulation(
            n_instances=80,
            test_instances=40,
            anomalies={"performance": 0.1, "execution": 0.1, "parameter": 0.1},
            seed=5,
            key_config=FAST_KEY,
            param_config=FAST_PARAM,
        )
        wb.fit()
        folder = base / "shared-trained-run"
        wb.save(folder)
        wb.close()
        _RUNS[key] = folder
    return _RUNS[key]


def anomalous_log() -> list[str]:
    """Simulated lines with planted anomalies, for tests that need something to flag (a loaded
    run scores its training log by default, where calibrated thresholds raise next to nothing)."""
    from workbench.simulate.engine import simulate

    return simulate(
        n_instances=30, seed=11, anomalies={"performance": 0.2, "execution": 0.2, "parameter": 0.2}
    ).lines


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


# ------------------------------------------------------------------ SIGKILL at random moments
SAVER = textwrap.dedent(
    """
    import sys
    from workbench.workbench import Workbench
    wb = Workbench.load(sys.argv[1])
    other = sys.argv[2]
    print("READY", flush=True)
    i = 0
    while True:
        i += 1
        wb.level = 0.9 + (i % 9) / 100  # every generation differs
        if other != "-" and i % 3 == 0:
            wb.save(other, overwrite=True)  # over another run, then back home
            wb.save(sys.argv[1], overwrite=True)
        else:
            wb.save()
    """
)


def kill_during_save(
    trained: Path, tmp: Path, kills: int, seed: int = 0, delays: list[float] | None = None
) -> dict[str, int]:
    """SIGKILL a process that saves in a loop at random moments (``delays`` after it is ready,
    drawn from ``seed`` when not given); after each kill both run directories must load.
    ``mid_save``: kills that left a save half-done (a generation or temporary file the manifest
    does not name), i.e. that landed inside a save rather than between two."""
    rng = random.Random(seed)
    delays = list(delays) if delays is not None else [rng.uniform(0.0, 1.5) for _ in range(kills)]
    kills = len(delays)
    home = copy_run(trained, tmp / "home")
    other = copy_run(trained, tmp / "other")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    loads = mid = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(home), str(other)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = proc.stdout.readline()
        assert "READY" in line, proc.stderr.read()[-2000:]
        time.sleep(delays[_])
        if proc.poll() is not None:  # it must die by our hand, not by an error of its own
            raise AssertionError(f"the child ended by itself: {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        mid += any(_half_saved(d) for d in (home, other))
        for d in (home, other):
            wb = Workbench.load(d)
            wb.close()
            loads += 1
    return {"kills": kills, "loads": loads, "load_failures": 2 * kills - loads, "mid_save": mid}


def _half_saved(d: Path) -> bool:
    """Whether a save into ``d`` was cut short: files the manifest does not name are there."""
    named = {json.loads((d / "run.json").read_text())["generation"]}
    named.add(json.loads((d / "run.json").read_text())["journal"])
    extra = [p.name for p in d.glob("gen-*") if p.name not in named]
    return bool(extra or list(d.glob(".*.tmp")) or list(d.glob("gen-*/.*.tmp")))


UPDATER = textwrap.dedent(
    """
    import sys
    from workbench.workbench import Workbench
    from tests.rundir_helpers import novel_log
    from workbench.simulate.engine import simulate
    wb = Workbench.load(sys.argv[1])
    log = novel_log(simulate(n_instances=40, anomalies={}, seed=9).lines)
    ids = []
    while not ids:  # a kill after a flag's commit, before its undo, left the new kind learned
        a = wb.detect(log).anomalies
        ids = [int(i) for i in a.loc[a["kind"] == "unknown key", "id"]]
        if not ids and wb.undo() is None:
            raise SystemExit("no unknown key to flag and nothing to undo")
    print("READY", flush=True)
    i = 0
    while True:  # learn the new kind, sometimes save, undo it: kills land anywhere in these
        wb.flag_false_positive(ids[0])
        if i % 3 == 2:
            wb.save()
        wb.undo()
        i += 1
    """
)


def kill_during_update(
    trained: Path, tmp: Path, kills: int, seed: int = 0, delays: list[float] | None = None
) -> dict[str, int]:
    """SIGKILL a process that flags, saves and undoes in a loop at random moments; after each
    kill the run must load with a consistent journal. ``withdrawn``: kills that landed inside an
    update (its verdict journaled, its version not yet), whose verdict the load withdrew."""
    rng = random.Random(seed)
    delays = list(delays) if delays is not None else [rng.uniform(0.0, 2.0) for _ in range(kills)]
    kills = len(delays)
    d = copy_run(trained, tmp / "updates")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    loads = withdrawn = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", UPDATER, str(d)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert "READY" in proc.stdout.readline(), proc.stderr.read()[-2000:]
        time.sleep(delays[_])
        if proc.poll() is not None:  # it must die by our hand, not by an error of its own
            raise AssertionError(f"the child ended by itself: {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        wb = Workbench.load(d)
        assert wb.journal.check() is None
        withdrawn += len(wb.interrupted_feedback)
        made = {v["version"] for v in wb.journal.versions()}
        for e in wb.journal.entries():
            assert e.state in ("applied", "recorded", "undone")  # nothing left pending
            assert e.state != "applied" or e.version in made
        for raw in (e.example.get("raw") for e in wb.journal.entries() if e.state == "applied"):
            assert (
                int(wb.parser.transform([raw], sessions=False)["key"].iloc[0]) > 0
            )  # every applied verdict's message kind is known
        wb.close()
        loads += 1
    return {"kills": kills, "loads": loads, "withdrawn": withdrawn}
