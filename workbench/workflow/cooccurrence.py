"""Workflow construction, method 2: interleaved tasks separated by key co-occurrence.

DeepLog's diagnosis needs the *workflow* of each task (VM creation, deletion, an HDFS block's life)
as a finite state automaton (FSA), although the log interleaves many tasks and many executions of
each. This module is the paper's **method 2**, density-based clustering over key co-occurrence
(docs/METHOD.md, section 5), end to end: :func:`build_workflows` separates the tasks and builds
one FSA per task (:mod:`workbench.workflow.automaton`; over a log without sessions, from the
consistent-lag order of the task's keys, :mod:`workbench.workflow.lag_order`). Method 1 (from a key model's predictions)
is in :mod:`workbench.workflow.from_keymodel`; the layout, exports and scores of an automaton in
:mod:`~workbench.workflow.layout`, :mod:`~workbench.workflow.export` and
:mod:`~workbench.workflow.scores`; diagnosis of a detected anomaly in
:mod:`workbench.workflow.diagnosis`.

Inputs
------
*Key sequences* are lists of 1-D integer arrays: either the one interleaved key sequence of the
whole log (every instance and the noise lines mixed, as the paper's input) or one sequence per
session. Workflow states are keys ``> 0``: the reserved ids of :mod:`workbench.keyids`
(``UNKNOWN``, ``UNPARSED``, ...) are dropped. :func:`key_sequences`
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

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.config import Config, require
from workbench.logs.sessions import session_groups
from workbench.workflow.automaton import build_fsa, templates_of
from workbench.workflow.growing import drop_contained, grow_from_pairs, in_typical_order
from workbench.workflow.lag_cooccurrence import LagCooccurrence, lag_cooccurrence
from workbench.workflow.lag_order import by_lag_order, entry_seconds, immediate, lag_of
from workbench.workflow.mining import Mining, choose_mining
from workbench.workflow.presence import Presence, flatten, typical_rank

__all__ = [
    "Task",
    "WorkflowConfig",
    "build_workflows",
    "cooccurrence",
    "grow_tasks",
    "grow_tasks_by_lag",
    "key_sequences",
    "sample",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkflowConfig(Config):
    """Settings of method 2 and of the automata; validated on construction.

    >>> WorkflowConfig(tau=0.7).d_max
    5
    >>> WorkflowConfig.from_dict({"tau": 0.5, "colour": 1})
    Traceback (most recent call last):
    ...
    ValueError: unknown WorkflowConfig fields: ['colour']
    """

    d_max: int = 5  # largest co-occurrence distance tried when a task cannot be extended
    tau: float = 0.8  # a key joins a task when it follows (precedes) a member with prob. > tau
    min_lift: float = 3.0  # ... and that probability is this many times what chance gives
    # by time lag: the observed pairs at the usual lag this many times the background (2.0 chosen
    # with window 30 s and tau 0.8 on bench/workflow.py's selection seeds; 3.0 there: recall 0.57)
    lag_min_lift: float = 2.0
    min_count: int = 3  # keys seen fewer times are left out of every task (too rare to place)
    min_edge_prob: float = 0.02  # automaton edges rarer than this share of their source are dropped
    # co-occurrence per session; None = when the entries carry usable session ids, else over the
    # interleaved log by time lag (:mod:`workbench.workflow.mining`)
    per_session: bool | None = None
    # seconds: over an interleaved log with timestamps, link keys by a consistent time lag within
    # this horizon (:mod:`workbench.workflow.lag_cooccurrence`); None = by position, or with
    # per_session None and no usable session ids, mining.SESSIONLESS_WINDOW
    window: float | None = None
    # a log with more sessions is mined on a seeded sample of this many sessions (and a stretch of
    # the lines outside every session, in the same proportion); None: every session
    max_sessions: int | None = 5000

    def validate(self) -> None:
        require(
            isinstance(self.d_max, int) and self.d_max >= 1,
            f"d_max must be an int >= 1, got {self.d_max!r}",
        )
        require(0.0 < self.tau < 1.0, f"tau must be in (0, 1), got {self.tau!r}")
        require(self.min_lift >= 1.0, f"min_lift must be >= 1, got {self.min_lift!r}")
        require(self.lag_min_lift >= 1.0, f"lag_min_lift must be >= 1, got {self.lag_min_lift!r}")
        require(
            isinstance(self.min_count, int) and self.min_count >= 1,
            f"min_count must be an int >= 1, got {self.min_count!r}",
        )
        require(
            0.0 <= self.min_edge_prob < 1.0,
            f"min_edge_prob must be in [0, 1), got {self.min_edge_prob!r}",
        )
        require(
            self.max_sessions is None
            or (isinstance(self.max_sessions, int) and self.max_sessions >= 100),
            f"max_sessions must be an int >= 100 or None, got {self.max_sessions!r}",
        )
        require(
            self.window is None
            or (
                isinstance(self.window, int | float)
                and math.isfinite(self.window)
                and self.window > 0
            ),
            f"window must be a number of seconds > 0 or None, got {self.window!r}",
        )


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
    flat = flatten(sequences, d)
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
    pres = Presence(seqs, cfg.d_max, cfg.min_count)
    m = pres.m
    if m < 2:
        return []
    links = {d: pres.links(d, cfg.tau, cfg.min_lift) for d in range(1, cfg.d_max + 1)}
    far_after, far_before = pres.probabilities(cfg.d_max)[:2]
    near = np.maximum(far_after, far_before.T)  # P[u within d_max after, or before, t | t]
    around = pres.around(cfg.d_max)  # P[u within d_max of t, either side | t]
    near_both = np.maximum(around, around.T)  # ... or of t within d_max of u, given u
    seeds = [(d, _strongest_first(links[d], pres.probabilities(d)[0])) for d in links]
    grown = grow_from_pairs(seeds, links, near, near_both, cfg.tau, cfg.d_max)
    rank = typical_rank(pres)
    tasks = []
    for s, seed, d_used in drop_contained(grown):
        keys = in_typical_order(seqs, [int(pres.keys[i]) for i in s])
        tasks.append(Task(keys, (int(pres.keys[seed[0]]), int(pres.keys[seed[1]])), d_used))
    tasks.sort(key=lambda t: min(rank[int(np.searchsorted(pres.keys, k))] for k in t.keys))
    logger.info("method 2: %d tasks over %d keys", len(tasks), m)
    return tasks


def _strongest_first(links: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The index pairs ``links`` marks, by decreasing ``strength`` (ties in index order)."""
    pairs = np.argwhere(links)
    order = np.argsort(-strength[pairs[:, 0], pairs[:, 1]], kind="stable")
    return pairs[order]


