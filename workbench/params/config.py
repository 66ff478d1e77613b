"""The parameter model's settings: one frozen :class:`ParamModelConfig` (see :mod:`workbench.config`).

>>> ParamModelConfig.from_dict({"history": 3}).history
3
>>> ParamModelConfig(update_steps=0)
Traceback (most recent call last):
...
ValueError: update_steps must be a positive integer, got 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.config import Config, require, require_choice
from workbench.params.gaussian import SCALES
from workbench.params.levels import DEFAULT_LEVELS, level_name
from workbench.params.thresholds import RULES
from workbench.params.vectors import ELAPSED_MODES

__all__ = ["VALUE_SCALES", "ParamModelConfig"]

VALUE_SCALES = ("log1p", "linear")  #: how a non-negative dimension is modelled (see scaling)

_POSITIVE = (
    "history",
    "hidden_size",
    "num_layers",
    "max_epochs",
    "steps_per_epoch",
    "batch_size",
    "update_steps",
    "update_max_steps",
)
_NON_NEGATIVE = ("min_entries", "max_params", "patience", "replay_size", "update_replay")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ParamModelConfig(Config):
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
    # a key's windows trained and validated on, at most: above, a seeded uniform sample of that
    # part of its series (in log order; every window still reads the whole series); None: all
    max_train_windows: int | None = 8192  # an epoch draws steps_per_epoch * batch_size of them
    max_validation_windows: int | None = 4096  # thresholds; early stopping reads <= 1024
    replay_size: int = 256  # training windows kept per key to mix into partial_fit
    update_steps: int = 5  # partial_fit: Adam steps on the example (+ replayed windows) at least
    update_replay: int = 32  # partial_fit: replayed training windows mixed into each step
    # partial_fit with a level: steps at most until it is within. The value is kept as confirmed
    # normal whatever the steps reach (params/confirmed.py), and more steps towards a value far
    # from the prediction drag the key's other predictions with it (a normal VM's start reported
    # once a reboot's start was flagged, in bench/bgl_online.py's drift scenario)
    update_max_steps: int = 5
    update_learning_rate: float | None = None  # partial_fit's Adam step size; None: learning_rate
    device: str | None = None  # None: 'cuda' when available, else 'cpu'
    cpu_threads: int | None = 1  # torch CPU threads in fit/score (tiny tensors); None: as is

    def validate(self) -> None:
        for name in _POSITIVE:
            value = getattr(self, name)
            require(
                _is_int(value) and value >= 1, f"{name} must be a positive integer, got {value!r}"
            )
        for name in _NON_NEGATIVE:
            value = getattr(self, name)
            require(
                _is_int(value) and value >= 0,
                f"{name} must be a non-negative integer, got {value!r}",
            )
        for name in ("max_train_windows", "max_validation_windows"):
            value = getattr(self, name)
            require(
                value is None or (_is_int(value) and value >= 2),
                f"{name} must be an integer >= 2 or None, got {value!r}",
            )
        require_choice("elapsed", self.elapsed, ELAPSED_MODES)
        require(
            0.0 < self.validation_fraction < 1.0,
            f"validation_fraction must lie in (0, 1), got {self.validation_fraction!r}",
        )
        levels = tuple(self.levels)
        require(
            bool(levels) and all(0.0 < float(lv) < 1.0 for lv in levels),
            f"levels must be confidence levels in (0, 1), got {self.levels!r}",
        )
        require(
            len({level_name(lv) for lv in levels}) == len(levels),
            f"levels must be distinct, got {self.levels!r}",
        )
        require_choice("threshold_rule", self.threshold_rule, RULES)
        require_choice("threshold_scale", self.threshold_scale, SCALES)
        require_choice("value_scale", self.value_scale, VALUE_SCALES)
        require(
            self.min_threshold >= 0 and math.isfinite(self.min_threshold),
            f"min_threshold must be >= 0, got {self.min_threshold!r}",
        )
        for name in ("learning_rate", "update_learning_rate"):
            value = getattr(self, name)
            require(
                (value is None and name != "learning_rate") or _positive(value),
                f"{name} must be positive, got {value!r}",
            )
        require(
            self.cpu_threads is None or (_is_int(self.cpu_threads) and self.cpu_threads >= 1),
            f"cpu_threads must be a positive integer or None, got {self.cpu_threads!r}",
        )
        require(
            self.device is None or isinstance(self.device, str),
            f"device must be a string or None, got {self.device!r}",
        )
        object.__setattr__(self, "levels", tuple(float(lv) for lv in levels))

    @property
    def update_rate(self) -> float:
        """The online update's Adam step size."""
        return self.update_learning_rate or self.learning_rate


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and value > 0 and math.isfinite(value)
