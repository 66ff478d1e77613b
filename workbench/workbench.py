"""The front object for notebook users: one log, its parser, both DeepLog models, the workflows and
the feedback journal, behind a few verbs::

    wb = Workbench.from_simulation(n_instances=400, seed=3)   # or Workbench.from_logs(path, "hdfs")
    wb.fit()                                                  # key model, parameter models, workflows
    report = wb.detect()                                      # per-entry verdicts, review table
    wb.flag_false_positive(report.anomalies["id"].iloc[0])    # online update, journaled
    print(wb.diagnose(report.anomalies["id"].iloc[1]).sentence)
    wb.save("runs/demo"); Workbench.load("runs/demo")

(tests/test_workbench.py runs all of this.)

Where its parts live: scoring and the report in :mod:`workbench.detect.scoring` and
:mod:`workbench.detect.report` (the choices made where the paper is silent are listed there),
feedback in :mod:`workbench.flagging`, the views' data in :mod:`workbench.detect.views`, the
events a widget listens to in :mod:`workbench.events`, the run directory in
:mod:`workbench.store.rundir`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.detect.chunked import end_keys as training_end_keys
from workbench.detect.report import DetectionReport
from workbench.detect.scoring import FittedModels, score
from workbench.detect.streaming import detect_streaming, too_large_for_memory
from workbench.detect.views import Views
from workbench.events import Events
from workbench.feedback.journal import FeedbackJournal
from workbench.fit_report import FitReport, key_model_used
from workbench.flagging import Feedback, UpdateResult, replay_sample
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.logs.parser import LogParser
from workbench.logs.reading import read_lines
from workbench.logs.sessions import SessionRule, session_groups
from workbench.logs.summary import ParseSummary
from workbench.params.config import ParamModelConfig
from workbench.params.model import ParamModel
from workbench.save_load import (
    Stored,
)
from workbench.store.files import RunLock
from workbench.train import TrainEvent
from workbench.workflow.cooccurrence import WorkflowConfig, build_workflows
from workbench.workflow.mining import choose_mining

__all__ = ["DetectionReport", "UpdateResult", "Workbench"]

logger = logging.getLogger(__name__)


class Workbench(Stored, Feedback, Views, Events):
    """Parser, models, workflows and feedback over one log (see the module docstring). The
    feedback verbs come from :class:`~workbench.flagging.Feedback`, the views' data from
    :class:`~workbench.detect.views.Views`, :meth:`on` from :class:`~workbench.events.Events`.

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
        self.fit_report_: FitReport | None = None  # what the last fit read and cost
        self.test_source: Any = None  # what detect() reads when called without a source
        self.test_labels: pd.DataFrame | None = None  # ground truth of the test log, when known
        self.level = 0.99
        Events.__init__(self)
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.format_choice: Any = None  # how --format auto chose, when it did
        #: verdicts an interrupted update never learned, withdrawn when the run was loaded
        self.interrupted_feedback: list[Any] = []
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
            choice = choose_format(line.text for line in islice(read_lines(source), 1200))
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

    # ------------------------------------------------------------------ training
    def _sessions(self, entries: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
        """Session names and, per session, the positional rows of its parsed entries in order."""
        return session_groups(entries, self.parser.session_rule, keep="parsed")

    def stop(self) -> None:
        """Ask a running :meth:`fit` to stop after the current step; the models stay usable."""
        self._stop.set()

    def _progress(self, stage: str, user: Sequence[Callable[[dict[str, Any]], None]]):
        def cb(event: TrainEvent) -> None:
            # Stop only from inside a training loop (batch or epoch ends), where the loop catches
            # it and keeps the best weights; raised from train_begin/train_end it would escape fit.
            if self._stop.is_set() and event.kind not in ("train_begin", "train_end"):
                raise KeyboardInterrupt
            if stage == "param":  # the parameter models report one "epoch" dict per epoch
                if event.kind != "epoch_end":
                    return
                payload = {"stage": stage, "event": "epoch", "epochs": event.max_epochs}
                payload.update(event.record or {})
            else:
                payload = {
                    "stage": stage,
                    "event": event.kind,
                    "epoch": event.epoch,
                    "epochs": event.max_epochs,
                    "batch": event.batch,
                    "batches": event.n_batches,
                    "train_loss": event.train_loss,
                    "val_loss": event.val_loss,
                    "phase": event.phase,
                    "stopped": event.stopped,
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
        early with usable models. ``fit_report_`` (a :class:`~workbench.fit_report.FitReport`) says
        what each stage cost and read, samples included (the parameter models' windows and the
        workflows' sessions are capped on a long log).
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
        report = FitReport(lines=len(self.entries))
        with report.stage("key model", sessions=len(sessions)) as rec:
            key_model = KeyModel(self.key_config).fit(
                sessions, seed=self.seed, callbacks=[self._progress("key", user)]
            )
            rec.update(key_model_used(key_model))
        param_model = None
        if not self._stop.is_set():
            with report.stage("parameter models") as rec:
                param_model = ParamModel(self.param_config).fit(
                    self.entries, seed=self.seed, callbacks=[self._progress("param", user)]
                )
                rec.update(_vectors_used(param_model))
        with self._lock:
            self.key_model = key_model
            self.param_model = param_model
            self._replay = replay_sample(sessions, 400, self.seed)
        self._method1 = None
        if workflows:
            with report.stage("workflows") as rec:
                self._fit_workflows(rec)
        self.fit_report_ = report
        logger.info("trained on %s", report.summary())
        self.journal.commit_version(self._weights(), reason="trained")
        self.fit_seconds_ = time.perf_counter() - t0
        self.stopped_ = self._stop.is_set()
        self._emit("fit", self)
        self._stop.clear()
        return self

    def _fit_workflows(self, rec: dict[str, Any]) -> None:
        """Build the workflows, and say in the fit report's record ``rec`` how they were mined
        (per session, or by time lag where the sessions are not run ids) and why."""
        cfg, rule = self.workflow_config, self.session_rule
        self.workflows_ = build_workflows(self.entries, cfg, seed=self.seed, session_rule=rule)
        how = choose_mining(self.entries, per_session=cfg.per_session, window=cfg.window, rule=rule)
        rec.update(mining=how.method, mining_reason=how.reason)
        first = self.workflows_[0].graph if self.workflows_ else {}
        if how.ids:
            rec.update(sessions=first.get("sessions"), sessions_used=first.get("sessions_used"))

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
        stream: bool | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> DetectionReport:
        """Detect anomalies in ``source`` (path, bytes or lines; default: the test log, or the
        training log when there is none) with the key model first, then the parameter models.

        With ``client`` (a ``dask.distributed.Client``), ``source`` is one log file or a list of
        them, read as one log on that cluster (:func:`workbench.detect.distributed.detect_dask`): the
        verdicts are those of one process, row for row, and the report keeps the verdict columns.
        With ``stream`` (default: for a log file over
        :data:`~workbench.detect.streaming.STREAM_ABOVE_BYTES`) the log is read in chunks with
        bounded memory (:func:`~workbench.detect.streaming.detect_streaming`, ``progress`` called
        after each chunk): the same verdicts, and the report keeps the anomalies only.
        """
        self._check_fitted()
        if level is not None:
            if not 0.0 < float(level) < 1.0:  # 99 meant as a percentage is 0.99
                raise ValueError(f"level must be a confidence level in (0, 1), got {level!r}")
            self.level = float(level)
        if stream is None:
            stream = client is None and too_large_for_memory(source, self.parser.session_rule)
        if client is not None or stream:
            from workbench.detect.distributed import detect_dask

            if source is None:
                raise ValueError("detection on a cluster or in chunks needs the log to read")
            models = self.scorer(end_keys=True)
            if client is not None:
                report = detect_dask(models, source, client, level=level, g=g)
            else:
                report = detect_streaming(models, source, level=level, g=g, progress=progress)
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
        return FittedModels(
            self.parser,
            key_model,  # type: ignore[arg-type]
            param_model,
            level=self.level,
            params_elapsed=self.param_config.elapsed,
            end_keys=frozenset(training_end_keys(self.entries)) if end_keys else frozenset(),
        )

    def _score(self, entries: pd.DataFrame, *, g: int | None = None) -> DetectionReport:
        """Score a parsed frame with the current models, with the review statuses this log has
        in the journal (:func:`workbench.detect.scoring.score`)."""
        return score(self.scorer(), entries, g=g, status_of=self._verdicts(entries))


def _vectors_used(model: ParamModel) -> dict[str, int]:
    """What the parameter models read, in the fit report's words."""
    if not hasattr(model, "keys_"):
        return {}
    u = model.data_used()
    return {
        "keys": u["keys"],
        "training_vectors": u["n_train"],
        "training_vectors_used": u["n_train_used"],
        "validation_vectors": u["n_validation"],
        "validation_vectors_used": u["n_validation_used"],
    }


def _config(current: Any, given: Any, rename: dict[str, str] | None = None) -> Any:
    """A config from a dataclass, a dict of changed fields, or None (keep the current one)."""
    if given is None:
        return current
    if isinstance(given, dict):
        changes = {(rename or {}).get(k, k): v for k, v in given.items()}
        return type(current).from_dict({**current.to_dict(), **changes})
    return given
