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

import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench import flagging
from workbench.detect.report import DetectionReport
from workbench.detect.scoring import FittedModels, score, trained_keys
from workbench.feedback.journal import FeedbackJournal
from workbench.flagging import UpdateResult
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.logs.parser import LogParser, ParseSummary
from workbench.logs.sessions import SessionRule, session_groups
from workbench.params.model import ParamModel, ParamModelConfig
from workbench.store.files import RunLock
from workbench.store.rundir import load_workbench, save_workbench, state_from_bytes, state_to_bytes
from workbench.workflow.cooccurrence import WorkflowConfig, build_workflows, key_sequences
from workbench.workflow.from_keymodel import keymodel_distribution, model_tasks

__all__ = ["DetectionReport", "UpdateResult", "Workbench"]

logger = logging.getLogger(__name__)

EVENTS = ("fit", "progress", "detect", "update")


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
            report = detect_dask(self.scorer(end_keys=True), source, client, level=level, g=g)
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
        report = self._score(entries, g=g)
        report.seconds = time.perf_counter() - t0
        self.report = report
        self._emit("detect", report)
        return report

    def scorer(self, *, end_keys: bool = False) -> FittedModels:
        """The fitted parser and models, detached (what detection reads; see
        :class:`~workbench.detect.scoring.FittedModels`). ``end_keys``: also the keys that only ever
        ended training sessions (for detection that closes sessions as it reads)."""
        self._check_fitted()
        with self._lock:
            key_model, param_model = self.key_model, self.param_model
        if end_keys:
            from workbench.detect.chunked import end_keys as _end_keys
        return FittedModels(
            self.parser,
            key_model,  # type: ignore[arg-type]
            param_model,
            level=self.level,
            params_elapsed=self.param_config.elapsed,
            end_keys=frozenset(_end_keys(self.entries)) if end_keys else frozenset(),
        )

    def _score(self, entries: pd.DataFrame, *, g: int | None = None) -> DetectionReport:
        """Score a parsed frame with the current models, with the review statuses this log has
        in the journal (:func:`workbench.detect.scoring.score`)."""
        return score(self.scorer(), entries, g=g, status_of=self._verdicts(entries))

    # ------------------------------------------------------------------ feedback
    def _weights(self, key_model: Any = None, param_model: Any = None) -> bytes:
        """One model version: both models' state and the parser's (learned message kinds too)."""
        key_model = self.key_model if key_model is None else key_model
        param_model = self.param_model if param_model is None else param_model
        state: dict[str, Any] = {"parser": self.parser.to_state()}
        if key_model is not None:
            state["key"] = key_model.state_dict()
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
        ids = flagging.anomaly_ids(anomaly_id)
        flagging.refuse_conflicts(self, report, ids, "false positive")
        if background:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="update")
            return self._executor.submit(self._flag, ids, report)
        return self._flag(ids, report)

    def _flag(self, ids: list[int], report: DetectionReport) -> UpdateResult:
        with self._update_lock:  # queued: one update at a time, each on the latest weights
            return self._flag_locked(ids, report)

    def _flag_locked(self, ids: list[int], report: DetectionReport) -> UpdateResult:
        return flagging.flag(self, ids, report)

    def _rescore(self, report: DetectionReport, ids: list[int], status: str) -> DetectionReport:
        return flagging.rescore(self, report, ids, status)

    def key_validation_loss(self, model: KeyModel | None = None) -> float:
        """Mean cross-entropy of the key model on a fixed sample of the training sessions."""
        return flagging.validation_loss(self, model)

    def similar(self, anomaly_id: int) -> list[int]:
        """Open anomalies of the current report like this one, this one first: the same kind and
        the same message template (for an unknown key, the same masked message), whatever their
        history. What "flag all like this" hands to :meth:`flag_false_positive` as one batch when a
        new normal behaviour shows up many times; each entry is still taught with its own history.
        """
        if self.report is None:
            raise RuntimeError("nothing to compare with: call detect() first")
        [anomaly_id] = flagging.anomaly_ids(anomaly_id)
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
        return flagging.confirm(self, anomaly_id)

    def undo(self) -> int | None:
        """Undo the last feedback: a whole batch ("all like this" included) with the message kinds
        it taught the parser and its verdicts, or the last confirmation. Returns the model version
        now current (None when there was nothing to undo)."""
        return flagging.undo(self)

    # ------------------------------------------------------------------ views' data
    def param_keys(self) -> list[int]:
        """Keys that have a trained parameter model."""
        return trained_keys(self.param_model)

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


def _head(source: Any, n: int = 1200) -> list[Any]:
    """The first ``n`` lines of a path, bytes or a list of lines (for choosing a format)."""
    import itertools

    from workbench.logs.parser import read_lines

    return list(itertools.islice(read_lines(source), n))


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
