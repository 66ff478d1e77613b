"""Presence co-occurrence by position: how often a key comes within ``d`` positions of another.

Method 2 (:mod:`workbench.workflow.cooccurrence`) grows tasks on these probabilities, computed
lazily for every distance ``d`` up to ``d_max`` over the key sequences; see that module's
docstring for why the presence form, rather than the paper's ``p_d(i, j)``, is thresholded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["Presence", "flatten", "typical_rank"]

_GAP = -1  # separator between sequences in the flat array (any value that is no key > 0)


def flatten(sequences: Iterable[Sequence[int] | np.ndarray], gap: int) -> np.ndarray:
    """Concatenate sequences (their keys ``> 0``) with ``gap`` separators so that no window of
    ``gap`` positions crosses two of them.

    >>> flatten([[1, 2], [0, 3]], 1).tolist()
    [1, 2, -1, 3, -1]
    """
    parts: list[np.ndarray] = []
    sep = np.full(gap, _GAP, dtype=np.int64)
    for s in sequences:
        a = np.asarray(s, dtype=np.int64)
        a = a[a > 0]
        if len(a):
            parts.extend([a, sep])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _dedupe(codes: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a mask: faster than hashing for these int codes)."""
    if not len(codes):
        return codes
    codes = np.sort(codes)
    return codes[np.concatenate(([True], codes[1:] != codes[:-1]))]


class Presence:
    """Presence co-occurrence of every key pair at every distance up to ``d_max``, computed lazily."""

    def __init__(self, sequences: Sequence[np.ndarray], d_max: int, min_count: int) -> None:
        flat = flatten(sequences, d_max)
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


def typical_rank(pres: Presence) -> np.ndarray:
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
