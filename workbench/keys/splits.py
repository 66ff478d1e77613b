"""Validation splits of normal training sessions that hold out whole rare sequences.

Normal training files repeat a few sequences many times; a random share of the sessions is mostly
made of copies of sequences that stay in training and says little about new normal sessions. These
splits hold out sequences seen rarely instead (see :func:`split_novel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.keys.vocabulary import Session
from workbench.keys.windows import unique_sessions

__all__ = ["NovelSplit", "split_novel", "split_novel_folds"]


@dataclass(frozen=True)
class NovelSplit:
    """A validation split that holds out whole sequences (see :func:`split_novel`)."""

    fit: np.ndarray  # (n_fit,) indices of the sessions kept for training
    validation: np.ndarray  # (n_val,) indices of the held-out sessions (all copies of a sequence)
    novel_share: float  # Good-Turing estimate of the share of new sessions never seen before


def split_novel(
    sessions: Sequence[Session], fraction: float, seed: int = 0, *, max_count: int = 1
) -> NovelSplit:
    """Hold out a share of the distinct sequences that occur at most ``max_count`` times.

    Every copy of a held-out sequence goes to validation and none stays in training, so the
    held-out sessions are *new* to a model trained on the rest, like the normal sessions of a test
    set that were never seen in training. Rare sequences are the ones held out: by the Good-Turing
    argument a sequence seen once stands for the never-seen ones, and its share of the sessions
    (``novel_share`` = sequences seen once / sessions) estimates how many new sessions are of a
    never-seen sequence. Holding out a frequent sequence instead would remove a large part of
    normal behaviour from training and say little about new sessions.

    >>> s = [(1, 2)] * 6 + [(1, 3)] + [(1, 4)] + [(1, 5)] + [(2, 2)]
    >>> split = split_novel(s, 0.5, seed=0)
    >>> sorted(set(split.validation) | set(split.fit)) == list(range(10)), split.novel_share
    (True, 0.4)
    >>> len(split.validation), {s[i] for i in split.validation} <= {(1, 3), (1, 4), (1, 5), (2, 2)}
    (2, True)
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    distinct, inverse, counts = unique_sessions(sessions)
    n = len(inverse)
    novel_share = float((counts == 1).sum() / n) if n else 0.0
    pool = np.flatnonzero(counts <= max_count)
    n_out = min(round(fraction * len(pool)), len(distinct) - 1)
    if n_out <= 0:
        return NovelSplit(np.arange(n), np.zeros(0, dtype=np.int64), novel_share)
    held = np.random.default_rng(seed).permutation(pool)[:n_out]
    out = np.isin(inverse, held)
    return NovelSplit(np.flatnonzero(~out), np.flatnonzero(out), novel_share)


def split_novel_folds(
    sessions: Sequence[Session], n_folds: int, seed: int = 0, *, max_count: int = 1
) -> list[NovelSplit]:
    """``n_folds`` splits like :func:`split_novel` whose held-out sequences are disjoint and
    together cover every sequence occurring at most ``max_count`` times (cross-fitting: each rare
    sequence is judged once by a model that never saw it, so the choice of g rests on all of them).

    >>> s = [(1, 2)] * 6 + [(1, 3)] + [(1, 4)] + [(1, 5)] + [(2, 2)]
    >>> folds = split_novel_folds(s, 2, seed=0)
    >>> sorted(int(i) for f in folds for i in f.validation), [len(f.fit) for f in folds]
    ([6, 7, 8, 9], [8, 8])
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    distinct, inverse, counts = unique_sessions(sessions)
    n = len(inverse)
    novel_share = float((counts == 1).sum() / n) if n else 0.0
    pool = np.random.default_rng(seed).permutation(np.flatnonzero(counts <= max_count))
    if len(pool) < n_folds or len(pool) == len(distinct):
        return []  # too few rare sequences, or nothing would be left to train on
    out = []
    for i in range(n_folds):
        held = np.isin(inverse, pool[i::n_folds])
        out.append(NovelSplit(np.flatnonzero(~held), np.flatnonzero(held), novel_share))
    return out
