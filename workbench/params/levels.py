"""Confidence levels: the interval's quantile, the upper tail it leaves, column labels, and the
correction of a level for a decision over several entries.

An MSE can only be suspicious by being large, so a threshold at level ``L`` is the upper bound of
the two-sided ``L`` interval by default (``z = Phi^-1(1 - (1 - L) / 2)``: 2.326, 2.576 and 3.291 for
98 %, 99 % and 99.9 %), or the one-sided bound ``z = Phi^-1(L)``.

Several entries, one decision: an OpenStack VM instance has a few dozen scored entries, and if each
normal entry crosses the 99 % bound with probability about 0.5 %, one instance in ten gets a false
alarm somewhere. :func:`sidak_level` gives the per-entry level at which *an instance* of ``m``
independent normal entries stays inside with probability ``level`` (Sidak's correction,
``level ** (1 / m)``); equivalently, the instance's confidence is its worst entry's confidence raised
to the power ``m`` (:func:`instance_confidence`).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

__all__ = [
    "DEFAULT_LEVELS",
    "instance_confidence",
    "level_name",
    "sidak_level",
    "upper_tail",
    "z_value",
]

DEFAULT_LEVELS: tuple[float, ...] = (0.98, 0.99, 0.999)  #: the confidence levels the paper plots


def z_value(level: float, *, two_sided: bool = True) -> float:
    """Standard-normal quantile for a confidence ``level`` in (0, 1).

    >>> round(z_value(0.99), 3), round(z_value(0.99, two_sided=False), 3)
    (2.576, 2.326)
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level!r}")
    p = 1.0 - (1.0 - level) / 2.0 if two_sided else float(level)
    return NormalDist().inv_cdf(p)


def upper_tail(level: float, *, two_sided: bool = True) -> float:
    """Probability left above the threshold at ``level``: ``(1 - level) / 2`` two-sided.

    >>> round(upper_tail(0.99), 6), round(upper_tail(0.99, two_sided=False), 6)
    (0.005, 0.01)
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level!r}")
    return (1.0 - float(level)) / (2.0 if two_sided else 1.0)


def level_name(level: float) -> str:
    """Short label of a level for column names: 0.99 -> '99', 0.999 -> '99.9'.

    >>> [level_name(x) for x in DEFAULT_LEVELS]
    ['98', '99', '99.9']
    """
    return f"{round(level * 100, 6):g}"


def sidak_level(level: float, m: int | np.ndarray) -> float | np.ndarray:
    """Per-entry level so that ``m`` independent normal entries all stay inside with prob. ``level``.

    >>> round(sidak_level(0.99, 20), 6), sidak_level(0.99, 1)
    (0.999498, 0.99)
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"confidence level must lie in (0, 1), got {level!r}")
    m_arr = np.asarray(m, dtype=float)
    if np.any(m_arr < 1):
        raise ValueError("the number of entries m must be at least 1")
    out = float(level) ** (1.0 / m_arr)
    return float(out) if out.ndim == 0 else out


def instance_confidence(worst_confidence: float | np.ndarray, m: int | np.ndarray) -> np.ndarray:
    """Confidence of a group of ``m`` entries from its worst entry's: ``worst ** m`` (Sidak).

    The group is anomalous at ``level`` exactly when this exceeds ``level``, that is when its worst
    entry lies outside the :func:`sidak_level` interval.

    >>> instance_confidence([0.99, 0.9999], 20).round(4).tolist()
    [0.8179, 0.998]
    """
    c = np.clip(np.asarray(worst_confidence, dtype=float), 0.0, 1.0)
    return c ** np.asarray(m, dtype=float)
