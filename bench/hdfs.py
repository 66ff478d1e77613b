"""HDFS benchmark of the log-key detectors; prints one JSON object.

Train on ``deeplog_hdfs/hdfs_train`` (4,855 normal sessions, as the paper). Abnormal test set:
``hdfs_test_abnormal`` (16,838 sessions). The paper's 553,366-session normal test file is not
available, so the normal test set is the 7,000 label-0 rows of
``derived_logdeep_robustlog/robust_log_{train,valid}.csv`` (a sample of normal HDFS blocks), counted
with multiplicity. Every knob (g, the probability floor, early stopping) is chosen on a share of the
training sessions (never-seen sequences held out, see ``workbench.keys.model``); the test sets are
only scored. The main model is reported for ``--seeds`` seeds, beside the window-only ablation and
the baselines.

Run with the package installed (``make bench``) or ``PYTHONPATH=. python bench/hdfs.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from workbench.eval.metrics import confusion, scale_normal
from workbench.eval.protocol import build_detector, read_role
from workbench.keys import baselines
from workbench.keys.model import KeyModel, KeyModelConfig

REPO = Path(__file__).resolve().parent.parent

DATA = REPO / ".." / "shared" / "data" / "deeplog_hdfs"
PAPER_NORMAL_SESSIONS = 553_366


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_tests() -> tuple[list, list]:
    normal, _ = read_role(
        [
            DATA / "derived_logdeep_robustlog" / "robust_log_train.csv",
            DATA / "derived_logdeep_robustlog" / "robust_log_valid.csv",
        ],
        "csv",
        0,
    )
    abnormal, _ = read_role([DATA / "hdfs_test_abnormal"], "keys", 1)
    return normal, abnormal


def figures(detector, normal, abnormal) -> dict:
    c = confusion(detector.detect(normal).anomalous, detector.detect(abnormal).anomalous)
    est = scale_normal(c, PAPER_NORMAL_SESSIONS)
    out = c.to_dict()
    out["estimate_at_553366_normal_sessions"] = {
        "note": "ESTIMATE, not measured: FP = measured FPR x 553,366; TP and FN as measured",
        "fp": est.fp,
        "precision": est.precision,
        "f1": est.f1,
    }
    return out


MAIN_CONFIG = {"window": 5, "session_counts": True, "ensemble": 3, "validation_folds": 2}
"""The reported DeepLog configuration (see the comments in :func:`main` for how it was chosen)."""


def key_model(config: dict) -> KeyModel:
    """A key model in the recommended preset with ``config`` on top, g and the floor chosen on
    validation."""
    return KeyModel(KeyModelConfig.preset("recommended", top_g="auto", **config))


def fit_and_score(config: dict, train, normal, abnormal, seed: int) -> dict:
    """Train one key model with ``config`` and g chosen on validation; its test figures."""
    model = key_model(config)
    t0 = time.perf_counter()
    model.fit(train, seed=seed)
    train_seconds = time.perf_counter() - t0
    out = figures(model, normal, abnormal)
    out.update(
        seed=seed,
        g=model.g_,
        end_g=model.end_g_,
        min_probability=model.min_probability_,
        estimated_fpr=model.g_selection_.estimated_fpr,
        synthetic_recall=model.g_selection_.synthetic_recall,
        train_seconds=train_seconds,
    )
    return out


def _selection(figures: dict) -> dict:
    """The validation figures of a fit: the main model keeps them in ``g_selection``."""
    return figures.get("g_selection", figures)


def main() -> None:
    torch.set_num_threads(1)  # the same reductions in the same order on every run
    torch.use_deterministic_algorithms(True, warn_only=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds of the main model reported (default: 3)"
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="the main model's seed; the others follow it (default: 0, seeds 0 .. seeds - 1)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=MAIN_CONFIG["validation_folds"],
        help="cross-fitted validation folds of the main model (default: the README's 2)",
    )
    parser.add_argument(
        "--changes",
        type=json.loads,
        default={},
        help="JSON of key-model settings on top of the main configuration, e.g. "
        "'{\"target_fpr\": 0.0008}'",
    )
    parser.add_argument(
        "--main-only",
        action="store_true",
        help="only the main model over the seeds (no ablation, no baselines)",
    )
    args = parser.parse_args()
    config = {**MAIN_CONFIG, "validation_folds": args.folds, **args.changes}
    train, _ = read_role([DATA / "hdfs_train"], "keys", 0)
    result: dict = {"data": str(DATA.resolve()), "n_train": len(train)}

    # The model: the paper's LSTM over the last h = 5 keys, plus the session's count of every key
    # so far (what a block's parallel replica pipelines have done, whatever their interleaving),
    # an ensemble of 3 networks whose probabilities are averaged, and g, the END limit and the
    # floor chosen on two cross-fitted folds (every sequence seen once in hdfs_train is held out
    # once). Validation only decides the rule: on held-out never-seen sequences the window-only
    # network reaches the 0.1 % FPR budget at g = 10-13 with h = 5 (only at g = 15, every
    # candidate, with h = 10); the counts raise the share of synthetic anomalies flagged within
    # that budget from 0.34 to 0.45 (split seed 0; h = 10 with counts: 0.36). Single networks put
    # some never-seen normal orderings below probability 1e-5, and a rule chosen on 274 held-out
    # sessions varies widely between seeds; averaging networks and validating on all 548 rare
    # sessions temper both.
    model = key_model(config)
    t0 = time.perf_counter()
    model.fit(train, seed=args.first_seed)
    train_seconds = time.perf_counter() - t0
    rss_after_training = peak_rss_mb()

    # Scoring throughput: reading the test files plus detection, over the whole test set.
    t0 = time.perf_counter()
    normal, abnormal = read_tests()
    d_normal, d_abnormal = model.detect(normal), model.detect(abnormal)
    detect_seconds = time.perf_counter() - t0
    n_keys = sum(map(len, normal)) + sum(map(len, abnormal))
    c = confusion(d_normal.anomalous, d_abnormal.anomalous)
    est = scale_normal(c, PAPER_NORMAL_SESSIONS)
    deeplog = c.to_dict()
    deeplog.update(
        seed=args.first_seed,
        g=model.g_,
        min_probability=model.min_probability_,
        end_g=model.end_g_,
        g_selection=model.g_selection_.to_dict(),
        config=model.config.to_dict(),
        fit_info=model.fit_info_,
        device=str(model.device_),
        train_seconds=train_seconds,
        peak_rss_mb_after_training=rss_after_training,
        read_and_detect_seconds=detect_seconds,
        test_keys=n_keys,
        keys_per_second=n_keys / detect_seconds,
        peak_rss_mb_after_detection=peak_rss_mb(),
        estimate_at_553366_normal_sessions={
            "note": "ESTIMATE, not measured: FP = measured FPR x 553,366; TP and FN as measured",
            "fp": est.fp,
            "precision": est.precision,
            "f1": est.f1,
        },
    )
    result["n_test_normal"], result["n_test_abnormal"] = len(normal), len(abnormal)
    result["deeplog"] = deeplog

    # The same configuration with other seeds (split, initial weights, shuffling): how much the
    # figures move with the randomness of training and of the validation split.
    result["deeplog_seeds"] = [
        fit_and_score(config, train, normal, abnormal, seed)
        for seed in range(args.first_seed + 1, args.first_seed + args.seeds)
    ]
    every = [deeplog, *result["deeplog_seeds"]]
    result["deeplog_over_seeds"] = {
        "seeds": [r["seed"] for r in every],
        "recall": [r["recall"] for r in every],
        "fpr": [r["fpr"] for r in every],
        "recall_mean": sum(r["recall"] for r in every) / len(every),
        "recall_worst": min(r["recall"] for r in every),
        "fpr_mean": sum(r["fpr"] for r in every) / len(every),
        "fpr_worst": max(r["fpr"] for r in every),
        "target_met_every_seed": all(r["recall"] >= 0.97 and r["fpr"] <= 0.001 for r in every),
        # what the rule was chosen on (validation only): its estimated FPR and synthetic recall
        "validation_estimated_fpr": [_selection(r)["estimated_fpr"] for r in every],
        "validation_synthetic_recall": [_selection(r)["synthetic_recall"] for r in every],
    }
    if args.main_only:
        print(json.dumps(result, indent=1))
        return
    # Ablation: the paper's window-only single network (h = 5), everything else the same.
    window_only = {"window": 5, "session_counts": False, "ensemble": 1}
    result["deeplog_window_only"] = fit_and_score(window_only, train, normal, abnormal, 0)

    ngram = build_detector("ngram", top_g="auto").fit(train, seed=0)
    result["ngram"] = {"n": ngram.n, "g": ngram.g_, **figures(ngram, normal, abnormal)}
    pca = baselines.PCADetector().fit(train)
    result["pca"] = {"n_components": pca.n_components_, **figures(pca, normal, abnormal)}
    im = baselines.InvariantMiningDetector().fit(train)
    result["im"] = {"n_invariants": len(im.invariants_), **figures(im, normal, abnormal)}
    unseen = baselines.UnseenKeyDetector().fit(train)
    result["unseen_key"] = figures(unseen, normal, abnormal)
    # The simple detector of Landauer et al. (FSE 2024): a new key, an unseen session length or an
    # unseen count vector. DeepLog is only worth its cost where its F1 is above this one's.
    simple = baselines.SimpleDetector().fit(train)
    result["simple"] = {
        "lengths_seen": len(simple.lengths_),
        "count_vectors_seen": len(simple.count_vectors_),
        **figures(simple, normal, abnormal),
    }
    result["deeplog_vs_simple"] = {
        "f1_deeplog_seed0": deeplog["f1"],
        "f1_simple": result["simple"]["f1"],
        "deeplog_better": bool(deeplog["f1"] > result["simple"]["f1"]),
        "f1_at_553366_normal_estimate": {
            "deeplog_seed0": deeplog["estimate_at_553366_normal_sessions"]["f1"],
            "simple": result["simple"]["estimate_at_553366_normal_sessions"]["f1"],
        },
    }
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
