"""DeepLog's parameter-value anomaly model: one small LSTM per log key over its parameter vectors.

For every log key with enough normal training entries, the vectors ``[elapsed time, numeric params...]``
of its entries, in log order, form a time series (:mod:`workbench.params.vectors`). Each dimension is
normalised with the mean and standard deviation of the key's *training* part; an LSTM reads the last
``history`` vectors of the key and predicts the next one; the loss is the mean square error (MSE) over
the dimensions that were observed. Each key's series is split chronologically: the first part trains,
the last ``validation_fraction`` validates (early stopping, and the threshold). The validation MSEs of a
key are modelled as a Gaussian (:class:`~workbench.params.thresholds.GaussianThreshold`); an entry is a
parameter-value (performance) anomaly at level ``L`` when its MSE lies above the upper bound of the
two-sided ``L`` confidence interval.

Threshold rule: by default (``threshold_rule="conformal"``) not a Gaussian but the key's own
empirical upper quantile of its validation MSEs with the finite-sample (conformal) correction, and,
where a key has too few validation MSEs for the level, at least their maximum extended by a tail
pooled over all keys (:class:`~workbench.params.thresholds.ConformalThreshold`). A key has often only
15-50 validation entries: the Gaussian fitted to them (on ``log(MSE)``) was crossed by 5 % of the
entries of a second normal OpenStack log at 99 %. ``threshold_rule="gaussian"`` is the paper's
rule, on ``log(MSE)`` (``threshold_scale="log"``) or on the MSE itself (``"linear"``, right-skewed
MSEs cross its 99 % bound several times too often); :meth:`ParamModel.refit_thresholds` switches
between them over the same scores, and ``bench/openstack_params.py`` prints them side by side.

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
* Missing values (the first entry of a session has no elapsed time) are fed as 0 with an "observed"
  flag of 0 and left out of the MSE; an entry with no observed value gets no score.
* The normalisation scale of a dimension is its training standard deviation, but at least
  0.1 % of ``max(1, |mean|)`` on the model scale: a parameter constant in training must not divide
  by zero (any change of it is then a large deviation). The elapsed time has a known resolution,
  that of the timestamps (the key's smallest gap between distinct training elapsed times, e.g.
  1 ms): its scale is
  at least what one such step changes at the dimension's typical size, so that 2 ms after 1 ms of a
  step that always takes about 1 ms is not a 400-sigma deviation on the log scale.
* Keys with fewer than ``min_entries`` usable entries, or whose training vectors never vary, get no
  model; :attr:`ParamModel.keys_` says why per key, and :meth:`ParamModel.score` reports their entries
  with status ``'no model'`` and undecided verdicts, never as normal.
* All keys are trained at once: the per-key LSTMs are stacked into one module
  (:class:`ParamLSTM`) whose weights carry a leading "model" axis, so every optimisation step updates
  every key's own LSTM with batched matrix products. The models never share a weight, and each key
  keeps the weights of its own best validation epoch (per-key early stopping).

Per entry and per instance: :meth:`ParamModel.score` decides every entry at each level. The paper's
MSE plot has one point per VM instance; :func:`instance_verdicts` gives that decision from the same
scores, with the level applied to the *instance* (its worst entry against the Sidak-corrected
per-entry level for its number of scored entries, :func:`~workbench.params.thresholds.sidak_level`). An
instance of ~25 scored entries judged "anomalous when any entry is" at 99 % is a false alarm for
about one normal instance in ten; the corrected rule keeps that near the stated 0.5 % upper tail.

The combined detector (the key model first, this one only for entries whose key was normal) passes the
key model's verdict as ``only=`` to :meth:`ParamModel.score`.

>>> rng = np.random.default_rng(0)
>>> n = 300
>>> df = pd.DataFrame({"line": np.arange(1, n + 1), "key": 1, "parsed": True, "session": None,
...                    "dt_session": np.nan, "dt_global": rng.normal(1.0, 0.1, n),
...                    "params": [(float(v),) for v in rng.normal(20.0, 0.5, n)]})
>>> model = ParamModel(ParamModelConfig(max_epochs=3)).fit(df, seed=0)
>>> model.keys_[1]["status"]
'trained'
>>> df.loc[n - 1, "params"] = (60.0,)
>>> out = model.score(df)
>>> bool(out["anomalous_99"].iloc[-1]), out["dimension"].iloc[-1]
(True, 'param1')
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.params.thresholds import (
    DEFAULT_LEVELS,
    RULES,
    SCALES,
    ConformalThreshold,
    GaussianThreshold,
    instance_confidence,
    level_name,
    pooled_tail,
    sidak_level,
    threshold_from_state,
)
from workbench.params.vectors import ELAPSED_MODES, build_series, split_point, windows

__all__ = [
    "VALUE_SCALES",
    "ParamLSTM",
    "ParamModel",
    "ParamModelConfig",
    "instance_verdicts",
    "masked_mse",
]

logger = logging.getLogger(__name__)

TRAINED = "trained"
SKIPPED_FEW = "skipped: too few entries"
SKIPPED_CONSTANT = "skipped: constant"
_STATE_FORMAT = "workbench.params.model/1"
_STATE_FORMATS = (_STATE_FORMAT, "workbench.parammodel/1")  # the same state, saved before the move
_MAX_STOP_WINDOWS = 1024  # validation windows per key used for early stopping (all set thresholds)
_REL_SCALE_FLOOR = 1e-3  # smallest normalisation scale, relative to max(1, |mean|)
VALUE_SCALES = ("log1p", "linear")  #: how a non-negative dimension is modelled (see the docstring)
FLOOR_MARGIN = 1.05  # least margin above a confirmed MSE of a threshold floor it raises


def _to_model_scale(raw: np.ndarray, logged: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x| / unit)`` on the ``logged`` dimensions (last axis), else ``x``."""
    with np.errstate(invalid="ignore"):
        return np.where(logged, np.sign(raw) * np.log1p(np.abs(raw) / unit), raw)


