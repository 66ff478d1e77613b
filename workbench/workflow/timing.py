"""Slow transitions: which transition of a session's run of a task took too long, against its usual
times in the workflow automaton, and which concurrent branch the wait was on.

A transition's time is scored by how far it lies above its usual distribution, scaled by that
distribution's spread: ``(x - median) / (p95 - median)`` (with a floor on the spread).
:mod:`workbench.workflow.diagnosis` turns the result into a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.workflow.automaton import Run, run_transitions, task_runs

__all__ = ["SlowTransition", "slowest_transition", "step_in_run"]

Scored = tuple[float, int, int, float]  # (score, from_key, to_key, elapsed seconds)


@dataclass(frozen=True)
class SlowTransition:
    """The slowest transition of a run relative to its usual time, and its concurrent branches.

    ``best`` is ``(score, from_key, to_key, seconds)`` or None (no timed transition); ``also``
    the other branches into the same join that waited about as long, ``(from_key, to_key,
    seconds)``; ``settled_by`` the concurrent branches whose own duration report was normal,
    ``(key, reported value)``."""

    step: int | None
    best: Scored | None = None
    also: tuple[tuple[int, int, float], ...] = ()
    settled_by: tuple[tuple[int, float], ...] = ()

    @property
    def slow(self) -> bool:
        """Whether the transition is far outside its usual time (score above 1)."""
        return self.best is not None and self.best[0] > 1.0


def step_in_run(
    g: nx.DiGraph, entries: pd.DataFrame, rows: np.ndarray, row: int
) -> tuple[int | None, Run]:
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


def slowest_transition(
    g: nx.DiGraph | None, entries: pd.DataFrame, rows: np.ndarray, row: int
) -> SlowTransition:
    """The transition of the session's run (``rows``) up to ``row`` furthest above its usual time
    in the automaton ``g``."""
    if g is None:
        return SlowTransition(step=None)
    step, run = step_in_run(g, entries, rows, row)
    preds = {int(k): [int(a) for a in g.predecessors(k)] for k in g.nodes}
    scored = []
    for b, a, x in run_transitions(run, preds):
        q = g.edges[a, b]
        if q.get("median") is None:
            continue
        scored.append(((x - q["median"]) / _scale(q), a, b, x))
    if not scored:
        return SlowTransition(step=step)
    best = max(scored)
    # the other branches of a join that waited just as long (concurrent predecessors)
    also = tuple(
        (a, b, x)
        for z, a, b, x in sorted(scored, reverse=True)
        if b == best[2] and a != best[1] and best[0] > 1.0 and z > 0.5 * best[0]
    )
    done: list[tuple[int, float]] = []
    if also:
        best, also, done = _pick_branch(g, entries, run, scored, best, also)
    return SlowTransition(step=step, best=best, also=also, settled_by=tuple(done))


def _scale(q: Mapping[str, Any]) -> float:
    med = q.get("median") or 0.0
    p95 = q.get("p95")
    spread = (p95 - med) if p95 is not None else 0.0
    return max(spread, 0.1 * abs(med), 0.05)


def _pick_branch(
    g: nx.DiGraph,
    entries: pd.DataFrame,
    run: Run,
    scored: Sequence[Scored],
    best: Scored,
    also: tuple[tuple[int, int, float], ...],
) -> tuple[Scored, tuple[tuple[int, int, float], ...], list[tuple[int, float]]]:
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
