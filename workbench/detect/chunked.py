"""The pieces of detection on parts of a log: what chunked (:mod:`workbench.detect.streaming`) and
distributed (:mod:`workbench.detect.distributed`) detection do with the fitted models.

:class:`Scorer` holds the fitted parser and models, detached from the workbench and picklable by
their own states. It parses lines read-only, carries elapsed times over part boundaries, scores
whole sessions with the key model (:func:`workbench.detect.scoring.score`, as one process does),
scores parameter vectors after each key's previous vectors (the ``halo``), and joins both into the
verdicts of one process. :class:`StreamReport` is the report they return.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids
from workbench.detect.report import (
    ANOMALY_COLUMNS,
    DetectionReport,
    anomaly_row,
    set_unscored_params,
)
from workbench.detect.scoring import FittedModels, score
from workbench.keys.model import KeyModel
from workbench.logs.parser import LogParser
from workbench.logs.sessions import (
    SessionRule,
    apply_session_rule,
    assign_default_sessions,
    session_diffs,
)
from workbench.params.levels import level_name
from workbench.params.model import ParamModel
from workbench.params.scoring import score_columns

__all__ = [
    "CHUNKABLE",
    "KEY_COLUMNS",
    "VERDICT_COLUMNS",
    "Scorer",
    "StreamReport",
    "checked_counts",
    "end_keys",
    "fitted_models",
    "parse_lines",
    "stream_report",
]  # fmt: skip

logger = logging.getLogger(__name__)

CHUNKABLE = ("regex", "field")  # session rules that chunked and distributed detection take
KEY_COLUMNS = ["position", "key_rank", "key_probability", "key_anomalous", "key_reason"]
PARAM_COLUMNS = ["mse", "param_status", "threshold", "param_anomalous", "dimension"]
PARAM_COLUMNS += ["observed", "predicted"]
VERDICT_COLUMNS = ["line", "session", "key", *KEY_COLUMNS, *PARAM_COLUMNS, "anomalous"]
_KEPT = ["line", "raw", "timestamp", "session", "key", "template", "params", "dt_session"]
_KEPT += ["dt_global", "label", "parsed", "error"]
_HALO = ["line", "key", "params", "parsed", "session", "dt_session", "dt_global"]


def fitted_models(source: Any) -> FittedModels:
    """``source`` when it is :class:`FittedModels`, else ``source.scorer(end_keys=True)`` (a
    fitted workbench: its parser and models, detached)."""
    if isinstance(source, FittedModels):
        return source
    return source.scorer(end_keys=True)


@dataclass
class StreamReport(DetectionReport):
    """Verdicts of a chunked or distributed detection.

    ``anomalies`` is the review table of :class:`~workbench.workbench.DetectionReport`, in line order.
    ``entries`` holds the per-entry verdict columns (:data:`VERDICT_COLUMNS`) only when asked for
    (``keep_entries``); otherwise they are in ``out``. ``counts`` says what was checked: ``lines``,
    ``parsed``, ``sessions`` (scored by the key model), ``key_entries`` (entries scored by it),
    ``param_checked`` (parameter vectors decided), ``sessions_reopened``, ``peak_open_sessions``,
    ``chunks`` (or partitions).
    """

    counts: dict[str, int] = field(default_factory=dict)
    out: Path | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage, where measured

    def __post_init__(self) -> None:
        if self.coverage is None:  # the same "what was checked" as a one-process report
            from workbench.detect.coverage import Coverage

            c = self.counts
            self.coverage = Coverage(
                lines=int(c.get("lines", 0)),
                parsed=int(c.get("parsed", 0)),
                sessions=int(c.get("sessions", 0)),
                sessions_reopened=int(c.get("sessions_reopened", 0)),
                key_entries=int(c.get("key_entries", 0)),
                param_entries=int(c.get("param_checked", 0)),
                loose_entries=int(c.get("loose_entries", 0)),
                unknown_rule_entries=int(c.get("unknown_rule_entries", 0)),
                unknown_keys=c.get("unknown_keys"),  # None where not counted
                timestamps=c.get("timestamps"),
            )

    def summary(self) -> str:
        """One line that says what was checked and what was found."""
        c = self.counts
        return (
            f"checked {c.get('lines', 0)} lines ({c.get('parsed', 0)} parsed): "
            f"{c.get('sessions', 0)} sessions and {c.get('key_entries', 0)} entries by the key "
            f"model, {c.get('param_checked', 0)} parameter vectors; "
            f"{len(self.anomalies)} anomalies in {self.seconds:.1f} s"
        )


def end_keys(entries: pd.DataFrame, min_sessions: int = 20) -> set[int]:
    """Keys that, in ``entries`` (a parsed training frame), end at least ``min_sessions`` sessions
    and never appear anywhere else: seeing one means the session is over.

    >>> df = pd.DataFrame({"session": ["a", "a", "b", "b", "b"], "key": [1, 2, 1, 3, 2],
    ...                    "parsed": True})
    >>> sorted(end_keys(df, min_sessions=2)), sorted(end_keys(df))
    ([2], [])
    """
    s = entries["session"].to_numpy(dtype=object)
    ok = entries["parsed"].to_numpy(dtype=bool) & pd.notna(s)
    if not ok.any():
        return set()
    sub = pd.DataFrame({"s": s[ok], "k": entries["key"].to_numpy()[ok]})
    last = ~sub["s"].duplicated(keep="last").to_numpy()
    k = sub["k"].to_numpy()
    ends = pd.Series(k[last]).value_counts()
    inside = set(k[~last].tolist())
    return {int(x) for x, n in ends.items() if n >= min_sessions and x > 0 and x not in inside}


def parse_lines(
    parser: LogParser,
    rule: SessionRule | None,
    lines: Any,
    first_line: int = 1,
    fields: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Match ``lines`` read-only with a fitted parser and assign sessions (``rule``, or the
    format's own when None); elapsed times are left NaN (they need the lines before). Of the
    header fields, those in ``fields`` become columns (all when None; the rule's own always)."""
    if fields is not None:
        own = rule.field if rule is not None else parser.format.session_field
        fields = {*fields, own} if rule is None or rule.kind == "field" else set(fields)
    df = parser.transform(lines, first_line=first_line, sessions=False, fields=fields)
    if len(df):
        if rule is None:
            assign_default_sessions(df, parser.format)
        else:
            apply_session_rule(df, rule)
    return df


