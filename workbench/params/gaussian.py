"""The paper's threshold rule: a Gaussian over the validation MSEs, and its upper confidence bound.

DeepLog's parameter-value model scores an entry by the mean square error (MSE) between the vector it
predicted and the one observed. Whether that MSE is anomalous is a separate, fitted rule: the MSEs of
held-out *normal* validation entries are modelled as a Gaussian N(mean, std^2), and an entry is normal
while its MSE lies inside the confidence interval at the chosen level (the paper plots 98 %, 99 % and
99.9 %).

Choice made here: the interval is **two-sided** by default, ``mean +/- z * std`` with
``z = Phi^-1(1 - (1 - level) / 2)`` (z = 2.326, 2.576, 3.291 for 98 %, 99 %, 99.9 %), and only its
upper bound is used, since an MSE can only be suspicious by being large. ``two_sided=False`` uses the
one-sided bound ``z = Phi^-1(level)`` instead (a lower threshold, more alarms).

Scale: ``scale="linear"`` is the paper's rule, a Gaussian on the MSEs themselves. An MSE is a mean of
squared errors, so its distribution is skewed with a long right tail (chi-square-like even when the
errors are Gaussian): the linear upper bound at 99 % is crossed by about 3 % of normal entries, and
by more when the errors are heavy-tailed (lognormal delays). ``scale="log"`` models ``log(MSE)`` as
the Gaussian instead (a log-normal model of the MSEs): the same mean/std/level rule, evaluated where
the distribution is close to symmetric, and the threshold is reported back in MSE units.

The levels themselves (quantiles, tails, labels, the correction for several entries of one
instance) are in :mod:`workbench.params.levels`.

The score is kept apart from the rule (score first, decide second): :meth:`GaussianThreshold.fit` sees
only validation MSEs, and :meth:`~GaussianThreshold.decide` never changes the fit, so a UI can move the
level over scores it already has.

>>> t = GaussianThreshold().fit([1.0, 2.0, 3.0, 2.0])
>>> round(t.threshold(0.99), 3)
3.821
>>> t.decide([1.5, 5.0], 0.99).tolist()
[False, True]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from workbench.params.levels import DEFAULT_LEVELS, z_value

__all__ = ["MIN_STD", "SCALES", "GaussianThreshold"]

SCALES = ("linear", "log")  #: where the Gaussian is fitted: on the MSEs, or on their logarithm
MIN_STD = 1e-12  #: floor on a fitted spread: identical validation MSEs still give a rule
_LOG_EPS = 1e-12  # added before taking the log, so an exact 0 stays finite


class GaussianThreshold:
    """Gaussian model of validation MSEs, with an upper confidence bound per level.

    Parameters
    ----------
    two_sided
        Use the upper bound of a two-sided interval (default, see the module docstring) or a
        one-sided bound.
    scale
        ``"linear"`` (a Gaussian on the scores) or ``"log"`` (a Gaussian on their logarithm); see
        the module docstring.
    floor
        The threshold never goes below this score. A model that predicts its validation entries
        almost exactly (a key whose values never vary) would otherwise flag rounding noise.

    Attributes
    ----------
    mean_, std_ : float
        Mean and (population) standard deviation of the validation MSEs (of their logarithm
        when ``scale="log"``).
    n_ : int
        How many finite validation MSEs were used.
    """

    def __init__(self, *, two_sided: bool = True, scale: str = "linear", floor: float = 0.0):
        if not (floor >= 0 and math.isfinite(floor)):
            raise ValueError(f"floor must be a finite non-negative number, got {floor!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        self.two_sided = two_sided
        self.scale = scale
        self.floor = float(floor)

    def _to_fit_scale(self, m: np.ndarray) -> np.ndarray:
        if self.scale == "log":
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.log(np.maximum(m, 0.0) + _LOG_EPS)
        return m

    def fit(self, validation_mse: Iterable[float]) -> GaussianThreshold:
        """Fit on the MSEs of normal validation entries (non-finite values are ignored)."""
        if not isinstance(validation_mse, np.ndarray | list | tuple):
            validation_mse = list(validation_mse)
        v = np.asarray(validation_mse, dtype=float).ravel()
        v = self._to_fit_scale(v[np.isfinite(v)])
        if v.size == 0:
            raise ValueError("cannot fit a Gaussian threshold on no finite validation MSEs")
        self.mean_ = float(v.mean())
        self.std_ = max(float(v.std()), MIN_STD)
        self.n_ = int(v.size)
        return self

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_state`) has run."""
        return hasattr(self, "mean_")

    def _check(self) -> None:
        if not self.fitted:
            raise RuntimeError("GaussianThreshold is not fitted; call fit(validation_mse) first")

    def threshold(self, level: float) -> float:
        """The MSE above which an entry is anomalous at ``level``."""
        self._check()
        bound = self.mean_ + z_value(level, two_sided=self.two_sided) * self.std_
        if self.scale == "log":
            bound = math.exp(min(bound, 700.0)) - _LOG_EPS
        return max(bound, self.floor)

    def thresholds(self, levels: Sequence[float] = DEFAULT_LEVELS) -> dict[float, float]:
        """``{level: threshold}`` for several levels at once."""
        return {float(lv): self.threshold(lv) for lv in levels}

    def decide(self, mse: float | Iterable[float], level: float) -> np.ndarray:
        """Boolean array: True where the MSE is above the threshold at ``level`` (NaN -> False)."""
        m = np.asarray(mse, dtype=float)
        with np.errstate(invalid="ignore"):
            return np.asarray(m > self.threshold(level))

    def confidence(self, mse: float | Iterable[float]) -> np.ndarray:
        """The smallest level at which each MSE would be normal: where it sits in the fitted Gaussian.

        >>> t = GaussianThreshold().fit([0.0, 2.0])
        >>> t.confidence([1.0, 3.0]).round(4).tolist()
        [0.0, 0.9545]
        """
        self._check()
        m = np.asarray(mse, dtype=float)
        z = (self._to_fit_scale(m) - self.mean_) / self.std_
        cdf = np.vectorize(NormalDist().cdf, otypes=[float])(np.nan_to_num(z, nan=-math.inf))
        out = np.clip(2.0 * cdf - 1.0 if self.two_sided else cdf, 0.0, 1.0)
        return np.where(m <= self.floor, 0.0, out)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """JSON-able state."""
        self._check()
        return {
            "two_sided": self.two_sided,
            "scale": self.scale,
            "floor": self.floor,
            "mean": self.mean_,
            "std": self.std_,
            "n": self.n_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GaussianThreshold:
        """Rebuild from :meth:`to_state`; raises ValueError on a malformed state."""
        try:
            t = cls(
                two_sided=bool(state["two_sided"]),
                scale=str(state.get("scale", "linear")),
                floor=float(state.get("floor", 0.0)),
            )
            t.mean_, t.std_, t.n_ = float(state["mean"]), float(state["std"]), int(state["n"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed threshold state: {exc!r}") from exc
        return t

    def __repr__(self) -> str:
        if not self.fitted:
            return f"GaussianThreshold(two_sided={self.two_sided}, scale={self.scale!r})"
        return (
            f"GaussianThreshold(two_sided={self.two_sided}, scale={self.scale!r}, floor={self.floor:g}, "
            f"mean={self.mean_:.4g}, "
            f"std={self.std_:.4g}, n={self.n_})"
        )
