"""Scoring with the parameter model: every entry's MSE, confidence, thresholds and verdicts.

Missing values (the first entry of a session has no elapsed time) are fed as 0 with an "observed"
flag of 0 and left out of the MSE; an entry with no observed value gets no score. Keys without a
model (too few entries, never varying, unknown) report their entries with status ``'no model'``
and undecided verdicts, never as normal. The combined detector (the key model first, this one only
for entries whose key was normal) passes the key model's verdict as ``only=``. Where a person
confirmed values of a key normal, an entry's expected value per dimension is the prediction or the
nearest confirmed value, whichever is nearer (:mod:`workbench.params.confirmed`): ``mse`` is the
distance to it and ``predicted`` reports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from workbench.params.batches import KeyData, key_data, to_global
from workbench.params.confirmed import nearest
from workbench.params.levels import level_name
from workbench.params.scaling import TRAINED, denormalise
from workbench.params.vectors import build_series
from workbench.train import torch_threads

if TYPE_CHECKING:
    from workbench.params.model import ParamModel
    from workbench.params.network import ParamLSTM

__all__ = ["mse_of", "predict", "score_columns", "score_entries"]


def predict(model: ParamModel, key: int, x: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Normalised predictions ``[n, d_key]`` for a key's windows ``[n, T, 2*d_key]``.

    The key's LSTM runs as one fused ``torch.lstm`` call per batch with that key's slice of the
    stacked weights (:func:`_key_weights`): the same network as
    :class:`~workbench.params.network.ParamLSTM`'s step-by-step loop, several times faster; the
    two agree to float rounding (about 1e-7). Thresholds are fitted on MSEs of this function, so
    scores and thresholds stay consistent."""
    assert model.module_ is not None
    info = model.keys_[key]
    d = len(info["names"])
    out = []
    with torch.inference_mode():
        weights, w_out, b_out = _key_weights(model.module_, int(info["slot"]), model.device_)
        m = model.module_
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(to_global(x[i : i + batch], d, model.n_dims_)).to(model.device_)
            zeros = xb.new_zeros(m.num_layers, len(xb), m.hidden_size)
            seq, _, _ = torch.lstm(xb, (zeros, zeros), weights, True, m.num_layers, 0.0, False,
                                   False, True)  # fmt: skip
            pred = torch.addmm(b_out, seq[:, -1], w_out)
            out.append(pred[:, :d].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, d), dtype=np.float32)


