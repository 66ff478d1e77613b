"""The default threshold rule: a key's empirical (conformal) quantile with a tail pooled over keys.

Finite samples: the default rule of the parameter model is :class:`ConformalThreshold`, not the
Gaussian (:mod:`workbench.params.gaussian`). A key often has only 15-50 validation MSEs; a Gaussian fitted to so few values, at a 99 %
level, extrapolates from the middle of the sample into a tail it has never seen, and on real logs
(OpenStack) its bound was crossed by 5 % of the entries of another normal log. The conformal rule
uses a key's own validation MSEs where they are enough: the upper ``tail`` quantile of ``n`` values
is the ``ceil((n + 1) * (1 - tail))``-th smallest (the finite-sample correction that makes a new
normal value cross it with probability at most ``tail``). Where they are not (``(n + 1) * tail <
1``: at 99 % two-sided, fewer than 199 values), the threshold is at least the key's largest
validation MSE and extrapolates beyond it with a Pareto tail whose scale is *pooled over keys*
(every key's gap between its two largest validation MSEs, on the log scale: a pooled Hill
estimate). :func:`pooled_tail` builds that pool; ``bench/openstack_params.py`` prints both rules.

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from workbench.params.gaussian import MIN_STD
from workbench.params.levels import DEFAULT_LEVELS, upper_tail

__all__ = ["ConformalThreshold", "PooledTail", "pooled_tail"]

_PRIOR_BETA = 1.0  # pseudo-observation of the pooled tail scale (one e-fold per excess)


def _log_scores(values: np.ndarray, offset: float) -> np.ndarray:
    return np.log(np.maximum(values, 0.0) + offset)


class PooledTail:
    """How far beyond a key's largest validation score a normal score can go, pooled over keys.

    Beyond the largest of ``n`` normal scores the tail is modelled as Pareto (exponential on the log
    scale): ``P(X > x) = exp(-(log x - log max) / beta) / (n + 1)``. ``beta`` is the pooled Hill
    estimate: the mean over keys of ``log(largest / second largest)`` (each key counts once, its
    top spacing), with one pseudo-key at ``beta = 1`` so that one or two keys cannot set it alone.

    >>> tail = PooledTail(beta=0.5)
    >>> round(tail.excess(0.001, 99), 4), round(float(tail.sf(tail.excess(0.001, 99), 99)), 6)
    (1.1513, 0.001)
    """

    def __init__(self, beta: float = _PRIOR_BETA, keys: int = 0) -> None:
        if not (beta > 0 and math.isfinite(beta)):
            raise ValueError(f"beta must be a positive number, got {beta!r}")
        self.beta, self.keys = float(beta), int(keys)

    def excess(self, tail: float, n: int) -> float:
        """Log-scale distance above the maximum of ``n`` scores exceeded with probability ``tail``."""
        return self.beta * max(0.0, math.log(1.0 / ((n + 1) * tail)))

    def sf(self, excess: np.ndarray, n: int) -> np.ndarray:
        """``P(X > max * e^excess)`` for excesses >= 0."""
        with np.errstate(over="ignore"):
            return np.exp(-np.maximum(np.asarray(excess, dtype=float), 0.0) / self.beta) / (n + 1)

    def to_state(self) -> dict[str, Any]:
        return {"beta": self.beta, "keys": self.keys}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PooledTail:
        return cls(float(state["beta"]), int(state.get("keys", 0)))

    def __repr__(self) -> str:
        return f"PooledTail(beta={self.beta:.4g}, keys={self.keys})"


def pooled_tail(validation_sets: Iterable[Iterable[float]], *, offset: float = 1e-2) -> PooledTail:
    """Fit :class:`PooledTail` on several keys' validation scores (``offset`` added before the log,
    so that scores far below it count as equal: ``log((top + offset) / (second + offset))``).

    >>> pooled_tail([[1.0, 2.0, 4.0], [1.0, 1.0, 1.0]], offset=1e-9).beta.__round__(4)
    0.5644
    """
    spacings = []
    for values in validation_sets:
        v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float)
        v = np.sort(v[np.isfinite(v)])
        if len(v) >= 2:
            top = _log_scores(v[-2:], offset)
            spacings.append(float(top[1] - top[0]))
    beta = (sum(spacings) + _PRIOR_BETA) / (len(spacings) + 1)
    return PooledTail(max(beta, 1e-3), len(spacings))


class ConformalThreshold:
    """Empirical (conformal) upper quantile of a key's validation scores, with a pooled tail.

    At level ``L`` the upper-tail probability is ``tail = (1 - L) / 2`` (two-sided, default, as
    :class:`GaussianThreshold`) or ``1 - L``. With ``n`` validation scores, when ``(n + 1) * tail
    >= 1`` the threshold is the ``ceil((n + 1) * (1 - tail))``-th smallest score; otherwise it is
    the largest score times ``exp(beta * log(1 / ((n + 1) * tail)))`` (on the ``score + offset``
    scale), ``beta`` the pooled tail scale (:func:`pooled_tail`). :meth:`confidence` is the exact
    inverse: the conformal p-value ``(1 + #{v >= x}) / (n + 1)`` up to the largest score, the
    pooled Pareto tail beyond it.

    With ``gaussian_guard`` (default) the threshold is never below the Gaussian bound on the
    log scale either (``exp(mean + z * std) - offset`` of ``log(score + offset)``), so an entry is
    flagged only when both the key's empirical tail and its Gaussian find it rare: validation data
    come from the period just after training, and on a later period of the same log the empirical
    quantile alone was crossed 2.5 times too often (``bench/openstack_params.py``).

    >>> t = ConformalThreshold(gaussian_guard=False).fit(np.arange(1.0, 400.0))
    >>> t.threshold(0.98), t.threshold(0.99)
    (396.0, 398.0)
    >>> t.decide([398.0, 398.5], 0.99).tolist()
    [False, True]
    """

    def __init__(
        self,
        *,
        two_sided: bool = True,
        floor: float = 0.0,
        offset: float = 1e-2,
        pool: PooledTail | None = None,
        gaussian_guard: bool = True,
    ):
        if not (floor >= 0 and math.isfinite(floor)):
            raise ValueError(f"floor must be a finite non-negative number, got {floor!r}")
        if not (offset > 0 and math.isfinite(offset)):
            raise ValueError(f"offset must be a positive number, got {offset!r}")
        self.two_sided = two_sided
        self.floor = float(floor)
        self.offset = float(offset)
        self.pool = pool if pool is not None else PooledTail()
        self.gaussian_guard = bool(gaussian_guard)

    def fit(self, validation_mse: Iterable[float]) -> ConformalThreshold:
        """Keep the sorted finite validation scores and their log-scale mean and spread."""
        if not isinstance(validation_mse, np.ndarray | list | tuple):
            validation_mse = list(validation_mse)
        v = np.asarray(validation_mse, dtype=float).ravel()
        v = np.sort(v[np.isfinite(v)])
        if v.size == 0:
            raise ValueError("cannot fit a threshold on no finite validation scores")
        y = _log_scores(v, self.offset)
        self.values_ = v
        self.mean_ = float(y.mean())
        self.std_ = max(float(y.std(ddof=1)) if len(y) > 1 else 0.0, MIN_STD)
        self.n_ = int(v.size)
        return self

    @property
    def fitted(self) -> bool:
        return hasattr(self, "values_")

    def _check(self) -> None:
        if not self.fitted:
            raise RuntimeError("ConformalThreshold is not fitted; call fit(validation_mse) first")

    def threshold(self, level: float) -> float:
        """The score above which an entry is anomalous at ``level``."""
        self._check()
        tail = upper_tail(level, two_sided=self.two_sided)
        n = self.n_
        rank = math.ceil((n + 1) * (1.0 - tail) - 1e-9)
        if rank <= n:
            bound = float(self.values_[rank - 1])
        else:
            top = math.log(float(self.values_[-1]) + self.offset)
            bound = math.exp(min(top + self.pool.excess(tail, n), 700.0)) - self.offset
        if self.gaussian_guard:
            z = NormalDist().inv_cdf(1.0 - tail)
            bound = max(bound, math.exp(min(self.mean_ + z * self.std_, 700.0)) - self.offset)
        return max(bound, self.floor)

    def thresholds(self, levels: Sequence[float] = DEFAULT_LEVELS) -> dict[float, float]:
        """``{level: threshold}`` for several levels at once."""
        return {float(lv): self.threshold(lv) for lv in levels}

    def decide(self, mse: float | Iterable[float], level: float) -> np.ndarray:
        """Boolean array: True where the score is above the threshold at ``level`` (NaN -> False)."""
        m = np.asarray(mse, dtype=float)
        with np.errstate(invalid="ignore"):
            return np.asarray(m > self.threshold(level))

    def p_value(self, mse: float | Iterable[float]) -> np.ndarray:
        """Upper-tail probability of each score among normal ones (see the class docstring)."""
        self._check()
        m = np.asarray(mse, dtype=float)
        n = self.n_
        above = n - np.searchsorted(self.values_, np.nan_to_num(m, nan=-np.inf), side="left")
        p = (1.0 + above) / (n + 1.0)
        top = math.log(float(self.values_[-1]) + self.offset)
        excess = _log_scores(np.nan_to_num(m, nan=0.0), self.offset) - top
        p = np.where(m > self.values_[-1], self.pool.sf(excess, n), p)
        if self.gaussian_guard:
            z = (_log_scores(np.nan_to_num(m, nan=0.0), self.offset) - self.mean_) / self.std_
            cdf = np.vectorize(NormalDist().cdf, otypes=[float])(z)
            p = np.maximum(p, 1.0 - cdf)
        return np.where(np.isnan(m), 1.0, p)

    def confidence(self, mse: float | Iterable[float]) -> np.ndarray:
        """The smallest level at which each score would be normal (``1 - 2 p`` two-sided)."""
        p = self.p_value(mse)
        out = np.clip(1.0 - (2.0 if self.two_sided else 1.0) * p, 0.0, 1.0)
        m = np.asarray(mse, dtype=float)
        return np.where(m <= self.floor, 0.0, out)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (the sorted validation scores included)."""
        self._check()
        return {
            "rule": "conformal",
            "two_sided": self.two_sided,
            "floor": self.floor,
            "offset": self.offset,
            "pool": self.pool.to_state(),
            "gaussian_guard": self.gaussian_guard,
            "values": self.values_.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ConformalThreshold:
        """Rebuild from :meth:`to_state`; raises ValueError on a malformed state."""
        try:
            t = cls(
                two_sided=bool(state["two_sided"]),
                floor=float(state.get("floor", 0.0)),
                offset=float(state.get("offset", 1e-2)),
                pool=PooledTail.from_state(state["pool"]),
                gaussian_guard=bool(state.get("gaussian_guard", False)),
            )
            t.fit(state["values"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed threshold state: {exc!r}") from exc
        return t

    def __repr__(self) -> str:
        if not self.fitted:
            return f"ConformalThreshold(two_sided={self.two_sided})"
        return (
            f"ConformalThreshold(two_sided={self.two_sided}, floor={self.floor:g}, n={self.n_}, "
            f"max={self.values_[-1]:.4g})"
        )
