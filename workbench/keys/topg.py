"""Anomaly detection on log-key sessions: scores first, the decision rule second.

A next-key model (the DeepLog LSTM or the N-gram baseline) gives, for every entry of a framed
session, the probability of every candidate next key. :func:`score_sessions` turns that into
per-entry *scores* (:class:`KeyScores`): the rank of the actual key (1 = the most likely candidate)
and the top candidates with their probabilities. The *decision* is separate: :func:`detect` applies
the top-g rule (an entry is normal when its key is among the g most likely candidates, i.e. ``rank
<= g``), and a session is anomalous when any of its entries is. :func:`select_g` picks g on
validation sessions; :func:`select_rule` picks g, a separate END limit and a probability floor
together, using synthetic anomalies (:func:`synthetic_anomalies`) as well.

Reasons given for anomalous entries, in order of precedence:

- ``"unknown key"``: the key was never seen in training (anomalous whatever g is);
- ``"session ended unexpectedly"``: the END marker is not among the top g after the last key (or
  within its own limit ``end_g``, when one is set);
- ``"key not in top-g"``: any other entry whose key ranks below g;
- ``"key below probability floor"``: in the top g, but less probable than the optional floor.

Every function works on distinct sessions and distinct windows internally and maps results back to
every input session, so repeated sessions are scored once but counted with multiplicity.

>>> import numpy as np
>>> from workbench.keys.windows import KeyVocabulary
>>> vocab = KeyVocabulary([1, 2])
>>> def always_1_then_end(windows):  # candidates: END, key 1, key 2 (internal 2, 3, 4)
...     p = np.zeros((len(windows), vocab.size)); p[:, 3] = 0.7; p[:, 2] = 0.2; p[:, 4] = 0.1
...     return p
>>> scores = score_sessions([(1,), (1, 2), (1, 9)], vocab, 2, always_1_then_end)
>>> scores.rank.tolist()
[1, 2, 1, 3, 2, 1, 4, 2]
>>> d = detect(scores, g=2)
>>> d.anomalous.tolist(), d.first_position.tolist(), d.reason.tolist()
([False, True, True], [-1, 1, 1], ['', 'key not in top-g', 'unknown key'])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.keys.windows import END_INDEX, UNKNOWN_INDEX, KeyVocabulary, Session, frame_sessions

__all__ = [
    "REASONS",
    "Detection",
    "GSelection",
    "KeyScores",
    "concat_scores",
    "detect",
    "score_sessions",
    "select_g",
    "select_rule",
    "session_max_rank",
    "session_min_probability",
    "synthetic_anomalies",
]

logger = logging.getLogger(__name__)

REASONS: tuple[str, ...] = (
    "",
    "unknown key",
    "session ended unexpectedly",
    "key not in top-g",
    "key below probability floor",
)
_NORMAL, _UNKNOWN, _ENDED, _NOT_TOP, _IMPROBABLE = range(5)

ProbabilityFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class KeyScores:
    """Per-entry scores of a list of sessions (every session, with multiplicity).

    Entries are ordered by session, then position; each session has ``len(session) + 1`` entries,
    the last one predicting END. Candidate lists are stored once per distinct history window.
    """

    n_sessions: int
    session_length: np.ndarray  # (n_sessions,) number of keys of each session
    session: np.ndarray  # (n_entries,) index of the session in the input
    position: np.ndarray  # (n_entries,) position in the session; == length for the END entry
    key: np.ndarray  # (n_entries,) external key id; :data:`workbench.keyids.END` for the END entry
    rank: np.ndarray  # (n_entries,) 1-based rank of the actual key; n_candidates + 1 if impossible
    probability: np.ndarray  # (n_entries,) model probability of the actual key
    unknown: np.ndarray  # (n_entries,) bool, key not in the training vocabulary
    window: np.ndarray  # (n_entries,) row of the entry's history window in the candidate tables
    top_keys: np.ndarray  # (n_windows, k) external ids of the k most likely next keys
    top_probs: np.ndarray  # (n_windows, k) their probabilities
    n_candidates: int  # number of keys that can be predicted (known keys + END)

    @property
    def is_end(self) -> np.ndarray:
        """(n_entries,) bool: the entry predicts the end of its session."""
        return self.position == self.session_length[self.session]

    def candidates(self, entry: int) -> list[tuple[int, float]]:
        """The top candidates ``(key, probability)`` of one entry, most likely first."""
        w = self.window[entry]
        return [
            (int(k), float(p)) for k, p in zip(self.top_keys[w], self.top_probs[w], strict=True)
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per entry, with the candidate lists (meant for small inputs and the UI)."""
        frame = pd.DataFrame(
            {
                "session": self.session,
                "position": self.position,
                "key": self.key,
                "rank": self.rank,
                "probability": self.probability,
                "unknown": self.unknown,
            }
        )
        frame["candidates"] = [self.top_keys[w].tolist() for w in self.window]
        frame["candidate_probs"] = [np.round(self.top_probs[w], 6).tolist() for w in self.window]
        return frame


