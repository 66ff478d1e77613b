"""Workflow construction, method 1: tasks read off a key model's next-key predictions.

DeepLog's key model, fed a history of keys, gives a probability for every possible next key. Its
predictions encode the workflow: where one key is likely next, the execution is sequential; where
several are (a *divergence point*), either concurrent steps of one task follow (the branches
converge again, in either order), alternatives of one task follow (they converge on a common
key), or a task has ended and any of several tasks may start (the branches never converge). This
module reads those cases from any model given as a plain callable

    ``next_key_distribution(history: Sequence[int]) -> Mapping[int, float]``

(the LSTM key model through :func:`keymodel_distribution`, the N-gram baseline of
:func:`ngram_distribution`, anything), splits the training sequences at the task boundaries it
finds, and groups the pieces into tasks by the key they start with. A chain that repeats becomes a
cycle in the task's automaton, because automaton states are keys; the cycles are listed as loops.
The automata themselves are built from the entries with
:func:`workbench.workflow.cooccurrence.build_workflows` (``tasks=``), as for method 2.

Choices where the paper (docs/METHOD.md, section 5) is silent: a key is *likely* when its
probability is at least ``min_prob``; branches are followed greedily (most likely next key) for
``horizon`` steps; two branches *converge* when they reach a common key at positions at most
``slack`` apart (so a task that starts right after another, and the one that starts one task
later, do not count as converging); probability mass spread over keys each below ``min_prob``
(many possible next tasks), and the end of the session (:data:`workbench.keyids.END`), count as
one more branch that meets no other; a task is named by its first key, and a piece shorter than
two keys joins no task. Workflow states are keys ``> 0``.

>>> heads, tails = [[1, 2, 3, 4], [1, 3, 2, 4]], [[8, 9], [9, 8], [5, 6, 7]]
>>> seqs = [h + t for h in heads for t in tails] * 5
>>> f = ngram_distribution(seqs, n=3)
>>> result = model_tasks(f, seqs)
>>> sorted(sorted(t) for t in result.tasks), sorted(result.concurrent)
([[1, 2, 3, 4], [5, 6, 7], [8, 9]], [(2, 3), (8, 9)])
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from workbench import keyids
from workbench.config import Config, require

__all__ = [
    "ModelTasks",
    "ModelWorkflowConfig",
    "NextKeyDistribution",
    "keymodel_distribution",
    "model_tasks",
    "ngram_distribution",
]

logger = logging.getLogger(__name__)

NextKeyDistribution = Callable[[Sequence[int]], Mapping[int, float]]


@dataclass(frozen=True)
class ModelWorkflowConfig(Config):
    """Settings of method 1; validated on construction.

    >>> ModelWorkflowConfig(min_prob=0.0)
    Traceback (most recent call last):
    ...
    ValueError: min_prob must be in (0, 1), got 0.0
    """

    min_prob: float = 0.2  # a next key at least this likely is a candidate
    horizon: int = 4  # steps a branch is followed after a divergence point
    slack: int = 2  # branches converge on a common key at most this many positions apart
    window: int = 10  # history length passed to the model (the key model's h)
    min_support: int = 2  # a task must start this many pieces

    def validate(self) -> None:
        require(0.0 < self.min_prob < 1.0, f"min_prob must be in (0, 1), got {self.min_prob!r}")
        for name in ("horizon", "window", "min_support"):
            value = getattr(self, name)
            require(
                isinstance(value, int) and value >= 1, f"{name} must be an int >= 1, got {value!r}"
            )
        require(
            isinstance(self.slack, int) and self.slack >= 0,
            f"slack must be an int >= 0, got {self.slack!r}",
        )


@dataclass(frozen=True)
class ModelTasks:
    """What method 1 found.

    ``tasks`` are key tuples in typical order; ``starts`` the key each task starts with;
    ``boundaries`` the (key, next key) pairs where one task ends and another begins;
    ``concurrent`` key pairs seen in either order that converge; ``loops`` cycles of the
    prediction graph within a task; ``divergences`` how many distinct divergence points were
    examined.
    """

    tasks: tuple[tuple[int, ...], ...]
    starts: tuple[int, ...]
    boundaries: frozenset[tuple[int, int]]
    concurrent: frozenset[tuple[int, int]]
    loops: tuple[tuple[int, ...], ...]
    divergences: int
    queries: int = 0
    info: dict[str, Any] = field(default_factory=dict)


class _Cached:
    """Memoise the model on the last ``window`` keys of the history."""

    def __init__(self, f: NextKeyDistribution, window: int) -> None:
        self.f, self.window = f, window
        self.cache: dict[tuple[int, ...], list[tuple[int, float]]] = {}

    def __call__(self, history: Sequence[int]) -> list[tuple[int, float]]:
        h = tuple(int(k) for k in history[-self.window :]) if self.window else ()
        got = self.cache.get(h)
        if got is None:
            dist = self.f(list(h))
            got = sorted(
                ((int(k), float(p)) for k, p in dist.items()), key=lambda kp: (-kp[1], kp[0])
            )
            self.cache[h] = got
        return got


def _branch(model: _Cached, history: list[int], first: int, horizon: int) -> list[int]:
    """Follow the most likely continuation after ``first`` for ``horizon`` keys in all."""
    out = [first]
    h = [*history, first]
    while len(out) < horizon:
        dist = model(h)
        if not dist or dist[0][0] <= 0:  # the session ends (or nothing is known)
            break
        nxt = dist[0][0]
        out.append(nxt)
        h.append(nxt)
    return out


def _diverges(
    model: _Cached,
    hist: list[int],
    cands: list[int],
    cfg: ModelWorkflowConfig,
    converged: set[tuple[int, int]],
) -> bool:
    """Whether a divergence point ends a task: its candidates' branches fall into more than one
    group of branches that meet again (directly or through another)."""
    branches = {c: _branch(model, list(hist), c, cfg.horizon) for c in cands}
    g = nx.Graph()
    g.add_nodes_from(cands)
    for i, c in enumerate(cands):
        for o in cands[i + 1 :]:
            if _converge(branches[c], branches[o], cfg.slack):
                g.add_edge(c, o)
                converged.add((min(c, o), max(c, o)))
    return nx.number_connected_components(g) > 1


def _converge(a: list[int], b: list[int], slack: int) -> bool:
    pos_b: dict[int, int] = {}
    for i, k in enumerate(b):
        pos_b.setdefault(k, i)
    return any(k in pos_b and abs(i - pos_b[k]) <= slack for i, k in enumerate(a))


def model_tasks(
    next_key_distribution: NextKeyDistribution,
    sequences: Sequence[Sequence[int]],
    config: ModelWorkflowConfig | None = None,
) -> ModelTasks:
    """Method 1: separate tasks with a next-key model (see the module docstring).

    Parameters
    ----------
    next_key_distribution
        History (oldest first) -> probability of each next key; keys ``<= 0`` in the answer
        (:data:`workbench.keyids.END`, unknown) are no workflow states, but their mass counts as a
        branch that converges with nothing (a task may end there).
    sequences
        Normal key sequences, one per session (or the interleaved log as one sequence; the model
        then has to carry the interleaving).
    config
        :class:`ModelWorkflowConfig`.
    """
    cfg = config or ModelWorkflowConfig()
    model = _Cached(next_key_distribution, cfg.window)
    seqs = [[int(k) for k in s if int(k) > 0] for s in sequences]
    votes = _vote(model, seqs, cfg)
    # each transition taken votes with what the model saw at that point; most votes win
    edges_seen = {(a, b) for a, b, _ in votes.votes}
    boundaries = {
        (a, b) for a, b in edges_seen if votes.votes[a, b, True] > votes.votes[a, b, False]
    }
    # concurrency: converging candidates that the data shows in both orders
    likely = votes.likely_edges
    concurrent = {(a, b) for a, b in votes.converged if likely[a, b] and likely[b, a]}
    pieces = _Pieces()
    for s in seqs:
        pieces.cut(s, boundaries, likely)
    tasks, starts = pieces.tasks(cfg.min_support)
    loops = _loops(tasks, likely, boundaries)
    logger.info(
        "method 1: %d tasks, %d boundaries, %d divergence points, %d model queries",
        len(tasks),
        len(boundaries),
        len(votes.decided),
        len(model.cache),
    )
    return ModelTasks(
        tasks=tuple(tasks),
        starts=tuple(starts),
        boundaries=frozenset(boundaries),
        concurrent=frozenset(concurrent),
        loops=tuple(loops),
        divergences=len(votes.decided),
        queries=len(model.cache),
    )


@dataclass
class _Votes:
    """What the model said at every transition taken in the sequences."""

    votes: Counter[tuple[int, int, bool]] = field(default_factory=Counter)  # (key, next, boundary)
    converged: set[tuple[int, int]] = field(default_factory=set)  # candidates whose branches meet
    decided: dict[tuple[tuple[int, ...], tuple[int, ...]], bool] = field(
        default_factory=dict
    )  # divergence point (history, candidates) -> ends a task
    likely_edges: Counter[tuple[int, int]] = field(default_factory=Counter)


def _vote(model: _Cached, seqs: Sequence[list[int]], cfg: ModelWorkflowConfig) -> _Votes:
    """Every likely transition taken votes boundary or not, by what the model saw there."""
    v = _Votes()
    for s in seqs:
        for t in range(1, len(s)):
            hist = s[max(0, t - cfg.window) : t]
            dist = model(hist)
            cands = [k for k, p in dist if p >= cfg.min_prob and k > 0]
            prev, nxt = s[t - 1], s[t]
            if nxt not in cands:
                continue  # an unlikely transition: the pieces are cut there anyway
            v.likely_edges[prev, nxt] += 1
            # the end of the session, and mass spread thinly over many keys, are one more
            # branch, one that meets no other
            rest = 1.0 - sum(p for k, p in dist if p >= cfg.min_prob and k > 0)
            if rest >= cfg.min_prob:
                v.votes[prev, nxt, True] += 1
                continue
            if len(cands) < 2:
                v.votes[prev, nxt, False] += 1
                continue
            sig = (tuple(hist), tuple(cands))
            if sig not in v.decided:
                v.decided[sig] = _diverges(model, hist, cands, cfg, v.converged)
            v.votes[prev, nxt, v.decided[sig]] += 1
    return v


class _Pieces:
    """The sequences cut at the task boundaries (and at unlikely transitions), grouped by the key
    each piece starts with."""

    def __init__(self) -> None:
        self.by_start: dict[int, Counter[int]] = defaultdict(Counter)  # start -> key -> pieces
        self.n: Counter[int] = Counter()  # start -> pieces
        self.order_sum: dict[int, defaultdict[int, float]] = defaultdict(lambda: defaultdict(float))

    def cut(
        self,
        s: Sequence[int],
        boundaries: set[tuple[int, int]],
        likely_edges: Mapping[tuple[int, int], int],
    ) -> None:
        piece: list[int] = []
        for t, k in enumerate(s):
            if piece and ((s[t - 1], k) in boundaries or likely_edges[s[t - 1], k] == 0):
                self.add(piece)
                piece = []
            piece.append(k)
        self.add(piece)

    def add(self, piece: list[int]) -> None:
        if len(piece) < 2:
            return
        start = piece[0]
        self.n[start] += 1
        seen: set[int] = set()
        for i, k in enumerate(piece):
            if k not in seen:
                seen.add(k)
                self.by_start[start][k] += 1
                self.order_sum[start][k] += i

    def tasks(self, min_support: int) -> tuple[list[tuple[int, ...]], list[int]]:
        """Tasks (keys in typical order) and the key each starts with, busiest start first; a
        task inside a bigger one is the same work seen from the middle, and is dropped."""
        tasks, starts = [], []
        for start, counts in sorted(self.by_start.items(), key=lambda kv: -self.n[kv[0]]):
            if self.n[start] < min_support:
                continue
            keys = [k for k, c in counts.items() if c >= max(1, min_support // 2)]
            if len(keys) < 2:
                continue
            keys.sort(key=lambda k: (self.order_sum[start][k] / counts[k], k))
            tasks.append(tuple(keys))
            starts.append(start)
        keep = [
            i
            for i, t in enumerate(tasks)
            if not any(
                j != i and (set(t) < set(u) or (set(t) == set(u) and j < i))
                for j, u in enumerate(tasks)
            )
        ]
        return [tasks[i] for i in keep], [starts[i] for i in keep]


def _loops(
    tasks: Sequence[tuple[int, ...]],
    edges: Mapping[tuple[int, int], int],
    boundaries: set[tuple[int, int]],
) -> list[tuple[int, ...]]:
    """Cycles among each task's keys over the likely, non-boundary transitions (few, short)."""
    out: list[tuple[int, ...]] = []
    for t in tasks:
        members = set(t)
        g = nx.DiGraph(
            (a, b)
            for (a, b), c in edges.items()
            if c and a in members and b in members and (a, b) not in boundaries and a != b
        )
        for cyc in nx.simple_cycles(g, length_bound=6):
            i = cyc.index(min(cyc))
            cyc = tuple(cyc[i:] + cyc[:i])
            if len(cyc) > 2 and cyc not in out:
                out.append(cyc)
    return out


