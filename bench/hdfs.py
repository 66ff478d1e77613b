"""HDFS benchmark of the log-key detectors; prints one JSON object.

Train on ``deeplog_hdfs/hdfs_train`` (4,855 normal sessions, as the paper). Abnormal test set:
``hdfs_test_abnormal`` (16,838 sessions). The paper's 553,366-session normal test file is not
available, so the normal test set is the 7,000 label-0 rows of
``derived_logdeep_robustlog/robust_log_{train,valid}.csv`` (a sample of normal HDFS blocks), counted
with multiplicity. Every knob (g, the probability floor, early stopping) is chosen on a share of the
training sessions (never-seen sequences held out, see ``workbench.keymodel``); the test sets are
only scored.

Run with the package installed (``make bench``) or ``PYTHONPATH=. python bench/hdfs.py``.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from workbench import baselines
from workbench.evaluate import build_detector, read_role
from workbench.metrics import confusion, scale_normal

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


def main() -> None:
    train, _ = read_role([DATA / "hdfs_train"], "keys", 0)
    result: dict = {"data": str(DATA.resolve()), "n_train": len(train)}

    # h = 5 instead of the paper's 10, chosen on validation only: on held-out never-seen sequences
    # of hdfs_train (split seeds 0, 1, 2) the estimated FPR of new sessions reaches the 0.1 % target
    # at g = 10-12 with h = 5 and only at g = 15 (every candidate) with h = 10; h = 3 and 7 need
    # g = 12-13.
    model = build_detector("deeplog", window=5, top_g="auto")
    t0 = time.perf_counter()
    model.fit(train, seed=0)
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
        g=model.g_,
        min_probability=model.min_probability_,
        end_g=model.end_g_,
        g_selection=model.g_selection_.to_dict(),
        config=model.config.to_dict(),
        fit_info=model.fit_info_,
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

    ngram = build_detector("ngram", top_g="auto").fit(train, seed=0)
    result["ngram"] = {"n": ngram.n, "g": ngram.g_, **figures(ngram, normal, abnormal)}
    pca = baselines.PCADetector().fit(train)
    result["pca"] = {"n_components": pca.n_components_, **figures(pca, normal, abnormal)}
    im = baselines.InvariantMiningDetector().fit(train)
    result["im"] = {"n_invariants": len(im.invariants_), **figures(im, normal, abnormal)}
    unseen = baselines.UnseenKeyDetector().fit(train)
    result["unseen_key"] = figures(unseen, normal, abnormal)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
