"""Baseline detectors for teaching and comparison, with the key model's detection interface.

Every detector has ``fit(sessions, ...)`` on normal sessions and ``detect(sessions) -> Detection``
(:class:`workbench.keys.topg.Detection`); every one flags a key never seen in training as an anomaly
("unknown key", docs/METHOD.md section 1), so the differences between them come from what else they see.

- :class:`UnseenKeyDetector`: only that rule; the floor every other detector starts from.
- :class:`SimpleDetector`: the "simple" detector of Landauer et al. (FSE 2024): a session is
  anomalous when it holds a new event (unknown key), has a length never seen in training, or has a
  key-count vector never seen in training. A learned detector is worth its cost where it beats this.
- :class:`workbench.keys.ngram.NGramModel` (a module of its own): the paper's N-gram baseline.
- :class:`PCADetector`: PCA over session key-count vectors (Xu et al., SOSP 2009): a session is
  anomalous when its squared residual outside the principal subspace exceeds the Q-statistic.
- :class:`InvariantMiningDetector`: linear invariants among key counts (Lou et al., USENIX ATC
  2010), such as "as many 'received' as 'responded'"; a session breaking one is anomalous.

>>> train = [(1, 2, 3)] * 20 + [(1, 3, 2)] * 5
>>> UnseenKeyDetector().fit(train).detect([(1, 2, 3), (1, 4)]).reason.tolist()
['', 'unknown key']
>>> InvariantMiningDetector().fit(train).detect([(1, 2, 3), (1, 2, 2, 3)]).anomalous.tolist()
[False, True]
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from statistics import NormalDist
from typing import Any

import numpy as np

from workbench.keys.topg import Detection
from workbench.keys.vocabulary import KeyVocabulary, Session
from workbench.keys.windows import unique_sessions

__all__ = [
    "InvariantMiningDetector",
    "PCADetector",
    "SimpleDetector",
    "UnseenKeyDetector",
]

logger = logging.getLogger(__name__)


def _sessions(sessions: Iterable[Sequence[int]]) -> list[Session]:
    return [tuple(int(k) for k in s) for s in sessions]


def _first_unknown(distinct: list[Session], vocab: KeyVocabulary) -> np.ndarray:
    """(n_distinct,) position of the first key outside ``vocab``; -1 when every key is known."""
    out = np.full(len(distinct), -1, dtype=np.int64)
    for i, s in enumerate(distinct):
        for pos, k in enumerate(s):
            if k not in vocab:
                out[i] = pos
                break
    return out


def _count_matrix(distinct: list[Session], vocab: KeyVocabulary) -> np.ndarray:
    """(n_distinct, n_keys) how often each known key occurs in each session (unknown: dropped)."""
    n_keys = len(vocab.keys)
    lengths = np.fromiter((len(s) for s in distinct), dtype=np.int64, count=len(distinct))
    if lengths.sum() == 0:
        return np.zeros((len(distinct), n_keys))
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in distinct if len(s)])
    column = vocab.encode(flat) - 3  # internal index -> column; reserved entries become < 0
    row = np.repeat(np.arange(len(distinct)), lengths)
    keep = column >= 0
    counts = np.zeros((len(distinct), n_keys))
    np.add.at(counts, (row[keep], column[keep]), 1.0)
    return counts


def _session_detection(
    sessions: list[Session],
    vocab: KeyVocabulary,
    flag: np.ndarray,
    score: np.ndarray,
    reason: np.ndarray,
    threshold: float,
    distinct: list[Session],
    inverse: np.ndarray,
    info: dict[str, Any],
) -> Detection:
    """Assemble a session-level Detection from per-distinct-session verdicts; unknown keys win."""
    first_unknown = _first_unknown(distinct, vocab)
    unknown = first_unknown >= 0
    anomalous = flag | unknown
    reasons = np.where(unknown, "unknown key", np.where(flag, reason, "")).astype(object)
    return Detection(
        anomalous=anomalous[inverse],
        first_position=first_unknown[inverse],
        reason=reasons[inverse],
        score=score[inverse],
        threshold=threshold,
        entries=None,
        info=info,
    )


class UnseenKeyDetector:
    """The simplest rule: a session is anomalous when it holds a key never seen in training.

    Attributes
    ----------
    vocab_ : KeyVocabulary
        The keys seen in training.
    """

    def fit(self, sessions: Iterable[Sequence[int]], **_: Any) -> UnseenKeyDetector:
        """Remember the training keys (extra keyword arguments are accepted and ignored)."""
        self.vocab_ = KeyVocabulary.from_sessions(_sessions(sessions))
        return self

    def detect(self, sessions: Iterable[Sequence[int]]) -> Detection:
        """Flag sessions with an unknown key, at its first position."""
        sessions = _sessions(sessions)
        distinct, inverse, _ = unique_sessions(sessions)
        none = np.zeros(len(distinct), dtype=bool)
        first = _first_unknown(distinct, self.vocab_)
        return _session_detection(
            sessions,
            self.vocab_,
            none,
            (first >= 0).astype(float),
            np.full(len(distinct), ""),
            0.5,
            distinct,
            inverse,
            {"rule": "unknown key"},
        )


class SimpleDetector:
    """Unknown key, unseen session length, or unseen key-count vector (Landauer et al., FSE 2024).

    Three memorising rules over the normal training sessions, checked in this order: a key never
    seen in training (``"unknown key"``), a session length never seen (``"unseen length"``), a
    vector of per-key counts never seen (``"unseen count vector"``; order within the session is
    ignored). An unseen length or a new key always makes an unseen count vector, so the three
    together flag exactly the sessions whose count vector is new; the reason names the simplest
    rule that fires. Nothing is tuned: there is no threshold and no validation split.

    >>> train = [(1, 2, 3)] * 20 + [(1, 3, 2)] * 5 + [(1, 2, 2, 3)] * 5
    >>> d = SimpleDetector().fit(train).detect([(3, 2, 1), (1, 2), (1, 3, 3, 2), (1, 4, 2)])
    >>> d.anomalous.tolist(), d.reason.tolist()
    ([False, True, True, True], ['', 'unseen length', 'unseen count vector', 'unknown key'])
    """

    RULES = ("unknown key", "unseen length", "unseen count vector")

    def fit(self, sessions: Iterable[Sequence[int]], **_: Any) -> SimpleDetector:
        """Remember the keys, lengths and count vectors of normal sessions."""
        sessions = _sessions(sessions)
        self.vocab_ = KeyVocabulary.from_sessions(sessions)
        distinct, _, _ = unique_sessions(sessions)
        self.lengths_ = frozenset(len(s) for s in distinct)
        self.count_vectors_ = frozenset(self._vector(s) for s in distinct)
        return self

    @staticmethod
    def _vector(session: Session) -> tuple[tuple[int, int], ...]:
        keys, counts = np.unique(np.asarray(session, dtype=np.int64), return_counts=True)
        return tuple(zip(keys.tolist(), counts.tolist(), strict=True))

    def detect(self, sessions: Iterable[Sequence[int]]) -> Detection:
        """Flag sessions with an unknown key, an unseen length or an unseen count vector."""
        sessions = _sessions(sessions)
        distinct, inverse, _ = unique_sessions(sessions)
        new_length = np.array([len(s) not in self.lengths_ for s in distinct], dtype=bool)
        new_vector = np.array(
            [self._vector(s) not in self.count_vectors_ for s in distinct], dtype=bool
        )
        reason = np.where(
            new_length, self.RULES[1], np.where(new_vector, self.RULES[2], "")
        ).astype(object)
        return _session_detection(
            sessions,
            self.vocab_,
            new_vector,
            new_vector.astype(float) + new_length,
            reason,
            0.5,
            distinct,
            inverse,
            {
                "rule": "unknown key, unseen length or unseen count vector",
                "lengths_seen": len(self.lengths_),
                "count_vectors_seen": len(self.count_vectors_),
            },
        )


class PCADetector:
    """PCA over session key-count vectors with the Q-statistic threshold (Xu et al., SOSP 2009).

    The counts of the normal training sessions are centred; the principal components explaining
    ``variance`` of the variance span the normal subspace. A session's score is its squared
    prediction error (SPE): the squared norm of its centred count vector outside that subspace. The
    threshold is the Q-statistic of Jackson and Mudholkar (1979) at significance ``alpha``, falling
    back to the largest training SPE when the residual variance is zero.

    >>> train = [(1, 2, 2)] * 10 + [(1, 1, 2, 2, 2, 2)] * 10 + [(1, 2, 2, 3)] * 2
    >>> PCADetector().fit(train).detect([(1, 2, 2), (1, 1, 1, 2)]).anomalous.tolist()
    [False, True]
    """

    def __init__(self, *, variance: float = 0.95, alpha: float = 0.001) -> None:
        if not 0.0 < variance <= 1.0 or not 0.0 < alpha < 1.0:
            raise ValueError("variance must be in (0, 1] and alpha in (0, 1)")
        self.variance = variance
        self.alpha = alpha

    def fit(self, sessions: Iterable[Sequence[int]], **_: Any) -> PCADetector:
        """Fit the normal subspace and the threshold on normal sessions."""
        sessions = _sessions(sessions)
        self.vocab_ = KeyVocabulary.from_sessions(sessions)
        distinct, _, weight = unique_sessions(sessions)
        x = _count_matrix(distinct, self.vocab_)  # (n_distinct, d)
        w = weight / weight.sum()
        self.mean_ = w @ x  # (d,)
        xc = x - self.mean_
        cov = (xc * w[:, None]).T @ xc * (len(sessions) / max(len(sessions) - 1, 1))  # (d, d)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1]
        eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
        share = np.cumsum(eigval) / max(eigval.sum(), 1e-12)
        k = int(np.searchsorted(share, self.variance - 1e-12) + 1)
        self.n_components_ = min(k, len(eigval))
        p = eigvec[:, : self.n_components_]
        self.residual_ = np.eye(len(eigval)) - p @ p.T  # (d, d) projector onto the residual space
        rest = eigval[self.n_components_ :]
        self.threshold_ = self._q_statistic(rest)
        if not np.isfinite(self.threshold_) or self.threshold_ <= 1e-9:
            self.threshold_ = float(self._spe(x).max()) + 1e-9
        return self

    def _q_statistic(self, lam: np.ndarray) -> float:
        theta1, theta2, theta3 = (float(np.sum(lam**i)) for i in (1, 2, 3))
        if theta1 <= 1e-12 or theta2 <= 1e-24:
            return 0.0
        h0 = 1.0 - 2.0 * theta1 * theta3 / (3.0 * theta2**2)
        c = NormalDist().inv_cdf(1.0 - self.alpha)
        inner = c * math.sqrt(2.0 * theta2 * h0**2) / theta1 + 1.0
        inner += theta2 * h0 * (h0 - 1.0) / theta1**2
        return float(theta1 * max(inner, 0.0) ** (1.0 / h0)) if h0 > 0 else float("inf")

    def _spe(self, x: np.ndarray) -> np.ndarray:
        r = (x - self.mean_) @ self.residual_  # (n, d)
        return np.einsum("ij,ij->i", r, r)

    def detect(self, sessions: Iterable[Sequence[int]]) -> Detection:
        """Flag sessions whose SPE exceeds the threshold, or that hold an unknown key."""
        sessions = _sessions(sessions)
        distinct, inverse, _ = unique_sessions(sessions)
        spe = self._spe(_count_matrix(distinct, self.vocab_))
        flag = spe > self.threshold_
        reason = np.full(len(distinct), "count vector outside the normal subspace", dtype=object)
        return _session_detection(
            sessions,
            self.vocab_,
            flag,
            spe,
            reason,
            self.threshold_,
            distinct,
            inverse,
            {"rule": "SPE > Q-statistic", "n_components": self.n_components_},
        )


class InvariantMiningDetector:
    """Linear invariants among key counts, mined from normal sessions (Lou et al., 2010).

    For every set of up to ``max_keys`` keys, a candidate invariant ``sum(theta_i * count_i) = 0``
    is the null vector of the most frequent count patterns of those keys, scaled to small integers;
    it is kept when at least ``min_support`` of the training sessions satisfy it exactly. Sets that
    contain the keys of an invariant already found are skipped, so the invariants stay minimal.

    Attributes
    ----------
    invariants_ : list of dict
        ``{"keys": [...], "coefficients": [...], "support": float}``.
    """

    def __init__(self, *, max_keys: int = 3, min_support: float = 0.98, max_coefficient: int = 5):
        if max_keys < 2:
            raise ValueError(f"max_keys must be >= 2, got {max_keys}")
        self.max_keys = max_keys
        self.min_support = min_support
        self.max_coefficient = max_coefficient

    def _candidate(self, rows: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
        """Integer null vector of the most frequent rows, or None."""
        k = rows.shape[1]
        order = np.argsort(-weight, kind="stable")
        basis: list[np.ndarray] = []
        for i in order:
            trial = np.vstack([*basis, rows[i]])
            if np.linalg.matrix_rank(trial) > len(basis):
                basis.append(rows[i])
            if len(basis) == k - 1:
                break
        if len(basis) < k - 1:
            return None
        _, _s, vt = np.linalg.svd(np.vstack(basis) if basis else np.zeros((1, k)))
        theta = vt[-1]
        if np.any(np.abs(theta) < 1e-9):
            return None  # not minimal: a smaller key set carries it
        theta = theta / np.min(np.abs(theta))
        fractions = [Fraction(float(t)).limit_denominator(self.max_coefficient) for t in theta]
        scale = math.lcm(*(f.denominator for f in fractions))
        ints = np.array([int(f * scale) for f in fractions])
        if np.abs(ints).max() > self.max_coefficient or not np.allclose(
            ints / scale, theta, atol=1e-6
        ):
            return None
        return ints * (1 if ints[0] > 0 else -1)

    def fit(self, sessions: Iterable[Sequence[int]], **_: Any) -> InvariantMiningDetector:
        """Mine the invariants of normal sessions."""
        sessions = _sessions(sessions)
        self.vocab_ = KeyVocabulary.from_sessions(sessions)
        distinct, _, weight = unique_sessions(sessions)
        x = _count_matrix(distinct, self.vocab_)
        total = weight.sum()
        found: list[dict[str, Any]] = []
        found_sets: list[frozenset[int]] = []
        columns = range(x.shape[1])
        for size in range(2, self.max_keys + 1):
            for cols in itertools.combinations(columns, size):
                if any(s <= set(cols) for s in found_sets):
                    continue
                sub = x[:, cols]
                theta = self._candidate(sub, weight)
                if theta is None:
                    continue
                support = float(weight[(sub @ theta) == 0].sum() / total)
                if support >= self.min_support:
                    found.append(
                        {
                            "keys": [self.vocab_.keys[c] for c in cols],
                            "columns": list(cols),
                            "coefficients": theta.tolist(),
                            "support": support,
                        }
                    )
                    found_sets.append(frozenset(cols))
        self.invariants_ = found
        logger.info("mined %d invariants", len(found))
        return self

    @staticmethod
    def describe(invariant: dict[str, Any]) -> str:
        """Readable form.

        >>> InvariantMiningDetector.describe({"keys": [11, 9], "coefficients": [1, -1]})
        '1*c[11] - 1*c[9] = 0'
        """
        out = ""
        for i, (k, c) in enumerate(zip(invariant["keys"], invariant["coefficients"], strict=True)):
            sign = ("-" if c < 0 else "") if i == 0 else (" - " if c < 0 else " + ")
            out += f"{sign}{abs(c)}*c[{k}]"
        return out + " = 0"

    def detect(self, sessions: Iterable[Sequence[int]]) -> Detection:
        """Flag sessions breaking an invariant (the reason names the first) or with unknown keys."""
        sessions = _sessions(sessions)
        distinct, inverse, _ = unique_sessions(sessions)
        x = _count_matrix(distinct, self.vocab_)
        broken = np.zeros((len(distinct), len(self.invariants_)), dtype=bool)
        for j, inv in enumerate(self.invariants_):
            broken[:, j] = (x[:, inv["columns"]] @ np.asarray(inv["coefficients"])) != 0
        n_broken = broken.sum(axis=1)
        names = np.array(
            ["invariant broken: " + self.describe(inv) for inv in self.invariants_] or [""],
            dtype=object,
        )
        reason = (
            names[np.argmax(broken, axis=1)] if self.invariants_ else np.full(len(distinct), "")
        )
        return _session_detection(
            sessions,
            self.vocab_,
            n_broken > 0,
            n_broken.astype(float),
            reason,
            0.5,
            distinct,
            inverse,
            {"rule": "any invariant broken", "n_invariants": len(self.invariants_)},
        )
