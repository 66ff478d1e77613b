"""Detection metrics: confusion counts, precision, recall, F1 and false-positive rate.

Sessions are counted with multiplicity: two identical sessions are two sessions (de-duplicating test
sessions inflates or deflates the figures, one of the leaks docs/METHOD.md section 6 warns about).

>>> c = confusion(normal_flagged=[False, False, True, False], abnormal_flagged=[True, True, False])
>>> c.tp, c.fp, c.fn, c.tn
(2, 1, 1, 3)
>>> round(c.precision, 3), round(c.recall, 3), round(c.f1, 3), c.fpr
(0.667, 0.667, 0.667, 0.25)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Confusion", "confusion", "from_labels", "scale_normal"]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


@dataclass(frozen=True)
class Confusion:
    """Session-level confusion counts (abnormal = positive)."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __post_init__(self) -> None:
        for name in ("tp", "fp", "fn", "tn"):
            assert getattr(self, name) >= 0, f"{name} must be >= 0"

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 0 when nothing is flagged."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN), the true-positive rate."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return _ratio(2 * p * r, p + r)

    @property
    def fpr(self) -> float:
        """FP / (FP + TN), the share of normal sessions flagged."""
        return _ratio(self.fp, self.fp + self.tn)

    def to_dict(self) -> dict[str, Any]:
        """Counts and rates as a JSON-able dict."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "fpr": self.fpr,
        }


def confusion(
    normal_flagged: Sequence[bool] | np.ndarray, abnormal_flagged: Sequence[bool] | np.ndarray
) -> Confusion:
    """Counts from the verdicts on the normal test sessions and on the abnormal ones."""
    normal = np.asarray(normal_flagged, dtype=bool)
    abnormal = np.asarray(abnormal_flagged, dtype=bool)
    return Confusion(
        tp=int(abnormal.sum()),
        fp=int(normal.sum()),
        fn=int((~abnormal).sum()),
        tn=int((~normal).sum()),
    )


def from_labels(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray
) -> Confusion:
    """Counts from per-session labels (1 abnormal, 0 normal) and predictions.

    >>> from_labels([1, 0, 1, 0], [1, 1, 0, 0]).to_dict()["fpr"]
    0.5
    """
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    return confusion(normal_flagged=p[~t], abnormal_flagged=p[t])


def scale_normal(c: Confusion, n_normal: int) -> Confusion:
    """An *estimate*: the counts had the normal test set held ``n_normal`` sessions at the same FPR.

    Used to put a figure measured on a sample of normal sessions next to a paper's figure on its
    full normal set (e.g. 553,366 HDFS sessions). TP and FN are unchanged.

    >>> est = scale_normal(Confusion(tp=90, fp=1, fn=10, tn=999), 10000)
    >>> est.fp, est.tn
    (10, 9990)
    """
    fp = round(c.fpr * n_normal)
    return Confusion(tp=c.tp, fp=fp, fn=c.fn, tn=n_normal - fp)
