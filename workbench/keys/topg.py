"""The top-g rule: verdicts on scored log-key sessions (docs/METHOD.md section 2).

Scores come first (:func:`workbench.keys.scores.score_sessions`: the rank of each actual key and its
probability), the decision second: :func:`detect` applies the top-g rule (an entry is normal when
its key is among the g most likely candidates, i.e. ``rank <= g``), and a session is anomalous when
any of its entries is. How g (and the END limit and the probability floor) are chosen on validation
sessions is :mod:`workbench.keys.selection`.

Reasons given for anomalous entries, in order of precedence:

- ``"unknown key"``: the key was never seen in training (anomalous whatever g is);
- ``"session ended unexpectedly"``: the END marker is not among the top g after the last key (or
  within its own limit ``end_g``, when one is set);
- ``"key not in top-g"``: any other entry whose key ranks below g;
- ``"key below probability floor"``: in the top g, but less probable than the optional floor.

An entry whose (window, key) a person confirmed normal (``KeyScores.confirmed``,
:mod:`workbench.keys.confirmed`) is normal whatever its rank and probability.

>>> from workbench.keys.scores import score_sessions
>>> from workbench.keys.vocabulary import KeyVocabulary
>>> vocab = KeyVocabulary([1, 2])
>>> def always_1_then_end(windows):  # candidates: END, key 1, key 2 (internal 2, 3, 4)
...     p = np.zeros((len(windows), vocab.size)); p[:, 3] = 0.7; p[:, 2] = 0.2; p[:, 4] = 0.1
...     return p
>>> scores = score_sessions([(1,), (1, 2), (1, 9)], vocab, 2, always_1_then_end)
>>> d = detect(scores, g=2)
>>> d.anomalous.tolist(), d.first_position.tolist(), d.reason.tolist()
([False, True, True], [-1, 1, 1], ['', 'key not in top-g', 'unknown key'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.keys.scores import KeyScores, segment_starts, session_max_rank

__all__ = ["REASONS", "RULE_OF_REASON", "Detection", "detect"]

REASONS: tuple[str, ...] = (
    "",
    "unknown key",
    "session ended unexpectedly",
    "key not in top-g",
    "key below probability floor",
)
_NORMAL, _UNKNOWN, _ENDED, _NOT_TOP, _IMPROBABLE = range(5)

RULE_OF_REASON: dict[str, str] = {
    "unknown key": "unknown key",
    "session ended unexpectedly": "session end",
    "key not in top-g": "top-g",
    "key below probability floor": "probability floor",
}
"""Each reason's rule, named as reports, reviews and ``evaluate`` name it."""


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
    code = _entry_codes(scores, g, min_probability, end_g)
    entry_anomalous = code != _NORMAL
    first_position, session_code = _first_anomalies(scores, entry_anomalous, code)
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
    return Detection(
        anomalous=first_position >= 0,
        first_position=first_position,
        reason=np.asarray(REASONS, dtype=object)[session_code],
        score=session_max_rank(scores).astype(np.float64),
        threshold=float(g),
        entries=entries,
        info={
            "g": int(g),
            "min_probability": float(min_probability),
            "end_g": None if end_g is None else int(end_g),
            "rule": "top-g",
        },
    )


def _entry_codes(
    scores: KeyScores, g: int, min_probability: float, end_g: int | None
) -> np.ndarray:
    """``(n_entries,)`` the index in :data:`REASONS` of each entry's verdict (0: normal)."""
    is_end = scores.is_end
    not_top = scores.rank > (g if end_g is None else np.where(is_end, end_g, g))
    improbable = scores.probability < min_probability
    if scores.confirmed is not None:  # a pair a person confirmed normal stays accepted
        not_top &= ~scores.confirmed
        improbable &= ~scores.confirmed
    entry_anomalous = scores.unknown | not_top | improbable
    code = np.full(len(scores.rank), _NORMAL, dtype=np.int8)
    code[improbable] = _IMPROBABLE
    code[not_top] = _NOT_TOP
    code[entry_anomalous & is_end] = _ENDED
    code[scores.unknown] = _UNKNOWN
    return code


def _first_anomalies(
    scores: KeyScores, entry_anomalous: np.ndarray, code: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per session: the position of its first anomalous entry (-1: none) and that entry's code."""
    n = scores.n_sessions
    starts = segment_starts(scores)
    big = np.iinfo(np.int64).max
    if n:
        first = np.minimum.reduceat(np.where(entry_anomalous, scores.position, big), starts)
    else:
        first = np.zeros(0, dtype=np.int64)
    anomalous = first != big
    first_position = np.where(anomalous, first, -1)
    first_entry = starts + np.maximum(first_position, 0)
    session_code = np.where(anomalous, code[first_entry] if n else code[:0], _NORMAL)
    return first_position, session_code
