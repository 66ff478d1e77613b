"""The finite state automaton (FSA) of one task, built from the parsed entries.

States are keys (workflow states are keys ``> 0``; the reserved ids of :mod:`workbench.keyids`
never are); a *run* is one execution of the task. Transitions carry how often they are taken and
the elapsed times across them; states carry the usual values of their parameters and which
parameters report a duration. The tasks come from either method (:mod:`workbench.workflow.cooccurrence`,
:mod:`workbench.workflow.from_keymodel`); diagnosis reads the automata
(:mod:`workbench.workflow.diagnosis`).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.logs.sessions import session_groups
from workbench.workflow.layout import layered_layout

__all__ = [
    "build_fsa",
    "quantiles",
    "run_transitions",
    "short_label",
    "task_runs",
    "templates_of",
]

Run = list[tuple[int, int, float]]  # one execution of a task: (row, key, seconds) in log order

_INSTANCE_TAG = re.compile(r"^\[instance: [^\]]*\]\s*")


def short_label(template: str, width: int = 36) -> str:
    """A node label for the UI: the template without the instance tag, cut to ``width`` chars.

    >>> short_label("[instance: <UUID>] Took <NUM> seconds to spawn the instance on the hypervisor.")
    'Took <NUM> seconds to spawn the ins…'
    """
    text = _INSTANCE_TAG.sub("", template).strip()
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """Median and the 5th, 10th, 90th and 95th percentiles of the finite values (None if none).

    >>> quantiles([1.0, 2.0, 3.0, float("nan")])["median"], quantiles([])["p95"]
    (2.0, None)
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return {"median": None, "p05": None, "p10": None, "p90": None, "p95": None}
    q = np.quantile(v, [0.5, 0.05, 0.1, 0.9, 0.95])
    return {
        k: round(float(x), 6)
        for k, x in zip(("median", "p05", "p10", "p90", "p95"), q, strict=True)
    }


def templates_of(entries: pd.DataFrame) -> dict[int, str]:
    """Key -> template text, from the first entry of every key ``> 0``."""
    if "template" not in entries.columns:
        return {}
    sub = entries.loc[entries["key"] > 0, ["key", "template"]].drop_duplicates("key")
    return {int(k): str(t) for k, t in zip(sub["key"], sub["template"], strict=True)}


def task_runs(
    entries: pd.DataFrame, task_keys: Iterable[int], other_keys: Iterable[int], per_session: bool
) -> list[Run]:
    """The runs of one task as lists of ``(row, key, seconds)``; see :func:`build_fsa`."""
    return list(
        _runs(entries, {int(k) for k in task_keys}, {int(k) for k in other_keys}, per_session)
    )


def _runs(
    entries: pd.DataFrame, task_keys: set[int], other_keys: set[int], per_session: bool
) -> Iterator[Run]:
    """Yield runs (lists of (row, key, seconds)) of one task: per session, cut where a key of
    another task comes; over the interleaved log, the projection onto the task's keys."""
    keys = entries["key"].to_numpy(dtype=np.int64)
    ts = entries["timestamp"] if "timestamp" in entries.columns else None
    if ts is not None and ts.notna().any():
        t0 = ts[ts.notna()].iloc[0]
        sec = (ts - t0).dt.total_seconds().to_numpy(dtype=float)
    else:
        sec = np.full(len(entries), np.nan)
    if per_session:
        found = session_groups(entries, keep="known").rows
        groups: dict[Any, list[int]] = {i: rows.tolist() for i, rows in enumerate(found)}
    else:
        groups = {None: np.flatnonzero(keys > 0).tolist()}
    for rows_of in groups.values():
        run: list[tuple[int, int, float]] = []
        for r in rows_of:
            k = int(keys[r])
            if k in task_keys:
                run.append((r, k, float(sec[r])))
            elif per_session and k in other_keys and run:
                yield run
                run = []
        if run:
            yield run


