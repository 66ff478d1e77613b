"""Workflow construction: separating interleaved tasks and building one automaton per task.

DeepLog's diagnosis needs the *workflow* of each task (VM creation, deletion, an HDFS block's life)
as a finite state automaton (FSA), although the log interleaves many tasks and many executions of
each. This module is the paper's **method 2**, density-based clustering over key co-occurrence, plus
what both methods share: the FSA built from the entries of one task, its exports, a layered layout
and the scores against a known workflow. Method 1 (from a key model's predictions) is in
:mod:`workbench.workflow.from_keymodel`; diagnosis of a detected anomaly in :mod:`workbench.workflow.diagnosis`.

Inputs
------
*Key sequences* are lists of 1-D integer arrays: either the one interleaved key sequence of the
whole log (every instance and the noise lines mixed, as the paper's input) or one sequence per
session. Keys ``<= 0`` (0 = unknown key, -1 = unparsed line) are dropped. :func:`key_sequences`
makes them from the parsed entries frame of :mod:`workbench.logs.parser`. *Entries* are that frame
(columns ``key``, ``session``, ``timestamp``, ``template``, ``line``); the FSA's elapsed times always
come from entries of the same session when sessions exist, so that other instances running at the
same time do not pollute them.

Method 2, as implemented
------------------------
:func:`cooccurrence` is the paper's matrix ``p_d(i, j) = f_d(k_i, k_j) / (d * f(k_i))``, with
``f_d`` counting every ``k_j`` within ``d`` positions after a ``k_i``. That normalisation makes
``p_d(i, j)`` the share of the ``d`` slots after ``k_i`` that hold ``k_j``: it is at most ``1/d``
for a key that follows exactly once, so one fixed ``tau`` could never absorb a concurrent key at
``d > 1``. The task-growing step therefore thresholds the *presence* form of the same count, the
probability that ``k_j`` appears within ``d`` after ``k_i`` (equal to ``p_1`` at ``d = 1``):

* as in ``p_d(i, j)``, a link is judged from the earlier key: a task grows at its tail with a key
  ``k`` that a member ``t`` reliably leads to (``P[k within d after t | t] > tau``), and at its
  head with a key that reliably leads to a member (``P[t within d after k | k] > tau``);
* a task grows only from members it *owns* (the seed's first key, and members usually preceded
  or followed within ``d_max`` by an owned one, in more than ``(1 + tau) / 2`` of their
  occurrences): a key logged by several tasks ("VM Paused" by boot and by pause) can join, but
  the task does not grow from it into the other task; a new head key must also co-occur with two
  owned members, so a key of another task that reliably leads into a shared key stays out;
* the link must also beat chance by ``min_lift`` (its probability over the share of positions
  that ``k`` directly follows), which rejects very frequent noise keys (API polling) in an
  interleaved log, while ``tau`` rejects the less frequent ones;
* seeds are the linked pairs, strongest first, at ``d = 1``, then ``d = 2``, ...; a task is grown at
  ``d = 1`` and ``d`` is increased up to ``d_max`` only when it cannot be extended (concurrent keys
  appear at varying distance), dropping back to ``d = 1`` after each extension;
* finally a task whose key set is contained in another's is dropped (the paper drops
  sub-sequences; key sets are the order-free form of that rule).

>>> seqs = [np.array([1, 2, 3, 4, 1, 3, 2, 4, 7, 8, 9, 7, 8, 9])]
>>> [t.keys for t in grow_tasks(seqs, WorkflowConfig(tau=0.6, d_max=3, min_count=2))]
[(1, 2, 3, 4), (7, 8, 9)]
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.logs.sessions import session_groups

__all__ = [
    "Task",
    "WorkflowConfig",
    "build_fsa",
    "build_workflows",
    "cooccurrence",
    "edge_scores",
    "from_node_link",
    "grow_tasks",
    "grow_tasks_by_lag",
    "jaccard",
    "key_sequences",
    "layered_layout",
    "match_tasks",
    "run_transitions",
    "short_label",
    "task_runs",
    "to_dot",
    "to_node_link",
]

logger = logging.getLogger(__name__)

_INSTANCE_TAG = re.compile(r"^\[instance: [^\]]*\]\s*")


@dataclass(frozen=True)
class WorkflowConfig:
    """Settings of method 2 and of the automata; validated on construction.

    >>> WorkflowConfig(tau=0.7).d_max
    5
    >>> WorkflowConfig.from_dict({"tau": 0.5, "colour": 1})
    Traceback (most recent call last):
    ...
    ValueError: unknown WorkflowConfig keys: colour
    """

    d_max: int = 5  # largest co-occurrence distance tried when a task cannot be extended
    tau: float = 0.8  # a key joins a task when it follows (precedes) a member with prob. > tau
    min_lift: float = 3.0  # ... and that probability is this many times what chance gives
    min_count: int = 3  # keys seen fewer times are left out of every task (too rare to place)
    min_edge_prob: float = 0.02  # automaton edges rarer than this share of their source are dropped
    per_session: bool | None = None  # co-occurrence per session; None = when sessions exist
    # seconds: over an interleaved log with timestamps, link keys by a consistent time lag within
    # this horizon instead of by position (:mod:`workbench.workflow.task_separation`); None = by position
    window: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.d_max, int) and self.d_max >= 1):
            raise ValueError(f"d_max must be an int >= 1, got {self.d_max!r}")
        if not 0.0 < self.tau < 1.0:
            raise ValueError(f"tau must be in (0, 1), got {self.tau!r}")
        if not self.min_lift >= 1.0:
            raise ValueError(f"min_lift must be >= 1, got {self.min_lift!r}")
        if not (isinstance(self.min_count, int) and self.min_count >= 1):
            raise ValueError(f"min_count must be an int >= 1, got {self.min_count!r}")
        if not 0.0 <= self.min_edge_prob < 1.0:
            raise ValueError(f"min_edge_prob must be in [0, 1), got {self.min_edge_prob!r}")
        if self.window is not None and not (
            isinstance(self.window, int | float) and math.isfinite(self.window) and self.window > 0
        ):
            raise ValueError(f"window must be a number of seconds > 0 or None, got {self.window!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowConfig:
        """Build from a plain dict (JSON); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown WorkflowConfig keys: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Task:
    """One separated task: its keys in typical order and how it was found."""

    keys: tuple[int, ...]  # in order of typical first appearance
    seed: tuple[int, int]  # the key pair it grew from
    d_used: int  # the largest distance needed to absorb a key