class Scorer:
    """The fitted parser and models of a workbench, detached from it, with what chunked and
    distributed detection do with them (parse, elapsed times, key pass, parameter pass, verdicts).

    Picklable through the models' own states (parser state, state dicts), so a cluster receives it
    once per detection; every method is read-only. Detection keeps the weights it was built with:
    feedback given meanwhile on the workbench goes into the next Scorer.

    Parameters
    ----------
    models
        The fitted models (:meth:`Workbench.scorer(end_keys=True)
        <workbench.workbench.Workbench.scorer>`), or an object with that ``scorer`` method (a
        fitted workbench).
    session
        The session rule (``"regex:..."``, ``"field:..."`` or a :class:`SessionRule`); default: the
        rule stored with the parser, else the format's own, as ``Workbench.detect`` uses.
    level
        Confidence level of the parameter verdicts; default: the models'.
    """

    def __init__(
        self, models: Any, *, session: str | SessionRule | None = None, level: float | None = None
    ) -> None:
        models = fitted_models(models)
        self.parser = models.parser
        self.key_model: KeyModel = models.key_model
        self.param_model: ParamModel | None = models.param_model
        if session is None:  # the rule the workbench was trained with travels with its parser
            session = models.parser.session_rule
        self.rule = SessionRule.parse(session) if isinstance(session, str) else session
        if self.rule is not None and self.rule.kind not in CHUNKABLE:
            raise ValueError(
                f"a '{self.rule.kind}' session rule needs the whole log's time range; chunked and "
                "distributed detection take 'regex:' or 'field:' rules"
            )
        self.level = float(models.level if level is None else level)
        # only id sessions (a VM, a block) end; a host's or node's stream goes on
        kind = (
            self.rule.kind if self.rule else "regex" if models.parser.format.session_regex else ""
        )
        self.end_keys = set(models.end_keys) if kind == "regex" else set()
        self._build()

    def _build(self) -> None:
        self.key_models = FittedModels(self.parser, self.key_model, None, level=self.level)
        pm = self.param_model
        self.history = pm.config.history if pm is not None else 0
        self.n_params = (
            {k: int(v["n_params"]) for k, v in pm.keys_.items() if v["status"] == "trained"}
            if pm is not None
            else {}
        )

    def __getstate__(self) -> dict[str, Any]:
        pm = self.param_model
        return {
            "parser": self.parser.to_state(),
            "key": self.key_model.to_state(),
            "param": pm.to_state() if pm is not None else None,
            "rule": self.rule,
            "level": self.level,
            "end_keys": sorted(self.end_keys),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.parser = LogParser.from_state(state["parser"])
        self.key_model = KeyModel.from_state(state["key"])
        p = state["param"]
        self.param_model = ParamModel.from_state(p, device="cpu") if p is not None else None
        self.rule, self.level = state["rule"], state["level"]
        self.end_keys = set(state["end_keys"])
        self._build()

    # ------------------------------------------------------------------ parsing
    def parse(self, lines: Any, first_line: int = 1, *, trim: bool = False) -> pd.DataFrame:
        """Match lines read-only and assign sessions (elapsed times are left to :meth:`elapsed`).
        ``trim`` drops what detection no longer needs (the message body and header fields)."""
        df = parse_lines(self.parser, self.rule, lines, first_line, fields=() if trim else None)
        if trim:
            df = df[[c for c in _KEPT if c in df.columns]]
        return df

    @staticmethod
    def seconds(
        df: pd.DataFrame, t0: pd.Timestamp | None
    ) -> tuple[np.ndarray, pd.Timestamp | None]:
        """Seconds since ``t0`` (the log's first timestamp; taken from ``df`` when None) of the
        parsed, timestamped rows; NaN elsewhere. Computed as ``add_elapsed_times`` does, so
        differences are bit-identical to the one-process ones."""
        ts = df["timestamp"]
        ok = df["parsed"].to_numpy(dtype=bool) & ts.notna().to_numpy()
        sec = np.full(len(df), np.nan)
        if ok.any():
            if t0 is None:
                t0 = ts[ok].iloc[0]
            sec[ok] = (ts[ok] - t0).dt.total_seconds().to_numpy()
        return sec, t0

    @staticmethod
    def elapsed(
        df: pd.DataFrame, sec: np.ndarray, last_global: float | None, last: dict[Any, float] | None
    ) -> float | None:
        """Fill ``dt_global`` and ``dt_session`` of ``df`` (in line order) given the seconds of the
        log's previous timestamped entry and, per session, of its previous entry (``last``, updated
        in place; None when ``df`` holds whole sessions). Returns the new ``last_global``."""
        ok = np.isfinite(sec)
        idx = np.flatnonzero(ok)
        dt_global = np.full(len(df), np.nan)
        if len(idx):
            prev = np.concatenate([[np.nan if last_global is None else last_global], sec[idx]])
            dt_global[idx] = np.diff(prev)
            last_global = float(sec[idx[-1]])
        df["dt_global"] = dt_global
        dt_session = np.full(len(df), np.nan)
        sess = df["session"]
        has = ok & sess.notna().to_numpy()
        if has.any():
            dt_session[has] = session_diffs(sess[has].to_numpy(dtype=object), sec[has], last)
        df["dt_session"] = dt_session
        return last_global

    # ------------------------------------------------------------------ parameter pass
    def series_rows(self, df: pd.DataFrame) -> np.ndarray:
        """Rows of ``df`` that belong to a trained key's parameter series."""
        if not self.n_params or not len(df):
            return np.zeros(len(df), dtype=bool)
        want = pd.Series(df["key"].to_numpy()).map(self.n_params).to_numpy(dtype=float)
        lengths = np.fromiter(map(len, df["params"].to_numpy(dtype=object)), float, len(df))
        return df["parsed"].to_numpy(dtype=bool) & (lengths == want)

    def _last_series_rows(self, df: pd.DataFrame) -> np.ndarray:
        """Positions (in order) of the last ``history`` rows of :meth:`series_rows` of every
        trained key in ``df``: each key's rows are read from its last one back, not all."""
        keys, params = df["key"].to_numpy(), df["params"].to_numpy(dtype=object)
        parsed = df["parsed"].to_numpy(dtype=bool)
        out: list[int] = []
        for k, m in self.n_params.items():
            back = np.flatnonzero(parsed & (keys == k))[::-1].tolist()  # read lazily, last first
            out += itertools.islice((i for i in back if len(params[i]) == m), self.history)
        return np.sort(np.asarray(out, dtype=np.int64))

    def halo(self, parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
        """The last ``history`` series rows of every trained key among ``parts`` (in line order):
        all the parameter models need of the log before the next rows."""
        frames = [p.iloc[self._last_series_rows(p)][_HALO] for p in parts if len(p)]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=_HALO)
        h = pd.concat(frames, ignore_index=True)
        return h.groupby("key", sort=False).tail(self.history).reset_index(drop=True)

    def param_pass(self, df: pd.DataFrame, halo: pd.DataFrame | None) -> pd.DataFrame:
        """Parameter-model scores of every row of ``df`` (in line order), each vector read after
        its key's previous vectors (``halo``: those from before ``df``). Columns ``_p_<name>``."""
        pm = self.param_model
        out = pd.DataFrame(index=df.index)
        if pm is None:
            return out
        base = df[_HALO]
        n_halo = 0 if halo is None else len(halo)
        full = pd.concat([halo, base], ignore_index=True) if n_halo else base
        pm._check()
        cols = score_columns(pm, full, confidence=False)  # pm.score's arrays, no frame
        status, mse = cols.status[n_halo:], cols.mse[n_halo:]
        lv = level_name(self.level)
        thr = next((t[n_halo:] for v, t in cols.thr.items() if level_name(v) == lv), None)
        flag = np.zeros(len(df), dtype=bool)
        if thr is not None:
            with np.errstate(invalid="ignore"):
                flag = (mse > thr) & (status == "scored")
        for name, values in (
            ("status", status),
            ("mse", mse),
            ("dimension", cols.dim[n_halo:]),
            ("observed", cols.observed[n_halo:]),
            ("predicted", cols.predicted[n_halo:]),
            ("threshold", np.nan if thr is None else thr),
            ("anomalous", flag),
        ):
            kind = object if name in ("status", "dimension") else None  # text stays as it is
            out["_p_" + name] = pd.Series(values, index=df.index, dtype=kind)
        return out

    # ------------------------------------------------------------------ key pass and verdicts
    def key_pass(self, df: pd.DataFrame, g: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Key-model verdicts of ``df`` (whole sessions and session-less rows, in line order):
        the key columns per row (and ``_end``: reported as a session end) and the anomaly rows of
        the key kinds, exactly as one-process detection makes them (:func:`score`)."""
        base = df[[c for c in df.columns if not c.startswith("_")]]
        rep = score(self.key_models, base, g=g)
        out = rep.entries
        cols = pd.DataFrame(index=df.index)
        for c in KEY_COLUMNS:
            cols[c] = out[c].to_numpy()
        cols["_end"] = out["anomalous"].to_numpy(dtype=bool) & ~out["key_anomalous"].to_numpy(
            dtype=bool
        )
        return cols, rep.anomalies

    def verdicts(self, df: pd.DataFrame, g: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Join the key columns and the ``_p_`` columns of ``df`` into the verdicts of
        one-process detection (:func:`score`): the verdict frame (:data:`VERDICT_COLUMNS`) and the anomaly rows of
        kind ``'parameter'``."""
        n = len(df)
        key_bad = df["key_anomalous"].to_numpy(dtype=bool)
        out = df[["line", "session", "key", *KEY_COLUMNS]].copy()
        if self.param_model is not None:
            checked = df["parsed"].to_numpy(dtype=bool) & ~key_bad
            status = df["_p_status"].to_numpy(dtype=object).copy()
            status[~checked & (status == "scored")] = "not checked"
            out["mse"] = df["_p_mse"].to_numpy()
            out["param_status"] = status
            out["threshold"] = df["_p_threshold"].to_numpy()
            out["param_anomalous"] = df["_p_anomalous"].to_numpy(dtype=bool) & checked
            for c in ("dimension", "observed", "predicted"):
                out[c] = df["_p_" + c].to_numpy()
        else:
            set_unscored_params(out)
        bad = out["param_anomalous"].to_numpy(dtype=bool) & ~key_bad
        out["anomalous"] = key_bad | out["param_anomalous"].to_numpy(dtype=bool)
        out["anomalous"] |= df["_end"].to_numpy(dtype=bool) if "_end" in df else np.zeros(n, bool)
        rows = []
        if bad.any():
            extra = df[["timestamp", "raw", "template"]]
            sel = np.flatnonzero(bad)
            recs = pd.concat([out.iloc[sel], extra.iloc[sel]], axis=1).to_dict("records")
            for e in recs:
                rows.append(anomaly_row(e, "parameter", g, self.level, [], {}))
        return out, pd.DataFrame(rows)


def checked_counts(rows: pd.DataFrame, verdicts: pd.DataFrame) -> dict[str, int]:
    """What a piece of detection checked (the counts of a one-process
    :class:`~workbench.detect.coverage.Coverage`), from its parsed rows and their verdicts."""
    parsed = rows["parsed"].to_numpy(dtype=bool)
    in_session = verdicts["position"].to_numpy() >= 0
    param = (verdicts["param_status"] == "scored").to_numpy(dtype=bool)
    out = {
        "lines": len(rows),
        "parsed": int(parsed.sum()),
        "key_entries": int(in_session.sum()),
        "param_checked": int(param.sum()),
        "loose_entries": int((parsed & ~in_session).sum()),
        "unknown_rule_entries": int((parsed & ~in_session & ~param).sum()),
        "unknown_keys": int((parsed & (rows["key"].to_numpy() == keyids.UNKNOWN)).sum()),
    }
    if "timestamp" in rows.columns:
        out["timestamps"] = int((parsed & rows["timestamp"].notna().to_numpy()).sum())
    return out


def stream_report(
    found: list[pd.DataFrame],
    keep: list[pd.DataFrame],
    g: int,
    level: float,
    counts: dict[str, int],
    out: Path | None,
    t_start: float,
    keep_entries: bool,
    scorer: Scorer | None = None,
) -> StreamReport:
    """The report of a chunked or distributed detection from its pieces (anomaly tables and,
    with ``keep_entries``, verdict frames); ``anomalies.csv`` is rewritten in line order."""
    anomalies = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    anomalies = anomalies.reindex(columns=ANOMALY_COLUMNS)
    anomalies = anomalies.sort_values(["line", "id"], kind="stable").reset_index(drop=True)
    entries = pd.DataFrame(columns=VERDICT_COLUMNS)
    if keep_entries and keep:
        entries = pd.concat(keep, ignore_index=True).sort_values("line", kind="stable")
        entries = entries.reset_index(drop=True)
        for c in ("session", "dimension"):  # missing is None, as in one process
            entries[c] = entries[c].astype(object).where(entries[c].notna(), None)
    report = StreamReport(entries, anomalies, g, level, counts=counts, out=out)
    if scorer is not None:  # what the report read with, as a one-process report says
        rule = scorer.rule if scorer.rule is not None else scorer.parser.effective_session_rule
        report.coverage.format = scorer.parser.format.name
        report.coverage.session_rule = None if rule is None else str(rule)
    report.seconds = time.perf_counter() - t_start
    if out is not None:
        anomalies.to_csv(Path(out) / "anomalies.csv", index=False)
    if counts["lines"] and not counts["parsed"]:
        logger.warning("no line of the log fits the format: nothing was checked")
    return report
