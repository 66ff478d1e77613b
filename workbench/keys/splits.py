"""Which normal training sessions the log-key model is fitted on, and validation splits of them
that hold out whole rare sequences.

A long log is fitted on a seeded uniform sample of its sessions holding a bounded number of
distinct sequences (:func:`sample_sessions`): every step of the fit works on distinct sequences,
so its cost follows them and not the lines. Normal training files repeat a few sequences many
times; a random share of the sessions is mostly made of copies of sequences that stay in training
and says little about new normal sessions. The validation splits hold out sequences seen rarely
instead (see :func:`split_novel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.keys.vocabulary import Session
from workbench.keys.windows import unique_sessions

__all__ = ["NovelSplit", "sample_sessions", "split_novel", "split_novel_folds"]


@dataclass(frozen=True)
class NovelSplit:
    """A validation split that holds out whole sequences (see :func:`split_novel`)."""

    fit: np.ndarray  # (n_fit,) indices of the sessions kept for training
    validation: np.ndarray  # (n_val,) indices of the held-out sessions (all copies of a sequence)
    novel_share: float  # Good-Turing estimate of the share of new sessions never seen before


def sample_sessions(
    sessions: Sequence[Session], max_distinct: int | None, seed: int = 0
) -> np.ndarray | None:
    """Indices (in log order) of a seeded uniform sample of the sessions, as large as holds at most
    ``max_distinct`` distinct sequences; None when every session fits (nothing is sampled, so a log
    under the cap is fitted exactly as without it).

    The sample is the longest prefix of a seeded random order of the sessions that stays within the
    cap: a uniform sample of them, so each sequence keeps its expected share, frequent sequences are
    all in it with their counts scaled alike, and the rare ones a log holds many of are thinned.

    >>> s = [(1, 2)] * 6 + [(1, 3), (1, 4), (1, 5), (2, 2)]
    >>> sample_sessions(s, 5) is None
    True
    >>> kept = sample_sessions(s, 3, seed=0)
    >>> len({s[i] for i in kept}), bool((kept[1:] > kept[:-1]).all())
    (3, True)
    """
    if max_distinct is None:
        return None
    _, inverse, counts = unique_sessions(sessions)
    if len(counts) <= max_distinct:
        return None
    order = np.random.default_rng([seed, len(inverse), _SAMPLE_STREAM]).permutation(len(inverse))
    first = np.full(len(counts), len(order))
    np.minimum.at(first, inverse[order], np.arange(len(order)))  # where each sequence first comes
    n_kept = int(np.sort(first)[max_distinct])  # the order's prefix before the next new sequence
    return np.sort(order[:n_kept])


_SAMPLE_STREAM = 0x5E55  # keeps the sample's random stream apart from the splits' (same seed)


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