# ---------------------------------------------------------------------- inputs
def key_sequences(entries: pd.DataFrame, per_session: bool | None = None) -> list[np.ndarray]:
    """The key sequences method 2 reads from a parsed entries frame.

    ``per_session=False`` gives the single interleaved sequence of the whole log (keys ``> 0`` in
    row order); ``True`` one sequence per session (entries without a session are left out); ``None``
    per session when the frame has any session.

    >>> df = pd.DataFrame({"key": [1, 5, 2, -1, 3], "session": ["a", None, "a", None, "b"]})
    >>> [s.tolist() for s in key_sequences(df, per_session=False)]
    [[1, 5, 2, 3]]
    >>> [s.tolist() for s in key_sequences(df)]
    [[1, 2], [3]]
    """
    keys = entries["key"].to_numpy(dtype=np.int64)
    ok = keys > 0
    sess = entries["session"] if "session" in entries.columns else None
    if per_session is None:
        per_session = sess is not None and bool(sess.notna().any())
    if not per_session:
        return [keys[ok]]
    if sess is None:
        raise ValueError("per_session=True but the entries have no 'session' column")
    return [keys[rows] for rows in session_groups(entries, keep="known").rows]


def _flatten(sequences: Iterable[Sequence[int] | np.ndarray], gap: int) -> np.ndarray:
    """Concatenate sequences with ``gap`` separators (-1) so no window crosses two of them."""
    parts: list[np.ndarray] = []
    sep = np.full(gap, -1, dtype=np.int64)
    for s in sequences:
        a = np.asarray(s, dtype=np.int64)
        a = a[a > 0]
        if len(a):
            parts.extend([a, sep])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def cooccurrence(sequences: Iterable[Sequence[int] | np.ndarray], d: int) -> pd.DataFrame:
    """The paper's co-occurrence matrix ``p_d(i, j) = f_d(k_i, k_j) / (d * f(k_i))``.

    ``f_d(k_i, k_j)`` counts, over every occurrence of ``k_i``, the ``k_j`` among the next ``d``
    keys of the same sequence; ``f(k_i)`` is the frequency of ``k_i``. Rows and columns are the keys
    in increasing order; each row sums to at most 1.

    >>> float(cooccurrence([[1, 2, 1, 2]], 1).loc[1, 2]), cooccurrence([[1, 2, 3]], 2).loc[1].tolist()
    (1.0, [0.0, 0.5, 0.5])
    """
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    flat = _flatten(sequences, d)
    keys = np.unique(flat[flat > 0])
    m = len(keys)
    idx = np.where(flat > 0, np.searchsorted(keys, flat), -1)
    counts = np.zeros(m * m, dtype=np.float64)
    for delta in range(1, d + 1):
        a, b = idx[:-delta], idx[delta:]
        ok = (a >= 0) & (b >= 0)
        counts += np.bincount(a[ok] * m + b[ok], minlength=m * m)
    f = np.bincount(idx[idx >= 0], minlength=m).astype(np.float64)
    p = counts.reshape(m, m) / (d * np.maximum(f, 1.0))[:, None]
    return pd.DataFrame(p, index=pd.Index(keys, name="k_i"), columns=pd.Index(keys, name="k_j"))


