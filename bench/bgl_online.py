"""Online update from false-positive feedback, evaluated as the paper did on BGL; prints JSON.

BGL (``../shared/data/bgl/BGL_20k.log.gz``, and the loghub 2k sample) is one chronological stream
with a label per line (first token ``-`` = normal). The parser and the key model learn from the first
10 % (and 1 %) of the entries; detection then runs entry by entry over the rest, once without
feedback and once reporting every false positive as it happens (a user with the ground truth). A
false positive on a message never seen in training teaches the parser its template first. g and
the probability floor are chosen on held-out pieces of the training part only. Keys are embedded
(not one-hot), so the cost of an update does not grow with the templates learned online.

The second section is the simulator's drift scenario: the model is trained on VM lifecycles without
any pause/suspend/stop/reboot operation; half way through the test log those operations begin.
Without feedback their entries stay false positives; with feedback the investigator flags them
(earliest first) and we count how many flags it takes until they stop.

Run: ``.venv/bin/python bench/bgl_online.py`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from workbench.keymodel import KeyModel, KeyModelConfig
from workbench.metrics import confusion
from workbench.online import learn_unknown_with, stream_detect
from workbench.parsing import LogParser, read_lines

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PIECES = 10  # the training stream is cut into this many contiguous pieces (validation holds some)


def entry_metrics(flagged: np.ndarray, abnormal: np.ndarray) -> dict:
    c = confusion(flagged[~abnormal], flagged[abnormal])
    return {k: c.to_dict()[k] for k in ("tp", "fp", "fn", "tn", "precision", "recall", "f1")}


def run_bgl(path: Path, train_fraction: float, seed: int = 0) -> dict:
    lines = [x.text for x in read_lines(path)]
    n_train = max(50, int(len(lines) * train_fraction))
    parser = LogParser("bgl")
    train = parser.parse(lines[:n_train], sessions=False)
    train = train[train["parsed"]]
    test = parser.transform(lines[n_train:], sessions=False)
    test = test[test["parsed"]].reset_index(drop=True)
    abnormal = test["label"].to_numpy() != "-"
    train_keys = train["key"].to_numpy()
    pieces = [tuple(int(k) for k in p) for p in np.array_split(train_keys, PIECES) if len(p)]
    config = KeyModelConfig(top_g="auto", spare_keys=512, max_epochs=60, encoding="embedding")
    t0 = time.perf_counter()
    model = KeyModel(config).fit(pieces, seed=seed, validation_fraction=0.2)
    train_seconds = time.perf_counter() - t0
    state = model.state_dict()

    resolve = learn_unknown_with(parser, test["raw"].tolist())

    stream = test["key"].to_numpy()
    t0 = time.perf_counter()
    plain = stream_detect(model, stream, context=train_keys)
    plain_seconds = time.perf_counter() - t0
    online_model = KeyModel.from_state(state)
    t0 = time.perf_counter()
    online = stream_detect(
        online_model,
        stream,
        context=train_keys,
        oracle=lambda i: bool(abnormal[i]),
        resolve_unknown=resolve,
        replay=pieces,
    )
    online_seconds = time.perf_counter() - t0
    upd = np.asarray(online.update_seconds) * 1000
    without, with_ = entry_metrics(plain.flagged, abnormal), entry_metrics(online.flagged, abnormal)
    return {
        "file": path.name,
        "train_fraction": train_fraction,
        "train_entries": len(train),
        "test_entries": len(test),
        "test_abnormal": int(abnormal.sum()),
        "keys_in_training": len(model.vocab_),
        "g": model.g_,
        "min_probability": model.min_probability_,
        "g_method": model.g_selection_.method,
        "train_seconds": round(train_seconds, 2),
        "without_update": without,
        "with_update": with_,
        "fp_reduction": round(1 - with_["fp"] / without["fp"], 4) if without["fp"] else None,
        "recall_drop": round(without["recall"] - with_["recall"], 4),
        "updates": online.updates,
        "update_ms_mean": round(float(upd.mean()), 2) if len(upd) else None,
        "update_ms_p95": round(float(np.percentile(upd, 95)), 2) if len(upd) else None,
        "new_template_learning_ms_mean": round(float(np.mean(online.resolve_seconds)) * 1000, 2)
        if online.resolve_seconds
        else None,
        "new_templates_learned": len(online.resolve_seconds),
        "detect_seconds_without_update": round(plain_seconds, 2),
        "detect_seconds_with_update": round(online_seconds, 2),
    }


def run_drift(seed: int = 0, max_flags: int = 60) -> dict:
    from workbench.simulator import simulate
    from workbench.workbench import Workbench

    cfg = {"noise": 0.0, "api_lines": False}
    train = simulate(n_instances=300, anomalies={}, operation_probability=0.0, seed=seed, **cfg)
    first = simulate(n_instances=60, anomalies={}, operation_probability=0.0, seed=seed + 1, **cfg)
    second = simulate(
        n_instances=60, anomalies={}, operation_probability=0.6, seed=seed + 2,
        start="2017-05-17 00:00:00", **cfg,
    )  # fmt: skip
    test = first.lines + second.lines
    half_line = len(first.lines)
    wb = Workbench.from_logs(train.lines, "openstack", seed=seed)
    wb.fit(workflows=False)
    report = wb.detect(test)
    before = report.anomalies
    second_half = before[before["line"] > half_line]
    flags = 0
    timeline = []
    update_ms = []
    while flags < max_flags:
        open_ = report.anomalies[
            (report.anomalies["status"] == "open") & (report.anomalies["line"] > half_line)
        ]
        timeline.append(len(open_))
        if open_.empty:
            break
        result = wb.flag_false_positive(open_["id"].iloc[0])  # earliest open one, as a user would
        update_ms.append(result.seconds * 1000)
        report = result.report
        flags += 1
    wb.close()
    return {
        "train_instances": 300,
        "test_lines": len(test),
        "new_operations_start_at_line": half_line + 1,
        "false_positives_first_half": int((before["line"] <= half_line).sum()),
        "false_positives_second_half_without_update": len(second_half),
        "flags_until_no_open_false_positive": flags if timeline[-1] == 0 else None,
        "open_false_positives_after_each_flag": timeline,
        "workbench_update_ms_mean": round(float(np.mean(update_ms)), 1) if update_ms else None,
        "workbench_update_ms_p95": round(float(np.percentile(update_ms, 95)), 1)
        if update_ms
        else None,
    }


def main() -> int:
    out: dict = {}
    if DATA.is_dir():
        out["bgl_20k_10pct"] = run_bgl(DATA / "bgl" / "BGL_20k.log.gz", 0.10)
        out["bgl_20k_1pct"] = run_bgl(DATA / "bgl" / "BGL_20k.log.gz", 0.01)
        out["bgl_2k_10pct"] = run_bgl(DATA / "loghub_2k" / "BGL" / "BGL_2k.log", 0.10)
    else:
        out["bgl"] = f"skipped: no shared data at {DATA}"
    out["simulator_drift"] = run_drift()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
