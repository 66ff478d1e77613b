"""Online update from false-positive feedback, evaluated as the paper did on BGL; prints JSON.

BGL (``../shared/data/bgl/BGL_20k.log.gz``, and the loghub 2k sample) is one chronological stream
with a label per line (first token ``-`` = normal). The parser and the key model learn from the first
10 % (and 1 %) of the entries; detection then runs entry by entry over the rest, once without
feedback and once reporting every false positive as it happens (a user with the ground truth). A
false positive on a message never seen in training teaches the parser its template first. g and
the probability floor are chosen on held-out pieces of the training part only. Keys are embedded
(not one-hot), so the cost of an update does not grow with the templates learned online. Each BGL
scenario also runs as ``*_and_following``: a false positive also teaches the steps after it in
its session (BGL's own rule: the node) that recur in other sessions, as the review's "and the
steps after it" switch does (:class:`workbench.feedback.stream.StreamFollow`);
``implied_entries_taught`` counts the entries so taught, ``implied_abnormal_entries_taught``
those of them labelled anomalous (BGL's anomalies recur across nodes: a recurring step can be one).

The second section is the simulator's drift scenario: the model is trained on VM lifecycles without
any operation; half way through the test log a new operation (reboot) begins in part of the VMs,
and both halves hold planted execution anomalies. Without feedback its entries stay false
positives; with feedback the investigator reviews the reports earliest first, confirms those of
the planted anomalous VMs and flags the others, and we count the flags until the new operation's
false positives stop, and whether the planted VMs are still caught. Each scenario is run with a
flag teaching its entries alone and, as ``*_and_following``, with the review's "and the steps after
it" switch: the steps after the flagged entry in its session that recur in other sessions are
confirmed with it (:mod:`workbench.feedback.implied`); ``implied_entries_taught`` counts them. A harder variant brings chains
of up to six operations of every kind at once. Every flagged (window, key) pair is kept and
accepted by scoring (:mod:`workbench.keys.confirmed`): ``confirmed_pairs`` counts them, and
``planted_*_accepted_only_as_confirmed_pairs`` the entries of planted anomalous VMs (and the lines
of the planted anomalies themselves) that fail the top-g rule and are accepted only as such a pair
or through its back-off (``confirmed_backoff``: in a window new only through what a person
confirmed, the last key, then the entry's, as a confirmed pair's or a training step). ``update_ms`` times one ``KeyModel.partial_fit``
call (the weight update); ``workbench_flag_ms`` times ``Workbench.flag_false_positive`` without
re-scoring (journal writes, the model copy, the implied steps, the update, the validation loss
before and after).

Run: ``.venv/bin/python bench/bgl_online.py`` (about 25 CPU minutes, one thread: each BGL 20k
scenario takes 4-9); ``--drift-only`` runs only the simulator scenarios, ``--only=NAME,...``
only the scenarios named (BGL's and the simulator's), ``--seed=N`` the seed (default 0),
``--match=window|row`` says what an entry must share with a confirmed pair to be accepted (the
key window, or the whole input row with the session's key counts; default: the model's),
``--backoff=K`` how many last keys a situation new only through what a person confirmed backs off
to (:mod:`workbench.keys.confirmed`; 0: none, as before the back-off; default: the model's, 1),
``--swap`` lets that back-off take two confirmed steps in a row in either order
(:func:`workbench.keys.confirmed.set_swap`; off by default).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.eval.metrics import confusion
from workbench.feedback.stream import (
    StreamFollow,
    learn_unknown_with,
    split_stream,
    stream_detect,
)
from workbench.keys.confirmed import set_backoff, set_match, set_swap
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.logs.reading import read_lines

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PIECES = 10  # the training stream is cut into this many contiguous pieces (validation holds some)


def entry_metrics(flagged: np.ndarray, abnormal: np.ndarray) -> dict:
    c = confusion(flagged[~abnormal], flagged[abnormal])
    return {k: c.to_dict()[k] for k in ("tp", "fp", "fn", "tn", "precision", "recall", "f1")}


def run_bgl(
    path: Path, train_fraction: float, seed: int = 0, follow: bool = False,
    backoff: int | None = None, swap: bool = False,
) -> dict:  # fmt: skip
    """The paper's stream protocol on a BGL log; with ``follow`` each false positive also teaches
    the steps after it in its session (the format's own rule: the node) that recur in other
    sessions, as the review's "and the steps after it" switch does."""
    split = split_stream([x.text for x in read_lines(path)], "bgl", train_fraction, n_pieces=PIECES)
    parser, train, test, train_keys, pieces = (
        split.parser,
        split.train,
        split.test,
        split.train_keys,
        split.pieces,
    )
    abnormal = split.abnormal
    config = KeyModelConfig(top_g="auto", spare_keys=512, max_epochs=60, encoding="embedding")
    t0 = time.perf_counter()
    model = KeyModel(config).fit(pieces, seed=seed, validation_fraction=0.2)
    train_seconds = time.perf_counter() - t0
    state = model.to_state()

    resolve = learn_unknown_with(parser, test["raw"].tolist())
    sessions = test[parser.format.session_field] if follow else None
    steps_after = (
        StreamFollow(sessions, test["raw"].tolist(), parser.masked_content) if follow else None
    )

    stream = test["key"].to_numpy()
    t0 = time.perf_counter()
    plain = stream_detect(model, stream, context=train_keys)
    plain_seconds = time.perf_counter() - t0
    online_model = KeyModel.from_state(state)
    if backoff is not None:
        set_backoff(online_model, backoff)
    set_swap(online_model, swap)
    t0 = time.perf_counter()
    online = stream_detect(
        online_model,
        stream,
        context=train_keys,
        oracle=lambda i: bool(abnormal[i]),
        resolve_unknown=resolve,
        replay=pieces,
        follow=steps_after,
    )
    online_seconds = time.perf_counter() - t0
    upd = np.asarray(online.update_seconds) * 1000
    without, with_ = entry_metrics(plain.flagged, abnormal), entry_metrics(online.flagged, abnormal)
    return {
        "file": path.name,
        "train_fraction": train_fraction,
        "flag": "false positive: this entry" + (", and the steps after it" if follow else ""),
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
        "confirmed_backoff": online_model.confirmed_["backoff"],
        "confirmed_swap": swap,
        "implied_entries_taught": len(online.implied),
        "implied_abnormal_entries_taught": int(abnormal[online.implied].sum()),
        "update_timed": "one KeyModel.partial_fit call (the weight update itself)",
        "update_ms_mean": round(float(upd.mean()), 2) if len(upd) else None,
        "update_ms_p95": round(float(np.percentile(upd, 95)), 2) if len(upd) else None,
        "new_template_learning_ms_mean": round(float(np.mean(online.resolve_seconds)) * 1000, 2)
        if online.resolve_seconds
        else None,
        "new_templates_learned": len(online.resolve_seconds),
        "detect_seconds_without_update": round(plain_seconds, 2),
        "detect_seconds_with_update": round(online_seconds, 2),
    }


def _drift_logs(operation: str | None, seed: int):
    """Training log without operations; a test log whose second half brings ``operation`` (None:
    chains of up to 6 operations of every kind) in a share of the VMs. Both halves of the test
    log hold planted execution anomalies (a VM's steps out of order)."""
    from workbench.simulate.engine import simulate

    cfg = {"noise": 0.0, "api_lines": False}
    train = simulate(n_instances=300, anomalies={}, operation_probability=0.0, seed=seed, **cfg)
    first = simulate(
        n_instances=60, anomalies={"execution": 0.1}, operation_probability=0.0, seed=seed + 1,
        **cfg,
    )  # fmt: skip
    second = simulate(
        n_instances=60 if operation is None else 90, anomalies={"execution": 0.1},
        operation_probability=0.6, max_operations=6 if operation is None else 1, seed=seed + 2,
        start="2017-05-17 00:00:00", **cfg,
    )  # fmt: skip
    labels = [first.labels, second.labels]
    instances = pd.concat([first.instances, second.instances], ignore_index=True)
    keep = np.ones(len(second.lines), dtype=bool)
    if operation is not None:  # only VMs that run no operation or this one
        tasks = second.instances.set_index("instance")["tasks"]
        ok = set(tasks.index[tasks.isin(["create delete", f"create {operation} delete"])])
        keep = second.labels["instance"].isin(ok).to_numpy()
        labels[1] = second.labels[keep]
    test = first.lines + [x for x, k in zip(second.lines, keep, strict=True) if k]
    lab = pd.concat(labels, ignore_index=True)
    lab["line"] = np.arange(1, len(lab) + 1)
    tasks = instances.set_index("instance")["tasks"]
    lab["new_operation"] = lab["instance"].map(tasks).str.split().str.len().gt(2).to_numpy()
    bad = set(instances.loc[instances["anomaly"].notna(), "instance"])
    lab["planted"] = lab["instance"].isin(bad).to_numpy()
    return train.lines, test, lab, len(first.lines)


def run_drift(
    operation: str | None = "reboot", seed: int = 0, max_flags: int = 100,
    at: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 40, 60), like_this: bool = False,
    follow: bool = False, match: str | None = None, backoff: int | None = None,
    swap: bool = False,
) -> dict:  # fmt: skip
    """The drift scenario: an investigator reviews the reported anomalies earliest first, confirms
    those of the planted anomalous VMs (nothing is learned) and flags every other one as a false
    positive (one update each). Reported: the open false positives of the VMs that run the new
    operation after k flags, the same per tenth of the test log as seen while reviewing in log
    order (a line counts with the verdict it had when the review reached it), the flags until
    none is left, and the planted anomalous VMs still caught.

    With ``like_this`` each flag is "false positive: all like this" (``Workbench.similar``: the
    open anomalies of the same kind and template, taught in one update); the reviewer leaves out
    those of planted anomalous VMs, which they confirm one by one when they reach them. With
    ``follow`` each flag also confirms the steps after it that recur in other sessions (the
    review's "and the steps after it" switch); without it a flag teaches its entries alone.
    ``match``: what of a confirmed pair an entry must share to be accepted
    (:mod:`workbench.keys.confirmed`; None: the default)."""
    from workbench.workbench import Workbench

    train, test, lab, half = _drift_logs(operation, seed)
    wb = Workbench.from_logs(train, "openstack", seed=seed)
    wb.fit(workflows=False)
    if match is not None:
        set_match(wb.key_model, match)
    if backoff is not None:
        set_backoff(wb.key_model, backoff)
    set_swap(wb.key_model, swap)
    new_op = lab["new_operation"].to_numpy()
    planted = lab["planted"].to_numpy()
    instance = lab["instance"].to_numpy()

    def flagged_lines(report) -> np.ndarray:  # reported and not reviewed as false positive
        a = report.anomalies
        out = np.zeros(len(test), dtype=bool)
        out[a.loc[a["status"] != "false positive", "line"].to_numpy() - 1] = True
        return out

    def caught(report) -> int:
        hit = flagged_lines(report) & planted
        return len(set(instance[hit]))

    report = wb.detect(test)
    before = flagged_lines(report)
    caught_before = caught(report)
    seen = np.full(len(test), -1, dtype=np.int8)  # verdict when the review reached the line
    open_new, update_ms, steps, implied = [], [], [], 0
    flags = 0
    stop = None
    while flags < max_flags:
        if len(open_new) == flags:  # after each flag (and before the first)
            open_new.append(int((flagged_lines(report) & ~planted & new_op).sum()))
            if stop is None and open_new[-1] == 0:
                stop = flags
        a = report.anomalies
        a = a[a["status"] == "open"]
        if a.empty:
            break
        row = a.iloc[0]  # the earliest open one, as a reviewer reading the log would
        line = int(row["line"])
        todo = (seen < 0) & (np.arange(len(test)) < line)
        seen[todo] = flagged_lines(report)[todo]
        if planted[line - 1]:
            wb.confirm_anomaly(int(row["id"]))
            continue
        ids = [int(row["id"])]
        if like_this:
            line_of = dict(zip(a["id"].astype(int), a["line"].astype(int), strict=True))
            ids = [i for i in wb.similar(ids[0]) if not planted[line_of[i] - 1]]
        result = wb.flag_false_positive(ids if like_this else ids[0], follow=follow)
        update_ms.append(result.seconds * 1000)
        implied += len(set(result.implied))
        steps.append(wb.key_model.last_update_["steps"] if row["kind"] != "parameter" else None)
        report = result.report
        flags += 1
    final = flagged_lines(report)
    seen[seen < 0] = final[seen < 0]
    hidden = _hidden_by_confirmed(report, wb.key_model) & planted
    tenth = np.array_split(np.arange(len(test)), 10)
    bad_total = len(set(instance[planted]))
    wb.close()
    return {
        "operation": operation or "chains of up to 6 operations of every kind",
        "flag": (
            "false positive: all like this (one update per flag)"
            if like_this
            else "false positive: this entry"
        )
        + (", and the steps after it" if follow else ""),
        "test_lines": len(test),
        "new_operation_from_line": half + 1,
        "planted_anomalous_vms": bad_total,
        "without_update": {
            "false_positives_new_operation": int((before & ~planted & new_op).sum()),
            "false_positives_other": int((before & ~planted & ~new_op).sum()),
            "false_positives_new_operation_per_tenth": [
                int((before & ~planted & new_op)[t].sum()) for t in tenth
            ],
            "planted_vms_caught": caught_before,
        },
        "with_update": {
            "flags": flags,
            "flags_until_no_new_operation_false_positive": stop,
            "open_new_operation_false_positives_after_k_flags": {
                k: open_new[k] for k in at if k < len(open_new)
            },
            "false_positives_new_operation_per_tenth": [
                int(((seen == 1) & ~planted & new_op)[t].sum()) for t in tenth
            ],
            "false_positives_other_open_at_end": int((final & ~planted & ~new_op).sum()),
            "implied_entries_taught": implied,
            "confirmed_pairs": len(wb.key_model.confirmed_["targets"]),
            "confirmed_match": wb.key_model.confirmed_["match"],
            "confirmed_backoff": wb.key_model.confirmed_["backoff"],
            "confirmed_swap": swap,
            "planted_vm_entries_accepted_only_as_confirmed_pairs": int(hidden.sum()),
            "planted_anomaly_lines_accepted_only_as_confirmed_pairs": int(
                (hidden & lab["anomaly"].notna().to_numpy()).sum()
            ),
            "planted_vms_with_such_entries": len(set(instance[hidden])),
            "planted_vms_caught": caught(report),
            "workbench_flag_timed": "Workbench.flag_false_positive without re-scoring: journal "
            "writes, copy of the model, the implied steps, partial_fit, validation loss before and "
            "after",
            "workbench_flag_ms_mean": round(float(np.mean(update_ms)), 1) if update_ms else None,
            "workbench_flag_ms_p95": round(float(np.percentile(update_ms, 95)), 1)
            if update_ms
            else None,
            "key_update_steps": [s for s in steps if s is not None],
        },
    }


