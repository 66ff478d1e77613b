"""Choosing g, the END rank limit and the probability floor on validation sessions.

Never on test data. :func:`select_g` picks the most sensitive g (and optionally a probability floor)
whose false-positive rate on normal validation sessions stays within a budget; :func:`select_rule`
picks g, a separate END limit and a floor together, as the rule that flags the most synthetic
anomalies (:func:`synthetic_anomalies`) within that budget, the floor's budget being at least one
validation session. :class:`GSelection` records the choice
and the validation tables behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.keys.scores import (
    KeyScores,
    segment_starts,
    session_max_rank,
    session_min_probability,
)
from workbench.keys.vocabulary import Session

__all__ = [
    "PROBABILITY_FLOORS",
    "GSelection",
    "one_session_floor",
    "select_g",
    "select_rule",
    "synthetic_anomalies",
    "validation_fpr_by_g",
]

logger = logging.getLogger(__name__)


PROBABILITY_FLOORS: tuple[float, ...] = (
    0.0,
    1e-6,
    2e-6,
    5e-6,
    1e-5,
    2e-5,
    5e-5,
    1e-4,
    2e-4,
    5e-4,
    1e-3,
    2e-3,
    5e-3,
    1e-2,
    2e-2,
)
"""Candidate probability floors tried by :func:`select_g` and :func:`select_rule`."""


@dataclass(frozen=True)
class GSelection:
    """How g (and the probability floor) were chosen, with the validation FPR behind the choice."""

    g: int
    method: str  # "validation", "fixed" or "default"
    rule: str
    target_fpr: float | None
    n_validation_sessions: int
    validation_fpr: dict[int, float]  # g -> fraction of validation sessions flagged (no floor)
    min_probability: float = 0.0
    floor_fpr: dict[float, float] = field(default_factory=dict)  # floor -> FPR at the chosen g
    end_g: int | None = None  # rank limit of the END entry; None: the same as g
    estimated_fpr: float | None = None  # validation (weighted) FPR of the chosen rule
    synthetic_recall: float | None = None  # share of synthetic anomalies the chosen rule flags

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (g and floor keys become strings)."""
        return {
            "g": self.g,
            "min_probability": self.min_probability,
            "method": self.method,
            "rule": self.rule,
            "target_fpr": self.target_fpr,
            "n_validation_sessions": self.n_validation_sessions,
            "validation_fpr": {str(k): v for k, v in self.validation_fpr.items()},
            "floor_fpr": {repr(k): v for k, v in self.floor_fpr.items()},
            "end_g": self.end_g,
            "estimated_fpr": self.estimated_fpr,
            "synthetic_recall": self.synthetic_recall,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GSelection:
        """Inverse of :meth:`to_dict`."""
        return cls(
            g=int(d["g"]),
            method=str(d["method"]),
            rule=str(d["rule"]),
            target_fpr=None if d["target_fpr"] is None else float(d["target_fpr"]),
            n_validation_sessions=int(d["n_validation_sessions"]),
            validation_fpr={int(k): float(v) for k, v in d["validation_fpr"].items()},
            min_probability=float(d.get("min_probability", 0.0)),
            floor_fpr={float(k): float(v) for k, v in d.get("floor_fpr", {}).items()},
            end_g=None if d.get("end_g") is None else int(d["end_g"]),
            estimated_fpr=None if d.get("estimated_fpr") is None else float(d["estimated_fpr"]),
            synthetic_recall=(
                None if d.get("synthetic_recall") is None else float(d["synthetic_recall"])
            ),
        )


def _session_weights(scores: KeyScores, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.full(scores.n_sessions, 1.0 / max(scores.n_sessions, 1))
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (scores.n_sessions,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be (n_sessions,), non-negative, not all zero")
    return w / w.sum()


def validation_fpr_by_g(scores: KeyScores, weights: np.ndarray | None = None) -> dict[int, float]:
    """Fraction of (normal) sessions the top-g rule flags, for g = 1 .. n_candidates.

    With ``weights`` (one per session) the fraction is weighted.
    """
    max_rank = session_max_rank(scores)
    w = _session_weights(scores, weights)
    return {g: float(w[max_rank > g].sum()) for g in range(1, scores.n_candidates + 1)}


def synthetic_anomalies(
    sessions: Sequence[Session], known: set[Session], seed: int = 0
) -> list[Session]:
    """Anomalous variants of normal sessions, for choosing a rule: the four edits of a sequence,
    each applied once at random to each session: cut short, one key dropped, one key moved
    elsewhere, and one key of the sessions' vocabulary inserted (work that stops, skips a step,
    happens out of order, or an extra event such as an error or a step of another operation).
    Variants equal to a ``known`` normal sequence are left out.

    >>> synthetic_anomalies([(1, 2, 3, 4)], known={(1, 2, 3, 4), (1, 3, 4)}, seed=2)
    [(1, 2, 3), (2, 1, 3, 4), (1, 2, 2, 3, 4)]
    """
    rng = np.random.default_rng(seed)
    vocabulary = np.array(sorted({k for s in sessions for k in s}), dtype=np.int64)
    out: list[Session] = []
    for s in sessions:
        n = len(s)
        if n < 2:
            continue
        cut = s[: int(rng.integers(1, n))]
        i = int(rng.integers(n))
        dropped = s[:i] + s[i + 1 :]
        j = int(rng.integers(n - 1))
        moved = (*dropped[:j], s[i], *dropped[j:])
        k = int(rng.integers(n + 1))
        inserted = (*s[:k], int(rng.choice(vocabulary)), *s[k:])
        out.extend(v for v in (cut, dropped, moved, inserted) if v not in known and v != s)
    return out


def _end_parts(scores: KeyScores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per session: worst rank before END, rank of END, lowest probability (unknown: 0)."""
    starts = segment_starts(scores)
    rank = np.where(scores.unknown, scores.n_candidates + 1, scores.rank)
    is_end = scores.is_end
    body = np.maximum.reduceat(np.where(is_end, 0, rank), starts)
    return body, rank[is_end], session_min_probability(scores)


def _best_rule(
    normal: tuple[np.ndarray, np.ndarray, np.ndarray],
    w: np.ndarray,
    anomalies: tuple[np.ndarray, np.ndarray, np.ndarray],
    n: int,
    floors: Sequence[float],
    limit: float,
) -> tuple[float, int, int, float, float]:
    """Search every (g, END limit, floor): the rule with validation FPR at most ``limit`` that
    flags the most synthetic anomalies; ties go to the smaller g, then the smaller END limit,
    then the larger floor. Returns ``(recall, g, end_g, floor, fpr)``."""
    body, end, min_p = normal
    a_body, a_end, a_min_p = anomalies
    best: tuple | None = None
    for g in range(1, n + 1):
        for e in range(1, n + 1):
            for f in sorted(set(floors) | {0.0}, reverse=True):
                fpr = float(w[(body > g) | (end > e) | (min_p < f)].sum())
                if fpr > limit:
                    continue
                recall = float(((a_body > g) | (a_end > e) | (a_min_p < f)).mean())
                key = (recall, -g, -e, f)
                if best is None or key > best[0]:
                    best = (key, g, e, f, fpr)
    assert best is not None, "g = every candidate without a floor is always within the budget"
    (recall, *_), g, e, f, fpr = best
    return recall, g, e, f, fpr


def select_rule(
    scores: KeyScores,
    anomalies: KeyScores,
    *,
    target_fpr: float,
    weights: np.ndarray | None = None,
    floors: Sequence[float] = PROBABILITY_FLOORS,
) -> GSelection:
    """Choose g, the END rank limit and the probability floor together on validation data.

    Never call this on test data. ``scores`` are of normal validation sessions (``weights`` as in
    :func:`select_g`), ``anomalies`` of synthetic anomalous sessions made from normal training
    sessions (:func:`synthetic_anomalies`). Among the rules whose validation false-positive rate is
    at most ``FPR(g = every candidate) + target_fpr``, the one flagging the most synthetic anomalies
    is kept; ties go to the smaller g, then the smaller END limit, then the larger floor.

    The floor's budget is at least one validation session (:func:`one_session_floor`), so a small
    validation set can still choose a floor.

    A separate END limit matters: the last key of a session that stops early is often a plausible
    next key, and only the rank of END says that the session should not stop there; a g large
    enough for the rare orderings of normal sessions lets almost every early stop through.
    """
    if scores.n_sessions == 0 or anomalies.n_sessions == 0:
        raise ValueError("need normal validation sessions and synthetic anomalies")
    n = scores.n_candidates
    w = _session_weights(scores, weights)
    body, end, min_p = _end_parts(scores)
    a_body, a_end, a_min_p = _end_parts(anomalies)
    base = float(w[body > n].sum() + w[(body <= n) & (end > n)].sum())
    recall, g, e, f, fpr = _best_rule(
        (body, end, min_p), w, (a_body, a_end, a_min_p), n, floors, base + target_fpr + 1e-12
    )
    table = validation_fpr_by_g(scores, weights)
    floor_table = {
        fl: float(w[(body > g) | (end > e) | (min_p < fl)].sum())
        for fl in sorted(set(floors) | {0.0})
    }
    if (raised := one_session_floor(floor_table, f)) != f:
        f, fpr = raised, floor_table[raised]
        recall = float(((a_body > g) | (a_end > e) | (a_min_p < f)).mean())
    rule = (
        f"g, END limit and floor: most synthetic anomalies flagged with validation FPR <= "
        f"FPR(g={n}) + {target_fpr:g}; the floor may flag one validation session"
    )
    logger.info("g = %d, END limit = %d, floor = %g (%s)", g, e, f, rule)
    return GSelection(
        g,
        "validation",
        rule,
        target_fpr,
        scores.n_sessions,
        table,
        f,
        floor_table,
        end_g=e,
        estimated_fpr=fpr,
        synthetic_recall=recall,
    )


def one_session_floor(floor_table: dict[float, float], floor: float) -> float:
    """The largest floor whose validation FPR (at the chosen g and END limit) is at most one step
    of the table, the smallest non-zero rate, or the rate of ``floor`` when that is larger: a
    budget below one validation session's weight would forbid any floor on a small validation
    set, where one flagged session already costs more than the target rate.

    >>> one_session_floor({0.0: 0.0, 1e-4: 0.0, 1e-3: 0.02, 1e-2: 0.04}, 0.0)
    0.001
    >>> one_session_floor({0.0: 0.01, 1e-4: 0.01, 1e-3: 0.03}, 1e-4)
    0.0001
    """
    step = min((v for v in floor_table.values() if v > 0), default=0.0)
    limit = max(step, floor_table[floor]) + _TOLERANCE
    return max(f for f, v in floor_table.items() if v <= limit)


def select_g(
    scores: KeyScores,
    *,
    target_fpr: float = 0.002,
    fixed: int | None = None,
    floor: float | None = 0.0,
    floors: Sequence[float] = PROBABILITY_FLOORS,
    weights: np.ndarray | None = None,
) -> GSelection:
    """Choose g (and optionally a probability floor) on scores of *normal validation* sessions.

    Never call this on test data. Rule, in two steps:

    1. g is the smallest g whose validation false-positive rate is at most ``base + target_fpr``,
       where ``base`` is the rate at the largest g (sessions flagged whatever g is, e.g. for an
       unknown key). A small g flags more: this is the most sensitive g whose false alarms on
       normal validation sessions stay within the target.
    2. With ``floor=None`` the probability floor is chosen within the same budget: the largest
       value of ``floors`` whose validation rate at the chosen g (rank > g or probability below the
       floor) is still at most ``base + target_fpr``, so the two rules together stay within the
       target. A number keeps that floor (0: the paper's pure top-g rule).

    With ``fixed`` the user's g is kept and the tables are only reported (a floor chosen on
    validation then gets ``target_fpr`` over the rate at that g). ``weights`` (one per validation
    session) turn the rates into weighted ones, e.g. to weigh sessions of never-seen sequences by
    how often new sessions are expected to be of one (see :func:`workbench.keys.splits.split_novel`).

    >>> import numpy as np
    >>> from workbench.keys.scores import score_sessions
    >>> from workbench.keys.vocabulary import KeyVocabulary
    >>> vocab = KeyVocabulary([1, 2, 3])
    >>> def p(w):
    ...     out = np.zeros((len(w), vocab.size)); out[:, 3:6] = [0.5, 0.15, 0.05]; out[:, 2] = 0.3
    ...     return out
    >>> s = score_sessions([(1,)] * 98 + [(1, 2)] + [(3,)], vocab, 3, p)
    >>> sel = select_g(s, target_fpr=0.01)
    >>> sel.g, sel.validation_fpr[2], sel.validation_fpr[3]
    (3, 0.02, 0.01)
    >>> select_g(s, target_fpr=0.01, floor=None).min_probability
    0.02
    """
    table = validation_fpr_by_g(scores, weights)
    if not table:
        raise ValueError("cannot select g without candidates")
    g, method, rule = _choose_g(scores, table, target_fpr, fixed)
    floor_table = _floor_table(scores, weights, g, floors)
    if floor is None:
        chosen_floor, budget = _choose_floor(table, floor_table, target_fpr, fixed)
        rule += f"; floor: largest of {list(floors)} with FPR(g, floor) <= {budget}"
        method = "validation" if fixed is None else "fixed g, floor on validation"
    else:
        chosen_floor = float(floor)
    n = scores.n_sessions
    logger.info("g = %d, floor = %g on %d validation sessions (%s)", g, chosen_floor, n, rule)
    budget = None if method == "fixed" else target_fpr
    return GSelection(g, method, rule, budget, n, table, chosen_floor, floor_table)


def _floor_table(
    scores: KeyScores, weights: np.ndarray | None, g: int, floors: Sequence[float]
) -> dict[float, float]:
    """Validation FPR at ``g`` with each probability floor (empty without validation sessions)."""
    if not scores.n_sessions:
        return {}
    max_rank, min_p = session_max_rank(scores), session_min_probability(scores)
    w = _session_weights(scores, weights)
    return {f: float(w[(max_rank > g) | (min_p < f)].sum()) for f in sorted(set(floors) | {0.0})}


_TOLERANCE = 1e-12  # rates equal up to rounding are within the budget


def _choose_g(
    scores: KeyScores, table: dict[int, float], target_fpr: float, fixed: int | None
) -> tuple[int, str, str]:
    """Step 1 of :func:`select_g`: ``(g, method, rule)``."""
    largest = max(table)
    if fixed is not None:
        if fixed < 1:
            raise ValueError(f"g must be >= 1, got {fixed}")
        return fixed, "fixed", "g set by the user"
    if scores.n_sessions == 0:
        raise ValueError("no validation sessions to choose g from; set g or keep a split")
    base = table[largest]
    g = min(k for k, fpr in table.items() if fpr <= base + target_fpr + _TOLERANCE)
    rule = f"g: smallest g with validation FPR <= FPR(g={largest}) + {target_fpr:g}"
    return g, "validation", rule


def _choose_floor(
    table: dict[int, float],
    floor_table: dict[float, float],
    target_fpr: float,
    fixed: int | None,
) -> tuple[float, str]:
    """Step 2 of :func:`select_g`: the largest floor within the budget, and the budget's text."""
    if not floor_table:
        raise ValueError("no validation sessions to choose the probability floor from")
    largest = max(table)
    if fixed is None:
        limit = max(table[largest] + target_fpr, floor_table[0.0]) + _TOLERANCE
        budget = f"FPR(g={largest}) + {target_fpr:g}"
    else:
        limit = floor_table[0.0] + target_fpr + _TOLERANCE
        budget = f"FPR(g, no floor) + {target_fpr:g}"
    return max(f for f, fpr in floor_table.items() if fpr <= limit), budget