def build_fsa(
    entries: pd.DataFrame,
    task_keys: Iterable[int],
    *,
    other_keys: Iterable[int] = (),
    per_session: bool | None = None,
    min_edge_prob: float = 0.0,
    templates: Mapping[int, str] | None = None,
    task_id: int = 0,
    transitions: Mapping[tuple[int, int], Sequence[float]] | None = None,
) -> nx.DiGraph:
    """The finite state automaton of one task from the parsed entries.

    States are keys; a *run* is one execution of the task: the entries of one session whose keys
    are in the task, cut where a key of ``other_keys`` (another task) comes in between. Without
    sessions the whole interleaved log, projected on the task's keys, is one run, and
    ``min_edge_prob`` prunes the transitions that interleaving invents. A chain that repeats is a
    cycle, since a key is one state.

    Node attributes: ``key``, ``template``, ``label`` (short), ``count``, ``starts``, ``ends``
    (runs that begin / end there), ``params`` (per parameter position, quantiles of its numeric
    values), ``measures`` (``[dimension, from_key]`` for a parameter that reports the time since
    an earlier step, such as "Took X seconds to ..."). Edge attributes: ``count`` and
    ``probability`` (adjacent transitions in the runs, as a share of the source's), ``elapsed``
    (seconds across the edge, raw values; see :func:`run_transitions`), ``median``, ``p05``,
    ``p10``, ``p90``, ``p95``. Graph attributes: ``task``, ``keys``, ``name``, ``runs``.

    ``transitions`` (``(a, b) -> elapsed seconds``, e.g. from the consistent-lag order of
    :mod:`workbench.workflow.lag_order` over a log without sessions) replaces the adjacent
    transitions of the runs: each is an edge, counted by its elapsed values; runs then start at
    the states without a transition in and end at those without one out.

    >>> df = pd.DataFrame({"key": [1, 2, 3, 1, 3, 2], "session": list("aaabbb"),
    ...     "timestamp": pd.to_datetime([0, 1, 3, 10, 12, 13], unit="s"), "template": list("xyzxzy")})
    >>> g = build_fsa(df, [1, 2, 3])
    >>> sorted(g.edges), g.edges[1, 2]["elapsed"], g.nodes[1]["starts"]
    ([(1, 2), (1, 3), (2, 3), (3, 2)], [1.0, 3.0], 2)
    """
    tk = {int(k) for k in task_keys}
    ok = set(int(k) for k in other_keys) - tk
    if per_session is None:
        per_session = "session" in entries.columns and bool(entries["session"].notna().any())
    if templates is None:
        templates = templates_of(entries)
    runs = list(_runs(entries, tk, ok, per_session))
    counts, edge_times, n_runs = _counts(runs, transitions)
    if transitions is not None:
        min_edge_prob = 0.0  # given transitions are kept
    g = nx.DiGraph()
    ordered = [k for k in _ordered_keys(tk, counts.edges, counts.starts) if counts.nodes[k]]
    _add_states(g, ordered, counts, templates, entries, runs)
    _add_transitions(g, counts.edges, edge_times, min_edge_prob)
    first = templates.get(ordered[0], "") if ordered else ""
    g.graph.update(
        task=int(task_id),
        keys=[int(k) for k in ordered],
        name=f"task {task_id}: {short_label(first, 28)}" if ordered else f"task {task_id}",
        runs=int(n_runs),
    )
    return g


def _counts(
    runs: Sequence[Run], transitions: Mapping[tuple[int, int], Sequence[float]] | None
) -> tuple[_RunCounts, dict[tuple[int, int], list[float]], int]:
    """The counts, elapsed times and number of runs of an automaton: from adjacency in the
    runs, or for the given transitions."""
    counts = _RunCounts.of(runs)
    if transitions is None:
        return counts, _edge_times(runs, counts.edges), len(runs)
    counts = _RunCounts.given(counts.nodes, transitions)
    times = {e: list(v) for e, v in transitions.items()}
    return counts, times, max(counts.starts.values(), default=0)


@dataclass
class _RunCounts:
    """How often the runs pass each state, start and end there, and take each transition."""

    nodes: Counter[int] = field(default_factory=Counter)
    starts: Counter[int] = field(default_factory=Counter)
    ends: Counter[int] = field(default_factory=Counter)
    edges: Counter[tuple[int, int]] = field(default_factory=Counter)

    @classmethod
    def of(cls, runs: Sequence[Run]) -> _RunCounts:
        c = cls()
        for run in runs:
            c.starts[run[0][1]] += 1
            c.ends[run[-1][1]] += 1
            for (_, a, _), (_, b, _) in itertools.pairwise(run):
                c.edges[a, b] += 1
            c.nodes.update(k for _, k, _ in run)
        return c

    @classmethod
    def given(
        cls, nodes: Counter[int], transitions: Mapping[tuple[int, int], Sequence[float]]
    ) -> _RunCounts:
        """Counts for given transitions: runs start (end) at every occurrence of a state
        without a transition in (out)."""
        c = cls(nodes=Counter(nodes))
        live = {k for k, n in nodes.items() if n}
        c.edges = Counter(
            {(a, b): max(len(t), 1) for (a, b), t in transitions.items() if {a, b} <= live}
        )
        has_in, has_out = {b for _, b in c.edges}, {a for a, _ in c.edges}
        for k in live:
            if k not in has_in:
                c.starts[k] = nodes[k]
            if k not in has_out:
                c.ends[k] = nodes[k]
        return c


def _add_states(
    g: nx.DiGraph,
    ordered: Sequence[int],
    counts: _RunCounts,
    templates: Mapping[int, str],
    entries: pd.DataFrame,
    runs: Sequence[Run],
) -> None:
    """Add the states in workflow order, with their counts, templates and parameter summaries."""
    params = _param_summaries(entries, set(ordered))
    measures = _duration_params(entries, runs)
    for k in ordered:
        tpl = templates.get(k, f"key {k}")
        g.add_node(
            k,
            key=k,
            template=tpl,
            label=short_label(tpl),
            count=int(counts.nodes[k]),
            starts=int(counts.starts[k]),
            ends=int(counts.ends[k]),
            params=params.get(k, []),
            measures=measures.get(k, []),
        )


