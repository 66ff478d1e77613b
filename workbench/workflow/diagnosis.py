"""Anomaly diagnosis: where in which workflow an anomaly happened, and why, in data and in words.

DeepLog flags an entry; the investigator wants to know what it means. :func:`diagnose` takes the
anomaly as a plain record (:class:`AnomalyRecord`: the entry's line and session, its key, and what
the detector saw), the parsed entries frame of :mod:`workbench.logs.parser` and the workflows of
:mod:`workbench.workflow.cooccurrence`, and returns a :class:`Diagnosis` with structured fields and one
plain-English ``sentence``.

* **Key anomaly** (the key was not among the model's top candidates): the task and the step of
  its workflow where the session was, the keys the workflow has after that step and the keys the
  model expected, and the key that came: *"after 'Instance destroyed successfully.' (task 2,
  step 2 of 7) 'error during cleanup' came where the workflow expects 'Deleting instance files'
  (1.00); the model expected 'Deleting instance files' (0.98)"*.
* **Performance anomaly** (the elapsed-time dimension of the parameter vector deviated): among the
  transitions of the session's run of the task up to the flagged entry, the one whose time is
  furthest above its usual distribution, scaled by that distribution's spread (``(x - median) /
  (p95 - median)``): *"... took too long: transition 'Creating image' -> 'VM Started' took 48 s,
  usually 6-9 s (p95 9.4 s)"*. "Usually" is the 10th to 90th percentile.
* **Parameter anomaly** (another dimension): the value against that parameter's usual range for
  the key, and whether a transition of the run was slow too.

>>> import pandas as pd
>>> from workbench.workflow.cooccurrence import build_fsa
>>> ts = pd.to_datetime([0, 1, 8, 20, 21, 28, 40, 41, 90], unit="s")
>>> df = pd.DataFrame({"line": range(1, 10), "key": [1, 2, 3] * 3, "session": list("aaabbbccc"),
...     "timestamp": ts, "template": ["Start", "Creating image", "VM Started"] * 3})
>>> g = build_fsa(df.iloc[:6], [1, 2, 3], task_id=1)
>>> d = diagnose({"line": 9, "kind": "performance"}, df, [g])
>>> d.transition, d.elapsed
((2, 3), 49.0)
>>> print(d.sentence)
Session c took too long in task 1 (Start): transition 'Creating image' -> 'VM Started' took 49 s, usually 7-7 s (p95 7 s).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.workflow.cooccurrence import run_transitions, short_label, task_runs

__all__ = ["KINDS", "AnomalyRecord", "Diagnosis", "diagnose"]

logger = logging.getLogger(__name__)

KINDS = ("key", "performance", "parameter")  #: kinds of anomaly :func:`diagnose` explains


@dataclass(frozen=True)
class AnomalyRecord:
    """An anomaly as plain data, independent of the detector that found it.

    ``kind`` is ``'key'`` (execution path), ``'performance'`` (the elapsed-time dimension) or
    ``'parameter'`` (``dimension`` >= 1 is the parameter's position in the vector, 1-based, as in
    DeepLog's ``[dt, p1, p2, ...]``; dimension 0 means elapsed time and is read as performance).

    >>> AnomalyRecord.from_mapping({"line": 3, "kind": "parameter", "dimension": 0}).kind
    'performance'
    >>> AnomalyRecord(line=3, kind="odd")
    Traceback (most recent call last):
    ...
    ValueError: anomaly kind must be one of ('key', 'performance', 'parameter'), got 'odd'
    """

    line: int  # the entry's line number (the parsed frame's ``line``)
    kind: str  # 'key', 'performance' or 'parameter'
    session: str | None = None  # taken from the entries when None
    key: int | None = None  # taken from the entries when None
    position: int | None = None  # index of the entry in its session (informational)
    expected: tuple[tuple[int, float], ...] = ()  # the key model's candidates, most likely first
    dimension: int | None = None  # which dimension of the parameter vector deviated
    value: float | None = None  # its observed value, when known
    score: float | None = None  # the detector's raw score (rank, MSE), kept for display

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"anomaly kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "parameter" and (self.dimension is None or self.dimension == 0):
            object.__setattr__(self, "kind", "performance")
        exp = tuple((int(k), float(p)) for k, p in (self.expected or ()))
        object.__setattr__(self, "expected", exp)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AnomalyRecord:
        """Build from a dict (a report row); unknown keys are an error, ``expected`` may be a dict."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AnomalyRecord fields: {', '.join(unknown)}")
        d = dict(data)
        exp = d.get("expected")
        if isinstance(exp, Mapping):
            d["expected"] = tuple(sorted(exp.items(), key=lambda kv: -kv[1]))
        return cls(**d)


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found; ``sentence`` says it in one line."""

    kind: str
    line: int
    session: str | None
    key: int
    template: str
    task: int | None  # the workflow's ``task`` id, None when no workflow holds the entry
    task_name: str
    position: int | None  # index of the entry in its session
    step: int | None  # 1-based index of the entry in its run of the task
    steps: int | None  # number of states of the task's automaton
    previous_key: int | None  # the task's state before the entry
    previous_template: str
    workflow_expected: tuple[tuple[int, float], ...]  # successors of that state, with probability
    model_expected: tuple[tuple[int, float], ...]  # the detector's candidates
    transition: tuple[int, int] | None  # the slow transition (from_key, to_key)
    transition_templates: tuple[str, str] | None
    elapsed: float | None  # its time in this run, seconds
    usual: dict[str, float | None] = field(default_factory=dict)  # median, p10, p90, p95, ...
    concurrent: tuple[tuple[int, int, float], ...] = ()  # other branches into the same join
    settled_by: tuple[tuple[int, float], ...] = ()  # concurrent duration reports that were normal
    dimension: int | None = None
    value: float | None = None
    sentence: str = ""
    path: tuple[int, ...] = ()  # the session's states of this task up to the entry, in order

    @property
    def path_nodes(self) -> tuple[int, ...]:
        """The workflow nodes the session went through up to the anomaly (for highlighting)."""
        return self.path

    @property
    def slow_edge(self) -> tuple[int, int] | None:
        """The slow transition as a workflow edge, when the anomaly is about timing."""
        return self.transition

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        return out


# ---------------------------------------------------------------------- helpers
def _fmt_s(x: float | None) -> str:
    """Seconds for a sentence: 48 s, 9.4 s, 0.61 s, 0.012 s."""
    if x is None or not math.isfinite(x):
        return "?"
    ax = abs(x)
    if ax >= 20:
        return f"{x:.0f} s"
    if ax >= 1:
        return f"{x:.2g} s" if ax < 10 else f"{x:.0f} s"
    return f"{x:.2g} s"


def _fmt_num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "?"
    return f"{x:.3g}"


def _range(lo: float | None, hi: float | None, unit: bool = True) -> str:
    if lo is None or hi is None:
        return "?"
    if unit:
        return f"{_fmt_s(lo)[:-2]}-{_fmt_s(hi)}"
    return f"{_fmt_num(lo)}-{_fmt_num(hi)}"


def _q(label: str) -> str:
    return f"'{short_label(label, 60)}'"


def _locate(entries: pd.DataFrame, line: int) -> int:
    hits = np.flatnonzero(entries["line"].to_numpy() == line)
    if not len(hits):
        raise ValueError(f"line {line} is not in the entries")
    return int(hits[0])


def _task_of(
    workflows: Sequence[nx.DiGraph], key: int, prev: int | None, recent: Sequence[int] = ()
) -> tuple[nx.DiGraph | None, bool]:
    """The workflow to read: one holding both the previous state and the key, else one holding
    the key, else one holding the previous state (an unexpected key). Among several, the one
    holding most of the session's recent keys (a key shared by tasks is read in the task the
    session is in), then the busiest. Second value: whether the key is in it."""

    def rank(g: nx.DiGraph, k: int) -> tuple[float, int]:
        fit = sum(0.5**i for i, r in enumerate(recent) if r in g)
        return fit, int(g.nodes[k]["count"])

    both = [g for g in workflows if key in g and prev is not None and prev in g]
    if both:
        return max(both, key=lambda g: rank(g, key)), True
    has_key = [g for g in workflows if key in g]
    if has_key:
        return max(has_key, key=lambda g: rank(g, key)), True
    has_prev = [g for g in workflows if prev is not None and prev in g]
    if has_prev:
        return max(has_prev, key=lambda g: rank(g, prev)), False
    return None, False


def _session_rows(entries: pd.DataFrame, row: int) -> np.ndarray:
    sess = entries["session"].iloc[row] if "session" in entries.columns else None
    keys = entries["key"].to_numpy()
    if sess is None or (isinstance(sess, float) and math.isnan(sess)):
        return np.flatnonzero(keys > 0)
    return np.flatnonzero((entries["session"].to_numpy(dtype=object) == sess) & (keys > 0))


# ---------------------------------------------------------------------- diagnosis
def diagnose(
    anomaly: AnomalyRecord | Mapping[str, Any],
    entries: pd.DataFrame,
    workflows: Sequence[nx.DiGraph],
    *,
    templates: Mapping[int, str] | None = None,
) -> Diagnosis:
    """Explain one anomaly with the workflows (see the module docstring).

    Parameters
    ----------
    anomaly
        An :class:`AnomalyRecord` or a dict with its fields (``line`` and ``kind`` at least).
    entries
        The parsed entries that contain the anomalous entry and its session (columns ``line``,
        ``key``, ``session``, ``timestamp``, ``template``, and ``params`` for parameter anomalies).
    workflows
        Automata from :func:`workbench.workflow.cooccurrence.build_workflows` (built on normal data).
    templates
        Key -> template text for keys the workflows do not hold (default: from ``entries``).

    Returns
    -------
    Diagnosis
    """
    rec = anomaly if isinstance(anomaly, AnomalyRecord) else AnomalyRecord.from_mapping(anomaly)
    row = _locate(entries, rec.line)
    key = int(entries["key"].iloc[row]) if rec.key is None else int(rec.key)
    session = rec.session
    if session is None and "session" in entries.columns:
        s = entries["session"].iloc[row]
        session = None if s is None or (isinstance(s, float) and math.isnan(s)) else str(s)
    tmpl = dict(templates or {})
    if "template" in entries.columns:
        known = entries.loc[entries["key"] > 0, ["key", "template"]].drop_duplicates("key")
        for k, t in zip(known["key"], known["template"], strict=True):
            tmpl.setdefault(int(k), str(t))
    for g in workflows:
        for k, attrs in g.nodes(data=True):
            tmpl.setdefault(int(k), str(attrs.get("template", "")))

    def name(k: int | None) -> str:
        if k is None:
            return ""
        return tmpl.get(int(k), f"key {k}") if k > 0 else "an unknown message"

    rows = _session_rows(entries, row)
    position = int(np.searchsorted(rows, row)) if row in set(rows.tolist()) else None
    keys = entries["key"].to_numpy()
    # the previous entry of the session that some workflow knows
    recent: list[int] = []  # the session's known keys before the entry, latest first
    for r in rows[rows < row][::-1] if session is not None else []:
        if any(int(keys[r]) in g for g in workflows):
            recent.append(int(keys[r]))
            if len(recent) == 4:
                break
    prev = recent[0] if recent else None
    g, key_in = _task_of(workflows, key, prev, recent)
    base: dict[str, Any] = {
        "line": rec.line,
        "session": session,
        "key": key,
        "template": name(key),
        "task": None if g is None else int(g.graph.get("task", 0)),
        "task_name": "" if g is None else str(g.graph.get("name", "")),
        "position": position,
        "steps": None if g is None else g.number_of_nodes(),
        "model_expected": rec.expected,
        "dimension": rec.dimension,
        "value": rec.value,
    }
    if key <= 0 or not tmpl.get(key):
        # an unknown key: show the message itself
        for col in ("content", "template"):
            if col in entries.columns and str(entries[col].iloc[row] or "").strip():
                base["template"] = str(entries[col].iloc[row])
                break
    where = _where(g, session)
    if rec.kind == "key":
        return _diagnose_key(rec, base, g, key_in, prev, entries, rows, row, name, where)
    return _diagnose_time(rec, base, g if key_in else None, workflows, entries, row, name, where)


def _where(g: nx.DiGraph | None, session: str | None) -> str:
    sess = f"session {session}" if session else "the log"
    if g is None:
        return f"in {sess}"
    return f"in task {g.graph.get('task')} ({g.graph.get('name', '').split(': ', 1)[-1]}) of {sess}"


def _step_in_run(
    g: nx.DiGraph, entries: pd.DataFrame, rows: np.ndarray, row: int
) -> tuple[int | None, list[tuple[int, int, float]]]:
    """1-based step of ``row`` in its run of the task, and the run up to and including it."""
    keys = entries["key"].to_numpy()
    sub = entries.iloc[rows]
    run_list = task_runs(sub, list(g.nodes), [], per_session=False)
    for run in run_list:
        rws = [int(rows[r]) for r, _, _ in run]
        if row in rws:
            i = rws.index(row)
            return i + 1, [(rws[j], int(keys[rws[j]]), run[j][2]) for j in range(i + 1)]
    return None, []


def _diagnose_key(rec, base, g, key_in, prev, entries, rows, row, name, where) -> Diagnosis:
    wf_expected: tuple[tuple[int, float], ...] = ()
    step = None
    if g is not None:
        if prev is not None and prev in g:
            succ = [
                (int(b), float(g.edges[prev, b].get("probability", 0.0)))
                for b in g.successors(prev)
            ]
            wf_expected = tuple(sorted(succ, key=lambda kv: (-kv[1], kv[0])))
        else:
            total = sum(int(a.get("starts", 0)) for _, a in g.nodes(data=True)) or 1
            starts = [(int(k), a.get("starts", 0) / total) for k, a in g.nodes(data=True)]
            wf_expected = tuple(sorted((s for s in starts if s[1] > 0), key=lambda kv: -kv[1]))
        step, _ = _step_in_run(g, entries, rows, row)
    prev_t = name(prev) if prev is not None else ""

    def listing(items: tuple[tuple[int, float], ...], n: int = 3) -> str:
        return " or ".join(f"{_q(name(k))} ({p:.2f})" for k, p in items[:n])

    head = f"After {_q(prev_t)}" if prev is not None else "At the start"
    pos = ""
    if g is not None and step is not None:
        pos = f", step {step} of {g.number_of_nodes()}"
    elif g is not None and not key_in:
        pos = ", a key this workflow never has"
    parts = [f"{head} {where}{pos}, {_q(base['template'])} came"]
    if wf_expected:
        parts.append(f"where the workflow expects {listing(wf_expected)}")
    elif g is not None:
        parts.append("where the workflow has ended")
    sentence = " ".join(parts)
    if rec.expected:
        sentence += f"; the model expected {listing(rec.expected)}"
    sentence += "."
    return Diagnosis(
        kind="key",
        step=step,
        previous_key=prev,
        previous_template=prev_t,
        workflow_expected=wf_expected,
        transition=None,
        transition_templates=None,
        elapsed=None,
        sentence=sentence,
        **base,
    )


def _scale(q: Mapping[str, Any]) -> float:
    med = q.get("median") or 0.0
    p95 = q.get("p95")
    spread = (p95 - med) if p95 is not None else 0.0
    return max(spread, 0.1 * abs(med), 0.05)


def _pick_branch(g, entries, run, scored, best, also):
    """Several concurrent branches lead into a slow join. A branch whose line reports the
    duration of its own work (a parameter the workflow learned to equal the time since an earlier
    step, "Took 0.6 seconds to allocate network") with a usual value was done on time: the wait
    was on another branch. When that leaves one branch, it is the transition named."""
    params = entries["params"].to_numpy(dtype=object) if "params" in entries.columns else None
    latest = {k: r for r, k, _ in run}
    done: list[tuple[int, float]] = []
    branches = [best[1]] + [a for a, _, _ in also]
    for a in branches:
        measures = g.nodes[a].get("measures") or []
        if params is None or not measures or a not in latest:
            continue
        value = params[latest[a]]
        ok = True
        for dim, _ in measures:
            q = (g.nodes[a].get("params") or [{}] * dim)[dim - 1]
            v = value[dim - 1] if isinstance(value, tuple | list) and len(value) >= dim else None
            if v is None or q.get("p95") is None or v > 1.5 * q["p95"]:
                ok = False
        if ok:
            done.append((a, float(value[measures[0][0] - 1])))
    pending = [a for a in branches if a not in {d for d, _ in done}]
    if not done or len(pending) != 1:
        return best, also, []
    new_best = next(t for t in scored if t[1] == pending[0] and t[2] == best[2])
    return new_best, (), done


def _diagnose_time(rec, base, g, workflows, entries, row, name, where) -> Diagnosis:
    rows = _session_rows(entries, row)
    best: tuple[float, int, int, float] | None = None  # (score, from, to, elapsed)
    also: tuple[tuple[int, int, float], ...] = ()
    done: list[tuple[int, float]] = []  # concurrent branches whose own duration report was normal
    step = None
    if g is not None:
        step, run = _step_in_run(g, entries, rows, row)
        preds = {int(k): [int(a) for a in g.predecessors(k)] for k in g.nodes}
        scored = []
        for b, a, x in run_transitions(run, preds):
            q = g.edges[a, b]
            if q.get("median") is None:
                continue
            scored.append(((x - q["median"]) / _scale(q), a, b, x))
        if scored:
            best = max(scored)
            # the other branches of a join that waited just as long (concurrent predecessors)
            also = tuple(
                (a, b, x)
                for z, a, b, x in sorted(scored, reverse=True)
                if b == best[2] and a != best[1] and best[0] > 1.0 and z > 0.5 * best[0]
            )
            if also:
                best, also, done = _pick_branch(g, entries, run, scored, best, also)
    transition = None if best is None else (best[1], best[2])
    usual: dict[str, float | None] = {}
    elapsed = None
    if best is not None and g is not None:
        e = g.edges[transition]
        usual = {k: e.get(k) for k in ("median", "p05", "p10", "p90", "p95")}
        usual["count"] = e.get("count")
        elapsed = best[3]
    ttemps = None if transition is None else (name(transition[0]), name(transition[1]))
    subject = f"Session {base['session']}" if base["session"] else "The log"
    task_part = ""
    if g is not None:
        task_part = f" in task {g.graph.get('task')} ({g.graph.get('name', '').split(': ', 1)[-1]})"
    slow = ""
    if best is not None and ttemps is not None:
        slow = (
            f"transition {_q(ttemps[0])} -> {_q(ttemps[1])} took {_fmt_s(elapsed)}, usually "
            f"{_range(usual.get('p10'), usual.get('p90'))} (p95 {_fmt_s(usual.get('p95'))})"
        )
    if done:
        reports = " and ".join(f"{_q(name(a))} ({_fmt_num(v)})" for a, v in done)
        slow += (
            f"; the concurrent {reports} reported its own work done in the usual time, "
            f"so the wait was on this branch"
        )
    elif also:
        others = " and ".join(f"{_q(name(a))} ({_fmt_s(x)})" for a, _, x in also)
        slow += (
            f"; {_q(name(transition[1]))} also waited that long after the concurrent {others}, "  # type: ignore[index]
            f"so the log cannot tell which branch was slow"
        )
    if rec.kind == "performance":
        if slow and best is not None and best[0] > 1.0:
            sentence = f"{subject} took too long{task_part}: {slow}."
        elif slow:
            sentence = (
                f"{subject} was flagged as slow{task_part} at {_q(base['template'])}, but no "
                f"transition is far outside its usual time; the slowest relative to usual: {slow}."
            )
        else:
            sentence = (
                f"{subject} was flagged as slow at {_q(base['template'])}; no workflow holds this "
                f"step, so no transition can be named."
            )
        return Diagnosis(
            kind="performance",
            step=step,
            previous_key=None if transition is None else transition[0],
            previous_template="" if ttemps is None else ttemps[0],
            workflow_expected=(),
            transition=transition,
            transition_templates=ttemps,
            elapsed=elapsed,
            usual=usual,
            concurrent=also,
            settled_by=tuple(done),
            sentence=sentence,
            **base,
        )
    # a parameter value (dimension >= 1)
    dim = int(rec.dimension or 1)
    value = rec.value
    if value is None and "params" in entries.columns:
        p = entries["params"].iloc[row]
        if isinstance(p, tuple | list) and len(p) >= dim:
            value = float(p[dim - 1])
    pq: dict[str, Any] = {}
    for wf in workflows:
        if base["key"] in wf:
            ps = wf.nodes[base["key"]].get("params") or []
            if len(ps) >= dim:
                pq = dict(ps[dim - 1])
                break
    sentence = (
        f"{subject}{task_part}: {_q(base['template'])} carried {_fmt_num(value)} in parameter {dim}"
    )
    rng = _range(pq.get("p10"), pq.get("p90"), unit=False) if pq else "?"
    if rng != "?":  # the usual values are known only for keys inside a workflow
        p95 = _fmt_num(pq.get("p95"))
        sentence += f", usually {rng}" + (f" (p95 {p95})" if p95 != "?" else "")
    if slow and best is not None and best[0] > 1.0:
        sentence += f"; the timing was off too: {slow}."
    else:
        sentence += "; the timestamps show no slow transition, so the value itself is odd."
    return Diagnosis(
        kind="parameter",
        step=step,
        previous_key=None if transition is None else transition[0],
        previous_template="" if ttemps is None else ttemps[0],
        workflow_expected=(),
        transition=transition if best is not None and best[0] > 1.0 else None,
        transition_templates=ttemps if best is not None and best[0] > 1.0 else None,
        elapsed=elapsed if best is not None and best[0] > 1.0 else None,
        usual={**pq},
        sentence=sentence,
        **{**base, "value": value, "dimension": dim},
    )