def _key_weights(
    module: ParamLSTM, slot: int, device: torch.device
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """One key's LSTM weights in ``torch.lstm``'s layout (per layer ``w_ih`` ``[4H, in]``,
    ``w_hh`` ``[4H, H]``, ``b_ih``, ``b_hh``; the gates in the same i, f, g, o order), and its
    output layer."""
    weights: list[torch.Tensor] = []
    for layer in range(module.num_layers):
        bias = module.bias[layer][slot, 0].to(device)
        weights += [
            module.w_ih[layer][slot].T.contiguous().to(device),
            module.w_hh[layer][slot].T.contiguous().to(device),
            bias.contiguous(),
            torch.zeros_like(bias),
        ]
    return weights, module.w_out[slot].to(device), module.b_out[slot, 0].to(device)


def mse_of(model: ParamModel, d: KeyData) -> np.ndarray:
    """Each entry's MSE over its observed dimensions (NaN where none is observed)."""
    pred = predict(model, d.key, d.x)
    obs = np.isfinite(d.z)
    sq = np.where(obs, (pred - np.nan_to_num(d.z)) ** 2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(obs.any(1), sq.sum(1) / obs.sum(1), np.nan)


class _Columns:
    """The output columns being filled, one array each (internal)."""

    def __init__(self, n: int, levels: tuple[float, ...]) -> None:
        self.status = np.full(n, "no model", dtype=object)
        self.detail = np.full(n, "", dtype=object)
        self.mse = np.full(n, np.nan)
        self.conf = np.full(n, np.nan)
        self.thr = {lv: np.full(n, np.nan) for lv in levels}
        self.dim = np.full(n, None, dtype=object)
        self.observed = np.full(n, np.nan)
        self.predicted = np.full(n, np.nan)


def score_entries(
    model: ParamModel, entries: pd.DataFrame, only: Any = None, keys: Any = None
) -> pd.DataFrame:
    """:meth:`ParamModel.score <workbench.params.model.ParamModel.score>` (see there)."""
    cols = score_columns(model, entries, only, keys)
    return _frame(entries, entries["key"].to_numpy(), cols, model.config.levels)


def score_columns(
    model: ParamModel,
    entries: pd.DataFrame,
    only: Any = None,
    keys: Any = None,
    confidence: bool = True,
) -> _Columns:
    """The columns of :func:`score_entries` as plain arrays (``status``, ``detail``, ``mse``,
    ``conf``, ``thr`` per level, ``dim``, ``observed``, ``predicted``), before they make a frame:
    what detection over many chunks reads, without building the frame's text columns (and
    without ``conf``, left NaN, when ``confidence`` is False)."""
    cfg = model.config
    cols = _Columns(len(entries), cfg.levels)
    key_arr = entries["key"].to_numpy()
    parsed = entries["parsed"].to_numpy(dtype=bool)
    cols.status[~parsed] = "unparsed"
    _explain_untrained(model, key_arr, parsed, cols)
    trained = {k for k, v in model.keys_.items() if v["status"] == TRAINED}
    if keys is not None:
        trained &= {int(k) for k in keys}
    series = build_series(
        entries,
        elapsed=cfg.elapsed,
        keys=trained,
        n_params={k: model.keys_[k]["n_params"] for k in trained},
        max_params=cfg.max_params,
    )
    with torch_threads(cfg.cpu_threads):
        preds = {
            k: predict(model, k, _data(model, k, s.rows, s.values, 0).x)
            for k, s in series.items()
            if len(s.rows)
        }
    for k, s in series.items():
        cols.status[s.mismatched] = "parameter count differs"
        cols.detail[s.mismatched] = f"expected {model.keys_[k]['n_params']} numeric parameters"
        if len(s.rows):
            d = _data(model, k, s.rows, s.values, len(s.rows))
            _score_key(model, d, preds[k], cols, confidence)
    if only is not None:
        skip = ~_rows_of(entries, only) & (cols.status == "scored")
        cols.status[skip] = "not checked"
    return cols


def _data(model: ParamModel, k: int, rows: np.ndarray, raw: np.ndarray, cut: int) -> KeyData:
    return key_data(k, model.keys_[k], rows, raw, cut, model.config.history)


def _explain_untrained(
    model: ParamModel, key_arr: np.ndarray, parsed: np.ndarray, cols: _Columns
) -> None:
    for k in np.unique(key_arr[parsed]):
        rows = parsed & (key_arr == k)
        info = model.keys_.get(int(k))
        if info is None:
            cols.detail[rows] = "key unknown to the parameter model" if k > 0 else "unknown key"
        elif info["status"] != TRAINED:
            cols.detail[rows] = f"{info['status']} ({info['detail']})"


def _score_key(
    model: ParamModel, d: KeyData, pred: np.ndarray, cols: _Columns, confidence: bool = True
) -> None:
    """Fill one key's rows from its normalised predictions ``pred`` ``[n, d]`` (or, per dimension,
    the nearest value confirmed normal for the key where that is nearer: :mod:`.confirmed`)."""
    info, th = model.keys_[d.key], model.thresholds_[d.key]
    pred = nearest(info, pred, d.z)
    obs = np.isfinite(d.z)
    sq = np.where(obs, (pred - np.nan_to_num(d.z)) ** 2, -1.0)
    has = obs.any(1)
    m = np.where(has, np.where(obs, sq, 0.0).sum(1) / np.maximum(obs.sum(1), 1), np.nan)
    worst = sq.argmax(1)
    r = d.rows
    cols.status[r] = np.where(has, "scored", "no value")
    cols.detail[r[~has]] = "no observed value to compare (first entry of its session)"
    cols.mse[r] = m
    if confidence:
        cols.conf[r] = np.where(has, th.confidence(m), np.nan)
    for lv in model.config.levels:
        cols.thr[lv][r] = th.threshold(lv)
    names = np.asarray(info["names"], dtype=object)
    ii = np.arange(len(r))
    cols.dim[r[has]] = names[worst[has]]
    cols.observed[r[has]] = d.raw[ii, worst][has]
    cols.predicted[r[has]] = denormalise(info, pred)[ii, worst][has]


def _frame(
    entries: pd.DataFrame, key_arr: np.ndarray, cols: _Columns, levels: tuple[float, ...]
) -> pd.DataFrame:
    n = len(entries)
    scored = cols.status == "scored"
    out = pd.DataFrame(
        {
            "line": entries["line"].to_numpy() if "line" in entries else np.arange(1, n + 1),
            "key": key_arr,
            "session": entries["session"].to_numpy(dtype=object) if "session" in entries else None,
            "status": cols.status,
            "detail": cols.detail,
            "mse": cols.mse,
            "confidence": cols.conf,
        },
        index=entries.index,
    )
    for lv in levels:
        out[f"threshold_{level_name(lv)}"] = cols.thr[lv]
    for lv in levels:
        verdict = pd.array(np.asarray(cols.mse > cols.thr[lv]), dtype="boolean")
        verdict[~scored] = pd.NA
        out[f"anomalous_{level_name(lv)}"] = verdict
    out["dimension"] = cols.dim
    out["observed"] = cols.observed
    out["predicted"] = cols.predicted
    return out


def _rows_of(entries: pd.DataFrame, only: Any) -> np.ndarray:
    if isinstance(only, pd.Series) and only.dtype == bool:
        return only.reindex(entries.index, fill_value=False).to_numpy(dtype=bool)
    arr = np.asarray(only)
    if arr.dtype == bool:
        if len(arr) != len(entries):
            raise ValueError(f"only= mask has {len(arr)} values for {len(entries)} rows")
        return arr
    return entries.index.isin(list(arr))
