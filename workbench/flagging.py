"""Feedback on a workbench's report: a verdict committed to the journal, the online update of a
copy of the models, the new model version swapped in, and the report scored again.

:class:`~workbench.workbench.Workbench` calls these for :meth:`flag_false_positive`,
:meth:`confirm_anomaly` and :meth:`undo`; they take the workbench itself (its journal, models,
locks and current report) and sit beside it, above detection (they score again) and the journal.
Every update of the weights is committed to the journal as a new model version before the new
weights are used; detection keeps using the weights it started with (updates swap in atomically).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids
from workbench.detect.report import DetectionReport
from workbench.feedback.journal import StaleVersionError
from workbench.keys.model import KeyModel, distinct_examples
from workbench.params.model import ParamModel
from workbench.params.vectors import build_series

__all__ = ["UpdateResult", "anomaly_ids", "confirm", "flag", "rescore", "undo"]


@dataclass
class UpdateResult:
    """What one piece of feedback did."""

    anomaly_id: int
    verdict: str  # 'false_positive' or 'confirmed'
    version: int | None  # the model version it created (None for a confirmation)
    seconds: float  # time of the weight update (journal included), not of re-scoring
    loss_before: float | None = None  # validation loss of the model that was updated
    loss_after: float | None = None
    changed: list[int] = field(default_factory=list)  # anomaly ids whose verdict changed
    report: DetectionReport | None = None  # the re-scored report


def anomaly_ids(anomaly_id: Any) -> list[int]:
    """Validated anomaly ids: one integer or a non-empty sequence of integers (repeats dropped).

    >>> anomaly_ids(3), anomaly_ids([4, 4, -2])
    ([3], [4, -2])
    """

    def one(a: Any) -> int:
        if isinstance(a, bool) or not isinstance(a, int | np.integer):
            raise ValueError(f"anomaly ids are integers (the report's id column), got {a!r}")
        return int(a)

    if isinstance(anomaly_id, str | bytes) or np.ndim(anomaly_id) == 0:
        return [one(anomaly_id)]
    ids = list(dict.fromkeys(one(a) for a in anomaly_id))
    if not ids:
        raise ValueError("no anomaly ids given: nothing to learn")
    return ids


def validation_loss(wb: Any, model: KeyModel | None = None) -> float:
    """Mean cross-entropy of the key model on a fixed sample of the training sessions."""
    model = model or wb.key_model
    assert model is not None
    cache = getattr(wb, "_val_examples", None)
    if cache is None or cache[0] != len(model.vocab_):  # the vocabulary decides the encoding
        examples = distinct_examples(
            wb._replay,
            model.vocab_,
            model.config.window,
            count_columns=model.count_columns,
        )
        cache = wb._val_examples = (len(model.vocab_), *examples)
    _, w, t, c = cache
    p = model.predict_proba(w)[np.arange(len(t)), t]
    return float(np.sum(c * -np.log(np.maximum(p, 1e-12))) / np.sum(c))


def example(wb: Any, row: pd.Series, entries: pd.DataFrame) -> dict[str, Any]:
    """The normal example a false positive teaches, as JSON-able data."""
    kind = row["kind"]
    ex: dict[str, Any] = {"kind": kind, "line": int(row["line"]), "raw": row["raw"]}
    if kind == "parameter":
        k = int(row["key"])
        series = build_series(
            entries,
            elapsed=wb.param_config.elapsed,
            keys={k},
            max_params=wb.param_config.max_params,
        )[k]
        r = int(np.flatnonzero(entries["line"].to_numpy() == row["line"])[0])
        i = int(np.flatnonzero(series.rows == r)[0])
        h = wb.param_config.history
        ex.update(
            key=k,
            history=np.nan_to_num(series.values[max(0, i - h) : i], nan=np.nan).tolist(),
            vector=series.values[i].tolist(),
        )
        return ex
    sess_rows = np.flatnonzero(entries["session"].to_numpy(dtype=object) == row["session"])
    sess_rows = sess_rows[entries["parsed"].to_numpy(dtype=bool)[sess_rows]]
    keys = entries["key"].to_numpy()[sess_rows].tolist()
    pos = int(row["position"])
    if kind == "session end":
        ex.update(history=keys, next=keyids.END)
    else:
        ex.update(history=keys[:pos], next=int(row["key"]))
    return ex


def refuse_conflicts(wb: Any, report: DetectionReport, ids: list[int], verdict: str) -> None:
    """KeyError for an id the report does not have, ValueError for one reviewed otherwise."""
    status = wb._verdicts(report.entries)
    for aid in ids:
        report.anomaly(aid)  # KeyError naming an id the report does not have
        have = status.get(aid)
        if have is not None and have != verdict:
            raise ValueError(
                f"anomaly {aid} is already marked {have!r}; undo that verdict before "
                f"marking it {verdict!r}"
            )


def flag(wb: Any, ids: list[int], report: DetectionReport) -> UpdateResult:
    """Teach the false positives ``ids`` of ``report`` (the caller holds the update lock): commit
    each verdict to the journal, update a copy of the models, commit it as a new model version,
    swap it in, and score the report again."""
    entries = report.entries[wb.entries.columns]
    log = wb._log_id(report.entries)
    t0 = time.perf_counter()
    rows = [report.anomaly(aid) for aid in ids]
    done = wb._verdicts(report.entries)
    parent = _parent_version(wb)
    key_model, param_model = _copies(wb, rows)
    loss_before = validation_loss(wb, key_model)
    fids = []
    pending: list[tuple[list[int], int]] = []
    learned: list[int] = []
    for aid, row in zip(ids, rows, strict=True):
        if done.get(aid) == "false positive":
            continue
        ex = example(wb, row, entries)
        ex["log"] = log
        fids.append(wb.journal.record(str(aid), "false_positive", ex))
        teach(wb, ex, key_model, param_model, pending, report=report, learned=learned)
    if not fids:  # every id was already a false positive: nothing to learn, no version
        result = UpdateResult(ids[0], "false_positive", parent, 0.0)
        result.report = report
        return result
    if pending:  # the key examples of a batch are taught together, in one update
        histories, next_keys = zip(*pending, strict=True)
        key_model.partial_fit(list(histories), list(next_keys), replay=wb._replay)
    loss_after = validation_loss(wb, key_model)
    version = _commit(wb, ids, fids, parent, key_model, param_model, learned)
    seconds = time.perf_counter() - t0
    new = rescore(wb, report, ids, "false positive")
    changed = sorted((set(report.anomalies["id"]) ^ set(new.anomalies["id"])) - set(ids))
    result = UpdateResult(ids[0], "false_positive", version, seconds, loss_before, loss_after)
    result.changed = changed
    result.report = new
    wb._emit("update", result)
    return result


def _parent_version(wb: Any) -> int:
    """The model version the update starts from; refused when another workbench moved on."""
    parent = wb.journal.current_version()
    mine = wb.journal.local_version
    if mine != parent:  # another workbench of this process moved the run on
        raise StaleVersionError(
            f"{wb.run_dir}: the run is at model version {parent} but this workbench holds "
            f"version {mine} (another workbench changed it); load the run again"
        )
    return parent


def _copies(wb: Any, rows: list[pd.Series]) -> tuple[KeyModel, ParamModel | None]:
    """Copies of the models the feedback changes (the others as they are): the update runs on
    them while detection keeps the current ones."""
    params_only = all(r["kind"] == "parameter" for r in rows)
    with wb._lock:  # copy only the model the feedback changes; swap it in when done
        key_model = wb.key_model if params_only else copy.deepcopy(wb.key_model)
        param_model = wb.param_model if not params_only else copy.deepcopy(wb.param_model)
        if any(r["kind"] == "parameter" for r in rows) and param_model is wb.param_model:
            param_model = copy.deepcopy(wb.param_model)
    assert key_model is not None
    return key_model, param_model


def _commit(
    wb: Any,
    ids: list[int],
    fids: list[int],
    parent: int,
    key_model: KeyModel,
    param_model: ParamModel | None,
    learned: list[int],
) -> int:
    """Commit the updated models as a new version, then swap them in; the new version."""
    if learned:  # journaled before the version that uses them: ids are never given twice
        top = max(wb.parser.keys_, default=0)
        if top > int(wb.journal.get_meta("max_key") or 0):
            wb.journal.set_meta("max_key", str(top))
    with wb._lock:
        try:
            version = wb.journal.commit_version(
                wb._weights(key_model, param_model),
                reason=f"false positive {', '.join(map(str, ids))}",
                feedback_ids=fids,
                parent=parent,
            )
        except StaleVersionError:
            wb.journal.discard(fids)
            raise
        wb.key_model, wb.param_model = key_model, param_model
    return version


def teach(
    wb: Any,
    ex: dict[str, Any],
    key_model: KeyModel,
    param_model: ParamModel | None,
    pending: list[tuple[list[int], int]] | None = None,
    *,
    report: DetectionReport | None = None,
    learned: list[int] | None = None,
) -> None:
    """Teach one journaled example; a key example goes to ``pending`` when one is given (the
    caller teaches them together). A message kind learned on the way goes to ``learned``."""
    if ex["kind"] == "parameter":
        if param_model is not None:
            history = np.asarray(ex["history"], dtype=float).reshape(-1, len(ex["vector"]))
            param_model.partial_fit(int(ex["key"]), history, ex["vector"], level=wb.level)
        return
    history = [int(k) for k in ex["history"]]
    nxt = int(ex["next"])
    if ex["kind"] == "unknown key" and nxt == keyids.UNKNOWN:
        nxt = learn_template(wb, ex["raw"], report)
        ex["next"] = nxt
        if learned is not None:
            learned.append(nxt)
    if pending is not None:
        pending.append((history, nxt))
        return
    key_model.partial_fit([history], [nxt], replay=wb._replay)


def learn_template(wb: Any, raw: str, report: DetectionReport | None = None) -> int:
    """The user says a message never seen in training is normal: the parser learns it (and
    the unknown entries of the report the feedback was given on are matched again)."""
    key = wb.parser.learn_line(raw)
    report = wb.report if report is None else report
    if report is not None:
        rematch(wb, report.entries, report.entries["key"].to_numpy() == keyids.UNKNOWN)
    return key


def rematch(wb: Any, e: pd.DataFrame, rows: np.ndarray) -> None:
    """Match the selected entries again with the current parser (in place)."""
    idx = np.flatnonzero(rows)
    if len(idx):
        again = wb.parser.transform(e["raw"].iloc[idx].tolist(), sessions=False)
        for col in ("key", "template", "params"):
            e.iloc[idx, e.columns.get_loc(col)] = again[col].to_numpy()


def rescore(wb: Any, report: DetectionReport, ids: list[int], status: str) -> DetectionReport:
    """Score the report's log again with the current models; the rows reviewed (``ids`` get
    ``status``) stay visible with their verdict. The workbench's report becomes the new one when
    it was this one."""
    old = report.anomalies.copy()
    old.loc[old["id"].isin(ids), "status"] = status
    verdicts = wb._verdicts(report.entries)
    old["status"] = [
        verdicts.get(int(i), st) for i, st in zip(old["id"], old["status"], strict=True)
    ]
    new = wb._score(report.entries[wb.entries.columns], g=report.g)
    # keep the reviewed rows visible with their verdict even when they are normal now
    reviewed = old["id"].isin(ids) | old["id"].isin(list(verdicts))
    kept = old[reviewed & ~old["id"].isin(new.anomalies["id"])]
    new.anomalies = (
        pd.concat([new.anomalies, kept], ignore_index=True)
        .sort_values(["line", "id"], kind="stable")
        .reset_index(drop=True)
    )
    new.seconds = report.seconds
    with wb._lock:  # the report the user looks at changes only if it is this one
        if wb.report is report or wb.report is None:
            wb.report = new
    return new


def confirm(wb: Any, anomaly_id: int) -> UpdateResult:
    """Record a true positive (journaled; no weight changes). Refused for an anomaly already
    marked a false positive (undo that first); confirming twice records it once."""
    wb._writable()
    report = wb.report
    if report is None:
        raise RuntimeError("nothing to give feedback on: call detect() first")
    [anomaly_id] = anomaly_ids(anomaly_id)
    with wb._update_lock:
        refuse_conflicts(wb, report, [anomaly_id], "confirmed")
        row = report.anomaly(anomaly_id)
        t0 = time.perf_counter()
        if wb._verdicts(report.entries).get(anomaly_id) != "confirmed":
            wb.journal.record(
                str(anomaly_id),
                "confirmed",
                {
                    "kind": row["kind"],
                    "line": int(row["line"]),
                    "log": wb._log_id(report.entries),
                },
            )
        report.anomalies.loc[report.anomalies["id"] == anomaly_id, "status"] = "confirmed"
    result = UpdateResult(anomaly_id, "confirmed", None, time.perf_counter() - t0)
    result.report = report
    wb._emit("update", result)
    return result


def undo(wb: Any) -> int | None:
    """Undo the last feedback: a whole batch ("all like this" included) with the message kinds
    it taught the parser and its verdicts, or the last confirmation. Returns the model version
    now current (None when there was nothing to undo)."""
    wb._writable()
    with wb._update_lock:
        before = wb.journal.current_version()
        if wb.journal.local_version != before:
            raise StaleVersionError(
                f"{wb.run_dir}: the run is at model version {before} but this workbench "
                f"holds version {wb.journal.local_version}; load the run again"
            )
        version = wb.journal.undo()
        if version is None:
            return None
        if version != before:
            wb._load_weights(wb.journal.weights(version))
            if wb.report is not None:  # entries keyed by undone kinds are unknown again
                e = wb.report.entries
                live = [k for k, (cid, _) in wb.parser.keys_.items() if cid >= 0]
                rematch(wb, e, (e["key"].to_numpy() > 0) & ~e["key"].isin(live).to_numpy())
        if wb.report is not None:
            rescore(wb, wb.report, [], "open")
    wb._emit("update", None)
    return version