def _from_model_scale(v: np.ndarray, logged: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_to_model_scale`: back to original units."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(logged, np.sign(v) * np.expm1(np.minimum(np.abs(v), 700.0)) * unit, v)


@dataclass(frozen=True)
class ParamModelConfig:
    """Settings of the per-key parameter-value models (validated on construction)."""

    history: int = 5  # h_p: previous vectors of the same key the LSTM reads
    hidden_size: int = 32  # LSTM units per layer
    num_layers: int = 2  # stacked LSTM layers
    elapsed: str = "session"  # elapsed time within the session, or 'global' (whole log)
    min_entries: int = 50  # keys with fewer usable entries get no model (reported per key)
    max_params: int = 16  # numeric parameters kept per key (the first ones)
    validation_fraction: float = 0.25  # last part of each key's series: early stopping, thresholds
    levels: tuple[float, ...] = DEFAULT_LEVELS  # confidence levels reported together
    two_sided: bool = True  # threshold = upper bound of a two-sided interval (else one-sided)
    threshold_rule: str = "conformal"  # per-key empirical quantile + pooled tail, or 'gaussian'
    threshold_guard: bool = True  # rule 'conformal': never below the log-Gaussian bound
    threshold_scale: str = "log"  # rule 'gaussian': on log(MSE) ('log') or on the MSE ('linear')
    value_scale: str = "log1p"  # non-negative dims as log(1 + x / median) ('log1p'), or 'linear'
    min_threshold: float = 1e-2  # no threshold below this MSE (0.1-scale deviations are noise)
    max_epochs: int = 30  # upper bound on passes over the training windows
    patience: int = 4  # a key stops after this many epochs without a better validation loss
    steps_per_epoch: int = 16  # optimiser steps per epoch (every key takes part in each)
    batch_size: int = 32  # windows per key per step: a key sees <= 16 * 32 windows per epoch
    learning_rate: float = 5e-3  # Adam
    replay_size: int = 256  # training windows kept per key to mix into partial_fit
    device: str | None = None  # None: 'cuda' when available, else 'cpu'
    cpu_threads: int | None = 1  # torch CPU threads in fit/score (tiny tensors); None: as is

    def __post_init__(self) -> None:
        positive = (
            "history",
            "hidden_size",
            "num_layers",
            "max_epochs",
            "steps_per_epoch",
            "batch_size",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("min_entries", "max_params", "patience", "replay_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.elapsed not in ELAPSED_MODES:
            raise ValueError(f"elapsed must be one of {ELAPSED_MODES}, got {self.elapsed!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must lie in (0, 1), got {self.validation_fraction!r}"
            )
        if not self.levels or any(not 0.0 < float(lv) < 1.0 for lv in self.levels):
            raise ValueError(f"levels must be confidence levels in (0, 1), got {self.levels!r}")
        if len({level_name(lv) for lv in self.levels}) != len(self.levels):
            raise ValueError(f"levels must be distinct, got {self.levels!r}")
        if self.threshold_rule not in RULES:
            raise ValueError(f"threshold_rule must be one of {RULES}, got {self.threshold_rule!r}")
        if self.threshold_scale not in SCALES:
            raise ValueError(
                f"threshold_scale must be one of {SCALES}, got {self.threshold_scale!r}"
            )
        if self.value_scale not in VALUE_SCALES:
            raise ValueError(f"value_scale must be one of {VALUE_SCALES}, got {self.value_scale!r}")
        if not (self.min_threshold >= 0 and math.isfinite(self.min_threshold)):
            raise ValueError(f"min_threshold must be >= 0, got {self.min_threshold!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.cpu_threads is not None and (
            not isinstance(self.cpu_threads, int) or self.cpu_threads < 1
        ):
            raise ValueError(
                f"cpu_threads must be a positive integer or None, got {self.cpu_threads!r}"
            )
        if self.device is not None and not isinstance(self.device, str):
            raise ValueError(f"device must be a string or None, got {self.device!r}")
        object.__setattr__(self, "levels", tuple(float(lv) for lv in self.levels))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParamModelConfig:
        """Build from a plain dict (as saved); unknown keys are rejected.

        >>> ParamModelConfig.from_dict({"history": 3}).history
        3
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ParamModelConfig keys: {unknown}")
        kw = dict(d)
        if "levels" in kw:
            kw["levels"] = tuple(kw["levels"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able dict."""
        d = asdict(self)
        d["levels"] = list(self.levels)
        return d


class ParamLSTM(nn.Module):
    """``n_models`` independent LSTM regressors run side by side (one per log key).

    Each weight has a leading model axis, so one call runs every key's LSTM with batched matrix
    products. Inputs are windows of ``history`` steps with ``2 * n_dims`` features (normalised values,
    then observed flags); the output is the predicted next vector (``n_dims`` normalised values).

    >>> m = ParamLSTM(n_models=3, n_dims=2, hidden_size=8, num_layers=2)
    >>> m(torch.zeros(3, 4, 5, 4)).shape
    torch.Size([3, 4, 2])
    >>> m(torch.zeros(1, 4, 5, 4), models=torch.tensor([2])).shape
    torch.Size([1, 4, 2])
    """

    def __init__(
        self,
        n_models: int,
        n_dims: int,
        hidden_size: int = 32,
        num_layers: int = 2,
        seeds: Sequence[int] | None = None,
    ):
        super().__init__()
        assert n_models >= 1 and n_dims >= 1, "need at least one model and one dimension"
        self.n_models, self.n_dims = n_models, n_dims
        self.hidden_size, self.num_layers = hidden_size, num_layers
        h4 = 4 * hidden_size

        def empty(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(n_models, *shape))

        n_in = [2 * n_dims] + [hidden_size] * (num_layers - 1)
        self.w_ih = nn.ParameterList([empty(n_in[i], h4) for i in range(num_layers)])
        self.w_hh = nn.ParameterList([empty(hidden_size, h4) for _ in range(num_layers)])
        self.bias = nn.ParameterList([empty(1, h4) for _ in range(num_layers)])
        self.w_out = empty(hidden_size, n_dims)
        self.b_out = empty(1, n_dims)
        self.reset_parameters(seeds)

    def reset_parameters(self, seeds: Sequence[int] | None = None) -> None:
        """Initialise every model; with ``seeds`` (one per model) each model's draw is its own,
        so a key's initial weights do not depend on which other keys are trained beside it."""
        assert seeds is None or len(seeds) == self.n_models, "need one seed per model"
        H = self.hidden_size
        bound = 1.0 / math.sqrt(H)
        with torch.no_grad():
            for i in range(self.n_models):
                gen = None if seeds is None else torch.Generator().manual_seed(int(seeds[i]))
                for p in [*self.w_ih, *self.w_hh, *self.bias, self.w_out]:
                    p[i].copy_(torch.empty(p.shape[1:]).uniform_(-bound, bound, generator=gen))
                for b in self.bias:  # forget gates start open
                    b[i, :, H : 2 * H] = 1.0
                self.b_out[i].zero_()

    def forward(self, x: torch.Tensor, models: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the next vector. ``x``: ``[M, B, T, 2*n_dims]``; ``models``: ``[M]`` model ids."""
        M, B, T, F = x.shape
        assert 2 * self.n_dims == F, f"expected {2 * self.n_dims} features per step, got {F}"
        if models is None:
            assert self.n_models == M, f"expected {self.n_models} model groups, got {M}"

        def pick(p: torch.Tensor) -> torch.Tensor:
            return p if models is None else p[models]

        H = self.hidden_size
        seq = x  # [M, B, T, F]
        for layer in range(self.num_layers):
            w_ih, w_hh, b = pick(self.w_ih[layer]), pick(self.w_hh[layer]), pick(self.bias[layer])
            pre = torch.bmm(seq.reshape(M, B * T, -1), w_ih).reshape(M, B, T, 4 * H) + b[:, :, None]
            h = x.new_zeros(M, B, H)  # [M, B, H]
            c = x.new_zeros(M, B, H)
            outs = []
            for t in range(T):
                gates = pre[:, :, t] + torch.bmm(h, w_hh)  # [M, B, 4H]
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            seq = torch.stack(outs, dim=2)  # [M, B, T, H]
        return torch.baddbmm(pick(self.b_out), h, pick(self.w_out))  # [M, B, n_dims]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Per-window MSE over observed dimensions; ``[..., D]`` -> ``[...]`` (0 where none observed)."""
    sq = (pred - target) ** 2 * observed
    return sq.sum(-1) / observed.sum(-1).clamp(min=1.0)


@contextmanager
def _cpu_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads, restoring the previous setting afterwards."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


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


def _resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _to_global(w: np.ndarray, d_key: int, d_all: int) -> np.ndarray:
    """Re-lay a key's windows ``[n, T, 2*d_key]`` into the shared layout ``[n, T, 2*d_all]``."""
    if d_key == d_all:
        return w
    out = np.zeros((*w.shape[:-1], 2 * d_all), dtype=w.dtype)
    out[..., :d_key] = w[..., :d_key]
    out[..., d_all : d_all + d_key] = w[..., d_key:]
    return out


@dataclass
class _KeyData:
    """One key's normalised arrays, ready for training or scoring (internal)."""

    key: int
    rows: np.ndarray  # positional rows of the series entries
    raw: np.ndarray  # [n, d] original units, NaN = missing
    z: np.ndarray  # [n, d] normalised
    x: np.ndarray  # [n, T, 2d] windows
    cut: int  # first validation index


class ParamModel:
    """Per-key parameter-value anomaly models with Gaussian thresholds (fit, score, update, save).

    Parameters
    ----------
    config
        The settings; default :class:`ParamModelConfig`.

    Attributes
    ----------
    keys_ : dict[int, dict]
        Per key seen in training: ``status`` (``'trained'``, ``'skipped: too few entries'``,
        ``'skipped: constant'``), ``detail``, ``n_entries``, ``n_train``, ``n_validation``, ``names``,
        ``n_params``, and for trained keys ``logged`` (per dimension: modelled as log(1 + x / u))
        and ``log_unit`` (``u``),
        ``mean``, ``std`` (normalisation, on the model scale),
        ``slot`` (index in the stacked module) and ``best_epoch``.
    validation_mse_ : dict[int, numpy.ndarray]
        Each trained key's validation MSEs (the entries after its chronological split).
    thresholds_ : dict[int, ConformalThreshold | GaussianThreshold]
        Fitted on ``validation_mse_`` only (see :meth:`refit_thresholds`).
    module_ : ParamLSTM
        The stacked per-key LSTMs (``None`` when no key could be trained).
    history_ : list[dict]
        One dict per epoch: ``epoch``, ``train_loss`` and ``val_loss`` (means over the keys still
        training), ``best_val_loss`` (mean over all keys of their best so far), ``keys_improved``,
        ``keys_active``, ``seconds``.
    interrupted_ : bool
        True when training was stopped by KeyboardInterrupt (the best weights so far are kept).
    """

    def __init__(self, config: ParamModelConfig | None = None) -> None:
        self.config = config if config is not None else ParamModelConfig()

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        entries: pd.DataFrame,
        *,
        callbacks: Sequence[Callable[[dict[str, Any]], Any]] | None = None,
        seed: int | None = 0,
    ) -> ParamModel:
        """Train one model per key with enough entries on normal ``entries`` (a parsed frame).

        Parameters
        ----------
        entries
            Normal parsed rows in log order (remove known anomalies first).
        callbacks
            Callables called after every epoch with that epoch's :attr:`history_` dict.
        seed
            Seeds the weight initialisation and batch order (``None``: a fresh random seed). Each
            key draws from its own stream seeded by ``(seed, key)``, so a key's model depends on
            its own entries and the seed, not on which other keys are trained beside it (as long
            as the widest key, which sets the shared input width, stays the same).
        """
        cfg = self.config
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        self.seed_ = int(seed)
        self.device_ = _resolve_device(cfg.device)
        self.keys_: dict[int, dict[str, Any]] = {}
        self.thresholds_: dict[int, ConformalThreshold | GaussianThreshold] = {}
        self.validation_mse_: dict[int, np.ndarray] = {}
        self.history_: list[dict[str, Any]] = []
        self.interrupted_ = False
        self.replay_: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        series = build_series(entries, elapsed=cfg.elapsed, max_params=cfg.max_params)
        data: list[_KeyData] = []
        for k in sorted(series):
            s = series[k]
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
            self.keys_[k] = info
            if n < max(cfg.min_entries, 2) or info["n_validation"] < 2 or info["n_train"] < 1:
                info["status"] = SKIPPED_FEW
                info["detail"] = f"{n} usable entries, fewer than min_entries={cfg.min_entries}"
                continue
            train = s.values[:cut]
            obs = np.isfinite(train)
            logged = np.zeros(train.shape[1], dtype=bool)
            if cfg.value_scale == "log1p":
                logged = ~np.any(obs & (np.nan_to_num(train) < 0), axis=0)
            cnt = obs.sum(0)
            seen = cnt > 0
            hi = np.where(obs, train, -np.inf).max(0)
            varies = seen & (hi > np.where(obs, train, np.inf).min(0))  # in original units
            unit = np.ones(train.shape[1])
            for j in np.flatnonzero(logged):  # the dimension's own unit: its typical size
                pos = train[obs[:, j] & (np.nan_to_num(train[:, j]) > 0), j]
                unit[j] = float(np.median(pos)) if len(pos) else 1.0
            train = _to_model_scale(train, logged, unit)
            mean = np.where(obs, train, 0.0).sum(0) / np.maximum(cnt, 1)
            std = np.sqrt(np.where(obs, (train - mean) ** 2, 0.0).sum(0) / np.maximum(cnt, 1))
            std = np.where(varies, std, 0.0)  # a constant dimension: no rounding-noise spread
            if not np.any(varies):
                info["status"] = SKIPPED_CONSTANT
                info["detail"] = "the training vectors never vary"
                continue
            mean = np.where(seen, mean, 0.0)
            floor = _REL_SCALE_FLOOR * np.maximum(1.0, np.abs(mean))
            for j, name in enumerate(s.names):
                resolution = _resolution(s.values[:cut, j]) if name == "elapsed" else 0.0
                if resolution > 0:  # one timestamp step at the typical size
                    typical = unit[j] if logged[j] else 0.0
                    step = _to_model_scale(np.array([typical, typical + resolution]), logged[j],
                                           unit[j])  # fmt: skip
                    floor[j] = max(floor[j], float(step[1] - step[0]))
            info["logged"] = logged.tolist()
            info["log_unit"] = unit.tolist()
            info["mean"] = mean.tolist()
            info["std"] = np.maximum(np.where(seen, std, 1.0), floor).tolist()
            info["status"] = TRAINED
            info["detail"] = ""
            data.append(self._key_data(k, s.rows, s.values, cut))
        n_skipped = len(self.keys_) - len(data)
        logger.info("parameter models: %d keys to train, %d skipped", len(data), n_skipped)
        self.n_dims_ = max((d.raw.shape[1] for d in data), default=1)
        self.module_: ParamLSTM | None = None
        if not data:
            logger.warning("no key has enough normal entries for a parameter model")
            return self
        for slot, d in enumerate(data):
            self.keys_[d.key]["slot"] = slot
        rngs = [np.random.default_rng([self.seed_, d.key]) for d in data]
        seeds = [int(r.integers(2**31)) for r in rngs]
        self.module_ = ParamLSTM(
            len(data), self.n_dims_, cfg.hidden_size, cfg.num_layers, seeds=seeds
        ).to(self.device_)
        with _cpu_threads(cfg.cpu_threads):
            self._train(data, rngs, callbacks or [])
            for d in data:
                val = self._mse_of(d)[d.cut :]
                self.validation_mse_[d.key] = val[np.isfinite(val)]
        self.refit_thresholds()
        for d, r in zip(data, rngs, strict=True):
            train_rows = np.flatnonzero(np.isfinite(d.raw[: d.cut]).any(axis=1))
            pick = np.sort(r.choice(train_rows, min(cfg.replay_size, len(train_rows)), False))
            self.replay_[d.key] = (d.x[pick], d.z[pick])
        return self

    def refit_thresholds(
        self,
        *,
        rule: str | None = None,
        scale: str | None = None,
        two_sided: bool | None = None,
    ) -> ParamModel:
        """(Re)fit every key's threshold rule on its stored validation MSEs, without retraining.

        ``rule``, ``scale`` and ``two_sided`` default to the config's; passing them changes the rule
        (the config is replaced by a copy with the new values), so a UI can compare the conformal
        rule with the paper's Gaussian (linear or log) over the same scores. A ``scale`` alone
        selects the Gaussian rule on that scale.
        """
        self._check()
        changes: dict[str, Any] = {}
        if rule is not None:
            changes["threshold_rule"] = rule
        elif scale is not None:
            changes["threshold_rule"] = "gaussian"
        if scale is not None:
            changes["threshold_scale"] = scale
        if two_sided is not None:
            changes["two_sided"] = two_sided
        if changes:
            self.config = replace(self.config, **changes)
        cfg = self.config
        if cfg.threshold_rule == "gaussian":
            self.thresholds_ = {
                k: GaussianThreshold(
                    two_sided=cfg.two_sided, scale=cfg.threshold_scale, floor=cfg.min_threshold
                ).fit(v)
                for k, v in self.validation_mse_.items()
            }
            return self
        offset = max(cfg.min_threshold, 1e-6)
        pool = pooled_tail(self.validation_mse_.values(), offset=offset)
        self.thresholds_ = {
            k: ConformalThreshold(
                two_sided=cfg.two_sided,
                floor=cfg.min_threshold,
                offset=offset,
                pool=pool,
                gaussian_guard=cfg.threshold_guard,
            ).fit(v)
            for k, v in self.validation_mse_.items()
        }
        return self

    def _logged(self, key: int) -> np.ndarray:
        info = self.keys_[key]
        return np.asarray(info.get("logged", [False] * len(info["names"])), dtype=bool)

    def _normalise(self, key: int, raw: np.ndarray) -> np.ndarray:
        """Original units ``[..., d]`` -> the normalised model scale (NaN stays NaN)."""
        info = self.keys_[key]
        v = _to_model_scale(np.asarray(raw, dtype=float), self._logged(key), self._unit(key))
        return (v - np.asarray(info["mean"])) / np.asarray(info["std"])

    def _denormalise(self, key: int, z: np.ndarray) -> np.ndarray:
        """Normalised model scale ``[..., d]`` -> original units."""
        info = self.keys_[key]
        v = z * np.asarray(info["std"]) + np.asarray(info["mean"])
        return _from_model_scale(v, self._logged(key), self._unit(key))

    def _unit(self, key: int) -> np.ndarray:
        info = self.keys_[key]
        return np.asarray(info.get("log_unit", [1.0] * len(info["names"])), dtype=float)

    def _key_data(self, key: int, rows: np.ndarray, raw: np.ndarray, cut: int) -> _KeyData:
        z = self._normalise(key, raw)
        x = windows(z.astype(np.float32), self.config.history)
        return _KeyData(key, rows, raw, z.astype(np.float32), x, cut)

    def _stack(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, ...]:
        """Pad per-key (windows, targets) to one ``[K, N, ...]`` batch with target masks."""
        D, T = self.n_dims_, self.config.history
        n = max(1, max(len(y) for _, y in parts))
        X = np.zeros((len(parts), n, T, 2 * D), dtype=np.float32)
        Y = np.zeros((len(parts), n, D), dtype=np.float32)
        O = np.zeros((len(parts), n, D), dtype=np.float32)
        for i, (x, y) in enumerate(parts):
            m, d = y.shape
            X[i, :m] = _to_global(x, d, D)
            Y[i, :m, :d] = np.nan_to_num(y, nan=0.0)
            O[i, :m, :d] = np.isfinite(y)
        dev = self.device_
        return (
            torch.from_numpy(X).to(dev),
            torch.from_numpy(Y).to(dev),
            torch.from_numpy(O).to(dev),
        )

    def _train(
        self, data: list[_KeyData], rngs: list[np.random.Generator], callbacks: Sequence[Any]
    ):
        """Per-key early-stopped training of all keys at once (each step: a batch of every key)."""
        cfg, module = self.config, self.module_
        assert module is not None
        K = len(data)
        train_idx = [np.flatnonzero(np.isfinite(d.raw[: d.cut]).any(axis=1)) for d in data]
        val_idx = [d.cut + np.flatnonzero(np.isfinite(d.raw[d.cut :]).any(axis=1)) for d in data]
        val_idx = [
            np.sort(r.permutation(v)[:_MAX_STOP_WINDOWS])
            for r, v in zip(rngs, val_idx, strict=True)
        ]
        Xv, Yv, Ov = self._stack([(d.x[v], d.z[v]) for d, v in zip(data, val_idx, strict=True)])
        vcount = Ov.amax(-1).sum(-1).clamp(min=1.0)  # [K] validation windows per key
        opt = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate)
        best_loss = np.full(K, np.inf)
        best_epoch = np.zeros(K, dtype=np.int64)
        best_state = {n: p.detach().clone() for n, p in module.named_parameters()}
        stale = np.zeros(K, dtype=np.int64)
        steps = min(cfg.steps_per_epoch, max(len(t) for t in train_idx))  # each step: every key
        try:
            for epoch in range(1, cfg.max_epochs + 1):
                t0 = time.perf_counter()
                active = np.flatnonzero(stale <= cfg.patience)
                models = torch.as_tensor(active, device=self.device_)
                cap = cfg.steps_per_epoch * cfg.batch_size
                perms = [rngs[k].permutation(train_idx[k])[:cap] for k in active]
                module.train()
                total = 0.0
                for s in range(steps):
                    parts = []
                    for j, k in enumerate(active):
                        p = perms[j]
                        chunk = p[s * len(p) // steps : (s + 1) * len(p) // steps]
                        parts.append((data[k].x[chunk], data[k].z[chunk]))
                    X, Y, O = self._stack(parts)
                    pred = module(X, models)  # [A, B, D]
                    per = masked_mse(pred, Y, O)  # [A, B]
                    has = O.amax(-1)  # [A, B] 1 where the window has a target
                    loss_k = (per * has).sum(-1) / has.sum(-1).clamp(min=1.0)  # [A]
                    loss = loss_k.sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss_k.detach().mean())
                module.eval()
                with torch.no_grad():
                    xa, ya, oa = Xv[models], Yv[models], Ov[models]
                    per = masked_mse(module(xa, models), ya, oa) * oa.amax(-1)  # [A, N]
                    vloss = np.full(K, np.inf)
                    vloss[active] = (per.sum(-1) / vcount[models]).cpu().numpy()
                improved = np.zeros(K, dtype=bool)
                improved[active] = vloss[active] < best_loss[active] - 1e-6
                best_loss[improved] = vloss[improved]
                best_epoch[improved] = epoch
                stale[improved] = 0
                stale[active[~improved[active]]] += 1
                sel = torch.as_tensor(np.flatnonzero(improved), device=self.device_)
                with torch.no_grad():
                    for n, p in module.named_parameters():
                        best_state[n][sel] = p.detach()[sel]
                row = {
                    "epoch": epoch,
                    "train_loss": total / steps,
                    "val_loss": float(np.mean(vloss[active])),  # this epoch, active keys
                    "best_val_loss": float(np.mean(best_loss[np.isfinite(best_loss)])),
                    "keys_improved": int(improved.sum()),
                    "keys_active": len(active),
                    "seconds": time.perf_counter() - t0,
                }
                self.history_.append(row)
                logger.debug("epoch %(epoch)d: train %(train_loss).4f val %(val_loss).4f", row)
                for cb in callbacks:
                    cb(row)
                if not (stale <= cfg.patience).any():
                    break
        except KeyboardInterrupt:
            self.interrupted_ = True
            logger.warning("training interrupted; keeping each key's best weights so far")
        with torch.no_grad():
            for n, p in module.named_parameters():
                p.copy_(best_state[n])
        for k, d in enumerate(data):
            self.keys_[d.key]["best_epoch"] = int(best_epoch[k])
        module.eval()

    # ------------------------------------------------------------------ scoring
    def _check(self) -> None:
        if not hasattr(self, "keys_"):
            raise RuntimeError("ParamModel is not fitted; call fit(entries) or from_state(...)")

    def _predict(self, key: int, x: np.ndarray, batch: int = 8192) -> np.ndarray:
        """Normalised predictions ``[n, d_key]`` for a key's windows ``[n, T, 2*d_key]``."""
        assert self.module_ is not None
        info = self.keys_[key]
        d = len(info["names"])
        slot = torch.as_tensor([info["slot"]], device=self.device_)
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                xb = torch.from_numpy(_to_global(x[i : i + batch], d, self.n_dims_))
                out.append(self.module_(xb[None].to(self.device_), slot)[0, :, :d].cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, d), dtype=np.float32)

    def _mse_of(self, d: _KeyData) -> np.ndarray:
        pred = self._predict(d.key, d.x)
        obs = np.isfinite(d.z)
        sq = np.where(obs, (pred - np.nan_to_num(d.z)) ** 2, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(obs.any(1), sq.sum(1) / obs.sum(1), np.nan)

    def score(self, entries: pd.DataFrame, *, only: Any = None) -> pd.DataFrame:
        """Score every entry: MSE, thresholds, verdicts and the most deviating dimension.

        Parameters
        ----------
        entries
            Parsed rows in log order. Histories are taken from these rows (each key's previous
            entries in this frame; the first ones are left-padded).
        only
            Which rows to decide: a boolean mask aligned with ``entries`` or a collection of its index
            labels (the combined detector passes the rows whose *key* was normal). Other rows get
            status ``'not checked'``; they still serve as history.

        Returns
        -------
        pandas.DataFrame
            Indexed like ``entries``: ``line``, ``key``, ``session``, ``status`` (``'scored'``,
            ``'no model'``, ``'no value'``, ``'parameter count differs'``, ``'unparsed'``,
            ``'not checked'``), ``detail``, ``mse``, ``confidence`` (the level at which the MSE
            would just be normal), ``threshold_<L>`` and ``anomalous_<L>`` per level (``<NA>`` when
            undecided), ``dimension`` (most deviating), ``observed`` and ``predicted`` (its value
            and the prediction, original units).
        """
        self._check()
        cfg = self.config
        n = len(entries)
        status = np.full(n, "no model", dtype=object)
        detail = np.full(n, "", dtype=object)
        mse = np.full(n, np.nan)
        conf = np.full(n, np.nan)
        thr = {lv: np.full(n, np.nan) for lv in cfg.levels}
        dim = np.full(n, None, dtype=object)
        observed = np.full(n, np.nan)
        predicted = np.full(n, np.nan)

        key_arr = entries["key"].to_numpy()
        parsed = entries["parsed"].to_numpy(dtype=bool)
        status[~parsed] = "unparsed"
        for k in np.unique(key_arr[parsed]):
            rows = parsed & (key_arr == k)
            info = self.keys_.get(int(k))
            if info is None:
                detail[rows] = "key unknown to the parameter model" if k > 0 else "unknown key"
            elif info["status"] != TRAINED:
                detail[rows] = f"{info['status']} ({info['detail']})"
        trained = {k for k, v in self.keys_.items() if v["status"] == TRAINED}
        series = build_series(
            entries,
            elapsed=cfg.elapsed,
            keys=trained,
            n_params={k: self.keys_[k]["n_params"] for k in trained},
            max_params=cfg.max_params,
        )
        with _cpu_threads(cfg.cpu_threads):
            preds = {
                k: self._predict(k, self._key_data(k, s.rows, s.values, 0).x)
                for k, s in series.items()
                if len(s.rows)
            }
        for k, s in series.items():
            status[s.mismatched] = "parameter count differs"
            detail[s.mismatched] = f"expected {self.keys_[k]['n_params']} numeric parameters"
            if not len(s.rows):
                continue
            d = self._key_data(k, s.rows, s.values, len(s.rows))
            info, th = self.keys_[k], self.thresholds_[k]
            pred = preds[k]  # [n, d] normalised
            obs = np.isfinite(d.z)
            sq = np.where(obs, (pred - np.nan_to_num(d.z)) ** 2, -1.0)
            has = obs.any(1)
            m = np.where(has, np.where(obs, sq, 0.0).sum(1) / np.maximum(obs.sum(1), 1), np.nan)
            worst = sq.argmax(1)
            r = s.rows
            status[r] = np.where(has, "scored", "no value")
            detail[r[~has]] = "no observed value to compare (first entry of its session)"
            mse[r] = m
            conf[r] = np.where(has, th.confidence(m), np.nan)
            for lv in cfg.levels:
                thr[lv][r] = th.threshold(lv)
            names = np.asarray(info["names"], dtype=object)
            ii = np.arange(len(r))
            dim[r[has]] = names[worst[has]]
            observed[r[has]] = d.raw[ii, worst][has]
            predicted[r[has]] = self._denormalise(k, pred)[ii, worst][has]

        if only is not None:
            chosen = self._rows_of(entries, only)
            skip = ~chosen & (status == "scored")
            status[skip] = "not checked"
        scored = status == "scored"
        out = pd.DataFrame(
            {
                "line": entries["line"].to_numpy() if "line" in entries else np.arange(1, n + 1),
                "key": key_arr,
                "session": entries["session"].to_numpy(dtype=object)
                if "session" in entries
                else None,
                "status": status,
                "detail": detail,
                "mse": mse,
                "confidence": conf,
            },
            index=entries.index,
        )
        for lv in cfg.levels:
            out[f"threshold_{level_name(lv)}"] = thr[lv]
        for lv in cfg.levels:
            verdict = pd.array(np.asarray(mse > thr[lv]), dtype="boolean")
            verdict[~scored] = pd.NA
            out[f"anomalous_{level_name(lv)}"] = verdict
        out["dimension"] = dim
        out["observed"] = observed
        out["predicted"] = predicted
        return out

    @staticmethod
    def _rows_of(entries: pd.DataFrame, only: Any) -> np.ndarray:
        if isinstance(only, pd.Series) and only.dtype == bool:
            return only.reindex(entries.index, fill_value=False).to_numpy(dtype=bool)
        arr = np.asarray(only)
        if arr.dtype == bool:
            if len(arr) != len(entries):
                raise ValueError(f"only= mask has {len(arr)} values for {len(entries)} rows")
            return arr
        return entries.index.isin(list(arr))

    @property
    def thresholds(self) -> dict[int, ConformalThreshold | GaussianThreshold]:
        """The fitted threshold rule of every key that has a model (``.thresholds()`` per level)."""
        self._check()
        return dict(self.thresholds_)

    def key_report(self) -> pd.DataFrame:
        """One row per key seen in training: status, why, counts and the 99 %-style thresholds."""
        self._check()
        rows = []
        for k, info in sorted(self.keys_.items()):
            row = {
                "key": k,
                "status": info["status"],
                "detail": info["detail"],
                "n_entries": info["n_entries"],
                "n_train": info["n_train"],
                "n_validation": info["n_validation"],
                "dimensions": ", ".join(info["names"]),
            }
            th = self.thresholds_.get(k)
            for lv in self.config.levels:
                row[f"threshold_{level_name(lv)}"] = th.threshold(lv) if th else np.nan
            rows.append(row)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ online update
    def partial_fit(
        self,
        key: int,
        history_vectors: Iterable[Iterable[float]],
        next_vector: Iterable[float],
        *,
        steps: int = 5,
        replay: int = 32,
        learning_rate: float | None = None,
        seed: int | None = 0,
        level: float | None = None,
        max_steps: int = 30,
    ) -> ParamModel:
        """Learn one confirmed-normal example (a reported false positive) with a few gradient steps.

        Parameters
        ----------
        key
            A key with a trained model.
        history_vectors
            The previous vectors of that key, oldest first, in original units (NaN = missing); the
            last ``history`` are used, fewer are left-padded.
        next_vector
            The vector that followed, now known to be normal.
        steps
            Adam steps on a batch of the new example plus ``replay`` windows sampled from the key's
            original training windows (so the model does not forget them).
        learning_rate
            Default: the config's.
        level, max_steps
            With a confidence ``level`` (one of the config's levels), the steps go on after
            ``steps``, up to ``max_steps``, until the example's MSE is within that level's
            threshold, so the same value after the same history is no longer reported.

        With a ``level``, the steps also keep the replayed training windows the threshold accepted
        before: a step that pushes one of them out is taken back and the steps stop (the key's
        model sees only the key's own values, so a new situation's timing can fight an old
        one's). An example still above the threshold then raises the key's threshold floor to
        its MSE, at every level: the user confirmed that value normal. Only ``key``'s own LSTM
        and threshold change. ``last_update_`` holds the steps taken, the example's MSE after
        them, whether it was within the threshold and the floor set (None when none).
        """
        self._check()
        info = self.keys_.get(int(key))
        if info is None or info["status"] != TRAINED:
            raise ValueError(f"key {key} has no parameter model to update")
        assert self.module_ is not None
        d, T = len(info["names"]), self.config.history
        hist = np.asarray(list(history_vectors), dtype=float).reshape(-1, d)[-T:]
        nxt = np.asarray(list(next_vector), dtype=float).reshape(d)
        if not np.isfinite(nxt).any():
            raise ValueError("next_vector has no observed value to learn from")
        z = self._normalise(int(key), np.vstack([hist, nxt[None]])).astype(np.float32)
        x_new = windows(z, T)[-1:]  # [1, T, 2d]
        y_new = z[-1:]
        rx, ry = self.replay_.get(int(key), (x_new[:0], y_new[:0]))
        rng = np.random.default_rng(seed)
        torch.manual_seed(int(rng.integers(2**31)))
        pick = rng.choice(len(rx), min(replay, len(rx)), replace=False) if len(rx) else []
        X, Y, O = self._stack(
            [(np.concatenate([x_new, rx[pick]]), np.concatenate([y_new, ry[pick]]))]
        )
        slot = torch.as_tensor([info["slot"]], device=self.device_)
        opt = torch.optim.Adam(
            self.module_.parameters(), lr=learning_rate or self.config.learning_rate
        )
        th = self.thresholds_[int(key)]
        limit = np.inf if level is None else float(th.threshold(level))
        self.module_.train()
        taken, kept, previous, first = 0, None, None, np.inf
        with _cpu_threads(self.config.cpu_threads):
            while True:
                per_window = masked_mse(self.module_(X, slot), Y, O)  # [1, N]
                mse = float(per_window[0, 0].detach())  # the taught example comes first
                within = per_window[0, 1:].detach() <= limit
                if kept is None:
                    kept = within  # the replayed windows the rule accepts before the update
                    first = mse
                elif bool((kept & ~within).any()):
                    # The step pushed a training window out of the threshold: the key's model
                    # cannot hold both (it sees only the key's own values, not their situation),
                    # so the weights before the step stay and the threshold takes the value.
                    assert previous is not None
                    self.module_.load_state_dict(previous)
                    mse = float(masked_mse(self.module_(X, slot), Y, O)[0, 0].detach())
                    break
                if taken >= max(1, steps) and (mse <= limit or taken >= max(steps, max_steps)):
                    break
                if level is not None:
                    previous = {n: t.detach().clone() for n, t in self.module_.state_dict().items()}
                # The taught example weighs as much as the replayed windows together (as in the
                # key model's update), so a few steps move it without forgetting them.
                replayed = per_window[0, 1:]
                loss = (
                    per_window[0, 0]
                    if not len(replayed)
                    else (per_window[0, 0] + replayed.mean()) / 2
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                taken += 1
        self.module_.eval()
        info["updates"] = info.get("updates", 0) + 1
        widened = None
        if mse > limit:  # confirmed normal: the key's threshold takes the value at every level
            # (its MSE before or after the steps, whichever is larger, with a small margin)
            widened = th.floor = max(th.floor, max(mse, first) * FLOOR_MARGIN)
        self.last_update_ = {
            "steps": taken,
            "mse": mse,
            "within": bool(mse <= limit),
            "threshold_floor": widened,
        }
        logger.info("key %d: partial_fit done in %d steps, example MSE %.4f", key, taken, mse)
        return self

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model, without pickling the object.

        ``config``, ``keys`` (per-key status, normalisation and slot), ``thresholds``, ``history`` and
        ``n_dims`` are JSON-able; ``module`` (the stacked LSTMs' ``state_dict``) and ``replay`` hold
        tensors (save them with ``torch.save`` / load with ``weights_only=True``).
        """
        self._check()
        return {
            "format": _STATE_FORMAT,
            "config": self.config.to_dict(),
            "seed": self.seed_,
            "n_dims": self.n_dims_,
            "keys": {str(k): dict(v) for k, v in self.keys_.items()},
            "thresholds": {str(k): t.to_state() for k, t in self.thresholds_.items()},
            "validation_mse": {str(k): v.tolist() for k, v in self.validation_mse_.items()},
            "history": [dict(r) for r in self.history_],
            "interrupted": self.interrupted_,
            "module": None
            if self.module_ is None
            else {n: t.detach().cpu().clone() for n, t in self.module_.state_dict().items()},
            "replay": {
                str(k): {"x": torch.from_numpy(x.copy()), "y": torch.from_numpy(y.copy())}
                for k, (x, y) in self.replay_.items()
            },
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, device: str | None = None) -> ParamModel:
        """Rebuild a model saved by :meth:`state_dict`; raises ValueError on a malformed state."""
        if state.get("format") not in _STATE_FORMATS:
            raise ValueError(f"not a parameter-model state (format {state.get('format')!r})")
        try:
            cfg = ParamModelConfig.from_dict(state["config"])
            model = cls(cfg)
            model.seed_ = int(state["seed"])
            model.n_dims_ = int(state["n_dims"])
            model.device_ = _resolve_device(device if device is not None else cfg.device)
            model.keys_ = {int(k): dict(v) for k, v in state["keys"].items()}
            model.thresholds_ = {
                int(k): threshold_from_state(t) for k, t in state["thresholds"].items()
            }
            model.validation_mse_ = {
                int(k): np.asarray(v, dtype=float) for k, v in state["validation_mse"].items()
            }
            model.history_ = [dict(r) for r in state["history"]]
            model.interrupted_ = bool(state["interrupted"])
            model.replay_ = {
                int(k): (np.asarray(v["x"].numpy()), np.asarray(v["y"].numpy()))
                for k, v in state["replay"].items()
            }
            slots = [v["slot"] for v in model.keys_.values() if v["status"] == TRAINED]
            model.module_ = None
            if state["module"] is not None:
                module = ParamLSTM(len(slots), model.n_dims_, cfg.hidden_size, cfg.num_layers)
                module.load_state_dict(state["module"])
                model.module_ = module.to(model.device_).eval()
        except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"malformed parameter-model state: {exc!r}") from exc
        if sorted(slots) != list(range(len(slots))) or set(model.thresholds_) != {
            k for k, v in model.keys_.items() if v["status"] == TRAINED
        }:
            raise ValueError("malformed parameter-model state: keys, slots and thresholds disagree")
        return model

    def __repr__(self) -> str:
        if not hasattr(self, "keys_"):
            return f"ParamModel({self.config})"
        n = sum(v["status"] == TRAINED for v in self.keys_.values())
        return f"ParamModel({n} of {len(self.keys_)} keys trained)"


def instance_verdicts(
    scores: pd.DataFrame, levels: Sequence[float] = DEFAULT_LEVELS
) -> pd.DataFrame:
    """Instance-level verdicts from :meth:`ParamModel.score`'s per-entry output (the MSE-plot unit).

    The paper's MSE plot has one point per VM instance. Here an instance (a ``session``) is
    anomalous at level ``L`` when its worst scored entry lies outside the per-entry interval at
    :func:`~workbench.params.thresholds.sidak_level` ``(L, m)``, ``m`` being how many of its entries were
    scored: the level then applies to the instance's decision, not to each of its entries (which
    would flag about ``m * (1 - L) / 2`` normal instances in ``L``'s upper tail). Per-entry
    verdicts (``anomalous_<L>`` of :meth:`ParamModel.score`) are unchanged; this is a separate
    rule over the same scores. Entries without a session are left out.

    Parameters
    ----------
    scores
        The frame returned by :meth:`ParamModel.score` (its ``confidence`` column is used).
    levels
        Instance-level confidence levels.

    Returns
    -------
    pandas.DataFrame
        One row per session with a scored entry, indexed by session: ``entries`` (m),
        ``confidence`` (worst entry's confidence ** m), ``line``, ``key``, ``mse``, ``dimension``,
        ``observed``, ``predicted`` (of the worst entry), and ``entry_level_<L>`` (the per-entry
        level it had to exceed), ``anomalous_<L>`` per level.

    >>> s = pd.DataFrame({"session": ["a", "a", "b"], "status": "scored", "line": [1, 2, 3],
    ...                   "key": 1, "mse": [0.1, 9.0, 0.5], "confidence": [0.3, 0.9999, 0.995],
    ...                   "dimension": "elapsed", "observed": 1.0, "predicted": 1.0})
    >>> v = instance_verdicts(s, [0.99])
    >>> v["entries"].tolist(), v["line"].tolist(), v["anomalous_99"].tolist()
    ([2, 1], [2, 3], [True, True])

    Each of three entries at 99.5 % confidence would be flagged on its own at 99 %, but for one
    instance of three entries that is not unusual (0.996 ** 3 < 0.99):

    >>> one = s.assign(session="a", confidence=[0.3, 0.996, 0.995])
    >>> instance_verdicts(one, [0.99])[["entries", "anomalous_99"]].values.tolist()
    [[3, False]]
    """
    sc = scores[(scores["status"] == "scored") & scores["session"].notna()]
    conf = sc["confidence"].fillna(0.0)
    worst = conf.groupby(sc["session"], sort=False).idxmax()
    m = sc.groupby("session", sort=False).size().reindex(worst.index)
    cols = ["line", "key", "mse", "dimension", "observed", "predicted"]
    out = sc.loc[worst.to_numpy(), cols].set_index(worst.index)
    out.insert(0, "entries", m.to_numpy())
    out.insert(1, "confidence", instance_confidence(conf[worst.to_numpy()].to_numpy(), m))
    for lv in levels:
        out[f"entry_level_{level_name(lv)}"] = sidak_level(lv, m.to_numpy())
    for lv in levels:
        out[f"anomalous_{level_name(lv)}"] = out["confidence"].to_numpy() > lv
    out.index.name = "session"
    return out
