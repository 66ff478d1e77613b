"""Run directories and feedback under attack and under SIGKILL; prints JSON.

* ``payloads``: crafted ``py/reduce``, ``py/object``, ``py/function``, ``py/type`` and ``py/repr``
  objects written into every JSON file of a saved run (checksums recomputed, as an attacker
  would), a pickled ``os.system`` call in the weights files and in the journal; for each, whether
  the load was refused and whether the planted command ran (it must never).
* ``kill_during_save``: a process saves in a loop (in place, and over another run with
  ``overwrite=True``) and is SIGKILLed at random moments; both directories must load every time.
* ``kill_during_update``: a process flags (learning a new message kind), saves and undoes in a
  loop and is SIGKILLed at random moments; the run must load with a consistent journal
  (``withdrawn``: kills inside an update, whose verdict the load withdrew and reported).
* ``old_format``: a run saved by the previous version (format 2, the end of a session was -1 in
  the journal's examples) loads, reads the end of a session as -2 and saves as the current format.
* ``threads``: two threads flag two anomalies at the same moment; both must be taught.
* ``processes``: a second process opening a run directory another process holds.

Run: ``PYTHONPATH=. .venv/bin/python bench/rundir_trust.py [KILLS]`` (about five minutes on 2
cores with the default 24 kills each).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.rundir_helpers import (  # noqa: E402
    copy_run,
    gen,
    kill_during_save,
    kill_during_update,
    novel_log,
    rewrite,
    trained_run,
)
from workbench.simulate.engine import simulate  # noqa: E402
from workbench.store.files import RunFormatError  # noqa: E402
from workbench.workbench import Workbench  # noqa: E402


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def payloads(trained: Path, tmp: Path) -> list[dict[str, object]]:
    marker = tmp / "ran"
    cmd = f"touch {marker}"
    crafted = {
        "py/reduce": {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [cmd]}]},
        "py/object": {"py/object": "subprocess.Popen", "py/newargs": {"py/tuple": [[cmd]]}},
        "py/function": {"py/function": "os.system"},
        "py/type": {"py/type": "subprocess.Popen"},
        "py/repr": {"py/repr": f"os/os.system({cmd!r})"},
    }
    out = []
    n = 0
    targets = ["parser.json", "key_model.json", "param_model.json", "workflows.json", "run.json"]
    for target in targets:
        for name, payload in crafted.items():
            n += 1
            d = copy_run(trained, tmp / f"p{n}")
            path = d / target if target == "run.json" else gen(d) / target
            obj = json.loads(path.read_text())
            obj = (
                {**obj, **{k: payload for k in list(obj)[:3]}}
                if isinstance(obj, dict)
                else [
                    payload,
                    *obj,
                ]
            )
            rewrite(d, target, json.dumps(obj).encode())
            out.append({"file": target, "payload": name, **_load(d, marker)})
    for target in ("key_model.pt", "param_model.pt", "journal.sqlite"):
        n += 1
        d = copy_run(trained, tmp / f"p{n}")
        buf = io.BytesIO()
        pickle.dump({"w": _Evil(marker)}, buf)
        if target == "journal.sqlite":
            with sqlite3.connect(d / target) as db:
                db.execute(
                    "INSERT INTO versions (parent, created, reason, weights) "
                    "VALUES (1, 'x', 'x', ?)",
                    (buf.getvalue(),),
                )
                db.execute("UPDATE meta SET value = '2' WHERE name = 'current_version'")
        else:
            rewrite(d, target, buf.getvalue())
        out.append({"file": target, "payload": "pickled os.system", **_load(d, marker)})
    return out


def _load(d: Path, marker: Path) -> dict[str, object]:
    try:
        Workbench.load(d).close()
        refused = None
    except RunFormatError as exc:
        refused = str(exc).replace(str(d), "RUN")[:160]
    return {"refused": refused, "code_ran": marker.exists()}


def threads(trained: Path, tmp: Path) -> dict[str, object]:
    wb = Workbench.load(copy_run(trained, tmp / "threads"))
    report = wb.detect(novel_log(simulate(n_instances=40, anomalies={}, seed=9).lines))
    a = report.anomalies
    ids = [int(i) for i in a.loc[a["kind"] == "unknown key", "id"]][:2]
    before, v0 = wb.key_model.updates_, wb.journal.current_version()
    gate = threading.Barrier(2)
    done: list[int] = []

    def flag(aid: int) -> None:
        gate.wait()
        done.append(wb.flag_false_positive(aid).version)

    ts = [threading.Thread(target=flag, args=(i,)) for i in ids]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out = {
        "flags": len(ids),
        "returned": len(done),
        "versions": sorted(done),
        "parents": [v["parent"] for v in wb.journal.versions() if v["version"] > v0],
        "journal_states": [e.state for e in wb.journal.entries()],
        "examples_in_model": wb.key_model.updates_ - before,
    }
    wb.close()
    return out


def processes(trained: Path, tmp: Path) -> dict[str, object]:
    d = copy_run(trained, tmp / "procs")
    wb = Workbench.load(d)
    code = (
        "import sys\nfrom workbench.workbench import Workbench\n"
        "try:\n    Workbench.load(sys.argv[1])\nexcept Exception as e:\n"
        "    print(type(e).__name__ + ': ' + str(e))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    got = subprocess.run(
        [sys.executable, "-c", code, str(d)], capture_output=True, text=True, env=env
    )
    wb.close()
    return {"second_process": got.stdout.strip().replace(str(d), "RUN")}


def old_format(tmp: Path) -> dict[str, object]:
    d = copy_run(REPO / "tests" / "data" / "format2_run", tmp / "format2")
    before = json.loads((d / "run.json").read_text())["format_version"]
    wb = Workbench.load(d)
    ends = [e.example["next"] for e in wb.journal.entries() if e.example["kind"] == "session end"]
    report = wb.detect()
    wb.save()
    wb.close()
    return {
        "format_before": before,
        "format_after_save": json.loads((d / "run.json").read_text())["format_version"],
        "session_end_examples_next": ends,
        "entries_scored": len(report.entries),
    }


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        trained = trained_run(tmp)
        result = {
            "payloads": payloads(trained, tmp),
            "threads": threads(trained, tmp),
            "processes": processes(trained, tmp),
            "kill_during_save": kill_during_save(trained, tmp / "s", kills, seed=11),
            "kill_during_update": kill_during_update(trained, tmp / "u", kills, seed=12),
            "old_format": old_format(tmp),
        }
    result["payloads_refused"] = sum(p["refused"] is not None for p in result["payloads"])
    result["payloads_that_ran_code"] = sum(bool(p["code_ran"]) for p in result["payloads"])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
