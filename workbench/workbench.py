"""The front object for notebook users: one log, its parser, both DeepLog models, the workflows and
the feedback journal, behind a few verbs::

    wb = Workbench.from_simulation(n_instances=400, seed=3)   # or Workbench.from_logs(path, "hdfs")
    wb.fit()                                                  # key model, parameter models, workflows
    report = wb.detect()                                      # per-entry verdicts, review table
    wb.flag_false_positive(report.anomalies["id"].iloc[0])    # online update, journaled
    print(wb.diagnose(report.anomalies["id"].iloc[1]).sentence)
    wb.save("runs/demo"); Workbench.load("runs/demo")

(tests/test_workbench.py runs all of this.)

Choices made where the paper is silent
--------------------------------------
* The key model scores sessions (instances, blocks, nodes, windows); entries that belong to no
  session are judged by the parameter model and the unknown-key rule only.
* An entry is first checked by the key model; its parameter vector is checked only when its key was
  normal (the paper's order). A session that ends where normal sessions never end is reported on
  its last entry with kind ``'session end'``.
* Every update of the weights is committed to the journal as a new model version before the new
  weights are used; detection keeps using the weights it started with (updates swap in atomically).
* Everything a widget shows comes from here, through returned data and the events ``'fit'``,
  ``'progress'``, ``'detect'`` and ``'update'`` (see :meth:`Workbench.on`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench import keyids
from workbench.detect.coverage import Coverage
from workbench.feedback.journal import FeedbackJournal, StaleVersionError
from workbench.keys.examples import distinct_examples
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.keys.topg import detect
from workbench.logs.parser import LogParser, ParseSummary
from workbench.logs.sessions import SessionRule, session_groups
from workbench.params.model import ParamModel, ParamModelConfig
from workbench.params.vectors import build_series
from workbench.store.files import RunLock
from workbench.store.rundir import load_workbench, save_workbench, state_from_bytes, state_to_bytes
from workbench.workflow.cooccurrence import WorkflowConfig, build_workflows, key_sequences
from workbench.workflow.from_keymodel import keymodel_distribution, model_tasks

__all__ = ["DetectionReport", "UpdateResult", "Workbench"]

logger = logging.getLogger(__name__)

ANOMALY_COLUMNS = [
    "id", "line", "timestamp", "session", "raw", "kind", "key", "template", "position", "rank",
    "g", "probability", "candidates", "mse", "threshold", "level", "dimension", "observed",
    "predicted", "status",
]  # fmt: skip

EVENTS = ("fit", "progress", "detect", "update")


@dataclass
class DetectionReport:
    """Verdicts on one log: every entry, and the anomalous ones as a review table.

    ``entries`` is the parsed frame with the detectors' columns added (``key_rank``, ``key_probability``,
    ``key_anomalous``, ``key_reason``, ``mse``, ``param_status``, ``param_anomalous``, ``anomalous``).
    ``anomalies`` has one row per reported anomaly with the columns of :data:`ANOMALY_COLUMNS`; its
    ``id`` is the entry's line number (negative for a session that ended early, on its last line),
    so it stays the same when the same log is scored again; ``status`` is ``'open'``, ``'false
    positive'`` or ``'confirmed'``.
    """

    entries: pd.DataFrame
    anomalies: pd.DataFrame
    g: int
    level: float
    seconds: float = 0.0
    coverage: Coverage | None = None  # what was read and checked, with warnings

    @property
    def verdict(self) -> str:
        """'N anomalies in M checked entries', or 'nothing was checked' when nothing was."""
        n = len(self.anomalies)
        return self.coverage.verdict(n) if self.coverage is not None else f"{n} anomalies"

    def anomaly(self, anomaly_id: int) -> pd.Series:
        """The row of one anomaly; KeyError with the id when there is none."""
        hit = self.anomalies.index[self.anomalies["id"] == anomaly_id]
        if not len(hit):
            raise KeyError(f"no anomaly {anomaly_id!r} in this report")
        return self.anomalies.loc[hit[0]]


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


class Workbench:
    """Parser, models, workflows and feedback over one log (see the module docstring).

    Parameters
    ----------
    parser
        A fitted :class:`~workbench.logs.parser.LogParser`.
    entries
        The parsed training entries (normal behaviour to learn from).
    key_config, param_config, workflow_config
        Model settings; when None, the key model's recommended configuration
        (:meth:`KeyModelConfig.preset` ``"recommended"``) and the other models' defaults.
    run_dir
        Where :meth:`save` writes and the feedback journal lives; a temporary folder until then.
    seed
        Seeds every training run.
    """

    def __init__(
        self,
        parser: LogParser,
        entries: pd.DataFrame,
        *,
        key_config: KeyModelConfig | None = None,
        param_config: ParamModelConfig | None = None,
        workflow_config: WorkflowConfig | None = None,
        run_dir: str | Path | None = None,
        seed: int = 0,
        journal: str = "journal.sqlite",
        read_only: bool = False,
    ) -> None:
        self.parser = parser
        self.entries = entries
        # g chosen on validation; room for 64 message kinds learned online from feedback
        self.key_config = key_config or KeyModelConfig.preset("recommended", spare_keys=64)
        self.param_config = param_config or ParamModelConfig()
        self.workflow_config = workflow_config or WorkflowConfig()
        self.seed = seed
        self.key_model: KeyModel | None = None
        self.param_model: ParamModel | None = None
        self.workflows_: list[nx.DiGraph] = []
        self._method1: list[nx.DiGraph] | None = None
        self.report: DetectionReport | None = None
        self.test_source: Any = None  # what detect() reads when called without a source
        self.test_labels: pd.DataFrame | None = None  # ground truth of the test log, when known
        self.level = 0.99
        self._status: dict[int, str] = {}  # reviewed anomalies of the current log, by id
        self._source: Any = None
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {e: [] for e in EVENTS}
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.format_choice: Any = None  # how --format auto chose, when it did
        if run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="deeplog-run-")
            run_dir = self._tmp.name
        self.run_dir = Path(run_dir)
        self.read_only = read_only
        # one writer per run directory (another process gets a clear error); updates one at a time
        self._run_lock: RunLock | None = None if read_only else RunLock(self.run_dir)
        self._update_lock = threading.RLock()
        try:
            self.journal = FeedbackJournal(self.run_dir / journal, read_only=read_only)
        except BaseException:
            if self._run_lock is not None:
                self._run_lock.release()
            raise

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_logs(
        cls,
        source: Any,
        fmt: Any = "auto",
        *,
        session: str | SessionRule | None = None,
        year: int | None = None,
        **kwargs: Any,
    ) -> Workbench:
        """Parse a log (path, bytes or lines) and wrap it.

        ``fmt`` is a built-in name, a header, a regex, a LogFormat or ``"auto"`` (chosen on the
        first lines, see :mod:`workbench.logs.autoformat`; the choice is in :attr:`format_choice`).
        ``session`` overrides the format's session rule; it is kept by the parser and applied to
        every log :meth:`detect` reads later, and saved with the run. ``year`` dates timestamps
        that carry none (default: the current year).
        """
        choice = None
        if isinstance(fmt, str) and fmt.strip().lower() == "auto":
            from workbench.logs.autoformat import choose_format

            if not isinstance(source, str | Path | bytes):
                source = list(source)  # read once, used twice
            choice = choose_format(line.text for line in _head(source))
            fmt = choice.format
        parser = LogParser(fmt, session=session, year=year)
        entries = parser.parse(source)
        wb = cls(parser, entries, **kwargs)
        wb.format_choice = choice
        return wb

    @classmethod
    def from_simulation(
        cls,
        n_instances: int = 400,
        *,
        test_instances: int = 200,
        anomalies: dict[str, float | int] | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> Workbench:
        """Train on a simulated normal log; keep a second simulated log with anomalies for detect().

        The test log uses another seed, so nothing of it is seen in training; its ground truth is
        in :attr:`test_labels`.
        """
        from workbench.simulate.engine import simulate

        train = simulate(n_instances=n_instances, anomalies={}, seed=seed)
        test = simulate(
            n_instances=test_instances,
            anomalies={"performance": 0.05, "execution": 0.05, "parameter": 0.03}
            if anomalies is None
            else anomalies,
            seed=seed + 1,
        )
        wb = cls.from_logs(train.lines, "openstack", seed=seed, **kwargs)
        wb.test_source = test.lines
        wb.test_labels = test.labels
        return wb

    @staticmethod
    def preview(lines: Sequence[str], fmt: str, n: int = 20) -> pd.DataFrame:
        """Parse the first ``n`` lines with a candidate format (for a live preview while typing)."""
        lines = list(lines)[:n]
        if isinstance(fmt, str) and fmt.strip().lower() == "auto":
            from workbench.logs.autoformat import choose_format

            fmt = choose_format(lines).format
        df = LogParser(fmt).parse(lines)
        return df[["line", "parsed", "error", "key", "template", "params", "session", "timestamp"]]

    @property
    def session_rule(self) -> SessionRule | None:
        """The session rule every parse of this workbench uses (the parser's, else the format's)."""
        return self.parser.effective_session_rule

    def summary(self) -> ParseSummary:
        """Counts of the training log: lines, parsed, unparsed by reason, keys, sessions, with the
        format and the session rule in force."""
        return self.parser.summary(self.entries)

    # ------------------------------------------------------------------ events
    def on(self, event: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(payload)`` on ``event``: 'fit' (the workbench), 'progress' (a dict per
        epoch or batch), 'detect' (the :class:`DetectionReport`), 'update' (an :class:`UpdateResult`,
        or None after :meth:`undo`). Callbacks may run in a worker thread."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; expected one of {EVENTS}")
        self._listeners[event].append(callback)

    def _emit(self, name: str, payload: Any) -> None:
        for cb in list(self._listeners[name]):
            try:
                cb(payload)
            except Exception:  # a broken view must not break the analysis
                logger.exception("a %r listener failed", name)

    # ------------------------------------------------------------------ training
    def _sessions(self, entries: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
        """Session names and, per session, the positional rows of its parsed entries in order."""
        return session_groups(entries, self.parser.session_rule)

    def stop(self) -> None:
        """Ask a running :meth:`fit` to stop after the current step; the models stay usable."""
        self._stop.set()

    def _progress(self, stage: str, user: Sequence[Callable[[dict[str, Any]], None]]):
        def cb(event: Any) -> None:
            kind = getattr(event, "kind", "epoch")
            # Stop only from inside a training loop (batch or epoch ends), where the loop catches
            # it and keeps the best weights; raised from train_begin/train_end it would escape fit.
            if self._stop.is_set() and kind not in ("train_begin", "train_end"):
                raise KeyboardInterrupt
            if hasattr(event, "kind"):  # a training.TrainEvent of the key model
                payload = {
                    "stage": stage,
                    "event": event.kind,
                    "epoch": getattr(event, "epoch", None),
                    "epochs": getattr(event, "max_epochs", None),
                    "batch": getattr(event, "batch", None),
                    "batches": getattr(event, "n_batches", None),
                    "train_loss": getattr(event, "train_loss", None),
                    "val_loss": getattr(event, "val_loss", None),
                    "phase": getattr(event, "phase", None),
                    "stopped": getattr(event, "stopped", None),
                }
            else:  # the parameter model's per-epoch dict
                payload = {
                    "stage": stage,
                    "event": "epoch",
                    "epochs": self.param_config.max_epochs,
                    **dict(event),
                }
            for u in user:
                u(payload)
            self._emit("progress", payload)

        return cb

    def fit(
        self,
        key_config: KeyModelConfig | dict[str, Any] | None = None,
        param_config: ParamModelConfig | dict[str, Any] | None = None,
        callbacks: Iterable[Callable[[dict[str, Any]], None]] = (),
        *,
        workflows: bool = True,
    ) -> Workbench:
        """Train the key model, the parameter models and build the workflows on the training log.

        A config may be a dict of the fields to change from the current one (the parameter model's
        ``window`` means its ``history``). ``callbacks`` receive progress dicts (``stage`` 'key' or
        'param', ``event``, ``epoch``, ``train_loss``, ``val_loss``...). :meth:`stop` ends training
        early with usable models.
        """
        user = list(callbacks)
        self._stop.clear()
        self.key_config = _config(self.key_config, key_config)
        self.param_config = _config(self.param_config, param_config, {"window": "history"})
        _, groups = self._sessions(self.entries)
        keys = self.entries["key"].to_numpy()
        sessions = [tuple(int(k) for k in keys[g]) for g in groups]
        if not sessions:
            raise ValueError("the training log has no sessions: choose a session rule")
        t0 = time.perf_counter()
        key_model = KeyModel(self.key_config).fit(
            sessions, seed=self.seed, callbacks=[self._progress("key", user)]
        )
        param_model = None
        if not self._stop.is_set():
            param_model = ParamModel(self.param_config).fit(
                self.entries, seed=self.seed, callbacks=[self._progress("param", user)]
            )
        with self._lock:
            self.key_model = key_model
            self.param_model = param_model
            self._replay = _sample(sessions, 400, self.seed)
        self._method1 = None
        if workflows:
            self.workflows_ = build_workflows(self.entries, self.workflow_config)
        self.journal.commit_version(self._weights(), reason="trained")
        self.fit_seconds_ = time.perf_counter() - t0
        self.stopped_ = self._stop.is_set()
        self._emit("fit", self)
        self._stop.clear()
        return self

    def _check_fitted(self) -> None:
        if self.key_model is None:
            raise RuntimeError("the workbench is not trained yet: call fit() first")

    # ------------------------------------------------------------------ detection
    def detect(
        self,
        source: Any = None,
        *,
        level: float | None = None,
        g: int | None = None,
        client: Any = None,
    ) -> DetectionReport:
        """Detect anomalies in ``source`` (path, bytes or lines; default: the test log, or the
        training log when there is none) with the key model first, then the parameter models.

        With ``client`` (a ``dask.distributed.Client``), ``source`` is one log file or a list of
        them, read as one log on that cluster (:func:`workbench.detect.distributed.detect_dask`): the
        verdicts are those of one process, row for row, and the report keeps the verdict columns.
        """
        self._check_fitted()
        if level is not None:
            self.level = float(level)
        if client is not None:
            from workbench.detect.distributed import detect_dask

            if source is None:
                raise ValueError("detection on a cluster needs the log files to read")
            report = detect_dask(self, source, client, level=level, g=g)
            if report.coverage is not None:
                report.coverage.format = self.parser.format.name
                rule = self.parser.effective_session_rule
                report.coverage.session_rule = None if rule is None else str(rule)
            self.report = report
            self._emit("detect", report)
            return report
        t0 = time.perf_counter()
        if source is None and self.report is not None and self.test_source is None:
            entries = self.report.entries[self.entries.columns].copy()
        elif source is None:
            src = self.test_source
            entries = self.entries.copy() if src is None else self.parser.transform(src)
        else:
            entries = self.parser.transform(source)
        if not _same_source(source, self._source):
            self._source = source
            if source is not None:
                self._status = {}
        report = self._score(entries, g=g)
        report.seconds = time.perf_counter() - t0
        self.report = report
        self._emit("detect", report)
        return report

    def _score(
        self, entries: pd.DataFrame, *, g: int | None = None, old: Any = None
    ) -> DetectionReport:
        with self._lock:
            key_model, param_model = self.key_model, self.param_model
        assert key_model is not None
        g = int(key_model.g_ if g is None else g)
        floor = float(key_model.min_probability_)
        n = len(entries)
        keys = entries["key"].to_numpy()
        rank = np.full(n, np.nan)
        prob = np.full(n, np.nan)
        key_bad = np.zeros(n, dtype=bool)
        reason = np.full(n, "", dtype=object)
        position = np.full(n, -1, dtype=np.int64)
        cand: dict[int, list[tuple[int, str, float]]] = {}
        end_rows: dict[int, tuple[int, float, list[tuple[int, str, float]]]] = {}
        names, groups = self._sessions(entries)
        if groups:
            sessions = [tuple(int(k) for k in keys[grp]) for grp in groups]
            scores = key_model.score(sessions, top_k=max(g, 10))
            end_g = key_model.end_g_ if g == key_model.g_ else None
            verdict = detect(scores, g, floor, end_g=end_g).entries
            bad = verdict["anomalous"].to_numpy(dtype=bool)
            why = verdict["reason"].astype(str).to_numpy()
            starts = np.concatenate([[0], np.cumsum(scores.session_length + 1)[:-1]])
            # sliding windows overlap: an entry is anomalous when any window covering it says
            # so; its rank and position are those of its own window (its 'session'), or of the
            # window that flagged it
            sliding = self.parser.session_rule is not None and (
                self.parser.session_rule.kind == "sliding"
            )
            own = entries["session"].to_numpy(dtype=object) if sliding else None
            for s, grp in enumerate(groups):
                base = starts[s]
                m = len(grp)
                sl = slice(base, base + m)
                if sliding:
                    take = (own[grp] == names[s]) | (bad[sl] & ~key_bad[grp])
                    take |= position[grp] < 0
                else:
                    take = np.ones(m, dtype=bool)
                rank[grp[take]] = scores.rank[sl][take]
                prob[grp[take]] = scores.probability[sl][take]
                position[grp[take]] = np.arange(m)[take]
                for j in np.flatnonzero(bad[sl]):
                    e = base + j
                    row = int(grp[j])
                    if key_bad[row]:
                        continue
                    reason[row] = why[e]
                    cand[row] = self._candidates(scores.candidates(e), g)
                key_bad[grp] |= bad[sl]
                e_end = base + m
                if not sliding and bad[e_end] and not key_bad[grp[-1]]:
                    end_rows[int(grp[-1])] = (
                        int(scores.rank[e_end]),
                        float(scores.probability[e_end]),
                        self._candidates(scores.candidates(e_end), g),
                    )
        # entries outside every session: only the unknown-key rule applies to their key
        loose = entries["parsed"].to_numpy(dtype=bool) & (position < 0) & (keys == keyids.UNKNOWN)
        key_bad |= loose
        reason[loose] = "unknown key"
        out = entries.copy()
        out["position"] = position
        out["key_rank"] = rank
        out["key_probability"] = prob
        out["key_anomalous"] = key_bad
        out["key_reason"] = reason
        # parameter values, only where the key was normal
        level = self.level
        lv = _level_col(level)
        if param_model is not None:
            checked = entries["parsed"].to_numpy(dtype=bool) & ~key_bad
            ps = param_model.score(entries, only=checked)
            out["mse"] = ps["mse"].to_numpy()
            out["param_status"] = ps["status"].to_numpy()
            thr_col = f"threshold_{lv}"
            out["threshold"] = ps[thr_col].to_numpy() if thr_col in ps else np.nan
            flag = ps.get(f"anomalous_{lv}")
            out["param_anomalous"] = (
                flag.fillna(False).to_numpy(dtype=bool) if flag is not None else np.zeros(n, bool)
            )
            out["dimension"] = ps["dimension"].to_numpy()
            out["observed"] = ps["observed"].to_numpy()
            out["predicted"] = ps["predicted"].to_numpy()
        else:
            set_unscored_params(out)
        out["anomalous"] = out["key_anomalous"] | out["param_anomalous"]
        rows = []
        status_of = self._verdicts(entries)
        for r in np.flatnonzero(out["anomalous"].to_numpy()):
            e = out.iloc[r]
            kind = "key" if key_bad[r] else "parameter"
            if kind == "key" and reason[r] == "unknown key":
                kind = "unknown key"
            rows.append(self._anomaly_row(e, kind, g, level, cand.get(int(r), []), status_of))
        for r, (rk, pr, cands) in end_rows.items():
            e = out.iloc[r]
            row = self._anomaly_row(e, "session end", g, level, cands, status_of)
            row.update(rank=rk, probability=pr, id=-int(e["line"]))
            row["status"] = status_of.get(row["id"], "open")
            rows.append(row)
            out.iat[r, out.columns.get_loc("anomalous")] = True
        anomalies = pd.DataFrame(rows, columns=ANOMALY_COLUMNS)
        anomalies = anomalies.sort_values(["line", "id"], kind="stable").reset_index(drop=True)
        coverage = self._coverage(out, groups)
        return DetectionReport(out, anomalies, g, level, coverage=coverage)

    def _coverage(self, out: pd.DataFrame, groups: list[np.ndarray]) -> Coverage:
        parsed = out["parsed"].to_numpy(dtype=bool)
        in_session = out["position"].to_numpy() >= 0
        param = (out["param_status"] == "scored").to_numpy(dtype=bool)
        reasons = pd.Series(out["error"].to_numpy()[~parsed], dtype=object).astype(str)
        rule = self.parser.effective_session_rule
        return Coverage(
            lines=len(out),
            parsed=int(parsed.sum()),
            unparsed_reasons={str(k): int(v) for k, v in reasons.value_counts().items()},
            sessions=len(groups),
            key_entries=int((parsed & in_session).sum()),
            param_entries=int(param.sum()),
            loose_entries=int((parsed & ~in_session).sum()),
            unknown_rule_entries=int((parsed & ~in_session & ~param).sum()),
            unknown_keys=int((parsed & (out["key"].to_numpy() == keyids.UNKNOWN)).sum()),
            timestamps=int((parsed & out["timestamp"].notna().to_numpy()).sum()),
            format=self.parser.format.name,
            session_rule=None if rule is None else str(rule),
            rule_needs_timestamps=bool(rule is not None and rule.needs_timestamps),
            params_need_timestamps=bool(self.param_config.elapsed and self.param_keys()),
            problems=[
                str(out.attrs[k])
                for k in ("timestamp_problem", "session_problem")
                if k in out.attrs
            ],
        )

    def _candidates(self, pairs: list[tuple[int, float]], g: int) -> list[tuple[int, str, float]]:
        out = []
        for k, p in pairs[: max(g, 1)]:
            tmpl = "<end of session>" if k == keyids.END else self.parser.template_of(int(k))
            out.append((int(k), tmpl, round(float(p), 6)))
        return out

    @staticmethod
    def _anomaly_row(e: pd.Series, kind: str, g: int, level: float, cands, status_of) -> dict:
        aid = int(e["line"])
        param = kind == "parameter"
        return {
            "id": aid,
            "line": int(e["line"]),
            "timestamp": e["timestamp"],
            "session": e["session"],
            "raw": e["raw"],
            "kind": kind,
            "key": int(e["key"]),
            "template": e["template"],
            "position": int(e["position"]),
            "rank": None if param or pd.isna(e["key_rank"]) else int(e["key_rank"]),
            "g": g,
            "probability": None if param else _float(e["key_probability"]),
            "candidates": cands,
            "mse": _float(e["mse"]) if param else None,
            "threshold": _float(e["threshold"]) if param else None,
            "level": level if param else None,
            "dimension": e["dimension"] if param else None,
            "observed": _float(e["observed"]) if param else None,
            "predicted": _float(e["predicted"]) if param else None,
            "status": status_of.get(aid, "open"),
        }

    # ------------------------------------------------------------------ feedback
    def _weights(self, key_model: Any = None, param_model: Any = None) -> bytes:
        """One model version: both models' state and the parser's (learned message kinds too)."""
        key_model = self.key_model if key_model is None else key_model
        param_model = self.param_model if param_model is None else param_model
        state: dict[str, Any] = {"parser": self.parser.to_state()}
        if key_model is not None:
            state["key"] = key_model.to_state()
        if param_model is not None:
            state["param"] = param_model.state_dict()
        return state_to_bytes(state)

    def _load_weights(self, blob: bytes) -> None:
        state = state_from_bytes(blob)
        key_model = KeyModel.from_state(state["key"]) if "key" in state else None
        param_model = ParamModel.from_state(state["param"]) if "param" in state else None
        parser = LogParser.from_state(state["parser"]) if "parser" in state else None
        with self._lock:
            if parser is not None:
                ever = max(self.parser.keys_, default=0)
                self.parser = parser
                self._reserve_keys(ever)
            if key_model is not None:
                self.key_model = key_model
            if param_model is not None:
                self.param_model = param_model

    def _reserve_keys(self, at_least: int = 0) -> None:
        """Key ids ever given stay given: ids of undone (or lost) message kinds are kept as
        retired entries that match nothing, so the next new kind never gets an old id."""
        top = max(at_least, int(self.journal.get_meta("max_key") or 0))
        for k in range(1, top + 1):
            if k not in self.parser.keys_:
                self.parser.keys_[k] = (-1, ())

    def _log_id(self, entries: pd.DataFrame) -> str:
        """Fingerprint of a log (its raw lines): verdicts are kept per log and anomaly id.

        The last frame's fingerprint is kept (by identity: the same object, never a look-alike),
        since one flag asks for it several times."""
        import hashlib

        last = getattr(self, "_log_id_last", None)
        if last is not None and last[0] is entries and last[1] == len(entries):
            return last[2]
        raw = entries["raw"]
        h = hashlib.sha256(str(len(raw)).encode())
        h.update(pd.util.hash_pandas_object(raw.astype(str), index=False).to_numpy().tobytes())
        out = h.hexdigest()[:32]
        self._log_id_last = (entries, len(entries), out)
        return out

    def _verdicts(self, entries: pd.DataFrame) -> dict[int, str]:
        """The verdicts in force on this log, from the journal: anomaly id -> review status."""
        if "raw" not in entries.columns or not len(entries):
            return {}
        names = {"false_positive": "false positive", "confirmed": "confirmed"}
        found = self.journal.verdicts(self._log_id(entries))
        return {int(a): names[v] for a, v in found.items() if a.lstrip("-").isdigit()}

    def _writable(self) -> None:
        if self.read_only:
            raise PermissionError(
                f"{self.run_dir}: the run was loaded read-only; feedback cannot be recorded"
            )

    def key_validation_loss(self, model: KeyModel | None = None) -> float:
        """Mean cross-entropy of the key model on a fixed sample of the training sessions."""
        model = model or self.key_model
        assert model is not None
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
        return float(np.sum(c * -np.log(np.maximum(p, 1e-12))) / np.sum(c))

    def _example(self, row: pd.Series, entries: pd.DataFrame) -> dict[str, Any]:
        """The normal example a false positive teaches, as JSON-able data."""
        kind = row["kind"]
        ex: dict[str, Any] = {"kind": kind, "line": int(row["line"]), "raw": row["raw"]}
        if kind == "parameter":
            k = int(row["key"])
            series = build_series(
                entries,
                elapsed=self.param_config.elapsed,
                keys={k},
                max_params=self.param_config.max_params,
            )[k]
            r = int(np.flatnonzero(entries["line"].to_numpy() == row["line"])[0])
            i = int(np.flatnonzero(series.rows == r)[0])
            h = self.param_config.history
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

    def flag_false_positive(
        self, anomaly_id: int | Sequence[int], *, background: bool = False
    ) -> UpdateResult | Future[UpdateResult]:
        """The user says this reported anomaly is normal: learn it now (``partial_fit``), journaled.

        ``anomaly_id`` is one id of the current report or a non-empty list of them (one batch,
        one update); ids are checked at once (integers only, known to the report, not confirmed).
        The verdicts are committed to the journal first; the update runs on a copy of the models,
        is committed as a new model version, and then swapped in. Updates run one at a time, each
        from the weights the previous one left, so concurrent flags are all taught. The report
        the flag was made on is scored again and ``changed`` lists the anomalies whose verdict
        changed. With ``background=True`` the update runs in a worker thread and a Future is
        returned; detection meanwhile keeps the current weights, and the update applies to the
        report (and log) it was made for even if another log is detected meanwhile.
        """
        self._writable()
        self._check_fitted()
        report = self.report
        if report is None:
            raise RuntimeError("nothing to give feedback on: call detect() first")
        ids = _anomaly_ids(anomaly_id)
        self._refuse_conflicts(report, ids, "false positive")
        if background:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="update")
            return self._executor.submit(self._flag, ids, report)
        return self._flag(ids, report)

    def _refuse_conflicts(self, report: DetectionReport, ids: list[int], verdict: str) -> None:
        status = self._verdicts(report.entries)
        for aid in ids:
            report.anomaly(aid)  # KeyError naming an id the report does not have
            have = status.get(aid)
            if have is not None and have != verdict:
                raise ValueError(
                    f"anomaly {aid} is already marked {have!r}; undo that verdict before "
                    f"marking it {verdict!r}"
                )

    def _flag(self, ids: list[int], report: DetectionReport) -> UpdateResult:
        with self._update_lock:  # queued: one update at a time, each on the latest weights
            return self._flag_locked(ids, report)

    def _flag_locked(self, ids: list[int], report: DetectionReport) -> UpdateResult:
        entries = report.entries[self.entries.columns]
        log = self._log_id(report.entries)
        t0 = time.perf_counter()
        rows = [report.anomaly(aid) for aid in ids]
        done = self._verdicts(report.entries)
        params_only = all(r["kind"] == "parameter" for r in rows)
        parent = self.journal.current_version()
        mine = self.journal.local_version
        if mine != parent:  # another workbench of this process moved the run on
            raise StaleVersionError(
                f"{self.run_dir}: the run is at model version {parent} but this workbench holds "
                f"version {mine} (another workbench changed it); load the run again"
            )
        with self._lock:  # copy only the model the feedback changes; swap it in when done
            key_model = self.key_model if params_only else copy.deepcopy(self.key_model)
            param_model = self.param_model if not params_only else copy.deepcopy(self.param_model)
            if any(r["kind"] == "parameter" for r in rows) and param_model is self.param_model:
                param_model = copy.deepcopy(self.param_model)
        assert key_model is not None
        loss_before = self.key_validation_loss(key_model)
        fids = []
        pending: list[tuple[list[int], int]] = []
        learned: list[int] = []
        for aid, row in zip(ids, rows, strict=True):
            if done.get(aid) == "false positive":
                continue
            ex = self._example(row, entries)
            ex["log"] = log
            fids.append(self.journal.record(str(aid), "false_positive", ex))
            self._apply(ex, key_model, param_model, pending, report=report, learned=learned)
        if not fids:  # every id was already a false positive: nothing to learn, no version
            result = UpdateResult(ids[0], "false_positive", parent, 0.0)
            result.report = report
            return result
        if pending:  # the key examples of a batch are taught together, in one update
            histories, next_keys = zip(*pending, strict=True)
            key_model.partial_fit(list(histories), list(next_keys), replay=self._replay)
        loss_after = self.key_validation_loss(key_model)
        if learned:  # journaled before the version that uses them: ids are never given twice
            top = max(self.parser.keys_, default=0)
            if top > int(self.journal.get_meta("max_key") or 0):
                self.journal.set_meta("max_key", str(top))
        with self._lock:
            try:
                version = self.journal.commit_version(
                    self._weights(key_model, param_model),
                    reason=f"false positive {', '.join(map(str, ids))}",
                    feedback_ids=fids,
                    parent=parent,
                )
            except StaleVersionError:
                self.journal.discard(fids)
                raise
            self.key_model, self.param_model = key_model, param_model
        seconds = time.perf_counter() - t0
        new = self._rescore(report, ids, "false positive")
        before = set(report.anomalies["id"])
        after = set(new.anomalies["id"])
        changed = sorted((before ^ after) - set(ids))
        result = UpdateResult(ids[0], "false_positive", version, seconds, loss_before, loss_after)
        result.changed = changed
        result.report = new
        self._emit("update", result)
        return result

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

    def _rescore(self, report: DetectionReport, ids: list[int], status: str) -> DetectionReport:
        old = report.anomalies.copy()
        old.loc[old["id"].isin(ids), "status"] = status
        verdicts = self._verdicts(report.entries)
        old["status"] = [
            verdicts.get(int(i), st) for i, st in zip(old["id"], old["status"], strict=True)
        ]
        new = self._score(report.entries[self.entries.columns], g=report.g)
        # keep the reviewed rows visible with their verdict even when they are normal now
        reviewed = old["id"].isin(ids) | old["id"].isin(list(verdicts))
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

    def similar(self, anomaly_id: int) -> list[int]:
        """Open anomalies of the current report like this one, this one first: the same kind and
        the same message template (for an unknown key, the same masked message), whatever their
        history. What "flag all like this" hands to :meth:`flag_false_positive` as one batch when a
        new normal behaviour shows up many times; each entry is still taught with its own history.
        """
        if self.report is None:
            raise RuntimeError("nothing to compare with: call detect() first")
        [anomaly_id] = _anomaly_ids(anomaly_id)
        row = self.report.anomaly(anomaly_id)
        a = self.report.anomalies
        same = (a["kind"] == row["kind"]) & (a["status"] == "open")
        if row["kind"] == "unknown key":
            masked = self.parser.masked_content(row["raw"])
            same &= a["raw"].map(self.parser.masked_content) == masked
        else:
            same &= a["template"] == row["template"]
        others = [int(i) for i in a.loc[same, "id"] if int(i) != int(anomaly_id)]
        return [int(anomaly_id), *others]

    def confirm_anomaly(self, anomaly_id: int) -> UpdateResult:
        """Record a true positive (journaled; no weight changes). Refused for an anomaly already
        marked a false positive (undo that first); confirming twice records it once."""
        self._writable()
        report = self.report
        if report is None:
            raise RuntimeError("nothing to give feedback on: call detect() first")
        [anomaly_id] = _anomaly_ids(anomaly_id)
        with self._update_lock:
            self._refuse_conflicts(report, [anomaly_id], "confirmed")
            row = report.anomaly(anomaly_id)
            t0 = time.perf_counter()
            if self._verdicts(report.entries).get(anomaly_id) != "confirmed":
                self.journal.record(
                    str(anomaly_id),
                    "confirmed",
                    {
                        "kind": row["kind"],
                        "line": int(row["line"]),
                        "log": self._log_id(report.entries),
                    },
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

    # ------------------------------------------------------------------ views' data
    def param_keys(self) -> list[int]:
        """Keys that have a trained parameter model."""
        if self.param_model is None:
            return []
        return [k for k, v in self.param_model.keys_.items() if v.get("status") == "trained"]

    def mse_series(self, key: int, report: DetectionReport | None = None) -> pd.DataFrame:
        """Per-entry MSE of one key with threshold columns per level (the MSE plot's data)."""
        self._check_fitted()
        report = report or self.report
        if report is None:
            raise RuntimeError("call detect() first")
        if self.param_model is None:
            raise RuntimeError("no parameter model was trained")
        e = report.entries
        rows = np.flatnonzero(e["key"].to_numpy() == key)
        # one scoring per (log, model) serves every key: views ask key after key
        cached = getattr(self, "_mse_cache", None)
        if cached is not None and cached[0] is e and cached[1] is self.param_model:
            scored = cached[2]
        else:
            scored = self.param_model.score(e)
            self._mse_cache = (e, self.param_model, scored)
        ps = scored.iloc[rows]
        out = pd.DataFrame(
            {
                "line": e["line"].to_numpy()[rows],
                "session": e["session"].to_numpy()[rows],
                "timestamp": e["timestamp"].to_numpy()[rows],
                "mse": ps["mse"].to_numpy(),
                "raw": e["raw"].to_numpy()[rows],
                "observed": ps["observed"].to_numpy(),
                "predicted": ps["predicted"].to_numpy(),
                "dimension": ps["dimension"].to_numpy(),
            }
        )
        for lv in self.param_config.levels:
            col = f"threshold_{_level_col(lv)}"
            out[f"threshold_{lv}"] = ps[col].to_numpy() if col in ps else np.nan
        lvc = f"anomalous_{_level_col(self.level)}"
        out["anomalous"] = ps[lvc].fillna(False).to_numpy(dtype=bool) if lvc in ps else False
        return out.reset_index(drop=True)

    def workflows(self, method: int = 2) -> list[nx.DiGraph]:
        """The workflow automata (method 2: co-occurrence clustering; 1: from the key model's
        predictions, built on first use)."""
        if method == 2:
            return self.workflows_
        if method == 1:
            self._check_fitted()
            if self._method1 is None:
                found = model_tasks(
                    keymodel_distribution(self.key_model),
                    key_sequences(self.entries),
                )
                self._method1 = build_workflows(
                    self.entries, self.workflow_config, tasks=[list(t) for t in found.tasks]
                )
            return self._method1
        raise ValueError(f"method must be 1 or 2, got {method!r}")

    def diagnose(self, anomaly_id: str):
        """Explain one anomaly: its place in its workflow and, for timing, the slow transition."""
        from workbench.workflow.diagnosis import diagnose

        if self.report is None:
            raise RuntimeError("call detect() first")
        row = self.report.anomaly(anomaly_id)
        kind = row["kind"]
        if kind == "parameter":
            dim = row["dimension"]
            idx = 0 if dim in (None, "elapsed") else int(str(dim).removeprefix("param"))
            rec = {"line": int(row["line"]), "kind": "parameter", "dimension": idx,
                   "value": row["observed"], "score": row["mse"]}  # fmt: skip
        else:
            rec = {"line": int(row["line"]), "kind": "key", "score": row["rank"],
                   "expected": tuple((k, p) for k, _, p in row["candidates"])}  # fmt: skip
        found = diagnose(rec, self.report.entries, self.workflows_)
        graph = next((g for g in self.workflows_ if g.graph.get("task") == found.task), None)
        if graph is None or found.session is None:
            return found
        e = self.report.entries
        rows = np.flatnonzero(e["session"].to_numpy(dtype=object) == found.session)
        rows = rows[e["line"].to_numpy()[rows] <= found.line]
        path = tuple(dict.fromkeys(int(k) for k in e["key"].to_numpy()[rows] if int(k) in graph))
        return dataclasses.replace(found, path=path)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the run directory (default: the one this workbench runs in; see
        :mod:`workbench.store.rundir`). A kill at any moment leaves the old or the new run loadable;
        saving over another run or other files is refused unless ``overwrite``."""
        with self._update_lock:
            return save_workbench(
                self, Path(self.run_dir if path is None else path), overwrite=overwrite
            )

    @classmethod
    def load(cls, path: str | Path, *, read_only: bool | None = None) -> Workbench:
        """Load a run directory written by :meth:`save`; nothing is half-loaded on error and
        nothing in the files is executed. The directory is locked for this process (another
        process gets a clear error); ``read_only`` (default: when the directory is not writable)
        loads without the lock and refuses feedback."""
        return load_workbench(cls, Path(path), read_only=read_only)

    def close(self) -> None:
        """Finish queued updates, close the journal and release the run directory."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._update_lock:
            try:
                self.journal.checkpoint()
            except Exception:  # closing must not fail on a journal that is already closed
                logger.debug("checkpoint on close failed", exc_info=True)
            self.journal.close()
            if self._run_lock is not None:
                self._run_lock.release()
                self._run_lock = None


def _anomaly_ids(anomaly_id: Any) -> list[int]:
    """Validated anomaly ids: one integer or a non-empty sequence of integers (repeats dropped)."""

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


def _head(source: Any, n: int = 1200) -> list[Any]:
    """The first ``n`` lines of a path, bytes or a list of lines (for choosing a format)."""
    import itertools

    from workbench.logs.parser import read_lines

    return list(itertools.islice(read_lines(source), n))


def set_unscored_params(out: pd.DataFrame) -> None:
    """The parameter columns of a report where no parameter model scored (set in place)."""
    out["mse"] = np.nan
    out["param_status"] = "no model"
    out["threshold"] = np.nan
    out["param_anomalous"] = False
    out["dimension"] = None
    out["observed"] = np.nan
    out["predicted"] = np.nan


def _same_source(a: Any, b: Any) -> bool:
    if isinstance(a, str | Path) and isinstance(b, str | Path):
        return str(a) == str(b)
    return a is b


def _config(current: Any, given: Any, rename: dict[str, str] | None = None) -> Any:
    """A config from a dataclass, a dict of changed fields, or None (keep the current one)."""
    if given is None:
        return current
    if isinstance(given, dict):
        changes = {(rename or {}).get(k, k): v for k, v in given.items()}
        return type(current).from_dict({**current.to_dict(), **changes})
    return given


def _sample(sessions: Sequence[tuple[int, ...]], n: int, seed: int) -> list[tuple[int, ...]]:
    if len(sessions) <= n:
        return list(sessions)
    idx = np.random.default_rng(seed).choice(len(sessions), size=n, replace=False)
    return [sessions[i] for i in sorted(idx)]


def _level_col(level: float) -> str:
    from workbench.params.thresholds import level_name

    return level_name(level)


def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(v) else v
