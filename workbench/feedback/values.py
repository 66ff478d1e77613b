"""The parameter values a false positive says are normal: the flagged entry's vector of its key.

A flag is a verdict on the whole entry. For a parameter anomaly it teaches the key's parameter
model that vector after its history (:meth:`ParamModel.partial_fit
<workbench.params.model.ParamModel.partial_fit>`). For a key anomaly whose key has a parameter
model, the entry's values were never checked (the parameter models judge only entries whose key
was normal), and once the flag makes its key normal they would be: the first step of a new
operation is then reported again, for its timing. So its vector is kept as confirmed normal for
the key too (:mod:`workbench.params.confirmed`, no gradient step: the network is not asked to
predict a value it never judged), and the next entry of the same step with a value near it is
normal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.params.config import ParamModelConfig
from workbench.params.model import ParamModel
from workbench.params.scaling import TRAINED
from workbench.params.vectors import build_series

__all__ = ["entry_vector", "has_values"]


def has_values(param_model: ParamModel | None, row: pd.Series) -> bool:
    """Whether a flagged key anomaly ``row`` has a key with a parameter model (its values are
    kept with the flag)."""
    if param_model is None or row["kind"] != "key":
        return False
    info = getattr(param_model, "keys_", {}).get(int(row["key"]))
    return info is not None and info["status"] == TRAINED


def entry_vector(
    entries: pd.DataFrame, line: int, key: int, cfg: ParamModelConfig, model: ParamModel | None
) -> dict[str, Any] | None:
    """The ``history`` (the key's previous vectors, at most ``cfg.history``) and ``vector`` of the
    entry on ``line``, as lists (NaN where missing); None when the entry is not in its key's
    series (another number of parameters than the ``model`` has for the key) or has no observed
    value."""
    info = None if model is None else getattr(model, "keys_", {}).get(key)
    n_params = None if info is None else info["n_params"]
    series = build_series(
        entries,
        elapsed=cfg.elapsed,
        keys={key},
        max_params=cfg.max_params,
        n_params=None if n_params is None else {key: n_params},
    ).get(key)
    if series is None:
        return None
    r = np.flatnonzero(entries["line"].to_numpy() == line)
    i = np.flatnonzero(series.rows == r[0]) if len(r) else []
    if not len(i) or not np.isfinite(series.values[i[0]]).any():
        return None
    i = int(i[0])
    h = cfg.history
    return {
        "history": series.values[max(0, i - h) : i].tolist(),
        "vector": series.values[i].tolist(),
    }
