"""Training time of the log-key model in the workbench default; prints one JSON object.

Fits :class:`workbench.keys.model.KeyModel` in ``KeyModelConfig.preset("recommended")`` on
``deeplog_hdfs/hdfs_train`` (4,855 normal sessions, the README configuration) for each of
``--seeds`` seeds, and on the key sequences of a normal simulated log (``--sim-instances`` VM
instances; 0 skips it), and reports per fit the wall and CPU seconds (user + system of this process and of the fold workers
it started), the load average before and after, whether the cross-fitted folds trained side by side
in worker processes (``parallel_folds``: by default when the load average leaves a CPU free;
``--folds-in-sequence`` forbids it, ``--folds-side-by-side`` asks for it whatever the load), the
distinct examples trained on, the epochs run and the wall seconds of each training phase. Folds side
by side lower the wall time on a free multi-core machine, not the CPU time. The optimiser's first
use in a process imports ``torch._dynamo`` (about 1 s of CPU; ``torch.use_deterministic_algorithms``
imports it too): it is imported before the fits and its cost reported apart
(``import_cpu_seconds``), so every fit is timed alike.
Wall time depends on what else runs on the machine; compare CPU seconds, and quote the load.

Run from the repository root: ``PYTHONPATH=. python bench/key_training.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HDFS_TRAIN = REPO / ".." / "shared" / "data" / "deeplog_hdfs" / "hdfs_train"


def _cpu() -> float:
    """CPU seconds (user + system) of this process and of its ended children (fold workers)."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def timed_fit(sessions: list, seed: int, **changes: Any) -> dict[str, Any]:
    """Fit the recommended key model on ``sessions``; its time and training summary."""
    from workbench.keys.model import KeyModel, KeyModelConfig

    model = KeyModel(KeyModelConfig.preset("recommended", **changes))
    load, cpu, wall = _load(), _cpu(), time.perf_counter()
    model.fit(sessions, seed=seed)
    info = model.fit_info_
    return {
        "seed": seed,
        "wall_seconds": round(time.perf_counter() - wall, 2),
        "cpu_seconds": round(_cpu() - cpu, 2),
        "load_before": load,
        "load_after": _load(),
        "sessions": len(sessions),
        "entries": sum(map(len, sessions)),
        "distinct_examples": info["n_distinct_examples"],
        "fold_epochs": info["fold_epochs"],
        "parallel_folds": info["parallel_folds"],
        "phase_seconds": phase_seconds(model.history_),
        "refit_epochs": info.get("refit_epochs"),
        "g": model.g_,
        "end_g": model.end_g_,
        "min_probability": model.min_probability_,
    }


def phase_seconds(history: list[dict[str, Any]]) -> dict[str, float]:
    """Wall seconds of each training phase (fold networks, refit), from the epoch records."""
    out: dict[str, float] = {}
    for record in history:
        out[record["phase"]] = round(record["seconds"], 2)  # since the phase began
    return out


def simulated_sessions(instances: int) -> list[tuple[int, ...]]:
    """Key sequences per VM of a normal simulated log, parsed as the workbench parses it."""
    from workbench.logs.parser import LogParser
    from workbench.logs.sessions import session_groups
    from workbench.simulate.engine import simulate

    log = simulate(n_instances=instances, anomalies={}, seed=0)
    parser = LogParser("openstack")
    df = parser.parse(log.lines)
    keys = df["key"].to_numpy()
    _, groups = session_groups(df, parser.session_rule, keep="parsed")
    return [tuple(int(k) for k in keys[rows]) for rows in groups]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1, help="HDFS fits with seeds 0..n-1 (1)")
    ap.add_argument(
        "--sim-instances", type=int, default=0, help="also fit a simulated log of N VMs (0: no)"
    )
    ap.add_argument(
        "--changes",
        type=json.loads,
        default={},
        help="JSON of key-model settings on top of the default, e.g. '{\"validation_folds\": 3}'",
    )
    ap.add_argument(
        "--folds-in-sequence",
        action="store_true",
        help="train the cross-fitted folds one after the other (default: side by side where it pays)",
    )
    ap.add_argument(
        "--folds-side-by-side",
        action="store_true",
        help="train the folds in worker processes whatever the load (default: when a CPU is free)",
    )
    args = ap.parse_args(argv)
    import torch

    from workbench.eval.protocol import read_role
    from workbench.keys import parallel

    if args.folds_in_sequence:
        parallel.MIN_WORK = 2**62
    if args.folds_side_by_side:
        parallel.free_cpus = lambda: float(len(os.sched_getaffinity(0)))
    cpu = _cpu()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)  # imports torch._dynamo
    import torch._dynamo  # what the optimiser's first use imports (already there)

    out: dict[str, Any] = {
        "config": f"KeyModelConfig.preset('recommended', **{args.changes})",
        "import_cpu_seconds": round(_cpu() - cpu, 2),
        "cpus": len(os.sched_getaffinity(0)),
    }
    if HDFS_TRAIN.exists():
        train, _ = read_role([HDFS_TRAIN], "keys", 0)
        out["hdfs"] = [timed_fit(train, seed, **args.changes) for seed in range(args.seeds)]
    else:
        out["hdfs"] = f"skipped: {HDFS_TRAIN} not found"
    if args.sim_instances:
        sessions = simulated_sessions(args.sim_instances)
        out["simulated"] = timed_fit(sessions, 0, **{"spare_keys": 64, **args.changes})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
