"""DeepLog's parameter-value anomaly model: one small LSTM per log key over its parameter vectors.

For every log key with enough normal training entries, the vectors ``[elapsed time, numeric params...]``
of its entries, in log order, form a time series (:mod:`workbench.params.vectors`). Each dimension is
normalised with the mean and standard deviation of the key's *training* part
(:mod:`workbench.params.scaling`); an LSTM reads the last ``history`` vectors of the key and predicts
the next one (:mod:`workbench.params.network`); the loss is the mean square error (MSE) over the
dimensions that were observed. Each key's series is split chronologically: the first part trains
(:mod:`workbench.params.training`), the last ``validation_fraction`` validates (early stopping, and
the threshold). An entry is a parameter-value (performance) anomaly at level ``L`` when its MSE lies
above the key's threshold at ``L`` (:mod:`workbench.params.thresholds`); scoring is in
:mod:`workbench.params.scoring`, the online update in :mod:`workbench.params.update`, verdicts per
VM instance in :mod:`workbench.params.verdicts`. The method is described in ``docs/METHOD.md``.

Threshold rule: by default (``threshold_rule="conformal"``) not a Gaussian but the key's own
empirical upper quantile of its validation MSEs with the finite-sample (conformal) correction, and,
where a key has too few validation MSEs for the level, at least their maximum extended by a tail
pooled over all keys (:class:`~workbench.params.conformal.ConformalThreshold`). A key has often only
15-50 validation entries: the Gaussian fitted to them (on ``log(MSE)``) was crossed by 5 % of the
entries of a second normal OpenStack log at 99 %. ``threshold_rule="gaussian"`` is the paper's
rule, on ``log(MSE)`` (``threshold_scale="log"``) or on the MSE itself (``"linear"``, right-skewed
MSEs cross its 99 % bound several times too often); :meth:`ParamModel.refit_thresholds` switches
between them over the same scores, and ``bench/openstack_params.py`` prints them side by side.

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

import copy
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.params.batches import KeyData, key_data, tail
from workbench.params.config import ParamModelConfig
from workbench.params.levels import level_name
from workbench.params.network import ParamLSTM
from workbench.params.scaling import TRAINED, describe_key
from workbench.params.scoring import mse_of, score_entries
from workbench.params.thresholds import Threshold, fit_thresholds, threshold_from_state
from workbench.params.training import train_keys
from workbench.params.update import learn_example
from workbench.params.vectors import build_series, sample_positions
from workbench.train import Callback, History, pick_device, torch_threads

__all__ = ["UPDATED_PARTS", "ParamModel"]

logger = logging.getLogger(__name__)

_STATE_FORMAT = "workbench.params.model/1"
#: The entries of :meth:`ParamModel.to_state` an online update (``partial_fit``) changes.
UPDATED_PARTS = ("module", "keys", "thresholds")
_STATE_FORMATS = (_STATE_FORMAT, "workbench.parammodel/1")  # the same state, saved before the move
_SAMPLE_STREAM = 1  # a key's window sample draws from its own stream, apart from its batch order


class ParamModel:
    """Per-key parameter-value anomaly models with their thresholds (fit, score, update, save).

    Parameters
    ----------
    config
        The settings; default :class:`~workbench.params.config.ParamModelConfig`.

    Attributes
    ----------
    keys_ : dict[int, dict]
        Per key seen in training: ``status`` (``'trained'``, ``'skipped: too few entries'``,
        ``'skipped: constant'``), ``detail``, ``n_entries``, ``n_train``, ``n_validation``, ``names``,
        ``n_params``, and for trained keys ``logged`` (per dimension: modelled as log(1 + x / u))
        and ``log_unit`` (``u``),
        ``mean``, ``std`` (normalisation, on the model scale),
        ``slot`` (index in the stacked module), ``best_epoch``, and ``n_train_used`` and
        ``n_validation_used``: the entries whose windows were trained and validated on (all of
        them up to ``max_train_windows`` and ``max_validation_windows``, a seeded sample above).
    validation_mse_ : dict[int, numpy.ndarray]
        Each trained key's validation MSEs (the entries after its chronological split, or their
        sample).
    thresholds_ : dict[int, Threshold]
        Fitted on ``validation_mse_`` only (see :meth:`refit_thresholds`).
    module_ : ParamLSTM
        The stacked per-key LSTMs (``None`` when no key could be trained).
    history_ : History
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
        callbacks: Iterable[Callback] | None = (),
        seed: int | None = 0,
    ) -> ParamModel:
        """Train one model per key with enough entries on normal ``entries`` (a parsed frame).

        Parameters
        ----------
        entries
            Normal parsed rows in log order (remove known anomalies first).
        callbacks
            Callables receiving the training loop's :class:`~workbench.train.TrainEvent` objects
            (``epoch_end`` carries that epoch's :attr:`history_` record).
        seed
            Seeds the weight initialisation and batch order (``None``: a fresh random seed). Each
            key draws from its own stream seeded by ``(seed, key)``, so a key's model depends on
            its own entries and the seed, not on which other keys are trained beside it (as long
            as the widest key, which sets the shared input width, stays the same).
        """
        cfg = self.config
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        self._reset(int(seed), cfg.device)
        data = self._describe_keys(entries)
        self.n_dims_ = max((d.raw.shape[1] for d in data), default=1)
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
        with torch_threads(cfg.cpu_threads):
            result, best_epoch = train_keys(
                self.module_, data, rngs, cfg, self.device_,
                callbacks=callbacks or (), history=self.history_,
            )  # fmt: skip
            self.interrupted_ = result.stopped == "interrupted"
            for d, epoch in zip(data, best_epoch, strict=True):
                self.keys_[d.key]["best_epoch"] = int(epoch)
                val = mse_of(self, tail(d))
                self.validation_mse_[d.key] = val[np.isfinite(val)]
        self.refit_thresholds()
        for d, r in zip(data, rngs, strict=True):
            train_rows = np.flatnonzero(np.isfinite(d.raw[: d.cut]).any(axis=1))
            pick = np.sort(r.choice(train_rows, min(cfg.replay_size, len(train_rows)), False))
            self.replay_[d.key] = (d.x[pick], d.z[pick])
        return self

    def _reset(self, seed: int, device: str | None) -> None:
        self.seed_ = seed
        self.device_ = pick_device(device)
        self.keys_: dict[int, dict[str, Any]] = {}
        self.thresholds_: dict[int, Threshold] = {}
        self.validation_mse_: dict[int, np.ndarray] = {}
        self.history_ = History()
        self.interrupted_ = False
        self.replay_: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.module_: ParamLSTM | None = None

    def _describe_keys(self, entries: pd.DataFrame) -> list[KeyData]:
        """Describe every key of ``entries`` in :attr:`keys_`; the data of those to train (a
        seeded sample of a key's windows where a part of its series is above its cap, said in
        ``n_train_used`` and ``n_validation_used``)."""
        cfg = self.config
        series = build_series(entries, elapsed=cfg.elapsed, max_params=cfg.max_params)
        data: list[KeyData] = []
        for k in sorted(series):
            s = series[k]
            info, cut = describe_key(s, cfg)
            self.keys_[k] = info
            if info["status"] != TRAINED:
                continue
            rng = np.random.default_rng([self.seed_, k, _SAMPLE_STREAM])
            at = sample_positions(
                len(s.rows), cut, cfg.max_train_windows, cfg.max_validation_windows, rng
            )
            d = key_data(k, info, s.rows, s.values, cut, cfg.history, at)
            usable = np.isfinite(d.raw).any(axis=1)
            info["n_train_used"] = int(usable[: d.cut].sum())
            info["n_validation_used"] = int(usable[d.cut :].sum())
            data.append(d)
        n_skipped = len(self.keys_) - len(data)
        logger.info("parameter models: %d keys to train, %d skipped", len(data), n_skipped)
        return data

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
            self.config = self.config.replace(**changes)
        self.thresholds_ = fit_thresholds(self.validation_mse_, self.config)
        return self

    # ------------------------------------------------------------------ scoring
    def _check(self) -> None:
        if not hasattr(self, "keys_"):
            raise RuntimeError("ParamModel is not fitted; call fit(entries) or from_state(...)")

    def score(self, entries: pd.DataFrame, *, only: Any = None, keys: Any = None) -> pd.DataFrame:
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
        keys
            Score only the entries of these keys (the others are left as if their key had no
            model): what re-scoring after an update of some keys' models needs.

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
        return score_entries(self, entries, only, keys)

    @property
    def thresholds(self) -> dict[int, Threshold]:
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
                "n_train_used": info.get("n_train_used", info["n_train"]),
                "n_validation_used": info.get("n_validation_used", info["n_validation"]),
                "dimensions": ", ".join(info["names"]),
            }
            th = self.thresholds_.get(k)
            for lv in self.config.levels:
                row[f"threshold_{level_name(lv)}"] = th.threshold(lv) if th else np.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def data_used(self) -> dict[str, int]:
        """What the fit read, over the trained keys: ``keys``, and the usable training and
        validation entries there were and those whose windows were used (``*_used``; fewer where a
        key's part was above its cap)."""
        self._check()
        trained = [v for v in self.keys_.values() if v["status"] == TRAINED]
        out = {"keys": len(trained)}
        for part in ("n_train", "n_validation"):
            out[part] = sum(v[part] for v in trained)
            out[f"{part}_used"] = sum(v.get(f"{part}_used", v[part]) for v in trained)
        return out

    # ------------------------------------------------------------------ online update
    def partial_fit(
        self,
        key: int,
        history_vectors: Iterable[Iterable[float]],
        next_vector: Iterable[float],
        *,
        seed: int | None = 0,
        level: float | None = None,
    ) -> ParamModel:
        """Learn one confirmed-normal example (a reported false positive) with a few gradient steps.

        ``history_vectors`` are the previous vectors of ``key`` (a key with a trained model),
        oldest first, in original units (NaN = missing); the last ``history`` are used, fewer are
        left-padded. ``next_vector`` is the vector that followed, now known to be normal. The
        steps (``update_steps``, ``update_replay``, ``update_max_steps``,
        ``update_learning_rate`` of the config) and what a confidence ``level`` adds are described
        in :mod:`workbench.params.update`. The example's vector is kept as a value confirmed normal
        for the key (:mod:`workbench.params.confirmed`). ``last_update_`` holds the steps taken,
        the example's MSE before and after them, whether it was within the threshold, how many
        values the key keeps as confirmed and whether this one was new.
        """
        self._check()
        self.last_update_ = learn_example(
            self, key, history_vectors, next_vector, seed=seed, level=level
        )
        return self

    def update_copy(self, keys: Collection[int]) -> ParamModel:
        """A copy that an online update of ``keys`` may change: :meth:`partial_fit` changes only
        the network's weights and those keys' records and thresholds, so those are copied and what
        it only reads (replayed training windows, validation errors, history) is shared."""
        new = copy.copy(self)
        new.module_ = copy.deepcopy(self.module_)
        new.keys_ = {k: copy.deepcopy(v) if k in keys else v for k, v in self.keys_.items()}
        new.thresholds_ = {
            k: copy.deepcopy(t) if k in keys else t for k, t in self.thresholds_.items()
        }
        return new

    # ------------------------------------------------------------------ persistence
    def to_state(self, parts: Collection[str] | None = None) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model, without pickling the object.

        ``config``, ``keys`` (per-key status, normalisation and slot), ``thresholds``, ``history`` and
        ``n_dims`` are JSON-able; ``module`` (the stacked LSTMs' weights) and ``replay`` hold
        tensors (save them with ``torch.save`` / load with ``weights_only=True``). ``parts``: only
        these entries (:data:`UPDATED_PARTS` are all that :meth:`partial_fit` changes).
        """
        self._check()
        module = self.module_
        make: dict[str, Callable[[], Any]] = {
            "format": lambda: _STATE_FORMAT,
            "config": self.config.to_dict,
            "seed": lambda: self.seed_,
            "n_dims": lambda: self.n_dims_,
            "keys": lambda: {str(k): dict(v) for k, v in self.keys_.items()},
            "thresholds": lambda: {str(k): t.to_state() for k, t in self.thresholds_.items()},
            "validation_mse": lambda: {str(k): v.tolist() for k, v in self.validation_mse_.items()},
            "history": lambda: [dict(r) for r in self.history_],
            "interrupted": lambda: self.interrupted_,
            "module": lambda: (
                None
                if module is None
                else {n: t.detach().cpu().clone() for n, t in module.state_dict().items()}
            ),
            "replay": lambda: {
                str(k): {"x": torch.from_numpy(x.copy()), "y": torch.from_numpy(y.copy())}
                for k, (x, y) in self.replay_.items()
            },
        }
        return {k: f() for k, f in make.items() if parts is None or k in parts}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], *, device: str | None = None) -> ParamModel:
        """Rebuild a model saved by :meth:`to_state`; raises ValueError on a malformed state."""
        if state.get("format") not in _STATE_FORMATS:
            raise ValueError(f"not a parameter-model state (format {state.get('format')!r})")
        try:
            model = cls(ParamModelConfig.from_dict(state["config"]))
            model._load(state, device)
            trained = {k for k, v in model.keys_.items() if v["status"] == TRAINED}
            slots = sorted(model.keys_[k]["slot"] for k in trained)
        except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"malformed parameter-model state: {exc!r}") from exc
        if slots != list(range(len(slots))) or set(model.thresholds_) != trained:
            raise ValueError("malformed parameter-model state: keys, slots and thresholds disagree")
        return model

    def _load(self, state: Mapping[str, Any], device: str | None) -> None:
        cfg = self.config
        self._reset(int(state["seed"]), device if device is not None else cfg.device)
        self.n_dims_ = int(state["n_dims"])
        self.keys_ = {int(k): dict(v) for k, v in state["keys"].items()}
        self.thresholds_ = {int(k): threshold_from_state(t) for k, t in state["thresholds"].items()}
        self.validation_mse_ = {
            int(k): np.asarray(v, dtype=float) for k, v in state["validation_mse"].items()
        }
        self.history_ = History(dict(r) for r in state["history"])
        self.interrupted_ = bool(state["interrupted"])
        self.replay_ = {
            int(k): (np.asarray(v["x"].numpy()), np.asarray(v["y"].numpy()))
            for k, v in state["replay"].items()
        }
        n_slots = sum(v["status"] == TRAINED for v in self.keys_.values())
        if state["module"] is not None:
            module = ParamLSTM(n_slots, self.n_dims_, cfg.hidden_size, cfg.num_layers)
            module.load_state_dict(state["module"])
            self.module_ = module.to(self.device_).eval()

    def __repr__(self) -> str:
        if not hasattr(self, "keys_"):
            return f"ParamModel({self.config})"
        n = sum(v["status"] == TRAINED for v in self.keys_.values())
        return f"ParamModel({n} of {len(self.keys_)} keys trained)"
