"""Growing tasks from linked key pairs: the rules method 2 shares over positions and time lags.

A *link* matrix says which key reliably leads to which (at a distance ``d`` in positions, or at
a consistent time lag); ``near`` and ``near_both`` say which keys usually come close to which.
:func:`grow_from_pairs` grows a task from every linked pair not yet inside one, by the ownership
rules of :func:`grow`; :func:`drop_contained` then drops the tasks whose key set another
contains. Indices here are rows of the matrices, not keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["drop_contained", "grow", "grow_from_pairs", "in_typical_order"]

logger = logging.getLogger(__name__)

Grown = tuple[set[int], tuple[int, int], int]  # members, seed pair, largest distance used


def grow_from_pairs(
    pairs_by_distance: Iterable[tuple[int, Iterable[Any]]],
    links: Mapping[int, np.ndarray],
    near: np.ndarray,
    near_both: np.ndarray,
    tau: float,
    d_max: int,
    around: np.ndarray | None = None,
) -> list[Grown]:
    """Grow a task from every seed pair, in the order given, unless one task holds both keys.

    ``pairs_by_distance`` lists ``(d, pairs)``: the linked index pairs at distance ``d``,
    strongest first; ``around``: see :func:`grow`."""
    grown: list[Grown] = []
    for d, pairs in pairs_by_distance:
        for i, j in pairs:
            if any(i in s and j in s for s, _, _ in grown):
                continue
            members, d_used = grow(
                (int(i), int(j)), links, near, near_both, tau, d_max, around=around
            )
            grown.append((members, (int(i), int(j)), max(d, d_used)))
    return grown


def drop_contained(grown: Sequence[Grown], strength: Sequence[float] | None = None) -> list[Grown]:
    """The tasks whose members no other task contains (of equal ones, the first).

    With ``strength`` (of each task's seed link), a task is dropped only for one that contains
    it and grew from a link at least as strong: a task grown from two keys other tasks log too
    (a "VM Paused" that a boot follows with "VM Resumed" most of the time) can swallow a small
    task whose own first key leads into the shared one (pause), and the small one stays.

    >>> [s for s, _, _ in drop_contained([({1, 2}, (1, 2), 1), ({1, 2, 3}, (1, 3), 1),
    ...                                   ({4, 5}, (4, 5), 1), ({4, 5}, (5, 4), 2)])]
    [{1, 2, 3}, {4, 5}]
    >>> [s for s, _, _ in drop_contained([({1, 2}, (1, 2), 1), ({1, 2, 3}, (3, 2), 1)], [1.0, 0.8])]
    [{1, 2}, {1, 2, 3}]
    """
    kept: list[Grown] = []
    st = strength if strength is not None else [0.0] * len(grown)
    for n, (s, seed, d_used) in enumerate(grown):
        if any(
            (s < other and st[k] >= st[n] - 1e-9) or (s == other and k < n)
            for k, (other, _, _) in enumerate(grown)
            if k != n
        ):
            continue
        kept.append((s, seed, d_used))
    return kept


def grow(
    seed: tuple[int, int],
    links: Mapping[int, np.ndarray],
    near: np.ndarray,
    near_both: np.ndarray,
    tau: float,
    d_max: int,
    around: np.ndarray | None = None,
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
    while d <= d_max:
        leads = links[d]
        owned = _owned(seed, members, near, (1.0 + tau) / 2)
        tail = leads[owned].any(axis=0)
        if around is not None:  # judged on an owned member's occurrences, either side of it
            tail |= (around[owned] > tau).any(axis=0)
        coherent = (near_both[:, owned] > tau).sum(axis=1) >= min(2, len(owned))
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


def in_typical_order(seqs: Sequence[np.ndarray], keys: list[int]) -> tuple[int, ...]:
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
