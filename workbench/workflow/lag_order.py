"""Automata of tasks separated without sessions, read off consistent time lags.

Over a log without session ids, a task's automaton cannot come from its runs: the runs of one
task (many VMs created at once) are mixed in one stream, and adjacency in that stream invents
transitions between the steps of different runs. The tasks were separated by consistent time
lags (:mod:`workbench.workflow.lag_cooccurrence`); the same statistics order their steps, as
in mining workflows from interleaved traces (Lou, Fu, Yang, Xu, Li, KDD 2010): a step that is
caused by another follows it after a consistent lag in most runs, and never the other way.

For the keys of one task, with ``E[a, b]`` the excess of ``b`` after ``a`` at their usual lag
(``after[a, b] * f(a)``: the runs where ``b`` follows ``a`` that chance does not explain) and
``n`` the count of the task's rarest state (its number of runs, when every run logs it):

* ``a`` comes *before* ``b`` when ``E[a, b] >= MIN_SHARE * n`` and either ``E[b, a] <=
  MAX_REVERSE * E[a, b]`` or the usual lag from ``b`` back to ``a`` is longer than every lag in
  the usual range from ``a`` to ``b`` (a task repeated one run after another: ``a`` also follows
  ``b``, but only from the next run), unless the two are logged right after one another either
  way (both usual lags start near zero: :func:`immediate`) each first in at least
  ``MIN_CONCURRENT * n`` runs: a lifecycle event racing the driver's report of the same change,
  first two times in three, is concurrent, not ordered; the order is made acyclic (the weakest
  link of a cycle is dropped) and transitive;
* two keys the order leaves unordered are *concurrent* (logged in either order: image creation
  beside network allocation) when each follows the other at a consistent lag in at least
  ``MIN_CONCURRENT * n`` runs, over lag ranges that overlap; other unordered pairs have no edge;
* the automaton's transitions are those a run can take: ``a -> b`` where ``a`` comes before
  ``b`` with nothing ordered in between (the transitive reduction: a join gets one edge from
  each branch), and both ways between concurrent keys;
* a key that most of its own occurrences do not tie to the tasks holding it (summed over those
  tasks, each the best share preceded or followed by a member) is *background* (API polling,
  periodic work logged at a consistent lag after a step by chance of timing, but mostly on its
  own): it is left out of the automaton and listed in its graph attribute ``background``.

A transition's count is the number of times ``b`` comes within the usual lag range after an
``a``, and its elapsed times those lags (the latest ``a`` in that range before each ``b``). The
four settings were chosen on simulator seeds that ``bench/workflow.py`` does not report.

>>> rng = np.random.default_rng(0)
>>> t0 = np.sort(rng.uniform(0, 2000, 200))  # 200 runs of 1 -> {2, 3} -> 4, overlapping
>>> t2, t3 = t0 + rng.lognormal(0, 0.3, 200), t0 + rng.lognormal(0, 0.3, 200)
>>> t4 = np.maximum(t2, t3) + rng.lognormal(1, 0.1, 200)
>>> keys, sec = np.repeat([1, 2, 3, 4], 200), np.concatenate([t0, t2, t3, t4])
>>> lag = lag_cooccurrence(keys, sec, window=20.0, min_lift=2.0)
>>> sorted(order_edges(lag, [1, 2, 3, 4]))
[(1, 2), (1, 3), (2, 3), (2, 4), (3, 2), (3, 4)]
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from workbench.workflow.lag_cooccurrence import LagCooccurrence, lag_cooccurrence

__all__ = [
    "MAX_REVERSE",
    "MIN_CONCURRENT",
    "MIN_EXPLAINED",
    "MIN_SHARE",
    "LagOrder",
    "background_keys",
    "by_lag_order",
    "entry_seconds",
    "immediate",
    "lag_of",
    "order_edges",
    "transitions",
]

# chosen on simulator seeds 0, 1, 7, 8, 9 (bench/workflow.py), a grid over MIN_SHARE in
# {0.4, 0.5, 0.6}, MAX_REVERSE in {0.3, 0.5, 0.7}, MIN_CONCURRENT in {0.2, 0.3, 0.4} and
# MIN_EXPLAINED in {0.4, ..., 0.8}; MIN_SHARE 0.4 gave the same figures there, as did
# MIN_EXPLAINED 0.45-0.8. The rules on lag ranges (an order read off the sooner lag,
# concurrency only over overlapping ranges) cost 0.02 of edge recall on those seeds and raise
# the edge precision on OpenStack_2k without sessions, against its per-session automaton, from
# 0.08 to 0.33 (adjacency in the stream: 0.26): there the VMs run one after another and every
# step also follows every other from the next run.
# The rule on keys logged right after one another (concurrent, not ordered, when each comes
# first in MIN_CONCURRENT of the runs) raised the edge recall there from 0.910 to 0.931 (worst
# seed 0.853 to 0.882), the Jaccard and edge precision unchanged.
MIN_SHARE = 0.5  # a -> b: b follows a at the usual lag in at least this share of the runs ...
MAX_REVERSE = 0.5  # ... and a follows b at most this many times as often
MIN_CONCURRENT = 0.3  # unordered keys each following the other in this share: concurrent
MIN_EXPLAINED = 0.5  # a key whose occurrences the tasks tie less than this is background
# Logged right after one another (:func:`immediate`): both usual lag ranges start at most one
# timestamp step above zero. On simulator seeds 0, 1, 7-16, against ranges that start at zero:
# edge recall 0.914 -> 0.940 (worst seed 0.80 -> 0.88), Jaccard 0.949 -> 0.953, precision the
# same; a range that starts below a tenth of its end instead gave recall 0.943 but lowered the
# edge precision of OpenStack_2k without sessions from 0.33 to 0.22.


def entry_seconds(entries: pd.DataFrame) -> np.ndarray | None:
    """Seconds since the first timestamp of every entry (NaN without one); None without any."""
    ts = entries["timestamp"] if "timestamp" in entries.columns else None
    if ts is None or not ts.notna().any():
        return None
    return (ts - ts[ts.notna()].iloc[0]).dt.total_seconds().to_numpy(dtype=float)


def immediate(lag: LagCooccurrence) -> np.ndarray:
    """Pairs logged right after one another in either order: the usual lags both ways start
    at zero or one timestamp step above it, where the two are seldom logged in the same
    millisecond (concurrent steps of one run, a lifecycle event racing the driver's report of
    the same change)."""
    low, high = lag.low, lag.high
    near_zero = (high > 0.0) & (low <= lag.resolution * (1.0 + 1e-9))
    return near_zero & near_zero.T


def _rows(lag: LagCooccurrence, keys: Iterable[int]) -> tuple[list[int], list[int]]:
    """The keys the matrices know, and their rows."""
    have = set(lag.keys.tolist())
    known = [int(k) for k in keys if int(k) in have]
    return known, [lag.index(k) for k in known]


def background_keys(
    lag: LagCooccurrence, tasks: Sequence[Iterable[int]], min_explained: float = MIN_EXPLAINED
) -> set[int]:
    """The task keys most of whose occurrences no task holding them explains (see the module
    docstring); keys the matrices do not know are never background."""
    explained: dict[int, float] = defaultdict(float)
    for task in tasks:
        keys, rows = _rows(lag, task)
        for k, r in zip(keys, rows, strict=True):
            others = [o for o in rows if o != r]
            if others:
                tied = np.maximum(lag.before[others, r], lag.after[r, others])
                explained[k] += float(tied.max())
    return {k for k, v in explained.items() if v < min_explained}


def order_edges(
    lag: LagCooccurrence,
    keys: Sequence[int],
    *,
    min_share: float = MIN_SHARE,
    max_reverse: float = MAX_REVERSE,
    min_concurrent: float = MIN_CONCURRENT,
) -> set[tuple[int, int]]:
    """The transitions of one task's automaton from the consistent-lag order of its keys (see
    the module docstring); keys the matrices do not know get none."""
    known, rows = _rows(lag, keys)
    if len(known) < 2:
        return set()
    f = lag.counts[rows]
    excess = lag.after[np.ix_(rows, rows)] * f[:, None]
    share = np.minimum(excess / max(float(f.min()), 1.0), 1.0)
    low, high = lag.low[np.ix_(rows, rows)], lag.high[np.ix_(rows, rows)]
    sooner = high < low.T  # the usual lag a -> b ends before the one b -> a starts
    before = (share >= min_share) & ((max_reverse * excess >= excess.T) | sooner)
    # logged right after one another, each first in a good share of the runs: concurrent
    before &= ~(immediate(lag)[np.ix_(rows, rows)] & (np.minimum(share, share.T) >= min_concurrent))
    order = nx.DiGraph()
    order.add_nodes_from(range(len(known)))
    for i, j in zip(*np.nonzero(before), strict=True):
        order.add_edge(int(i), int(j), weight=float(excess[i, j] - excess[j, i]))
    while not nx.is_directed_acyclic_graph(order):
        cycle = nx.find_cycle(order)
        u, v = min(cycle, key=lambda e: order.edges[e[0], e[1]]["weight"])[:2]
        order.remove_edge(u, v)
    closure = nx.transitive_closure_dag(order)
    edges = {(known[a], known[b]) for a, b in nx.transitive_reduction(closure).edges}
    for i, j in itertools.combinations(range(len(known)), 2):
        if closure.has_edge(i, j) or closure.has_edge(j, i):
            continue
        overlap = low[i, j] <= high[j, i] and low[j, i] <= high[i, j]
        if overlap and min(share[i, j], share[j, i]) >= min_concurrent:
            edges |= {(known[i], known[j]), (known[j], known[i])}
    return edges


def transitions(
    keys: np.ndarray, seconds: np.ndarray, lag: LagCooccurrence, edges: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], list[float]]:
    """Per transition ``(a, b)``, the lags from the latest ``a`` within the usual lag range
    before each ``b`` (over the interleaved log: ``keys`` and ``seconds`` parallel)."""
    ok = np.isfinite(seconds)
    times = {int(k): np.sort(seconds[ok & (keys == k)]) for k in {x for e in edges for x in e}}
    out: dict[tuple[int, int], list[float]] = {}
    for a, b in sorted(edges):
        ia, ib = lag.index(a), lag.index(b)
        lo, hi = float(lag.low[ia, ib]), float(lag.high[ia, ib])
        if hi <= lo:
            lo, hi = 0.0, float(lag.window)
        ta, tb = times[a], times[b]
        j = np.searchsorted(ta, tb - lo, side="right") - 1
        has = j >= 0
        gap = tb[has] - ta[j[has]]
        out[a, b] = [round(float(x), 6) for x in gap[(gap >= lo) & (gap <= hi)]]
    return out


@dataclass(frozen=True)
class LagOrder:
    """What the automata of tasks built over one interleaved log read: its consistent-lag
    co-occurrence (None without timestamps), its keys and seconds, and the background keys."""

    lag: LagCooccurrence | None
    keys: np.ndarray
    seconds: np.ndarray | None
    background: frozenset[int]

    def task(
        self, task_keys: Iterable[int]
    ) -> tuple[list[int], dict[tuple[int, int], list[float]] | None, list[int]]:
        """One task's states, transitions (with elapsed times) and background keys left out;
        without timestamps, its keys, None and none."""
        keys = [int(k) for k in task_keys]
        if self.lag is None or self.seconds is None:
            return keys, None, []
        states = [k for k in keys if k not in self.background]
        edges = order_edges(self.lag, states)
        trans = transitions(self.keys, self.seconds, self.lag, edges)
        return states, trans, sorted(set(keys) & self.background)


def by_lag_order(
    entries: pd.DataFrame,
    window: float,
    min_count: int,
    min_lift: float,
    tasks: Sequence[Iterable[int]],
    lag: LagCooccurrence | None = None,
) -> LagOrder:
    """The :class:`LagOrder` of a parsed log's entries for these tasks (``lag``: their
    co-occurrence with these settings, when already read)."""
    keys = entries["key"].to_numpy(dtype=np.int64)
    sec = entry_seconds(entries)
    if sec is None:
        return LagOrder(None, keys, None, frozenset())
    lag = lag if lag is not None else lag_cooccurrence(keys, sec, window, min_count, min_lift)
    return LagOrder(lag, keys, sec, frozenset(background_keys(lag, tasks)))


def lag_of(
    entries: pd.DataFrame, window: float, min_count: int, min_lift: float
) -> LagCooccurrence | None:
    """The consistent-lag co-occurrence of a parsed log's keys; None without timestamps."""
    sec = entry_seconds(entries)
    if sec is None:
        return None
    keys = entries["key"].to_numpy(dtype=np.int64)
    return lag_cooccurrence(keys, sec, window, min_count, min_lift)
