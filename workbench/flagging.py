"""Feedback on a workbench's report: a verdict committed to the journal, the online update of a
copy of the models, the new model version swapped in, and the report scored again.

:class:`Feedback` is a base class of :class:`~workbench.workbench.Workbench`: its verbs
:meth:`~Feedback.flag_false_positive`, :meth:`~Feedback.confirm_anomaly`, :meth:`~Feedback.undo`
and :meth:`~Feedback.similar` are the workbench's; it never imports the facade. Each update of the
weights is committed to the journal as a new model version before the new weights are used; what a
flag implies beyond its entry is :mod:`workbench.feedback.implied`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids
from workbench.detect.report import DetectionReport
from workbench.detect.scoring import ParamScoreCache, score
from workbench.feedback.implied import implied, like
from workbench.feedback.journal import StaleVersionError, log_fingerprint
from workbench.feedback.values import entry_vector, has_values
from workbench.keys.examples import distinct_examples
from workbench.keys.model import KeyModel
from workbench.keys.online import replay_sample
from workbench.params.confirmed import remember
from workbench.params.model import ParamModel

__all__ = ["Feedback", "UpdateResult", "anomaly_ids", "replay_sample"]


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
    implied: list[int] = field(default_factory=list)  # lines taught as what the flag implies
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


class Feedback:
    """The feedback half of :class:`~workbench.workbench.Workbench` (a base class of it): flagging,
    confirming, undoing, and what they need (the examples a verdict teaches, the online update on
    copies of the models, re-scoring). It never imports the workbench."""

    def _writable(self) -> None:
        if self.read_only:
            raise PermissionError(
                f"{self.run_dir}: the run was loaded read-only; feedback cannot be recorded"
            )

    def flag_false_positive(
        self, anomaly_id: int | Sequence[int], *, background: bool = False, follow: bool = False
    ) -> UpdateResult | Future[UpdateResult]:
        """The user says this reported anomaly is normal: learn it now (``partial_fit``), journaled.

        ``anomaly_id`` is one id of the current report or a non-empty list of them (one batch,
        one update); ids are checked at once (integers only, known to the report, not confirmed).
        The verdicts are journaled first; the update runs on a copy of the models, is committed
        as a new model version, then swapped in. Updates run one at a time, each from the weights
        the previous one left. The report is scored again; ``changed`` lists the anomalies whose
        verdict changed. With ``background=True`` the update runs in a worker thread (a Future is
        returned; detection keeps the current weights meanwhile) on the report it was made for.
        The flagged entries alone are taught (unconfirmed anomalies are never learned from, see
        docs/METHOD.md). With ``follow=True`` the user also confirms the steps after each flagged
        key anomaly in its session where the same steps recur in other sessions
        (:mod:`workbench.feedback.implied`; their lines are ``implied``, journaled and undone
        with the flag)."""
        self._writable()
        self._check_fitted()
        report = self.report
        if report is None:
            raise RuntimeError("nothing to give feedback on: call detect() first")
        ids = anomaly_ids(anomaly_id)
        self._refuse_conflicts(report, ids, "false positive")
        if background:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="update")
            return self._executor.submit(self._flag, ids, report, follow)
        return self._flag(ids, report, follow)

    def _flag(self, ids: list[int], report: DetectionReport, follow: bool = False) -> UpdateResult:
        with self._update_lock:  # queued: one update at a time, each on the latest weights
            return self._flag_locked(ids, report, follow)

    def key_validation_loss(self, model: KeyModel | None = None) -> float:
        """Mean cross-entropy of the key model on a fixed sample of the training sessions (kept
        for the last model asked: a flag starts from the model the previous one measured)."""
        model = model or self.key_model
        assert model is not None
        last = getattr(self, "_val_loss", None)
        if last is not None and last[0] is model and last[1] == len(model.vocab_):
            return last[2]
        cache = getattr(self, "_val_examples", None)
        if cache is None or cache[0] != len(model.vocab_):  # the vocabulary decides the encoding
            examples = distinct_examples(
                self._replay,
                model.vocab_,
                model.config.window,
                count_columns=model.count_columns,
            )
            cache = self._val_examples = (len(model.vocab_), *examples)
        _, w, t, c = cache
        p = model.predict_proba(w)[np.arange(len(t)), t]
        loss = float(np.sum(c * -np.log(np.maximum(p, 1e-12))) / np.sum(c))
        self._val_loss = (model, len(model.vocab_), loss)
        return loss

    def _example(self, row: pd.Series, entries: pd.DataFrame) -> dict[str, Any]:
        """The normal example a false positive teaches, as JSON-able data."""
        kind = row["kind"]
        ex: dict[str, Any] = {"kind": kind, "line": int(row["line"]), "raw": row["raw"]}
        if kind == "parameter" or has_values(self.param_model, row):  # the entry's values
            k = int(row["key"])
            values = entry_vector(entries, int(row["line"]), k, self.param_config, self.param_model)
            if kind == "parameter":
                assert values is not None  # a parameter anomaly was scored: it has a vector
                ex.update(key=k, **values)
                return ex
            if values is not None:
                ex["values"] = {"key": k, "vector": values["vector"]}
        sess_rows = np.flatnonzero(entries["session"].to_numpy(dtype=object) == row["session"])
        sess_rows = sess_rows[entries["parsed"].to_numpy(dtype=bool)[sess_rows]]
        keys = entries["key"].to_numpy()[sess_rows].tolist()
        pos = int(row["position"])
        if kind == "session end":
            ex.update(history=keys, next=keyids.END)
        else:
            ex.update(history=keys[:pos], next=int(row["key"]))
        return ex

    def _refuse_conflicts(self, report: DetectionReport, ids: list[int], verdict: str) -> None:
        """KeyError for an id the report does not have, ValueError for one reviewed otherwise."""
        status = self._verdicts(report.entries)
        for aid in ids:
            report.anomaly(aid)  # KeyError naming an id the report does not have
            have = status.get(aid)
            if have is not None and have != verdict:
                raise ValueError(
                    f"anomaly {aid} is already marked {have!r}; undo that verdict before "
                    f"marking it {verdict!r}"
                )

    def _flag_locked(self, ids: list[int], report: DetectionReport, follow: bool) -> UpdateResult:
        """Teach the false positives ``ids`` of ``report`` (the caller holds the update lock): commit
        each verdict to the journal, update a copy of the models, commit it as a new model version,
        swap it in, and score the report again."""
        entries = report.entries[self.entries.columns]
        log = self._log_id(report.entries)
        t0 = time.perf_counter()
        rows = [report.anomaly(aid) for aid in ids]
        done = self._verdicts(report.entries)
        parent = self._parent_version()
        parent_params = self.param_model
        key_model, param_model = self._copies(rows)
        loss_before = self.key_validation_loss()  # the copy's weights are the current ones
        fids, exs = [], []
        pending: list[tuple[list[int], int]] = []
        learned: list[int] = []
        for aid, row in zip(ids, rows, strict=True):
            if done.get(aid) == "false positive":
                continue
            ex = self._example(row, entries)
            ex["log"] = log
            fids.append(self.journal.record(str(aid), "false_positive", ex))
            exs.append((row, ex))
            self._apply(ex, key_model, param_model, pending, report=report, learned=learned)
        implied = self._follow(report, exs, fids, key_model, (pending, learned)) if follow else []
        if not fids:  # every id was already a false positive: nothing to learn, no version
            result = UpdateResult(ids[0], "false_positive", parent, 0.0)
            result.report = report
            return result
        if pending:  # the key examples of a batch are taught together, in one update
            histories, next_keys = zip(*pending, strict=True)
            key_model.partial_fit(list(histories), list(next_keys), replay=self._replay)
        loss_after = self.key_validation_loss(key_model)
        version = self._commit(ids, fids, parent, key_model, param_model, learned)
        seconds = time.perf_counter() - t0
        taught = self._param_keys(rows)
        new = self._rescore(report, ids, "false positive", (parent_params, taught))
        changed = sorted((set(report.anomalies["id"]) ^ set(new.anomalies["id"])) - set(ids))
        result = UpdateResult(ids[0], "false_positive", version, seconds, loss_before, loss_after)
        result.changed, result.implied = changed, implied
        result.report = new
        self._emit("update", result)
        return result

    def _follow(self, report: DetectionReport, exs: list, fids: list[int], key_model: KeyModel,
                into: tuple[list, list[int]]) -> list[int]:  # fmt: skip
        """Teach (``pending``) and journal what the false positives ``exs`` imply; their lines."""
        pending, learned = into
        found = implied(report, [row for row, _ in exs], window=key_model.config.window,
                        learn=lambda raw: learned.append(self._learn_template(raw, report)),
                        masked=self.parser.masked_content)  # fmt: skip
        for fid, (_, ex), more in zip(fids, exs, found, strict=True):
            if more:
                ex["implied"] = more
                self.journal.amend(fid, ex)
                pending.extend((e["history"], e["next"]) for e in more)
        return [e["line"] for more in found for e in more]

    def _param_keys(self, rows: list[pd.Series]) -> set[int]:
        """The keys whose parameter models a flag of ``rows`` changes (:mod:`.feedback.values`)."""
        keep = [r["kind"] == "parameter" or has_values(self.param_model, r) for r in rows]
        return {int(r["key"]) for r, k in zip(rows, keep, strict=True) if k}

    def _parent_version(self) -> int:
        """The model version the update starts from; refused when another workbench moved on."""
        parent = self.journal.current_version()
        mine = self.journal.local_version
        if mine != parent:  # another workbench of this process moved the run on
            raise StaleVersionError(
                f"{self.run_dir}: the run is at model version {parent} but this workbench holds "
                f"version {mine} (another workbench changed it); load the run again"
            )
        return parent

    def _copies(self, rows: list[pd.Series]) -> tuple[KeyModel, ParamModel | None]:
        """Copies of the models the feedback changes (the others as they are): the update runs on
        them while detection keeps the current ones."""
        taught = self._param_keys(rows)
        with self._lock:  # copy only what the feedback changes; swap it in when done
            keys_too = any(r["kind"] != "parameter" for r in rows)
            key_model = copy.deepcopy(self.key_model) if keys_too else self.key_model
            pm = self.param_model
            param_model = pm.update_copy(taught) if taught and pm is not None else pm
        assert key_model is not None
        return key_model, param_model

    def _commit(
        self,
        ids: list[int],
        fids: list[int],
        parent: int,
        key_model: KeyModel,
        param_model: ParamModel | None,
        learned: list[int],
    ) -> int:
        """Commit the updated models as a new version, then swap them in; the new version."""
        if learned:  # journaled before the version that uses them: ids are never given twice
            top = max(self.parser.keys_, default=0)
            if top > int(self.journal.get_meta("max_key") or 0):
                self.journal.set_meta("max_key", str(top))
        with self._lock:
            try:
                version = self.journal.commit_version(
                    self._weights(key_model, param_model, parent=parent),
                    reason=f"false positive {', '.join(map(str, ids))}",
                    feedback_ids=fids,
                    parent=parent,
                )
            except StaleVersionError:
                self.journal.discard(fids)
                raise
            self.key_model, self.param_model = key_model, param_model
        return version

    def _apply(
        self,
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
                param_model.partial_fit(int(ex["key"]), history, ex["vector"], level=self.level)
            return
        if "values" in ex and param_model is not None:  # a key anomaly's values: kept as normal
            remember(param_model.keys_[int(ex["values"]["key"])], ex["values"]["vector"])
        history = [int(k) for k in ex["history"]]
        nxt = int(ex["next"])
        if ex["kind"] == "unknown key" and nxt == keyids.UNKNOWN:
            nxt = self._learn_template(ex["raw"], report)
            ex["next"] = nxt
            if learned is not None:
                learned.append(nxt)
        if pending is not None:
            pending.append((history, nxt))
            return
        key_model.partial_fit([history], [nxt], replay=self._replay)

    def _learn_template(self, raw: str, report: DetectionReport | None = None) -> int:
        """The user says a message never seen in training is normal: the parser learns it (and
        the unknown entries of the report the feedback was given on are matched again)."""
        key = self.parser.learn_line(raw)
        report = self.report if report is None else report
        if report is not None:
            self._rematch(report.entries, report.entries["key"].to_numpy() == keyids.UNKNOWN)
        return key

    def _rematch(self, e: pd.DataFrame, rows: np.ndarray) -> None:
        """Match the selected entries again with the current parser (in place)."""
        idx = np.flatnonzero(rows)
        if len(idx):
            again = self.parser.transform(e["raw"].iloc[idx].tolist(), sessions=False)
            for col in ("key", "template", "params"):
                e.iloc[idx, e.columns.get_loc(col)] = again[col].to_numpy()

    def _rescore(
        self,
        report: DetectionReport,
        ids: list[int],
        status: str,
        taught: tuple[ParamModel | None, set[int]] | None = None,
    ) -> DetectionReport:
        """Score the report's log again with the current models (``taught``: the parameter model
        an update started from and the keys it taught, see :class:`ParamScoreCache`); reviewed rows
        (``ids`` get ``status``) stay with their verdict. It becomes the workbench's report when
        the report was."""
        old = report.anomalies.copy()
        old.loc[old["id"].isin(ids), "status"] = status
        given = self._verdicts(report.entries)
        old["status"] = [
            given.get(int(i), st) for i, st in zip(old["id"], old["status"], strict=True)
        ]
        entries = report.entries[self.entries.columns]
        cache = self.__dict__.setdefault("_param_scores", ParamScoreCache())
        params = cache.scores(self.param_model, entries, report.entries, taught)
        new = score(self.scorer(), entries, g=report.g, status_of=given, params=params)
        # keep the reviewed rows visible with their verdict even when they are normal now
        reviewed = old["id"].isin(ids) | old["id"].isin(list(given))
        kept = old[reviewed & ~old["id"].isin(new.anomalies["id"])]
        new.anomalies = (
            pd.concat([new.anomalies, kept], ignore_index=True)
            .sort_values(["line", "id"], kind="stable")
            .reset_index(drop=True)
        )
        new.seconds = report.seconds
        with self._lock:  # the report the user looks at changes only if it is this one
            if self.report is report or self.report is None:
                self.report = new
        return new

    def confirm_anomaly(self, anomaly_id: int) -> UpdateResult:
        """Record a true positive (journaled; no weight changes). Refused for an anomaly already
        marked a false positive (undo that first); confirming twice records it once."""
        self._writable()
        report = self.report
        if report is None:
            raise RuntimeError("nothing to give feedback on: call detect() first")
        [anomaly_id] = anomaly_ids(anomaly_id)
        with self._update_lock:
            self._refuse_conflicts(report, [anomaly_id], "confirmed")
            row = report.anomaly(anomaly_id)
            t0 = time.perf_counter()
            if self._verdicts(report.entries).get(anomaly_id) != "confirmed":
                ex = {"kind": row["kind"], "line": int(row["line"])}
                self.journal.record(
                    str(anomaly_id), "confirmed", {**ex, "log": self._log_id(report.entries)}
                )
            report.anomalies.loc[report.anomalies["id"] == anomaly_id, "status"] = "confirmed"
        result = UpdateResult(anomaly_id, "confirmed", None, time.perf_counter() - t0)
        result.report = report
        self._emit("update", result)
        return result

    def undo(self) -> int | None:
        """Undo the last feedback: a whole batch ("all like this" included) with the message kinds
        it taught the parser and its verdicts, or the last confirmation. Returns the model version
        now current (None when there was nothing to undo)."""
        self._writable()
        with self._update_lock:
            before = self.journal.current_version()
            if self.journal.local_version != before:
                raise StaleVersionError(
                    f"{self.run_dir}: the run is at model version {before} but this workbench "
                    f"holds version {self.journal.local_version}; load the run again"
                )
            version = self.journal.undo()
            if version is None:
                return None
            if version != before:
                self._load_weights(self.journal.weights(version))
                if self.report is not None:  # entries keyed by undone kinds are unknown again
                    e = self.report.entries
                    live = [k for k, (cid, _) in self.parser.keys_.items() if cid >= 0]
                    self._rematch(e, (e["key"].to_numpy() > 0) & ~e["key"].isin(live).to_numpy())
            if self.report is not None:
                self._rescore(self.report, [], "open")
        self._emit("update", None)
        return version

    def _log_id(self, entries: pd.DataFrame) -> str:
        """Fingerprint of a log (:func:`log_fingerprint`): verdicts are kept per log and anomaly
        id. The last frame's is kept (by identity), since one flag asks for it several times."""
        last = getattr(self, "_log_id_last", None)
        if last is not None and last[0] is entries and last[1] == len(entries):
            return last[2]
        out = log_fingerprint(entries["raw"])
        self._log_id_last = (entries, len(entries), out)
        return out

    def _verdicts(self, entries: pd.DataFrame) -> dict[int, str]:
        """The verdicts in force on this log, from the journal: anomaly id -> review status."""
        if "raw" not in entries.columns or not len(entries):
            return {}
        names = {"false_positive": "false positive", "confirmed": "confirmed"}
        found = self.journal.verdicts(self._log_id(entries))
        return {int(a): names[v] for a, v in found.items() if a.lstrip("-").isdigit()}

    def similar(self, anomaly_id: int) -> list[int]:
        """Open anomalies of the current report like this one, this one first: the same kind and
        the same message template (for an unknown key, the same masked message), whatever their
        history. What "flag all like this" hands to :meth:`Workbench.flag_false_positive` as one batch when a
        new normal behaviour shows up many times; each entry is still taught with its own history.
        """
        if self.report is None:
            raise RuntimeError("nothing to compare with: call detect() first")
        [anomaly_id] = anomaly_ids(anomaly_id)
        return like(self.report.anomalies, self.report.anomaly(anomaly_id), self.parser)