# ---------------------------------------------------------------------- models as callables
def ngram_distribution(sequences: Sequence[Sequence[int]], n: int = 3) -> NextKeyDistribution:
    """The N-gram baseline as a next-key callable: relative frequencies of the next key after the
    last ``n - 1`` keys, backing off to shorter contexts when a context was never seen.

    As with the key model, a session's start is padding (key 0) and its end is the key
    :data:`~workbench.keyids.END`, so the distribution says where sessions end.

    >>> f = ngram_distribution([[1, 2, 3], [1, 2, 4]], n=2)
    >>> dict(f([1, 2])), dict(f([])), dict(f([3]))
    ({3: 0.5, 4: 0.5}, {1: 1.0}, {-2: 1.0})
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tables: list[dict[tuple[int, ...], Counter[int]]] = [defaultdict(Counter) for _ in range(n)]
    pad = [0] * (n - 1)
    for seq in sequences:
        s = pad + [int(k) for k in seq if int(k) > 0] + [keyids.END]
        for t in range(len(pad), len(s)):
            for order in range(n):
                tables[order][tuple(s[t - order : t])][s[t]] += 1

    def dist(history: Sequence[int]) -> Mapping[int, float]:
        h = pad + [int(k) for k in history]
        for order in range(n - 1, -1, -1):
            ctx = tuple(h[len(h) - order :]) if order else ()
            c = tables[order].get(ctx)
            if c:
                total = sum(c.values())
                return {k: v / total for k, v in sorted(c.items())}
        return {}

    return dist


def keymodel_distribution(model: Any) -> NextKeyDistribution:
    """Adapt a fitted :class:`workbench.keys.model.KeyModel` to a next-key callable.

    Uses the model's own input rows for a history (``model.input_rows``: its last h keys, and the
    session's key counts when the model has them), its vocabulary's ``decode`` and ``predict_proba``;
    the end-of-session and unknown slots come back as keys ``<= 0`` and are ignored by
    :func:`model_tasks`.
    """
    vocab = model.vocab_

    def dist(history: Sequence[int]) -> Mapping[int, float]:
        window = model.input_rows([[int(k) for k in history]])
        probs = np.asarray(model.predict_proba(window))[0]
        idx = np.flatnonzero(probs > 0)
        ext = np.asarray(vocab.decode(idx))
        return {int(k): float(p) for k, p in zip(ext, probs[idx], strict=True)}

    return dist