def _edge_times(
    runs: Sequence[Run], edge_count: Mapping[tuple[int, int], int]
) -> dict[tuple[int, int], list[float]]:
    """Elapsed seconds across every transition, over all runs (see :func:`run_transitions`)."""
    preds: dict[int, set[int]] = defaultdict(set)
    for a, b in edge_count:
        preds[b].add(a)
    edge_times: dict[tuple[int, int], list[float]] = defaultdict(list)
    for run in runs:
        for b, a, elapsed in run_transitions(run, preds):
            edge_times[a, b].append(elapsed)
    return edge_times


def _add_transitions(
    g: nx.DiGraph,
    edge_count: Mapping[tuple[int, int], int],
    edge_times: Mapping[tuple[int, int], list[float]],
    min_edge_prob: float,
) -> None:
    """Add the transitions taken at least ``min_edge_prob`` of the times their source is left."""
    out_total: Counter[int] = Counter()
    for (a, _), c in edge_count.items():
        out_total[a] += c
    for (a, b), c in sorted(edge_count.items()):
        prob = c / out_total[a]
        if prob < min_edge_prob:
            continue
        times = edge_times.get((a, b), [])
        g.add_edge(
            a, b, count=int(c), probability=round(prob, 6), elapsed=times, **quantiles(times)
        )


def run_transitions(
    run: Sequence[tuple[int, int, float]], preds: Mapping[int, Iterable[int]]
) -> list[tuple[int, int, float]]:
    """Elapsed time of every automaton transition taken in one run: ``(key, from_key, seconds)``.

    For each entry, and each automaton predecessor of its key seen earlier in the run, the time
    since that predecessor's latest entry. Across a plain edge this is the time between the two
    lines; where concurrent steps may be logged in either order (image creation and network
    allocation, then "VM Started"), each branch's edge into the join gets the time since *its*
    step, whatever the log order, so the distributions stay comparable between runs.

    >>> run = [(0, 1, 0.0), (1, 2, 1.0), (2, 3, 1.5), (3, 4, 9.0)]
    >>> run_transitions(run, {2: [1], 3: [1], 4: [2, 3]})
    [(2, 1, 1.0), (3, 1, 1.5), (4, 2, 8.0), (4, 3, 7.5)]
    """
    last: dict[int, float] = {}
    out = []
    for _, k, t in run:
        for a in sorted(preds.get(k, ())):
            ta = last.get(a)
            if ta is not None and math.isfinite(ta) and math.isfinite(t):
                out.append((k, a, round(t - ta, 6)))
        last[k] = t
    return out


def _duration_params(
    entries: pd.DataFrame, runs: Sequence[Run], min_runs: int = 5
) -> dict[int, list[list[int]]]:
    """Parameters that report a duration: key -> ``[[dimension, from_key], ...]`` where the
    value (dimension 1 = first parameter) equals, within 10 % in most runs, the time since the
    latest ``from_key`` of the run ("Took 0.61 seconds to allocate network" measured from the
    claim). Such a line marks the *end* of the work it measures."""
    if "params" not in entries.columns:
        return {}
    params = entries["params"].to_numpy(dtype=object)
    ratios: dict[tuple[int, int, int], list[float]] = defaultdict(list)
    for run in runs:
        last: dict[int, float] = {}
        for row, k, t in run:
            p = params[row]
            if isinstance(p, tuple | list) and p and math.isfinite(t):
                for i, v in enumerate(p):
                    for a, ta in last.items():
                        gap = t - ta
                        if a != k and gap > 0.05 and v > 0:
                            ratios[k, i + 1, a].append(v / gap)
            last[k] = t
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for (k, dim, a), r in ratios.items():
        if len(r) < min_runs:
            continue
        err = float(np.median(np.abs(np.asarray(r) - 1.0)))
        if err < 0.1 and err < best.get((k, dim), (np.inf, 0))[0]:
            best[k, dim] = (err, a)
    out: dict[int, list[list[int]]] = defaultdict(list)
    for (k, dim), (_, a) in sorted(best.items()):
        out[k].append([dim, a])
    return dict(out)


def _param_summaries(entries: pd.DataFrame, keys: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Per key, per parameter position: quantiles of the numeric values (for diagnosis)."""
    if "params" not in entries.columns:
        return {}
    sub = entries.loc[entries["key"].isin(list(keys)), ["key", "params"]]
    out: dict[int, list[dict[str, Any]]] = {}
    for k, grp in sub.groupby("key"):
        vals = [p for p in grp["params"] if isinstance(p, tuple | list)]
        width = max((len(p) for p in vals), default=0)
        out[int(k)] = [quantiles([p[i] for p in vals if len(p) == width]) for i in range(width)]
    return out


def _ordered_keys(
    keys: set[int], edge_count: Mapping[tuple[int, int], int], starts: Mapping[int, int]
) -> list[int]:
    """Keys in workflow order: by layer of the layered layout, starts first."""
    g = nx.DiGraph()
    g.add_nodes_from(sorted(keys))
    for (a, b), c in edge_count.items():
        g.add_edge(a, b, count=c)
    for k in g.nodes:
        g.nodes[k]["starts"] = starts.get(k, 0)
    pos = layered_layout(g)
    return sorted(keys, key=lambda k: (pos[k][0], pos[k][1], k))
