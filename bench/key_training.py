"""Training time of the log-key model in the workbench default; prints one JSON object.

Fits :class:`workbench.keys.model.KeyModel` in ``KeyModelConfig.preset("recommended")`` on
``deeplog_hdfs/hdfs_train`` (4,855 normal sessions, the README configuration) for each of
``--seeds`` seeds, and on the key sequences of a normal simulated log (``--sim-instances`` VM
instances; 0 skips it), and reports per fit the wall and CPU seconds (user + system of this
process), the load average before and after, the distinct examples trained on, the epochs run and
the wall seconds of each training phase.
Wall time depends on what else runs on the machine; compare CPU seconds, and quote the load.

Run from the repository root: ``PYTHONPATH=. python bench/key_training.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HDFS_TRAIN = REPO / ".." / "shared" / "data" / "deeplog_hdfs" / "hdfs_train"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


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
    args = ap.parse_args(argv)
    import torch

    from workbench.eval.protocol import read_role

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    out: dict[str, Any] = {"config": f"KeyModelConfig.preset('recommended', **{args.changes})"}
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