def _dedupe(codes: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a mask: faster than hashing for these int codes)."""
    if not len(codes):
        return codes
    codes = np.sort(codes)
    return codes[np.concatenate(([True], codes[1:] != codes[:-1]))]


class _Presence:
    """Presence co-occurrence of every key pair at every distance up to ``d_max``, computed lazily."""

    def __init__(self, sequences: Sequence[np.ndarray], d_max: int, min_count: int) -> None:
        flat = _flatten(sequences, d_max)
        keys, counts = np.unique(flat[flat > 0], return_counts=True)
        self.keys = keys[counts >= min_count]
        self.m = len(self.keys)
        pos = np.searchsorted(self.keys, flat) if self.m else np.zeros(len(flat), dtype=np.int64)
        known = (flat > 0) & (pos < self.m)
        known[known] = self.keys[pos[known]] == flat[known]
        self.idx = np.where(known, pos, -1)
        self.n = int((flat > 0).sum())  # positions, rare keys included (they dilute chance)
        self.f = np.bincount(self.idx[self.idx >= 0], minlength=self.m).astype(np.float64)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._around: dict[int, np.ndarray] = {}

    def probabilities(self, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(after, before, chance_after, chance_before)``: ``after[i, j] = P[k_j within d after
        k_i | k_i]``, ``before[i, j] = P[k_i within d before k_j | k_j]``; ``chance_after[j]`` is
        the share of all positions with ``k_j`` within ``d`` after, ``chance_before[i]`` with ``k_i``
        within ``d`` before."""
        if d in self._cache:
            return self._cache[d]
        m, idx = self.m, self.idx
        if m == 0:
            z = np.zeros((0, 0))
            self._around[d] = z
            return z, z, np.zeros(0), np.zeros(0)
        n_pos = len(idx)
        # (position, key at an offset) pairs, forward and backward, de-duplicated per position
        fwd_codes, bwd_codes = [], []
        for delta in range(1, d + 1):
            t = np.arange(n_pos - delta)
            a, b = idx[:-delta], idx[delta:]
            ok = (a >= 0) & (b >= 0)
            fwd_codes.append(t[ok] * m + b[ok])  # position of k_i, key k_j after it
            bwd_codes.append((t[ok] + delta) * m + a[ok])  # position of k_j, key k_i before it
        fwd = _dedupe(np.concatenate(fwd_codes))
        bwd = _dedupe(np.concatenate(bwd_codes))
        both = _dedupe(np.concatenate([fwd, bwd]))
        f_around = np.bincount(idx[both // m] * m + both % m, minlength=m * m).reshape(m, m)
        np.fill_diagonal(f_around, 0)
        around = f_around / np.maximum(self.f, 1.0)[:, None]
        f_after = np.bincount(idx[fwd // m] * m + fwd % m, minlength=m * m).reshape(m, m)
        f_before = np.bincount((bwd % m) * m + idx[bwd // m], minlength=m * m).reshape(m, m)
        # chance: the share of all positions that have k_j within d after (k_i within d before)
        chance_after = f_after.sum(axis=0) / max(self.n, 1)
        chance_before = f_before.sum(axis=1) / max(self.n, 1)
        np.fill_diagonal(f_after, 0)
        np.fill_diagonal(f_before, 0)
        after = f_after / np.maximum(self.f, 1.0)[:, None]
        before = f_before / np.maximum(self.f, 1.0)[None, :]
        self._cache[d] = (after, before, chance_after, chance_before)
        self._around[d] = around
        return self._cache[d]

    def around(self, d: int) -> np.ndarray:
        """``around[i, j] = P[k_j within d of k_i, before or after | k_i]``."""
        self.probabilities(d)
        return self._around[d]

    def links(self, d: int, tau: float, min_lift: float) -> np.ndarray:
        """Boolean ``leads[i, j]``: ``k_j`` reliably follows ``k_i`` within ``d``, that is
        ``P[k_j within d after k_i | k_i] > tau`` and ``min_lift`` times the chance that ``k_j``
        comes right after any position (the d = 1 chance, so that a key frequent enough to be
        near everything at distance d is not compared with its own saturation)."""
        after = self.probabilities(d)[0]
        chance = self.probabilities(1)[2]  # share of positions right after which k_j comes
        leads = (after > tau) & (after >= min_lift * np.maximum(chance, 1e-12)[None, :])
        return leads


def grow_tasks(
    sequences: Sequence[Sequence[int] | np.ndarray], config: WorkflowConfig | None = None
) -> list[Task]:
    """Method 2: separate the tasks of an interleaved key sequence (see the module docstring).

    Parameters
    ----------
    sequences
        The interleaved key sequence of the whole log as a one-item list, or one sequence per
        session (:func:`key_sequences`).
    config
        ``tau``, ``d_max``, ``min_lift`` and ``min_count`` are used.

    Returns
    -------
    list of Task
        In order of first appearance of their first key; keys ordered by typical position.
    """
    cfg = config or WorkflowConfig()
    seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
    pres = _Presence(seqs, cfg.d_max, cfg.min_count)
    m = pres.m
    if m < 2:
        return []
    links = {d: pres.links(d, cfg.tau, cfg.min_lift) for d in range(1, cfg.d_max + 1)}
    far_after, far_before = pres.probabilities(cfg.d_max)[:2]
    near = np.maximum(far_after, far_before.T)  # P[u within d_max after, or before, t | t]
    around = pres.around(cfg.d_max)  # P[u within d_max of t, either side | t]
    near_both = np.maximum(around, around.T)  # ... or of t within d_max of u, given u
    grown: list[tuple[set[int], tuple[int, int], int]] = []
    for d in range(1, cfg.d_max + 1):
        after = pres.probabilities(d)[0]
        pairs = np.argwhere(links[d])
        order = np.argsort(-after[pairs[:, 0], pairs[:, 1]], kind="stable") if len(pairs) else []
        for i, j in pairs[order] if len(pairs) else []:
            if any(i in s and j in s for s, _, _ in grown):
                continue
            members, d_used = _grow((int(i), int(j)), links, near, near_both, cfg)
            grown.append((members, (int(i), int(j)), max(d, d_used)))
    # drop tasks contained in another (keep the first of equal ones)
    kept: list[tuple[set[int], tuple[int, int], int]] = []
    for n, (s, seed, d_used) in enumerate(grown):
        if any(
            (s < other) or (s == other and k < n) for k, (other, _, _) in enumerate(grown) if k != n
        ):
            continue
        kept.append((s, seed, d_used))
    rank = _typical_rank(pres)
    tasks = []
    for s, seed, d_used in kept:
        keys = _in_typical_order(seqs, [int(pres.keys[i]) for i in s])
        tasks.append(Task(keys, (int(pres.keys[seed[0]]), int(pres.keys[seed[1]])), d_used))
    tasks.sort(key=lambda t: min(rank[int(np.searchsorted(pres.keys, k))] for k in t.keys))
    logger.info("method 2: %d tasks over %d keys", len(tasks), m)
    return tasks


def grow_tasks_by_lag(entries: pd.DataFrame, config: WorkflowConfig) -> list[Task]:
    """Method 2 over time lags: separate the tasks of an interleaved log with timestamps.

    The co-occurrence of two keys is a consistent time lag within ``config.window`` seconds
    (:func:`workbench.workflow.task_separation.lag_cooccurrence`) instead of a distance in positions; the
    growing, ownership and containment rules are those of :func:`grow_tasks` at one distance.
    Sessions are ignored: this is for logs without them. Entries without a timestamp are left
    out; with none at all, this is :func:`grow_tasks` on the interleaved key sequence.
    """
    from workbench.workflow.task_separation import lag_cooccurrence

    if config.window is None:
        raise ValueError("grow_tasks_by_lag needs config.window (seconds)")
    keys = entries["key"].to_numpy(dtype=np.int64)
    ts = entries["timestamp"] if "timestamp" in entries.columns else None
    if ts is None or not ts.notna().any():
        return grow_tasks(key_sequences(entries, per_session=False), config)
    sec = (ts - ts[ts.notna()].iloc[0]).dt.total_seconds().to_numpy(dtype=float)
    lag = lag_cooccurrence(keys, sec, config.window, config.min_count, config.min_lift)
    m = len(lag.keys)
    if m < 2:
        return []
    cfg = dataclasses.replace(config, d_max=1)
    links = {1: (lag.after > cfg.tau) & (lag.lift >= cfg.min_lift)}
    near = np.maximum(lag.after, lag.before.T)  # P[u at its usual lag after or before t | t]
    near_both = np.maximum(near, near.T)
    pairs = np.argwhere(links[1])
    order = np.argsort(-lag.after[pairs[:, 0], pairs[:, 1]], kind="stable")
    grown: list[tuple[set[int], tuple[int, int]]] = []
    for i, j in pairs[order]:
        if any(i in s and j in s for s, _ in grown):
            continue
        members, _ = _grow((int(i), int(j)), links, near, near_both, cfg)
        grown.append((members, (int(i), int(j))))
    kept = [
        (s, seed)
        for n, (s, seed) in enumerate(grown)
        if not any((s < o) or (s == o and k < n) for k, (o, _) in enumerate(grown) if k != n)
    ]
    ok = keys > 0
    seq = keys[ok][np.argsort(sec[ok], kind="stable")] if ok.any() else keys[:0]
    first = {int(k): i for i, k in reversed(list(enumerate(seq.tolist())))}
    tasks = []
    for s, seed in kept:
        ks = _in_typical_order([seq], [int(lag.keys[i]) for i in s])
        tasks.append(Task(ks, (int(lag.keys[seed[0]]), int(lag.keys[seed[1]])), 1))
    tasks.sort(key=lambda t: min(first.get(k, len(seq)) for k in t.keys))
    logger.info("method 2 by time lag: %d tasks over %d keys", len(tasks), m)
    return tasks


def _grow(
    seed: tuple[int, int],
    links: dict[int, np.ndarray],
    near: np.ndarray,
    near_both: np.ndarray,
    cfg: WorkflowConfig,
) -> tuple[set[int], int]:
    """Extend a seed pair at distance 1 first, increasing d only while nothing can be absorbed,
    back to 1 after each extension.

    As in the paper's ``p_d(i, j)``, a link is always judged from the earlier key: the task grows
    at its tail with a key that a member reliably leads to, and at its head with a key that
    reliably leads to a member. A task grows only from the members it *owns*: keys that
    co-occur (within ``d_max``, either way) with another member in more than ``tau`` of their
    occurrences. A key shared with a busier task (a "VM Paused" logged by both boot and pause)
    can join, but its neighbours mostly belong to that other task, so the task does not grow
    from it into the other task's keys; a task that usually, but not always, follows another
    (unpause after pause) stays separate because the earlier task does not reliably lead to it.
    A new head key (judged on its own occurrences, the weaker evidence) must also co-occur
    within ``d_max`` with at least two owned members, so a key of another task that reliably
    leads into a shared key ("Unpausing" into "VM Resumed") is not absorbed.
    """
    members = set(seed)
    d, d_used = 1, 1
    while d <= cfg.d_max:
        leads = links[d]
        owned = _owned(seed, members, near, (1.0 + cfg.tau) / 2)
        tail = leads[owned].any(axis=0)
        coherent = (near_both[:, owned] > cfg.tau).sum(axis=1) >= min(2, len(owned))
        head = leads[:, owned].any(axis=1) & coherent
        new = set((tail | head).nonzero()[0].tolist()) - members
        if new:
            if logger.isEnabledFor(logging.DEBUG):
                for k in sorted(new):
                    via = owned[leads[owned, k]] if tail[k] else owned[leads[k, owned]]
                    logger.debug(
                        "seed %s: key index %d joins at the %s from %s at d=%d",
                        seed,
                        k,
                        "tail" if tail[k] else "head",
                        via.tolist(),
                        d,
                    )
            members |= new
            d_used = max(d_used, d)
            d = 1
        else:
            d += 1
    return members, d_used


def _owned(seed: tuple[int, int], members: set[int], near: np.ndarray, tau: float) -> np.ndarray:
    """Members reachable from the seed's first key through 'usually near' (given the member)."""
    owned = {seed[0]}
    frontier = [seed[0]]
    rest = set(members) - owned
    while frontier and rest:
        cand = np.fromiter(rest, dtype=np.int64)
        hit = cand[(near[np.ix_(cand, np.asarray(frontier))] > tau).any(axis=1)]
        frontier = hit.tolist()
        owned.update(frontier)
        rest -= set(frontier)
    return np.fromiter(sorted(owned), dtype=np.int64)


def _in_typical_order(seqs: Sequence[np.ndarray], keys: list[int]) -> tuple[int, ...]:
    """Keys ordered by their mean rank of first appearance among the task's keys, over the
    sequences (sessions) holding at least two of them; in the interleaved log, over windows."""
    karr = np.asarray(sorted(keys), dtype=np.int64)
    parts = seqs if len(seqs) > 1 else np.array_split(seqs[0], max(1, len(seqs[0]) // 200))
    lens = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    flat = np.concatenate(parts) if len(parts) else np.zeros(0, dtype=np.int64)
    seq_id = np.repeat(np.arange(len(parts)), lens)
    mine = np.isin(flat, karr)
    firsts = pd.DataFrame({"s": seq_id[mine], "k": flat[mine], "pos": np.flatnonzero(mine)})
    firsts = firsts.drop_duplicates(["s", "k"])  # rows are in position order: first appearances
    size = firsts.groupby("s")["k"].transform("size")
    firsts = firsts[size >= 2]
    rank = firsts.groupby("s").cumcount() / (firsts.groupby("s")["k"].transform("size") - 1)
    mean = rank.groupby(firsts["k"]).mean().reindex(karr).fillna(1.0).to_numpy()
    return tuple(int(karr[i]) for i in np.lexsort((karr, mean)))


def _typical_rank(pres: _Presence) -> np.ndarray:
    """Rank of every key in a cheap 'usually comes earlier' order: a key usually followed by j
    that seldom follows j ranks before j; ties by first appearance."""
    m = pres.m
    if m == 0:
        return np.zeros(0)
    valid = np.flatnonzero(pres.idx >= 0)
    first = np.full(m, np.inf)
    uniq, at = np.unique(pres.idx[valid], return_index=True)
    first[uniq] = valid[at]
    after = pres.probabilities(1)[0]
    score = (after - after.T).sum(axis=1)
    order = np.lexsort((first, -score))
    rank = np.empty(m)
    rank[order] = np.arange(m)
    return rank


# ---------------------------------------------------------------------- automata
def short_label(template: str, width: int = 36) -> str:
    """A node label for the UI: the template without the instance tag, cut to ``width`` chars.

    >>> short_label("[instance: <UUID>] Took <NUM> seconds to spawn the instance on the hypervisor.")
    'Took <NUM> seconds to spawn the ins…'
    """
    text = _INSTANCE_TAG.sub("", template).strip()
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return {"median": None, "p05": None, "p10": None, "p90": None, "p95": None}
    q = np.quantile(v, [0.5, 0.05, 0.1, 0.9, 0.95])
    return {
        k: round(float(x), 6)
        for k, x in zip(("median", "p05", "p10", "p90", "p95"), q, strict=True)
    }


def task_runs(
    entries: pd.DataFrame, task_keys: Iterable[int], other_keys: Iterable[int], per_session: bool
) -> list[list[tuple[int, int, float]]]:
    """The runs of one task as lists of ``(row, key, seconds)``; see :func:`build_fsa`."""
    return list(
        _runs(entries, {int(k) for k in task_keys}, {int(k) for k in other_keys}, per_session)
    )


def _runs(entries: pd.DataFrame, task_keys: set[int], other_keys: set[int], per_session: bool):
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
    an earlier step, such as "Took X seconds to ..."). Edge attributes: ``count`` and ``probability`` (adjacent transitions in the runs, as a share
    of the source's), ``elapsed`` (seconds across the edge, raw values; see
    :func:`run_transitions`), ``median``, ``p05``, ``p10``, ``p90``, ``p95``. Graph attributes:
    ``task``, ``keys``, ``name``, ``runs``.

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
        templates = _templates_of(entries)
    node_count: Counter[int] = Counter()
    starts: Counter[int] = Counter()
    ends: Counter[int] = Counter()
    edge_times: dict[tuple[int, int], list[float]] = defaultdict(list)
    edge_count: Counter[tuple[int, int]] = Counter()
    runs = list(_runs(entries, tk, ok, per_session))
    for run in runs:
        starts[run[0][1]] += 1
        ends[run[-1][1]] += 1
        for (_, a, _), (_, b, _) in itertools.pairwise(run):
            edge_count[a, b] += 1
        node_count.update(k for _, k, _ in run)
    preds: dict[int, set[int]] = defaultdict(set)
    for a, b in edge_count:
        preds[b].add(a)
    for run in runs:
        for b, a, elapsed in run_transitions(run, preds):
            edge_times[a, b].append(elapsed)
    n_runs = len(runs)
    params = _param_summaries(entries, tk)
    measures = _duration_params(entries, runs)
    out_total: Counter[int] = Counter()
    for (a, _), c in edge_count.items():
        out_total[a] += c
    g = nx.DiGraph()
    ordered = [k for k in _ordered_keys(tk, edge_count, starts) if node_count[k]]
    for k in ordered:
        tpl = templates.get(k, f"key {k}")
        g.add_node(
            k,
            key=k,
            template=tpl,
            label=short_label(tpl),
            count=int(node_count[k]),
            starts=int(starts[k]),
            ends=int(ends[k]),
            params=params.get(k, []),
            measures=measures.get(k, []),
        )
    for (a, b), c in sorted(edge_count.items()):
        prob = c / out_total[a]
        if prob < min_edge_prob:
            continue
        times = edge_times.get((a, b), [])
        g.add_edge(
            a, b, count=int(c), probability=round(prob, 6), elapsed=times, **_quantiles(times)
        )
    first = templates.get(ordered[0], "") if ordered else ""
    g.graph.update(
        task=int(task_id),
        keys=[int(k) for k in ordered],
        name=f"task {task_id}: {short_label(first, 28)}" if ordered else f"task {task_id}",
        runs=n_runs,
    )
    return g


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
    entries: pd.DataFrame, runs: Sequence[Sequence[tuple[int, int, float]]], min_runs: int = 5
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
        out[int(k)] = [_quantiles([p[i] for p in vals if len(p) == width]) for i in range(width)]
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


def _templates_of(entries: pd.DataFrame) -> dict[int, str]:
    if "template" not in entries.columns:
        return {}
    sub = entries.loc[entries["key"] > 0, ["key", "template"]].drop_duplicates("key")
    return {int(k): str(t) for k, t in zip(sub["key"], sub["template"], strict=True)}


def build_workflows(
    entries: pd.DataFrame,
    config: WorkflowConfig | None = None,
    *,
    tasks: Sequence[Sequence[int]] | None = None,
) -> list[nx.DiGraph]:
    """Method 2 end to end: separate the tasks of a parsed log and build one FSA per task.

    Co-occurrence is counted over sessions when ``config.per_session`` is True (or None and the
    entries have sessions), else over the interleaved log; a task's automaton is built from
    sessions when most of its entries carry one (its elapsed times then never span two
    instances), else from the interleaved log. Pass ``tasks`` (key sets, e.g. from
    method 1) to build only the automata.

    >>> keys = [1, 2, 3, 1, 3, 2, 1, 2, 3] * 2
    >>> df = pd.DataFrame({"key": keys, "session": [f"s{i // 3}" for i in range(18)],
    ...                    "timestamp": pd.to_datetime(range(18), unit="s"), "template": "t"})
    >>> cfg = WorkflowConfig(tau=0.4, min_count=2, min_lift=1.0)  # three keys: little room for lift
    >>> [g.graph["keys"] for g in build_workflows(df, cfg)]
    [[1, 2, 3]]
    """
    cfg = config or WorkflowConfig()
    has_sessions = "session" in entries.columns and bool(entries["session"].notna().any())
    if (
        tasks is None
        and cfg.window is not None
        and cfg.per_session is not True
        and not (cfg.per_session is None and has_sessions)
    ):
        tasks = [t.keys for t in grow_tasks_by_lag(entries, cfg)]
    if tasks is None:
        seqs = key_sequences(entries, cfg.per_session if cfg.per_session is not None else None)
        tasks = [t.keys for t in grow_tasks(seqs, cfg)]
    templates = _templates_of(entries)
    all_keys = {int(k) for t in tasks for k in t}
    keys = entries["key"].to_numpy()
    in_session = (
        entries["session"].notna().to_numpy() if has_sessions else np.zeros(len(keys), bool)
    )
    graphs = []
    for n, t in enumerate(tasks, start=1):
        mine = np.isin(keys, list(t))
        # a task whose entries mostly carry a session is built per session, else interleaved
        per_session = bool(mine.any()) and in_session[mine].mean() >= 0.5
        g = build_fsa(
            entries,
            t,
            other_keys=all_keys - set(t),
            per_session=per_session,
            min_edge_prob=cfg.min_edge_prob,
            templates=templates,
            task_id=n,
        )
        graphs.append(g)
    return graphs


# ---------------------------------------------------------------------- layout and exports
def layered_layout(g: nx.DiGraph) -> dict[Any, tuple[int, int]]:
    """Node -> ``(layer, order)`` for drawing a workflow left to right; cycles are handled.

    Back edges are found by a depth-first search from the start states (nodes with a ``starts``
    attribute > 0, else nodes without predecessors, else the smallest node) and ignored; layers
    are longest paths in what remains; the order inside a layer follows the mean order of the
    predecessors (one barycentre sweep), ties by node.

    >>> g = nx.DiGraph([(1, 2), (2, 3), (3, 2), (2, 4), (1, 4)])
    >>> layered_layout(g)
    {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (2, 1)}
    """
    if g.number_of_nodes() == 0:
        return {}
    nodes = sorted(g.nodes, key=_node_sort_key)
    starts = [n for n in nodes if g.nodes[n].get("starts", 0) > 0]
    if not starts:
        starts = [n for n in nodes if g.in_degree(n) == 0] or nodes[:1]
    back: set[tuple[Any, Any]] = set()
    state: dict[Any, int] = {}  # 1 = on the stack, 2 = done
    for root in starts + nodes:
        if root in state:
            continue
        stack = [(root, iter(sorted(g.successors(root), key=_node_sort_key)))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(g.successors(nxt), key=_node_sort_key))))
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from(e for e in g.edges if e not in back and e[0] != e[1])
    layer: dict[Any, int] = {}
    for n in nx.lexicographical_topological_sort(dag, key=_node_sort_key):
        layer[n] = max((layer[p] + 1 for p in dag.predecessors(n)), default=0)
    by_layer: dict[int, list[Any]] = defaultdict(list)
    for n in nodes:
        by_layer[layer[n]].append(n)
    pos: dict[Any, tuple[int, int]] = {}
    for lay in sorted(by_layer):
        members = by_layer[lay]

        def bary(n: Any) -> float:
            preds = [pos[p][1] for p in dag.predecessors(n) if p in pos]
            return sum(preds) / len(preds) if preds else 0.0

        members.sort(key=lambda n: (bary(n), _node_sort_key(n)))
        for i, n in enumerate(members):
            pos[n] = (lay, i)
    return {n: pos[n] for n in sorted(pos, key=lambda n: (pos[n], _node_sort_key(n)))}


def _node_sort_key(n: Any) -> tuple[int, Any]:
    return (0, n) if isinstance(n, int | np.integer) else (1, str(n))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_node_link(g: nx.DiGraph) -> dict[str, Any]:
    """Node-link data (``nodes``, ``edges``) ready for ``json.dumps``; NaN becomes null.

    >>> g = nx.DiGraph([(1, 2)]); g.edges[1, 2]["median"] = float("nan")
    >>> d = to_node_link(g); d["edges"][0]["median"] is None, from_node_link(d).has_edge(1, 2)
    (True, True)
    """
    return _jsonable(nx.node_link_data(g, edges="edges"))


def from_node_link(data: Mapping[str, Any]) -> nx.DiGraph:
    """Inverse of :func:`to_node_link`."""
    return nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: nx.DiGraph, name: str | None = None) -> str:
    """Graphviz DOT text: nodes labelled with key and short template, edges with probability and
    median elapsed time.

    >>> g = nx.DiGraph(); g.add_node(1, label="Claim"); g.add_node(2, label='say "hi"')
    >>> g.add_edge(1, 2, probability=1.0, median=0.5, count=3)
    >>> print(to_dot(g, "t"))
    digraph "t" {
      rankdir=LR;
      node [shape=box, style=rounded, fontname="Helvetica"];
      "1" [label="1: Claim"];
      "2" [label="2: say \\"hi\\""];
      "1" -> "2" [label="p=1.00 n=3 0.5 s"];
    }
    """
    title = name or str(g.graph.get("name", "workflow"))
    lines = [f"digraph {_dot_quote(title)} {{", "  rankdir=LR;"]
    lines.append('  node [shape=box, style=rounded, fontname="Helvetica"];')
    for n, attrs in sorted(g.nodes(data=True), key=lambda x: _node_sort_key(x[0])):
        label = attrs.get("label") or short_label(str(attrs.get("template", "")))
        lines.append(f"  {_dot_quote(str(n))} [label={_dot_quote(f'{n}: {label}')}];")
    for a, b, attrs in sorted(
        g.edges(data=True), key=lambda x: (_node_sort_key(x[0]), _node_sort_key(x[1]))
    ):
        parts = []
        if attrs.get("probability") is not None:
            parts.append(f"p={attrs['probability']:.2f}")
        if attrs.get("count") is not None:
            parts.append(f"n={attrs['count']}")
        med = attrs.get("median")
        if med is not None and math.isfinite(med):
            parts.append(f"{med:.3g} s")
        label = f" [label={_dot_quote(' '.join(parts))}]" if parts else ""
        lines.append(f"  {_dot_quote(str(a))} -> {_dot_quote(str(b))}{label};")
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- scores
def jaccard(a: Iterable[Any], b: Iterable[Any]) -> float:
    """``|A & B| / |A | B|`` (1.0 for two empty sets).

    >>> jaccard({1, 2, 3}, {2, 3, 4})
    0.5
    """
    sa, sb = set(a), set(b)
    return 1.0 if not sa | sb else len(sa & sb) / len(sa | sb)


def match_tasks(
    recovered: Sequence[Iterable[int]], truth: Mapping[str, Iterable[int]]
) -> dict[str, tuple[int | None, float]]:
    """For every true task, the recovered task with the highest key-set Jaccard: name ->
    ``(index into recovered or None, jaccard)``.

    >>> match_tasks([{1, 2}, {3, 4, 5}], {"a": {3, 4}, "b": {9}})
    {'a': (1, 0.6667), 'b': (None, 0.0)}
    """
    rec = [set(r) for r in recovered]
    out: dict[str, tuple[int | None, float]] = {}
    for name, keys in truth.items():
        best, score = None, 0.0
        for i, r in enumerate(rec):
            s = jaccard(r, keys)
            if s > score:
                best, score = i, s
        out[name] = (best, round(score, 4))
    return out


def edge_scores(
    recovered: Iterable[tuple[Any, Any]], truth: Iterable[tuple[Any, Any]]
) -> dict[str, float]:
    """Precision and recall of recovered workflow edges (self-loops ignored on both sides).

    >>> edge_scores([(1, 2), (2, 3), (3, 3)], [(1, 2), (2, 4)])
    {'precision': 0.5, 'recall': 0.5}
    """
    r = {e for e in recovered if e[0] != e[1]}
    t = {e for e in truth if e[0] != e[1]}
    tp = len(r & t)
    return {
        "precision": round(tp / len(r), 4) if r else (1.0 if not t else 0.0),
        "recall": round(tp / len(t), 4) if t else 1.0,
    }
