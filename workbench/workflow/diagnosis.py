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
  usually 6-9 s (p95 9.4 s)"*. "Usually" is the 10th to 90th percentile
  (:mod:`workbench.workflow.timing`; the wording is :mod:`workbench.workflow.sentences`).
* **Parameter anomaly** (another dimension): the value against that parameter's usual range for
  the key, and whether a transition of the run was slow too.

>>> import pandas as pd
>>> from workbench.workflow.automaton import build_fsa
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
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.workflow.context import (
    all_templates,
    locate,
    own_message,
    recent_keys,
    session_of,
    session_rows,
    task_of,
)
from workbench.workflow.sentences import (
    key_sentence,
    parameter_sentence,
    performance_sentence,
    slow_clause,
)
from workbench.workflow.timing import SlowTransition, slowest_transition, step_in_run

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
    row = locate(entries, rec.line)
    key = int(entries["key"].iloc[row]) if rec.key is None else int(rec.key)
    session = rec.session if rec.session is not None else session_of(entries, row)
    tmpl = all_templates(entries, workflows, templates)
    name = functools.partial(_name, tmpl)
    rows = session_rows(entries, row)
    position = int(np.searchsorted(rows, row)) if row in set(rows.tolist()) else None
    recent = recent_keys(entries, rows, row, workflows) if session is not None else []
    prev = recent[0] if recent else None
    g, key_in = task_of(workflows, key, prev, recent)
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
        base["template"] = own_message(entries, row, base["template"])
    if rec.kind == "key":
        where = _where(g, session)
        return _diagnose_key(rec, base, g, key_in, prev, entries, rows, row, name, where)
    return _diagnose_time(rec, base, g if key_in else None, workflows, entries, row, name)


def _name(templates: Mapping[int, str], k: int | None) -> str:
    """A key's template for a sentence ("an unknown message" for a reserved id)."""
    if k is None:
        return ""
    return templates.get(int(k), f"key {k}") if k > 0 else "an unknown message"


def _where(g: nx.DiGraph | None, session: str | None) -> str:
    sess = f"session {session}" if session else "the log"
    if g is None:
        return f"in {sess}"
    return f"in task {g.graph.get('task')} ({g.graph.get('name', '').split(': ', 1)[-1]}) of {sess}"


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
        step, _ = step_in_run(g, entries, rows, row)
    pos = ""
    if g is not None and step is not None:
        pos = f", step {step} of {g.number_of_nodes()}"
    elif g is not None and not key_in:
        pos = ", a key this workflow never has"
    sentence = key_sentence(
        name=name,
        prev=prev,
        where=where,
        position=pos,
        template=base["template"],
        workflow_expected=wf_expected,
        has_workflow=g is not None,
        model_expected=rec.expected,
    )
    return Diagnosis(
        kind="key",
        step=step,
        previous_key=prev,
        previous_template=name(prev) if prev is not None else "",
        workflow_expected=wf_expected,
        transition=None,
        transition_templates=None,
        elapsed=None,
        sentence=sentence,
        **base,
    )


def _diagnose_time(rec, base, g, workflows, entries, row, name) -> Diagnosis:
    """A performance or parameter anomaly: the slowest transition of the session's run."""
    found = slowest_transition(g, entries, session_rows(entries, row), row)
    transition, usual, elapsed = _usual_time(g, found)
    ttemps = None if transition is None else (name(transition[0]), name(transition[1]))
    subject = f"Session {base['session']}" if base["session"] else "The log"
    task_part = ""
    if g is not None:
        task_part = f" in task {g.graph.get('task')} ({g.graph.get('name', '').split(': ', 1)[-1]})"
    slow = ""
    if transition is not None:
        slow = slow_clause(name, transition, elapsed, usual, found.settled_by, found.also)
    timing = {
        "step": found.step,
        "previous_key": None if transition is None else transition[0],
        "previous_template": "" if ttemps is None else ttemps[0],
        "workflow_expected": (),
    }
    if rec.kind == "performance":
        return Diagnosis(
            kind="performance",
            **timing,
            transition=transition,
            transition_templates=ttemps,
            elapsed=elapsed,
            usual=usual,
            concurrent=found.also,
            settled_by=found.settled_by,
            sentence=performance_sentence(subject, task_part, base["template"], slow, found.slow),
            **base,
        )
    # a parameter value (dimension >= 1)
    dim = int(rec.dimension or 1)
    value = rec.value
    if value is None and "params" in entries.columns:
        p = entries["params"].iloc[row]
        if isinstance(p, tuple | list) and len(p) >= dim:
            value = float(p[dim - 1])
    pq = _usual_parameter(workflows, base["key"], dim)
    return Diagnosis(
        kind="parameter",
        **timing,
        transition=transition if found.slow else None,
        transition_templates=ttemps if found.slow else None,
        elapsed=elapsed if found.slow else None,
        usual={**pq},
        sentence=parameter_sentence(
            subject, task_part, base["template"], value, dim, pq, slow, found.slow
        ),
        **{**base, "value": value, "dimension": dim},
    )


def _usual_time(
    g: nx.DiGraph | None, found: SlowTransition
) -> tuple[tuple[int, int] | None, dict[str, float | None], float | None]:
    """The slowest transition, its usual times in the automaton and its time in this run."""
    if found.best is None or g is None:  # no timed transition (always so without a workflow)
        return None, {}, None
    transition = (found.best[1], found.best[2])
    e = g.edges[transition]
    usual = {k: e.get(k) for k in ("median", "p05", "p10", "p90", "p95")}
    usual["count"] = e.get("count")
    return transition, usual, found.best[3]


def _usual_parameter(workflows: Sequence[nx.DiGraph], key: int, dim: int) -> dict[str, Any]:
    """The usual values of parameter ``dim`` of ``key``, from the first workflow holding it."""
    for wf in workflows:
        if key in wf:
            ps = wf.nodes[key].get("params") or []
            if len(ps) >= dim:
                return dict(ps[dim - 1])
    return {}