def score_sessions(
    sessions: Sequence[Session],
    vocab: KeyVocabulary,
    window: int,
    predict_proba: ProbabilityFn,
    *,
    top_k: int = 10,
    count_columns: int = 0,
) -> KeyScores:
    """Score every entry of ``sessions`` with a next-key probability function.

    Parameters
    ----------
    sessions
        Sessions of external key ids.
    vocab
        The model's vocabulary; keys outside it are unknown.
    window
        History length ``h``.
    predict_proba
        ``(n, h) int64 internal windows -> (n, vocab.size) probabilities``; non-candidate columns
        (PAD, UNKNOWN, free slots) are ignored.
    top_k
        How many candidates to keep per window.
    count_columns
        With ``c > 0`` every row handed to ``predict_proba`` also carries the session's key counts
        so far (``(n, h + c)``, see :func:`workbench.keys.windows.frame_sessions`).

    Notes
    -----
    Rank is ``1 + `` the number of candidates strictly more probable than the actual key, so ties
    count in the key's favour; a key of probability 0 ranks after every candidate
    (``n_candidates + 1``), so it is anomalous for every g. Each distinct session and each distinct
    window is evaluated once.
    """
    from workbench.keys.windows import unique_rows, unique_sessions

    distinct, inverse, _ = unique_sessions(sessions)
    encoded = [vocab.encode(s) for s in distinct]
    framed = frame_sessions(encoded, window, count_columns=count_columns)
    mask = vocab.candidate_mask()
    n_candidates = int(mask.sum())
    k = max(1, min(top_k, n_candidates))

    # Distinct windows, scored once.
    if len(framed):
        uniq_windows, win_index = unique_rows(framed.windows)
    else:
        uniq_windows, win_index = framed.windows, np.zeros(0, dtype=np.int64)
    probs = (
        np.asarray(predict_proba(uniq_windows), dtype=np.float64)
        if len(uniq_windows)
        else (np.zeros((0, vocab.size)))
    )
    assert probs.shape == (len(uniq_windows), vocab.size), f"bad probability shape {probs.shape}"
    probs = np.where(mask[None, :], probs, -1.0)  # non-candidates rank after everything

    # Rank of the actual key for each distinct-session entry.
    targets = framed.targets
    unknown_d = targets == UNKNOWN_INDEX
    p_actual = probs[win_index, np.where(unknown_d, END_INDEX, targets)]
    p_actual = np.where(unknown_d, 0.0, p_actual)
    rank_d = np.ones(len(targets), dtype=np.int64)
    for start in range(0, len(targets), 65536):  # chunks bound memory on big inputs
        sl = slice(start, start + 65536)
        rank_d[sl] += (probs[win_index[sl]] > p_actual[sl, None]).sum(axis=1)
    rank_d = np.where(p_actual <= 0.0, n_candidates + 1, rank_d)

    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top_probs = np.take_along_axis(probs, order, axis=1).astype(np.float32)
    top_keys = vocab.decode(order)

    # Map distinct-session entries back to every input session.
    lengths_d = np.fromiter((len(s) for s in distinct), dtype=np.int64, count=len(distinct))
    n_entries_d = lengths_d + 1
    offsets_d = np.concatenate([[0], np.cumsum(n_entries_d)])
    n_entries = n_entries_d[inverse]
    total = int(n_entries.sum())
    session = np.repeat(np.arange(len(sessions)), n_entries)
    position = np.arange(total) - np.repeat(np.cumsum(n_entries) - n_entries, n_entries)
    gather = offsets_d[inverse][session] + position
    external_targets = vocab.decode(targets)
    keys_d = np.where(unknown_d, 0, external_targets)
    if unknown_d.any():  # recover the external id of unknown keys
        flat_keys = np.concatenate([np.asarray(s, dtype=np.int64) for s in distinct])
        key_pos = (
            framed.position[unknown_d]
            + (offsets_d[:-1] - np.arange(len(distinct)))[framed.session[unknown_d]]
        )
        keys_d[unknown_d] = flat_keys[key_pos]
    return KeyScores(
        n_sessions=len(sessions),
        session_length=lengths_d[inverse],
        session=session,
        position=position,
        key=keys_d[gather],
        rank=rank_d[gather],
        probability=np.maximum(p_actual, 0.0).astype(np.float32)[gather],
        unknown=unknown_d[gather],
        window=win_index[gather],
        top_keys=top_keys,
        top_probs=np.maximum(top_probs, 0.0),
        n_candidates=n_candidates,
    )


