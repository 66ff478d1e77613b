"""Detection over logs larger than memory: read in chunks, score sessions when they close.

:meth:`Workbench.detect <workbench.workbench.Workbench.detect>` parses the whole log into one frame.
:func:`detect_streaming` gives the same verdicts, row for row, while holding only the sessions that
can still receive lines and one chunk of lines:

* the log is read ``chunk_lines`` lines at a time and matched read-only by the fitted parser;
* elapsed times carry over chunk boundaries (the last timestamp of the log and of every open
  session), measured from the log's first timestamp as in one process;
* the parameter models see each key's previous entries across sessions, in line order (that is how
  they were trained): a chunk is scored after the last ``history`` vectors of each key from the
  chunks before it, so a vector's window is the one it has in one process;
* a session is closed by a key that only ever ended sessions in training, by inactivity (no line
  for ``idle_seconds`` of log time or ``idle_lines`` lines) or by the end of the input, and is then
  scored by the key model;
* verdicts are written as they are decided (``out``: parquet parts and a CSV of anomalies).

A session that receives a line after it was closed for inactivity is scored again as a new session
from that line on; the report counts such sessions (``sessions_reopened``): its verdicts equal the
one-process ones exactly when that count is 0.

The same pieces (:class:`Scorer`: parse, elapsed times, key pass, parameter pass, verdicts) run on a
Dask cluster in :mod:`workbench.detect.distributed`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.keys.model import KeyModel
from workbench.logs.parser import LogParser, raw_lines
from workbench.logs.sessions import SessionRule, apply_session_rule, assign_default_sessions
from workbench.params.model import ParamModel
from workbench.params.thresholds import level_name
from workbench.workbench import DetectionReport, Workbench, set_unscored_params

__all__ = ["Scorer", "StreamReport", "detect_streaming", "end_keys", "parse_lines", "read_chunks"]

logger = logging.getLogger(__name__)

KEY_COLUMNS = ["position", "key_rank", "key_probability", "key_anomalous", "key_reason"]
PARAM_COLUMNS = ["mse", "param_status", "threshold", "param_anomalous", "dimension"]
PARAM_COLUMNS += ["observed", "predicted"]
VERDICT_COLUMNS = ["line", "session", "key", *KEY_COLUMNS, *PARAM_COLUMNS, "anomalous"]
_PS = ["status", "mse", "anomalous", "threshold", "dimension", "observed", "predicted"]
_KEPT = ["line", "raw", "timestamp", "session", "key", "template", "params", "dt_session"]
_KEPT += ["dt_global", "label", "parsed", "error"]
_HALO = ["line", "key", "params", "parsed", "session", "dt_session", "dt_global"]


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
                key_entries=int(c.get("key_entries", 0)),
                param_entries=int(c.get("param_checked", 0)),
                unknown_keys=None,
                timestamps=None,
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
    parser: LogParser, rule: SessionRule | None, lines: Any, first_line: int = 1
) -> pd.DataFrame:
    """Match ``lines`` read-only with a fitted parser and assign sessions (``rule``, or the
    format's own when None); elapsed times are left NaN (they need the lines before)."""
    df = parser.transform(lines, first_line=first_line, sessions=False)
    if len(df):
        if rule is None:
            assign_default_sessions(df, parser.format)
        else:
            apply_session_rule(df, rule)
    return df


class _KeyOnly(Workbench):
    """A detached shell of a Workbench that scores with its key model only (no journal, no run
    folder): what :class:`Scorer` hands to ``Workbench._score`` for the session-wise pass."""

    def __init__(self, parser: LogParser, key_model: KeyModel, attrs: dict[str, Any]) -> None:
        self.__dict__.update(attrs)
        self.parser = parser
        self.key_model = key_model
        self.param_model = None
        self._lock = threading.RLock()

    def _verdicts(self, entries: pd.DataFrame) -> dict[int, str]:
        """No journal here: the review statuses of a streamed detection are applied by the
        :class:`Scorer` to the whole report, not per chunk."""
        return {}


class Scorer:
    """The fitted parser and models of a :class:`~workbench.workbench.Workbench`, detached from it.

    Picklable through the models' own states (parser state, state dicts), so a cluster receives it
    once per detection; every method is read-only. Detection keeps the weights it was built with:
    feedback given meanwhile on the workbench goes into the next Scorer.

    Parameters
    ----------
    wb
        A fitted workbench.
    session
        The session rule (``"regex:..."``, ``"field:..."`` or a :class:`SessionRule`); default: the
        rule stored with the parser, else the format's own, as ``Workbench.detect`` uses.
    level
        Confidence level of the parameter verdicts; default: the workbench's.
    """

    def __init__(
        self, wb: Workbench, *, session: str | SessionRule | None = None, level: float | None = None
    ) -> None:
        wb._check_fitted()
        with wb._lock:
            self.parser = wb.parser
            self.key_model: KeyModel = wb.key_model  # type: ignore[assignment]
            self.param_model: ParamModel | None = wb.param_model
        if session is None:  # the rule the workbench was trained with travels with its parser
            session = wb.parser.session_rule
        self.rule = SessionRule.parse(session) if isinstance(session, str) else session
        if self.rule is not None and self.rule.kind not in ("regex", "field"):
            raise ValueError(
                f"a '{self.rule.kind}' session rule needs the whole log's time range; chunked and "
                "distributed detection take 'regex:' or 'field:' rules"
            )
        self.level = float(wb.level if level is None else level)
        self.status = dict(wb._status)
        # only id sessions (a VM, a block) end; a host's or node's stream goes on
        kind = self.rule.kind if self.rule else "regex" if wb.parser.format.session_regex else ""
        by_id = kind == "regex"
        self.end_keys = end_keys(wb.entries) if by_id else set()
        self._attrs = {
            k: v
            for k, v in wb.__dict__.items()
            if k in ("key_config", "param_config", "workflow_config", "seed")
        }
        self._attrs.update(level=self.level, _status=self.status)
        self._build()

    def _build(self) -> None:
        self.shell = _KeyOnly(self.parser, self.key_model, self._attrs)
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
            "param": pm.state_dict() if pm is not None else None,
            "rule": self.rule,
            "level": self.level,
            "status": self.status,
            "end_keys": sorted(self.end_keys),
            "attrs": self._attrs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.parser = LogParser.from_state(state["parser"])
        self.key_model = KeyModel.from_state(state["key"])
        p = state["param"]
        self.param_model = ParamModel.from_state(p, device="cpu") if p is not None else None
        self.rule, self.level, self.status = state["rule"], state["level"], state["status"]
        self.end_keys = set(state["end_keys"])
        self._attrs = state["attrs"]
        self._build()

    # ------------------------------------------------------------------ parsing
    def parse(self, lines: Any, first_line: int = 1, *, trim: bool = False) -> pd.DataFrame:
        """Match lines read-only and assign sessions (elapsed times are left to :meth:`elapsed`).
        ``trim`` drops what detection no longer needs (the message body and header fields)."""
        df = parse_lines(self.parser, self.rule, lines, first_line)
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
            names = sess[has].to_numpy(dtype=object)
            t = sec[has]
            sub = pd.DataFrame({"s": names, "t": t})
            if last:
                carry = [(s, last[s]) for s in pd.unique(names) if s in last]
                if carry:
                    head = pd.DataFrame(carry, columns=["s", "t"])
                    sub = pd.concat([head, sub], ignore_index=True)
                    dt = sub.groupby("s", sort=False)["t"].diff().to_numpy()[len(head) :]
                else:
                    dt = sub.groupby("s", sort=False)["t"].diff().to_numpy()
            else:
                dt = sub.groupby("s", sort=False)["t"].diff().to_numpy()
            dt_session[has] = dt
            if last is not None:
                tail = pd.DataFrame({"s": names, "t": t}).drop_duplicates("s", keep="last")
                last.update(zip(tail["s"].tolist(), tail["t"].tolist(), strict=True))
        df["dt_session"] = dt_session
        return last_global

    # ------------------------------------------------------------------ parameter pass
    def series_rows(self, df: pd.DataFrame) -> np.ndarray:
        """Rows of ``df`` that belong to a trained key's parameter series."""
        if not self.n_params or not len(df):
            return np.zeros(len(df), dtype=bool)
        keys = df["key"].to_numpy()
        want = pd.Series(keys).map(self.n_params).to_numpy(dtype=float)
        lengths = np.fromiter((len(p) for p in df["params"]), dtype=float, count=len(df))
        return df["parsed"].to_numpy(dtype=bool) & (lengths == want)

    def halo(self, parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
        """The last ``history`` series rows of every trained key among ``parts`` (in line order):
        all the parameter models need of the log before the next rows."""
        frames = [p.loc[self.series_rows(p), _HALO] for p in parts if len(p)]
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
        lv = level_name(self.level)
        base = df[_HALO]
        n_halo = 0 if halo is None else len(halo)
        full = pd.concat([halo, base], ignore_index=True) if n_halo else base
        ps = pm.score(full).iloc[n_halo:]
        for c in ("status", "mse", "dimension", "observed", "predicted"):
            out["_p_" + c] = ps[c].to_numpy()
        thr = ps.get(f"threshold_{lv}")
        out["_p_threshold"] = thr.to_numpy() if thr is not None else np.nan
        flag = ps.get(f"anomalous_{lv}")
        out["_p_anomalous"] = (
            flag.fillna(False).to_numpy(dtype=bool) if flag is not None else np.zeros(len(df), bool)
        )
        return out

    # ------------------------------------------------------------------ key pass and verdicts
    def key_pass(self, df: pd.DataFrame, g: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Key-model verdicts of ``df`` (whole sessions and session-less rows, in line order):
        the key columns per row (and ``_end``: reported as a session end) and the anomaly rows of
        the key kinds, exactly as ``Workbench._score`` makes them."""
        base = df[[c for c in df.columns if not c.startswith("_")]]
        rep = self.shell._score(base, g=g)
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
        ``Workbench._score``: the verdict frame (:data:`VERDICT_COLUMNS`) and the anomaly rows of
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
                rows.append(Workbench._anomaly_row(e, "parameter", g, self.level, [], self.status))
        return out, pd.DataFrame(rows)


def _paths(items: list | tuple) -> bool:
    """A list of log files rather than of lines: Path objects, or a few names of existing files."""
    if not items:
        return False
    if all(isinstance(s, Path) for s in items):
        return True
    return len(items) <= 64 and all(
        isinstance(s, str) and "\n" not in s and len(s) < 4096 and Path(s).is_file() for s in items
    )


def read_chunks(source: Any, chunk_lines: int) -> Iterator[list[Any]]:
    """Lists of at most ``chunk_lines`` lines of ``source`` (a path, bytes, or lines), in order.
    A list of paths is read as one log, file after file.

    >>> [len(c) for c in read_chunks(b"a\\nb\\nc\\n", 2)]
    [2, 1]
    """
    if chunk_lines < 1:
        raise ValueError(f"chunk_lines must be >= 1, got {chunk_lines}")
    if isinstance(source, list | tuple) and _paths(source):
        lines: Iterator[Any] = itertools.chain.from_iterable(raw_lines(s) for s in source)
    else:
        lines = raw_lines(source)
    while True:
        chunk = list(itertools.islice(lines, chunk_lines))
        if not chunk:
            return
        yield chunk


class _Writer:
    """Verdicts written as they are decided: parquet parts of the entries, a CSV of anomalies."""

    def __init__(self, out: str | Path | None) -> None:
        self.dir = Path(out) if out is not None else None
        self.n = 0
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            for old in self.dir.glob("entries-*.parquet"):
                old.unlink()
            (self.dir / "anomalies.csv").unlink(missing_ok=True)

    def write(self, entries: pd.DataFrame, anomalies: pd.DataFrame) -> None:
        if self.dir is None or not len(entries):
            return
        self.n += 1
        e = entries.copy()
        e["session"] = e["session"].astype(object).where(e["session"].notna(), None)
        e["dimension"] = e["dimension"].astype(object).where(e["dimension"].notna(), None)
        tmp = self.dir / f".entries-{self.n:06d}.parquet"
        e.to_parquet(tmp, index=False)
        tmp.replace(self.dir / f"entries-{self.n:06d}.parquet")
        if len(anomalies):
            path = self.dir / "anomalies.csv"
            anomalies.to_csv(path, mode="a", header=not path.exists(), index=False)


def detect_streaming(
    wb: Workbench,
    source: Any,
    *,
    chunk_lines: int = 100_000,
    idle_seconds: float = 3600.0,
    idle_lines: int = 1_000_000,
    out: str | Path | None = None,
    session: str | SessionRule | None = None,
    level: float | None = None,
    g: int | None = None,
    keep_entries: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> StreamReport:
    """Detect anomalies in a log of any length with bounded memory (see the module docstring).

    Parameters
    ----------
    wb
        A fitted workbench (its parser, models, g and level are used; it is not changed).
    source
        A path (plain or gzip), a list of paths read as one log, bytes, or an iterable of lines.
    chunk_lines
        Lines read and matched at a time.
    idle_seconds, idle_lines
        A session is closed and scored when it had no line for ``idle_seconds`` of log time (the
        latest timestamp read so far) or among the last ``idle_lines`` lines.
    out
        Folder for the verdicts written as they are decided: ``entries-NNNNNN.parquet`` (the columns
        of :data:`VERDICT_COLUMNS`, each part in line order) and ``anomalies.csv``.
    session
        Session rule (``regex:`` or ``field:``); default: the format's.
    level, g
        The parameter models' confidence level and the key model's g; default: the workbench's.
    keep_entries
        Also return every entry's verdicts in ``report.entries`` (memory grows with the log).
    progress
        Called after every chunk with a dict: ``lines``, ``open_sessions``, ``anomalies``.

    Wiring: ``Workbench.detect(source, chunk_lines=N)`` returns
    ``detect_streaming(self, source, chunk_lines=N, level=level, g=g)``; ``deeplog-workbench detect
    RUN LOG --chunk-lines N --out DIR`` does the same and prints ``report.summary()``.
    """
    t_start = time.perf_counter()
    sc = Scorer(wb, session=session, level=level)
    g = int(sc.key_model.g_ if g is None else g)
    writer = _Writer(out)
    keep: list[pd.DataFrame] = []
    found: list[pd.DataFrame] = []
    counts = dict.fromkeys(
        ("lines", "parsed", "sessions", "key_entries", "param_checked", "sessions_reopened"), 0
    )
    counts.update(peak_open_sessions=0, chunks=0)
    t0: pd.Timestamp | None = None
    last_global: float | None = None
    last_sec: dict[Any, float] = {}  # open sessions: seconds of their last entry
    last_line: dict[Any, int] = {}  # open sessions: their last line
    closed: OrderedDict[Any, None] = OrderedDict()  # recently closed sessions (bounded)
    pending = pd.DataFrame()  # rows of open sessions, parameter scores attached
    halo: pd.DataFrame | None = None
    line = 1
    now = -np.inf  # the latest time read, in seconds since the log's first timestamp

    def finish(rows: pd.DataFrame) -> None:
        if not len(rows):
            return
        rows = rows.sort_values("line", kind="stable").reset_index(drop=True)
        keycols, key_anoms = sc.key_pass(rows, g)
        rows = pd.concat([rows, keycols], axis=1)
        verdicts, param_anoms = sc.verdicts(rows, g)
        anoms = pd.concat([a for a in (key_anoms, param_anoms) if len(a)] or [key_anoms])
        s = rows["session"]
        counts["sessions"] += int(s.dropna().nunique())
        counts["key_entries"] += int((verdicts["position"].to_numpy() >= 0).sum())
        counts["param_checked"] += int((verdicts["param_status"] == "scored").sum())
        writer.write(verdicts, anoms)
        if len(anoms):
            found.append(anoms)
        if keep_entries:
            keep.append(verdicts)

    for chunk in read_chunks(source, chunk_lines):
        df = sc.parse(chunk, first_line=line, trim=True)
        line += len(chunk)
        counts["chunks"] += 1
        counts["lines"] += len(df)
        counts["parsed"] += int(df["parsed"].sum())
        sec, t0 = sc.seconds(df, t0)
        sess = df["session"].to_numpy(dtype=object)
        named = pd.notna(sess)
        again = [s for s in pd.unique(sess[named]) if s in closed]
        if again:
            counts["sessions_reopened"] += len(again)
            for s in again:
                del closed[s]
        last_global = sc.elapsed(df, sec, last_global, last_sec)
        ps = sc.param_pass(df, halo)
        if sc.param_model is not None:
            halo = sc.halo([halo, df] if halo is not None else [df])
        df = pd.concat([df, ps], axis=1)
        if named.any():
            tail = pd.DataFrame({"s": sess[named], "l": df["line"].to_numpy()[named]})
            tail = tail.drop_duplicates("s", keep="last")
            last_line.update(zip(tail["s"].tolist(), tail["l"].tolist(), strict=True))
        # a session ends at a key that only ever ended sessions, or after idle_lines quiet lines
        ends = set()
        if sc.end_keys:
            hit = named & np.isin(df["key"].to_numpy(), list(sc.end_keys))
            ends = set(pd.unique(sess[hit]).tolist())
        horizon = line - idle_lines
        ends |= {s for s, ln in last_line.items() if ln < horizon}
        if last_global is not None:
            now = max(now, last_global)
            ends |= {s for s, t in last_sec.items() if now - t > idle_seconds}
        pending = pd.concat([pending, df[named]], ignore_index=True) if len(pending) else df[named]
        loose = df[~named]
        if ends:
            p_sess = pending["session"].to_numpy(dtype=object)
            done = pd.Series(p_sess, dtype=object).isin(ends).to_numpy()
            finish(pd.concat([pending[done], loose], ignore_index=True))
            pending = pending[~done].reset_index(drop=True)
            for s in ends:
                last_sec.pop(s, None)
                last_line.pop(s, None)
                closed[s] = None
            while len(closed) > 1_000_000:
                closed.popitem(last=False)
        else:
            finish(loose)
        counts["peak_open_sessions"] = max(counts["peak_open_sessions"], len(last_line))
        if progress is not None:
            progress({"lines": counts["lines"], "open_sessions": len(last_line),
                      "anomalies": sum(len(a) for a in found)})  # fmt: skip
    finish(pending)
    if counts["sessions_reopened"]:
        logger.warning(
            "%d sessions received lines after they were closed for inactivity; they were scored "
            "again from there (raise idle_seconds or idle_lines to keep them whole)",
            counts["sessions_reopened"],
        )
    return _report(found, keep, g, sc.level, counts, writer.dir, t_start, keep_entries)


def _report(
    found: list[pd.DataFrame],
    keep: list[pd.DataFrame],
    g: int,
    level: float,
    counts: dict[str, int],
    out: Path | None,
    t_start: float,
    keep_entries: bool,
) -> StreamReport:
    from workbench.workbench import ANOMALY_COLUMNS

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
    report.seconds = time.perf_counter() - t_start
    if out is not None:
        anomalies.to_csv(Path(out) / "anomalies.csv", index=False)
    if counts["lines"] and not counts["parsed"]:
        logger.warning("no line of the log fits the format: nothing was checked")
    return report