def grow_tasks_by_lag(
    entries: pd.DataFrame, config: WorkflowConfig, lag: LagCooccurrence | None = None
) -> list[Task]:
    """Method 2 over time lags: separate the tasks of an interleaved log with timestamps.

    The co-occurrence of two keys is a consistent time lag within ``config.window`` seconds
    (:func:`workbench.workflow.lag_cooccurrence.lag_cooccurrence`) instead of a distance in
    positions; the growing, ownership and containment rules are those of :func:`grow_tasks` at
    one distance. Sessions are ignored: this is for logs without them. Entries without a
    timestamp are left out; with none at all, this is :func:`grow_tasks` on the interleaved key
    sequence. ``lag``: the co-occurrence of these entries with these settings, when already
    computed.
    """
    if config.window is None:
        raise ValueError("grow_tasks_by_lag needs config.window (seconds)")
    keys = entries["key"].to_numpy(dtype=np.int64)
    sec = entry_seconds(entries)
    if sec is None:
        return grow_tasks(key_sequences(entries, per_session=False), config)
    if lag is None:
        lag = lag_cooccurrence(keys, sec, config.window, config.min_count, config.lag_min_lift)
    m = len(lag.keys)
    if m < 2:
        return []
    links = {1: (lag.after > config.tau) & (lag.lift >= config.lag_min_lift)}
    near = np.maximum(lag.after, lag.before.T)  # P[u at its usual lag after or before t | t]
    # keys logged right after one another either way (a step racing another): u comes just
    # before t in some runs and just after it in the others, so the two shares add up; a task
    # also grows at its tail with a key that so surrounds an owned member in most of its runs
    race = immediate(lag)
    near = np.where(race, np.minimum(lag.after + lag.before.T, 1.0), near)
    near_both = np.maximum(near, near.T)
    seeds = [(1, _strongest_first(links[1], lag.after))]
    around = np.where(race, near, 0.0)
    grown = grow_from_pairs(seeds, links, near, near_both, config.tau, 1, around=around)
    ok = keys > 0
    seq = keys[ok][np.argsort(sec[ok], kind="stable")] if ok.any() else keys[:0]
    first = {int(k): i for i, k in reversed(list(enumerate(seq.tolist())))}
    tasks = []
    # a task grown from a stronger link is kept even where a weaker seed's task swallowed it
    strength = [float(lag.after[seed]) for _, seed, _ in grown]
    for s, seed, _ in drop_contained(grown, strength):
        ks = in_typical_order([seq], [int(lag.keys[i]) for i in s])
        tasks.append(Task(ks, (int(lag.keys[seed[0]]), int(lag.keys[seed[1]])), 1))
    tasks.sort(key=lambda t: min(first.get(k, len(seq)) for k in t.keys))
    logger.info("method 2 by time lag: %d tasks over %d keys", len(tasks), m)
    return tasks