def concat_scores(parts: Sequence[KeyScores]) -> KeyScores:
    """One :class:`KeyScores` of the sessions of several (in order), e.g. of validation sessions
    scored by different cross-fitted models. ``n_candidates`` is the largest of the parts.

    >>> from workbench.keys.windows import KeyVocabulary
    >>> vocab = KeyVocabulary([1, 2])
    >>> p = lambda w: np.full((len(w), vocab.size), 0.25)
    >>> a, b = (score_sessions(s, vocab, 2, p) for s in ([(1,)], [(2, 1), (9,)]))
    >>> both = concat_scores([a, b])
    >>> both.n_sessions, both.session.tolist(), both.unknown.tolist()
    (3, [0, 0, 1, 1, 1, 2, 2], [False, False, False, False, False, True, False])
    """
    if not parts:
        raise ValueError("nothing to concatenate")
    session_offsets = np.cumsum([0] + [p.n_sessions for p in parts[:-1]])
    window_offsets = np.cumsum([0] + [len(p.top_keys) for p in parts[:-1]])
    k = min(p.top_keys.shape[1] for p in parts)
    return KeyScores(
        n_sessions=sum(p.n_sessions for p in parts),
        session_length=np.concatenate([p.session_length for p in parts]),
        session=np.concatenate(
            [p.session + o for p, o in zip(parts, session_offsets, strict=True)]
        ),
        position=np.concatenate([p.position for p in parts]),
        key=np.concatenate([p.key for p in parts]),
        rank=np.concatenate([p.rank for p in parts]),
        probability=np.concatenate([p.probability for p in parts]),
        unknown=np.concatenate([p.unknown for p in parts]),
        window=np.concatenate([p.window + o for p, o in zip(parts, window_offsets, strict=True)]),
        top_keys=np.concatenate([p.top_keys[:, :k] for p in parts]),
        top_probs=np.concatenate([p.top_probs[:, :k] for p in parts]),
        n_candidates=max(p.n_candidates for p in parts),
    )


def _segment_starts(scores: KeyScores) -> np.ndarray:
    n_entries = scores.session_length + 1
    return np.concatenate([[0], np.cumsum(n_entries)[:-1]])


