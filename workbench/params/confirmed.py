"""Values a person confirmed normal for a key: kept, and expected beside the key's prediction.

A reported parameter anomaly flagged as a false positive says "this value of this step is
normal". The key's LSTM takes a few steps on it (:mod:`workbench.params.update`), but it reads only
the key's own previous vectors (other sessions' values of the same step, not the situation the
value came in), so the next session's entry of the same new behaviour comes after another history
and its prediction is as far off as before: a faster hypervisor's VM start, flagged on one VM, was
reported again on the next. So the key also keeps the confirmed vector as it is (``confirmed`` in
its record, original units, ``None`` where a dimension was missing), and scoring expects, per
dimension, whichever is nearer to the observed value: the prediction, or the nearest point of the
range of the values confirmed for that dimension (from the smallest to the largest: a person who
called a 0.1 s and a 4 s start normal would call a 2 s one normal too). The entry's MSE is its
distance to that expectation, judged by the key's own threshold at the level, as before. A value
near a confirmed one is normal; a value far from every confirmed one and from the prediction (a
slow start where fast ones were confirmed) is still reported. The records are saved with the model
and an undo restores the version before the flag, so its values go with it.

>>> info = {"names": ["elapsed"], "mean": [0.0], "std": [1.0], "logged": [False]}
>>> remember(info, [5.0]) and remember(info, [5.0])  # once only
False
>>> nearest(info, np.array([[0.0], [0.0]]), np.array([[4.5], [-1.0]])).tolist()
[[5.0], [0.0]]
>>> _ = remember(info, [9.0])
>>> nearest(info, np.zeros((3, 1)), np.array([[4.5], [7.0], [12.0]])).tolist()  # within 5 to 9
[[5.0], [7.0], [9.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from workbench.params.scaling import normalise

__all__ = ["MAX_CONFIRMED", "confirmed", "nearest", "remember"]

MAX_CONFIRMED = 256  # vectors kept per key at most (the oldest go first)


def remember(info: dict[str, Any], vector: Iterable[float]) -> bool:
    """Keep ``vector`` (original units) as a confirmed value of the key ``info`` describes; False
    when it was kept already. NaN (a missing dimension) is kept as ``None``."""
    v = [None if not math.isfinite(x) else float(x) for x in np.asarray(list(vector), float)]
    kept = info.setdefault("confirmed", [])
    if v in kept:
        return False
    kept.append(v)
    del kept[:-MAX_CONFIRMED]
    return True


def confirmed(info: dict[str, Any]) -> np.ndarray:
    """The key's confirmed vectors ``[m, d]`` in original units (NaN where missing)."""
    kept = info.get("confirmed") or []
    d = len(info["names"])
    return np.asarray([[np.nan if x is None else x for x in v] for v in kept], float).reshape(-1, d)


def nearest(info: dict[str, Any], pred: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The expected normalised values ``[n, d]``: per entry and dimension, the prediction ``pred``
    or the nearest point of the range of values confirmed for that dimension (from the smallest to
    the largest), whichever is nearer to the observed ``z`` (both normalised; ``pred`` itself when
    the key has no confirmed value)."""
    raw = confirmed(info)
    if not len(raw):
        return pred
    c = normalise(info, raw)  # [m, d]
    seen = np.isfinite(c).any(axis=0)
    lo = np.where(seen, np.nanmin(np.where(np.isfinite(c), c, np.inf), axis=0), np.nan)
    hi = np.where(seen, np.nanmax(np.where(np.isfinite(c), c, -np.inf), axis=0), np.nan)
    best = np.clip(z, lo, hi)  # NaN where the dimension has no confirmed value or z is missing
    with np.errstate(invalid="ignore"):
        closer = np.abs(z - best) < np.abs(z - pred)
    return np.where(closer, best, pred).astype(pred.dtype, copy=False)