def build_workflows(
    entries: pd.DataFrame,
    config: WorkflowConfig | None = None,
    *,
    tasks: Sequence[Sequence[int]] | None = None,
    seed: int = 0,
    session_rule: Any = None,
) -> list[nx.DiGraph]:
    """Method 2 end to end: separate the tasks of a parsed log and build one FSA per task.

    Co-occurrence is counted over sessions when ``config.per_session`` is True, or None and the
    entries carry usable session ids, else over the interleaved log: by time lag when
    ``config.window`` is set, or when ``per_session`` is None (the default) and the log has no
    usable ids (no session, time-window sessions made by ``session_rule``, or one session:
    :func:`~workbench.workflow.mining.choose_mining`, whose choice and reason every graph keeps
    as ``mining`` and ``mining_reason``), else by position. A task's automaton is built from
    sessions when the ids are usable and most of its entries carry one (its elapsed times then
    never span two instances), else from the interleaved log: with a time-lag window and
    timestamps, its transitions are the consistent-lag order of its keys and keys mostly logged
    outside the tasks are left out (:mod:`workbench.workflow.lag_order`; graph attribute
    ``background``), else adjacency in the log. Pass ``tasks`` (key sets, e.g. from method 1)
    to build only the automata.

    A log with more than ``config.max_sessions`` sessions is mined on a sample (:func:`sample`,
    seeded by ``seed``): every graph says in ``sessions_used`` and ``sessions`` how many of the
    log's sessions it was built from, and its counts are those of the sample.

    >>> keys = [1, 2, 3, 1, 3, 2, 1, 2, 3] * 2
    >>> df = pd.DataFrame({"key": keys, "session": [f"s{i // 3}" for i in range(18)],
    ...                    "timestamp": pd.to_datetime(range(18), unit="s"), "template": "t"})
    >>> cfg = WorkflowConfig(tau=0.4, min_count=2, min_lift=1.0)  # three keys: little room for lift
    >>> [g.graph["keys"] for g in build_workflows(df, cfg)]
    [[1, 2, 3]]
    """
    cfg = config or WorkflowConfig()
    how = choose_mining(entries, per_session=cfg.per_session, window=cfg.window, rule=session_rule)
    mined, used, total = sample(entries, cfg.max_sessions, seed) if how.ids else (entries, 0, 0)
    lag = None
    if tasks is None:
        tasks, lag = _separate(mined, cfg, how)
    graphs = _automata(entries, mined, tasks, cfg, how, lag, (used, total))
    logger.info("workflows mined %s: %s", how.method, how.reason)
    return graphs