def session_max_rank(scores: KeyScores) -> np.ndarray:
    """(n_sessions,) the worst rank in each session; unknown keys count as ``n_candidates + 1``.

    A session is normal under the top-g rule exactly when its max rank is at most g.
    """
    if scores.n_sessions == 0:
        return np.zeros(0, dtype=np.int64)
    rank = np.where(scores.unknown, scores.n_candidates + 1, scores.rank)
    return np.maximum.reduceat(rank, _segment_starts(scores))


@dataclass
class Detection:
    """Verdicts of one detector on a list of sessions (every session, with multiplicity).

    ``score`` is the detector's raw session score (larger = more anomalous: the worst rank for the
    top-g rule, the residual for PCA, ...) and ``threshold`` the decision threshold on it, so a UI
    can show both and move the threshold. ``entries`` holds per-entry verdicts for detectors that
    judge entries (the next-key models); count-vector detectors leave it ``None`` and report
    ``first_position = -1``.
    """

    anomalous: np.ndarray  # (n_sessions,) bool
    first_position: np.ndarray  # (n_sessions,) int, first anomalous entry; -1 when normal/unknown
    reason: np.ndarray  # (n_sessions,) str, "" when normal
    score: np.ndarray  # (n_sessions,) float
    threshold: float
    entries: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_anomalous(self) -> int:
        """Number of anomalous sessions."""
        return int(self.anomalous.sum())

    def sessions_frame(self) -> pd.DataFrame:
        """One row per session: ``anomalous``, ``first_position``, ``reason``, ``score``."""
        return pd.DataFrame(
            {
                "anomalous": self.anomalous,
                "first_position": self.first_position,
                "reason": self.reason,
                "score": self.score,
            }
        )


def session_min_probability(scores: KeyScores) -> np.ndarray:
    """(n_sessions,) the lowest probability of an actual key in each session (0 if unknown)."""
    if scores.n_sessions == 0:
        return np.zeros(0, dtype=np.float64)
    p = np.where(scores.unknown, 0.0, scores.probability.astype(np.float64))
    return np.minimum.reduceat(p, _segment_starts(scores))


