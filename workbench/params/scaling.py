"""Per-key value scale and normalisation, and whether a key gets a model at all.

Choices made where the paper is silent (see also :mod:`workbench.params.vectors`):

* Value scale (``value_scale="log1p"``, the default): a dimension whose training values are all
  non-negative (elapsed times, durations such as "Took X seconds", counts and sizes) is modelled as
  ``log(1 + x / u)`` before the mean/std normalisation, ``u`` being the median of its positive
  training values. Dividing by ``u`` makes the transform independent of the unit (seconds or
  milliseconds): values near and above the dimension's typical size are on a log scale, values far
  below it (millisecond gaps between concurrent steps) stay close to linear instead of
  blowing up towards ``log 0``. Such quantities are multiplicative: a delay
  that is "4x slower" is a constant shift on the log scale whatever its typical size, and the
  lognormal-like spread of normal delays becomes close to Gaussian there, so the squared errors
  (and the Gaussian on the validation MSEs) are far less dominated by a few long normal delays.
  Dimensions with a negative training value stay linear; ``value_scale="linear"`` is the paper's
  plain normalisation. The transform used is ``sign(x) * log(1 + |x| / u)``, so a negative value
  met at scoring time stays finite. ``observed`` and ``predicted`` are reported in original units.
* The normalisation scale of a dimension is its training standard deviation, but at least
  0.1 % of ``max(1, |mean|)`` on the model scale: a parameter constant in training must not divide
  by zero (any change of it is then a large deviation). The elapsed time has a known resolution,
  that of the timestamps (the key's smallest gap between distinct training elapsed times, e.g.
  1 ms): its scale is
  at least what one such step changes at the dimension's typical size, so that 2 ms after 1 ms of a
  step that always takes about 1 ms is not a 400-sigma deviation on the log scale.
* Keys with fewer than ``min_entries`` usable entries, or whose training vectors never vary, get no
  model (:func:`describe_key` says why).

A key's description is a plain dict (its ``status``, counts, and for trained keys ``logged``,
``log_unit``, ``mean`` and ``std``), saved as it is with the model.

>>> to_model_scale(np.array([0.0, 1.0, 3.0]), np.array(True), np.array(1.0)).round(3).tolist()
[0.0, 0.693, 1.386]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.params.config import ParamModelConfig
from workbench.params.vectors import KeySeries, split_point

__all__ = [
    "SKIPPED_CONSTANT",
    "SKIPPED_FEW",
    "TRAINED",
    "denormalise",
    "describe_key",
    "from_model_scale",
    "normalise",
    "to_model_scale",
]

TRAINED = "trained"
SKIPPED_FEW = "skipped: too few entries"
SKIPPED_CONSTANT = "skipped: constant"
_REL_SCALE_FLOOR = 1e-3  # smallest normalisation scale, relative to max(1, |mean|)


def to_model_scale(raw: np.ndarray, logged: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x| / unit)`` on the ``logged`` dimensions (last axis), else ``x``."""
    with np.errstate(invalid="ignore"):
        return np.where(logged, np.sign(raw) * np.log1p(np.abs(raw) / unit), raw)


