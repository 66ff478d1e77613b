"""The parameter model's threshold rules: which rule a configuration asks for, fitted on every
key's validation MSEs, and rebuilt from a saved state.

Two rules (:data:`RULES`): ``"conformal"`` (the default, a key's own empirical quantile with a tail
pooled over keys, guarded by the log-Gaussian: :mod:`workbench.params.conformal`) and
``"gaussian"`` (the paper's, on ``log(MSE)`` or on the MSE: :mod:`workbench.params.gaussian`).
``bench/openstack_params.py`` prints both over the same scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.params.conformal import ConformalThreshold, pooled_tail
from workbench.params.gaussian import GaussianThreshold

if TYPE_CHECKING:
    from workbench.params.config import ParamModelConfig

__all__ = ["RULES", "Threshold", "fit_thresholds", "threshold_from_state"]

RULES = ("conformal", "gaussian")  #: threshold rules of the parameter model (see the docstring)

Threshold = ConformalThreshold | GaussianThreshold


def fit_thresholds(
    validation_mse: Mapping[int, np.ndarray], cfg: ParamModelConfig
) -> dict[int, Threshold]:
    """Every key's threshold rule (the config's) fitted on its validation MSEs."""
    if cfg.threshold_rule == "gaussian":
        return {
            k: GaussianThreshold(
                two_sided=cfg.two_sided, scale=cfg.threshold_scale, floor=cfg.min_threshold
            ).fit(v)
            for k, v in validation_mse.items()
        }
    offset = max(cfg.min_threshold, 1e-6)
    pool = pooled_tail(validation_mse.values(), offset=offset)
    return {
        k: ConformalThreshold(
            two_sided=cfg.two_sided,
            floor=cfg.min_threshold,
            offset=offset,
            pool=pool,
            gaussian_guard=cfg.threshold_guard,
        ).fit(v)
        for k, v in validation_mse.items()
    }


def threshold_from_state(state: dict[str, Any]) -> GaussianThreshold | ConformalThreshold:
    """Rebuild either rule from its saved state (a state without ``rule`` is a Gaussian)."""
    if state.get("rule") == "conformal":
        return ConformalThreshold.from_state(state)
    return GaussianThreshold.from_state(state)