def detect(
    scores: KeyScores, g: int, min_probability: float = 0.0, *, end_g: int | None = None
) -> Detection:
    """Apply the top-g rule to per-entry scores.

    An entry is normal when its key is known and among the g most likely candidates
    (``rank <= g``); with ``min_probability > 0`` a key must in addition have at least that
    probability (a candidate the model finds negligible is no candidate, however few keys there are;
    0 gives the paper's rule). With ``end_g`` the END entry (the session stops here) is judged by
    its own rank limit instead of g. A session is anomalous when any entry is, and reports its first
    anomalous position and that entry's reason.

    Parameters
    ----------
    scores
        From :func:`score_sessions` (or ``KeyModel.score``).
    g
        The number of candidates accepted, ``g >= 1``.
    min_probability
        Probability floor, 0 for none.
    end_g
        Rank limit of the END entries; None: g.
    """
    if g < 1 or (end_g is not None and end_g < 1):
        raise ValueError(f"g and end_g must be >= 1, got {g}, {end_g}")
    if not 0.0 <= min_probability < 1.0:
        raise ValueError(f"min_probability must be in [0, 1), got {min_probability}")
    is_end = scores.is_end
    not_top = scores.rank > (g if end_g is None else np.where(is_end, end_g, g))
    improbable = scores.probability < min_probability
    entry_anomalous = scores.unknown | not_top | improbable
    code = np.full(len(scores.rank), _NORMAL, dtype=np.int8)
    code[improbable] = _IMPROBABLE
    code[not_top] = _NOT_TOP
    code[entry_anomalous & is_end] = _ENDED
    code[scores.unknown] = _UNKNOWN

    n = scores.n_sessions
    starts = _segment_starts(scores)
    big = np.iinfo(np.int64).max
    if n:
        first = np.minimum.reduceat(np.where(entry_anomalous, scores.position, big), starts)
    else:
        first = np.zeros(0, dtype=np.int64)
    anomalous = first != big
    first_position = np.where(anomalous, first, -1)
    # The reason of the first anomalous entry of each session.
    first_entry = starts + np.maximum(first_position, 0)
    session_code = np.where(anomalous, code[first_entry] if n else code[:0], _NORMAL)
    reasons = np.asarray(REASONS, dtype=object)
    entries = pd.DataFrame(
        {
            "session": scores.session,
            "position": scores.position,
            "key": scores.key,
            "rank": scores.rank,
            "probability": scores.probability,
            "anomalous": entry_anomalous,
            "reason": pd.Categorical.from_codes(code, categories=list(REASONS)),
        }
    )
    max_rank = session_max_rank(scores)
    return Detection(
        anomalous=anomalous,
        first_position=first_position,
        reason=reasons[session_code],
        score=max_rank.astype(np.float64),
        threshold=float(g),
        entries=entries,
        info={
            "g": int(g),
            "min_probability": float(min_probability),
            "end_g": None if end_g is None else int(end_g),
            "rule": "top-g",
        },
    )


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
"""Candidate probability floors tried by :func:`select_g` (largest first)."""


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
    starts = _segment_starts(scores)
    rank = np.where(scores.unknown, scores.n_candidates + 1, scores.rank)
    is_end = scores.is_end
    body = np.maximum.reduceat(np.where(is_end, 0, rank), starts)
    return body, rank[is_end], session_min_probability(scores)


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
    limit = base + target_fpr + 1e-12
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
    table = validation_fpr_by_g(scores, weights)
    floor_table = {fl: float(w[(body > g) | (end > e) | (min_p < fl)].sum()) for fl in floors}
    rule = (
        f"g, END limit and floor: most synthetic anomalies flagged with validation FPR <= "
        f"FPR(g={n}) + {target_fpr:g}"
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
    how often new sessions are expected to be of one (see :func:`workbench.keys.windows.split_novel`).

    >>> import numpy as np
    >>> from workbench.keys.windows import KeyVocabulary
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
    tol = 1e-12
    largest = max(table)
    if fixed is not None:
        if fixed < 1:
            raise ValueError(f"g must be >= 1, got {fixed}")
        g, method, rule = fixed, "fixed", "g set by the user"
    else:
        if scores.n_sessions == 0:
            raise ValueError("no validation sessions to choose g from; set g or keep a split")
        base = table[largest]
        g = min(k for k, fpr in table.items() if fpr <= base + target_fpr + tol)
        method = "validation"
        rule = f"g: smallest g with validation FPR <= FPR(g={largest}) + {target_fpr:g}"
    floor_table: dict[float, float] = {}
    if scores.n_sessions:
        max_rank, min_p = session_max_rank(scores), session_min_probability(scores)
        w = _session_weights(scores, weights)
        for f in sorted(set(floors) | {0.0}):
            floor_table[f] = float(w[(max_rank > g) | (min_p < f)].sum())
    if floor is None:
        if not floor_table:
            raise ValueError("no validation sessions to choose the probability floor from")
        if fixed is None:
            limit = max(table[largest] + target_fpr, floor_table[0.0]) + tol
            budget = f"FPR(g={largest}) + {target_fpr:g}"
        else:
            limit = floor_table[0.0] + target_fpr + tol
            budget = f"FPR(g, no floor) + {target_fpr:g}"
        chosen_floor = max(f for f, fpr in floor_table.items() if fpr <= limit)
        rule += f"; floor: largest of {list(floors)} with FPR(g, floor) <= {budget}"
        method = "validation" if fixed is None else "fixed g, floor on validation"
    else:
        chosen_floor = float(floor)
    logger.info(
        "g = %d, floor = %g on %d validation sessions (%s)",
        g,
        chosen_floor,
        scores.n_sessions,
        rule,
    )
    return GSelection(
        g,
        method,
        rule,
        None if method == "fixed" else target_fpr,
        scores.n_sessions,
        table,
        chosen_floor,
        floor_table,
    )