def from_model_scale(v: np.ndarray, logged: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_model_scale`: back to original units."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(logged, np.sign(v) * np.expm1(np.minimum(np.abs(v), 700.0)) * unit, v)


def _resolution(values: np.ndarray) -> float:
    """The step of a measured quantity as seen in training: the smallest gap between two distinct
    observed values (the smallest positive value when they never vary); 0 when unknown."""
    v = np.unique(values[np.isfinite(values)])
    gaps = np.diff(v)
    gaps = gaps[gaps > 0]
    if len(gaps):
        return float(gaps.min())
    pos = v[v > 0]
    return float(pos.min()) if len(pos) else 0.0


def describe_key(s: KeySeries, cfg: ParamModelConfig) -> tuple[dict[str, Any], int]:
    """A key's description (status, counts, normalisation) and its series' chronological cut."""
    usable = np.isfinite(s.values).any(axis=1)
    n = int(usable.sum())
    cut = split_point(len(s.rows), cfg.validation_fraction)
    info: dict[str, Any] = {
        "n_entries": n,
        "n_train": int(usable[:cut].sum()),
        "n_validation": int(usable[cut:].sum()),
        "names": list(s.names),
        "n_params": s.n_params,
    }
    if n < max(cfg.min_entries, 2) or info["n_validation"] < 2 or info["n_train"] < 1:
        info["status"] = SKIPPED_FEW
        info["detail"] = f"{n} usable entries, fewer than min_entries={cfg.min_entries}"
        return info, cut
    scale = _fit_scale(s.values[:cut], s.names, cfg.value_scale)
    if scale is None:
        info["status"] = SKIPPED_CONSTANT
        info["detail"] = "the training vectors never vary"
        return info, cut
    info.update(scale)
    info["status"] = TRAINED
    info["detail"] = ""
    return info, cut


def _fit_scale(raw: np.ndarray, names: list[str], value_scale: str) -> dict[str, Any] | None:
    """Per dimension of a key's training vectors: log-scaled or not, unit, mean and scale (None
    when no dimension varies)."""
    obs = np.isfinite(raw)
    logged = np.zeros(raw.shape[1], dtype=bool)
    if value_scale == "log1p":
        logged = ~np.any(obs & (np.nan_to_num(raw) < 0), axis=0)
    cnt = obs.sum(0)
    seen = cnt > 0
    hi = np.where(obs, raw, -np.inf).max(0)
    varies = seen & (hi > np.where(obs, raw, np.inf).min(0))  # in original units
    unit = np.ones(raw.shape[1])
    for j in np.flatnonzero(logged):  # the dimension's own unit: its typical size
        pos = raw[obs[:, j] & (np.nan_to_num(raw[:, j]) > 0), j]
        unit[j] = float(np.median(pos)) if len(pos) else 1.0
    train = to_model_scale(raw, logged, unit)
    mean = np.where(obs, train, 0.0).sum(0) / np.maximum(cnt, 1)
    std = np.sqrt(np.where(obs, (train - mean) ** 2, 0.0).sum(0) / np.maximum(cnt, 1))
    std = np.where(varies, std, 0.0)  # a constant dimension: no rounding-noise spread
    if not np.any(varies):
        return None
    mean = np.where(seen, mean, 0.0)
    floor = _REL_SCALE_FLOOR * np.maximum(1.0, np.abs(mean))
    for j, name in enumerate(names):
        resolution = _resolution(raw[:, j]) if name == "elapsed" else 0.0
        if resolution > 0:  # one timestamp step at the typical size
            typical = unit[j] if logged[j] else 0.0
            step = to_model_scale(np.array([typical, typical + resolution]), logged[j], unit[j])
            floor[j] = max(floor[j], float(step[1] - step[0]))
    return {
        "logged": logged.tolist(),
        "log_unit": unit.tolist(),
        "mean": mean.tolist(),
        "std": np.maximum(np.where(seen, std, 1.0), floor).tolist(),
    }


def _logged(info: dict[str, Any]) -> np.ndarray:
    return np.asarray(info.get("logged", [False] * len(info["names"])), dtype=bool)


def _unit(info: dict[str, Any]) -> np.ndarray:
    return np.asarray(info.get("log_unit", [1.0] * len(info["names"])), dtype=float)


def normalise(info: dict[str, Any], raw: np.ndarray) -> np.ndarray:
    """Original units ``[..., d]`` -> the key's normalised model scale (NaN stays NaN)."""
    v = to_model_scale(np.asarray(raw, dtype=float), _logged(info), _unit(info))
    return (v - np.asarray(info["mean"])) / np.asarray(info["std"])


def denormalise(info: dict[str, Any], z: np.ndarray) -> np.ndarray:
    """The key's normalised model scale ``[..., d]`` -> original units."""
    v = z * np.asarray(info["std"]) + np.asarray(info["mean"])
    return from_model_scale(v, _logged(info), _unit(info))
