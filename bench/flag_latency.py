"""Core latency of one false-positive flag (``Workbench.flag_false_positive``); prints JSON.

The quick start's workbench (simulated OpenStack, 200 training and 100 test instances, seed 7,
the recommended key model with small networks) is trained and detected once; then up to ``N``
parameter anomalies and ``N`` key anomalies (key, unknown key, session end) are flagged one at a
time, each timed from the call to the returned, re-scored report. Reported per kind: median and
p95 of the whole call (``total_s``) and of its weight update with the journal commit
(``update_s``, the rest is re-scoring).

Run: ``PYTHONPATH=. .venv/bin/python bench/flag_latency.py [N]`` (N = 10; about a minute).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from workbench import Workbench
from workbench.keys.model import KeyModelConfig
from workbench.params.model import ParamModelConfig


def workbench(seed: int = 7) -> Workbench:
    """The quick start's workbench, trained and detected."""
    wb = Workbench.from_simulation(
        n_instances=200,
        test_instances=100,
        anomalies={"performance": 0.05, "execution": 0.05, "parameter": 0.03},
        seed=seed,
        key_config=KeyModelConfig.preset("recommended", hidden_size=32, max_epochs=12, patience=3),
        param_config=ParamModelConfig(max_epochs=4, hidden_size=16),
    )
    wb.fit()
    wb.detect()
    return wb


def flag_times(wb: Workbench, kinds: set[str], n: int) -> dict[str, list[float]]:
    """Flag up to ``n`` open anomalies of ``kinds`` one at a time (the first open one each time)."""
    total, update = [], []
    for _ in range(n):
        a = wb.report.anomalies
        open_ = a[a["kind"].isin(kinds) & (a["status"] == "open")]
        if open_.empty:
            break
        t0 = time.perf_counter()
        result = wb.flag_false_positive(int(open_["id"].iloc[0]))
        total.append(time.perf_counter() - t0)
        update.append(result.seconds)
    return {"total_s": total, "update_s": update}


def summary(xs: list[float]) -> dict[str, float | int]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "median": round(float(np.median(xs)), 4),
        "p95": round(float(np.percentile(xs, 95)), 4),
        "max": round(float(np.max(xs)), 4),
    }


def main(n: int = 10) -> dict:
    t0 = time.perf_counter()
    wb = workbench()
    setup = time.perf_counter() - t0
    out: dict = {"flags_per_kind": n, "setup_s": round(setup, 1)}
    for name, kinds in (
        ("parameter", {"parameter"}),
        ("key", {"key", "unknown key", "session end"}),
    ):
        times = flag_times(wb, kinds, n)
        out[name] = {k: summary(v) for k, v in times.items()}
    out["versions"] = len(wb.journal.versions())
    wb.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10), indent=1))
