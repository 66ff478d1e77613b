"""Training-scale benchmark: ``Workbench`` fitting on a long simulated OpenStack log, per stage.

Prints one JSON object. Run from the repository root::

    python bench/train_scale.py --lines 1000000     # the issue's size (default)
    python bench/train_scale.py --lines 100000
    python bench/train_scale.py --key-config '{"max_distinct_sessions": null}'   # no key-model cap

Protocol: a normal training log of about ``--lines`` lines (simulated, no anomalies, seed
``--seed``) and a test log of ``--test-instances`` VM instances with the simulator's default
anomaly rates (seed ``--seed + 1000``, never seen in training) are written once to ``--workdir``.
A fresh subprocess then runs what ``deeplog-workbench train`` runs, with the default settings:
``Workbench.from_logs(path, "openstack")`` (read, mine the templates, parse, sessions) and
``fit()`` (key model, parameter models, workflows; ``--key-config`` changes key-model settings
from the default), and detects the test log with the fitted models. Reported:

* ``stages``: wall and CPU seconds (user + system of the process) of parsing/mining and of each
  stage of ``fit``, with what each stage used (lines, sessions, distinct sessions, windows,
  vectors, and of how many where a stage read a sample; from ``Workbench.fit_report_``, whose
  one-sentence ``summary`` is printed too);
* ``key_rule``: the key model's rule chosen on validation (g, END limit, floor) with its
  estimated FPR, synthetic recall and the epochs early stopping kept;
* ``peak_rss_mb``: the fitting process's peak resident memory (training and the test detection);
* ``quality``: on the test log, the anomalous VM instances caught (an anomaly reported in their
  session), per kind and in all, and the false-positive rate over the normal instances; the key
  model's g and how many parameter models and workflows were fitted.

Deterministic for a given ``--seed`` (timings vary with the machine's load, printed beside them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINES_PER_INSTANCE = 37.7  # about, with the simulator's defaults


def _simulate(path: Path, n_instances: int, seed: int, anomalies: dict | None) -> int:
    """Write a simulated log and its per-instance truth; returns its line count."""
    from workbench.simulate.config import DEFAULT_ANOMALIES
    from workbench.simulate.engine import simulate

    log = simulate(
        n_instances=n_instances,
        anomalies=dict(DEFAULT_ANOMALIES) if anomalies is None else anomalies,
        seed=seed,
    )
    log.write(path)
    return len(log.lines)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _quality(wb, test: Path) -> dict:
    import pandas as pd

    truth = pd.read_csv(test.with_name(test.name + ".instances.csv"))
    t, c = time.perf_counter(), _cpu()
    report = wb.detect(str(test))
    flagged = set(report.anomalies["session"].dropna())
    bad = truth["anomaly"].notna()
    hit = truth["instance"].isin(flagged)
    per_kind = {
        str(k): f"{int((hit & (truth['anomaly'] == k)).sum())}/{int((truth['anomaly'] == k).sum())}"
        for k in sorted(truth.loc[bad, "anomaly"].unique())
    }
    km = wb.key_model
    return {
        "test_instances": len(truth),
        "anomalous_caught": f"{int((hit & bad).sum())}/{int(bad.sum())}",
        "recall": round(float((hit & bad).sum() / max(bad.sum(), 1)), 3),
        "caught_per_kind": per_kind,
        "false_positive_rate": round(float((hit & ~bad).sum() / max((~bad).sum(), 1)), 4),
        "false_positives": int((hit & ~bad).sum()),
        "anomalies_reported": len(report.anomalies),
        "g": int(km.g_) if km is not None else None,
        "param_models": len(wb.param_keys()),
        "workflows": len(wb.workflows_),
        "detect_seconds": round(time.perf_counter() - t, 2),
        "detect_cpu_seconds": round(_cpu() - c, 2),
    }


def _rule(km) -> dict:
    """The key model's validation-chosen rule and what it rests on."""
    sel, info = km.g_selection_, km.fit_info_
    return {
        "g": km.g_,
        "end_g": km.end_g_,
        "min_probability": km.min_probability_,
        "estimated_fpr": sel.estimated_fpr,
        "synthetic_recall": sel.synthetic_recall,
        "fold_epochs": info.get("fold_epochs"),
        "refit_epochs": info.get("refit_epochs"),
    }


def _fit(train: Path, test: Path, seed: int, key_config: dict) -> None:
    """In this (fresh) process: parse, fit and evaluate; prints a JSON line."""
    from workbench.workbench import Workbench

    t0, c0 = time.perf_counter(), _cpu()
    wb = Workbench.from_logs(str(train), "openstack", seed=seed)
    parse = {"seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(_cpu() - c0, 2)}
    parse["lines"] = len(wb.entries)
    t1, c1 = time.perf_counter(), _cpu()
    wb.fit(key_config or None)
    fit = {"seconds": round(time.perf_counter() - t1, 2), "cpu_seconds": round(_cpu() - c1, 2)}
    stages = {"parse": parse}
    report = getattr(wb, "fit_report_", None)
    if report is not None:
        stages.update(report.to_dict()["stages"])
    res = {
        "lines": len(wb.entries),
        "wall_seconds": round(parse["seconds"] + fit["seconds"], 2),
        "cpu_seconds": round(parse["cpu_seconds"] + fit["cpu_seconds"], 2),
        "fit": fit,
        "stages": stages,
        "peak_rss_mb_after_fit": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    res["summary"] = report.summary() if report is not None else None
    res["key_rule"] = _rule(wb.key_model)
    res["quality"] = _quality(wb, test)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(res))
    wb.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="training log size, about")
    p.add_argument("--test-instances", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "train-scale")
    p.add_argument(
        "--key-config", type=json.loads, default={},
        help='key-model settings changed from the default, as JSON (e.g. \'{"max_distinct_sessions": null}\')',
    )  # fmt: skip
    p.add_argument("--fit", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.fit:
        _fit(*args.fit, args.seed, args.key_config)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    out: dict = {"bench": "train_scale", "lines_asked": args.lines, "seed": args.seed,
                 "key_config": args.key_config, "cpus": os.cpu_count(),
                 "load_average_before": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    n_inst = max(10, round(args.lines / LINES_PER_INSTANCE))
    train = args.workdir / f"train-{n_inst}-{args.seed}.log"
    test = args.workdir / f"test-{args.test_instances}-{args.seed + 1000}.log"
    t = time.perf_counter()
    if not train.exists():
        _simulate(train, n_inst, args.seed, {})
    if not test.exists():
        _simulate(test, args.test_instances, args.seed + 1000, None)
    out["simulate_seconds"] = round(time.perf_counter() - t, 1)
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(Path.cwd()))
    cmd = [sys.executable, __file__, "--fit", str(train), str(test), "--seed", str(args.seed),
           "--key-config", json.dumps(args.key_config)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        out["error"] = done.stderr.strip().splitlines()[-3:]
    else:
        out.update(json.loads(done.stdout.strip().splitlines()[-1]))
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if "wall_seconds" in out:
        out["target_fit_1M_lines_within_60s"] = (
            out["lines"] >= 900_000 and out["wall_seconds"] <= 60
        )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