def _hidden_by_confirmed(report, key_model) -> np.ndarray:
    """(lines,) bool: the entry's key fails the top-g rule (rank over g, or under the floor) and
    is accepted only because its (window, key) is a pair a person confirmed normal."""
    e = report.entries
    fails = (e["key_rank"].to_numpy() > report.g) | (
        e["key_probability"].to_numpy() < key_model.min_probability_
    )
    return fails & ~e["key_anomalous"].to_numpy(dtype=bool) & (e["position"].to_numpy() >= 0)


def main() -> int:
    torch.set_num_threads(1)  # the same reductions in the same order on every run
    torch.use_deterministic_algorithms(True, warn_only=True)
    out: dict = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    only_drift = "--drift-only" in sys.argv[1:]
    match = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--match=")), None)
    only = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--only=")), None)
    seed = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--seed=")), 0))
    back = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--backoff=")), None)
    backoff = None if back is None else int(back)
    swap = "--swap" in sys.argv[1:]
    out["seed"] = seed
    wanted = None if only is None else set(only.split(","))
    if only_drift:
        out["bgl"] = "skipped: --drift-only"
    elif DATA.is_dir():
        for name, path, fraction in (
            ("bgl_20k_10pct", DATA / "bgl" / "BGL_20k.log.gz", 0.10),
            ("bgl_20k_1pct", DATA / "bgl" / "BGL_20k.log.gz", 0.01),
            ("bgl_2k_10pct", DATA / "loghub_2k" / "BGL" / "BGL_2k.log", 0.10),
        ):
            for suffix, follow in (("", False), ("_and_following", True)):
                if wanted is None or name + suffix in wanted:
                    out[name + suffix] = run_bgl(path, fraction, seed=seed, follow=follow,
                                                 backoff=backoff, swap=swap)  # fmt: skip
    else:
        out["bgl"] = f"skipped: no shared data at {DATA}"
    for name, operation in (("simulator_drift", "reboot"), ("simulator_drift_chains", None)):
        for suffix, like, follow in (("", False, False), ("_like_this", True, False),
                                     ("_and_following", False, True),
                                     ("_like_this_and_following", True, True)):  # fmt: skip
            if wanted is None or name + suffix in wanted:
                out[name + suffix] = run_drift(operation, seed=seed, like_this=like,
                                               follow=follow, match=match,
                                               backoff=backoff, swap=swap)  # fmt: skip
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