def _automata(
    entries: pd.DataFrame,
    mined: pd.DataFrame,
    tasks: Sequence[Sequence[int]],
    cfg: WorkflowConfig,
    how: Mining,
    lag: LagCooccurrence | None,
    sessions: tuple[int, int],
) -> list[nx.DiGraph]:
    """One automaton per task, built on ``mined`` (the rows mined, of ``entries``; ``sessions``:
    how many sessions they keep, of how many) per session or over the interleaved log (see
    :func:`build_workflows`)."""
    templates = templates_of(entries)
    all_keys = {int(k) for t in tasks for k in t}
    graphs = []
    order = None  # over the interleaved log with timestamps: transitions by consistent-lag order
    for n, (t, per_session) in enumerate(_by_session(entries, tasks, how.ids), start=1):
        if not per_session and how.window is not None:
            order = order or by_lag_order(
                mined, how.window, cfg.min_count, cfg.lag_min_lift, tasks, lag
            )
        states, trans, background = order.task(t) if order and not per_session else (t, None, [])
        g = build_fsa(
            mined,
            states,
            other_keys=all_keys - set(t),
            per_session=per_session,
            min_edge_prob=cfg.min_edge_prob,
            templates=templates,
            task_id=n,
            transitions=trans,
        )
        g.graph.update(sessions_used=sessions[0], sessions=sessions[1], background=background)
        g.graph.update(mining=how.method, mining_reason=how.reason)
        graphs.append(g)
    return graphs


def _by_session(
    entries: pd.DataFrame, tasks: Sequence[Sequence[int]], has_sessions: bool
) -> list[tuple[Sequence[int], bool]]:
    """Every task, and whether its automaton is built per session: when most of its entries
    carry one, else over the interleaved log."""
    keys = entries["key"].to_numpy()
    if not has_sessions:
        return [(t, False) for t in tasks]
    in_session = entries["session"].notna().to_numpy()
    out = []
    for t in tasks:
        mine = np.isin(keys, list(t))
        out.append((t, bool(mine.any()) and bool(in_session[mine].mean() >= 0.5)))
    return out


def sample(
    entries: pd.DataFrame, max_sessions: int | None, seed: int = 0
) -> tuple[pd.DataFrame, int, int]:
    """The rows workflows are mined from, with how many sessions they keep, of how many: all of
    them up to ``max_sessions`` sessions; above, the rows of a uniform seeded sample of that
    many sessions and, of the rows outside every session, one stretch of the same share, from a
    seeded start (the tasks built over the interleaved log read it), in log order.

    >>> df = pd.DataFrame({"session": [f"s{i // 4}" if i % 4 else None for i in range(1200)]})
    >>> part, used, total = sample(df, 100)
    >>> used, total, int(part["session"].nunique()), int(part["session"].isna().sum())
    (100, 300, 100, 100)
    """
    codes, names = pd.factorize(entries["session"])
    total = len(names)
    if max_sessions is None or total <= max_sessions:
        return entries, total, total
    rng = np.random.default_rng([seed, total])
    keep = np.zeros(total + 1, dtype=bool)  # the last slot: no session (code -1)
    keep[rng.choice(total, max_sessions, replace=False)] = True
    rows = keep[codes]
    outside = np.flatnonzero(codes < 0)
    n_out = round(len(outside) * max_sessions / total)
    start = int(rng.integers(len(outside) - n_out + 1))
    rows[outside[start : start + n_out]] = True
    return entries.iloc[np.flatnonzero(rows)], max_sessions, total


def _separate(
    entries: pd.DataFrame, cfg: WorkflowConfig, how: Mining
) -> tuple[list[tuple[int, ...]], LagCooccurrence | None]:
    """The tasks' key tuples, separated as ``how`` says (by time lag over the interleaved log,
    by position over sessions or over the interleaved log), and the lag co-occurrence read."""
    if how.method == "time lag":
        cfg = cfg.replace(window=how.window)
        lag = lag_of(entries, cfg.window, cfg.min_count, cfg.lag_min_lift)
        return [t.keys for t in grow_tasks_by_lag(entries, cfg, lag)], lag
    seqs = key_sequences(entries, how.method == "per session")
    return [t.keys for t in grow_tasks(seqs, cfg)], None
