"""Settings of the log-key model (:class:`KeyModelConfig`) and its named presets.

The defaults are the paper's where it gives them (h = 10, g = 9, L = 2, alpha = 64; docs/METHOD.md
section 2). The hyper-parameters of the online update from feedback (docs/METHOD.md section 4) are
settings of the model too (the ``update_*`` fields): an update is always made the same way for a
given model.

>>> KeyModelConfig.from_dict({"window": 5}).window
5
>>> KeyModelConfig.from_dict({"windwo": 5})
Traceback (most recent call last):
...
ValueError: unknown KeyModelConfig fields: ['windwo']
>>> KeyModelConfig(top_g=0)
Traceback (most recent call last):
...
ValueError: top_g must be a positive int or 'auto', got 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from workbench.config import Config, require, require_choice
from workbench.train import TrainConfig

__all__ = ["PRESETS", "KeyModelConfig"]


@dataclass(frozen=True)
class KeyModelConfig(Config):
    """Settings of the log-key model; the defaults are the paper's where it gives them."""

    window: int = 10  # h: history length
    top_g: int | Literal["auto"] = 9  # g: candidates accepted; "auto" = chosen on validation
    min_probability: float | Literal["auto"] = 0.0  # floor on the key's probability; 0 = paper
    num_layers: int = 2  # L: stacked LSTM layers
    hidden_size: int = 64  # alpha: units per LSTM layer
    encoding: Literal["onehot", "embedding"] = "onehot"  # key input encoding
    embedding_dim: int = 16  # size of the key embedding when encoding == "embedding"
    # distinct example weight f(count); "auto": "log" and "count" both trained, the one whose rule
    # flags more synthetic anomalies on validation kept (twice the training time)
    weighting: Literal["count", "sqrt", "log", "unit", "auto"] = "log"
    spare_keys: int = 8  # free vocabulary slots for keys learned online (partial_fit)
    session_counts: bool = False  # also see how often each key occurred so far in the session
    ensemble: int = 1  # networks whose probabilities are averaged (different initial weights)
    max_epochs: int = 40  # upper bound; early stopping on validation usually ends sooner
    batch_size: int = 256  # distinct examples per gradient step
    learning_rate: float = 1e-2  # Adam step size
    patience: int = 5  # epochs without validation improvement before stopping
    target_fpr: float = (
        0.001  # g / floor selection: tolerated extra (estimated) false-positive rate
    )
    validation_split: Literal["novel", "sessions"] = "novel"  # held-out rare sequences, or sessions
    validation_folds: int = 1  # novel split: > 1 cross-fits, every rare sequence held out once
    end_limit: bool = True  # with auto g and floor: a separate END rank limit (select_rule)
    refit: bool = True  # then fine-tune on all training sessions (validation ones included)
    refit_fraction: float = 0.25  # refit epochs = ceil(this * epochs chosen by early stopping)
    # a long log is fitted on a seeded uniform sample of its sessions holding at most this many
    # distinct sequences (the cost follows them, not the lines); None: every session
    max_distinct_sessions: int | None = 1000
    # The online update (KeyModel.partial_fit), see workbench.keys.online:
    update_steps: int = 1  # Adam steps every update takes at least
    update_max_steps: int = 6  # at most, while a taught example is not yet accepted
    update_learning_rate: float = 3e-3  # smaller than training's: other predictions move little
    update_replay_size: int = 32  # distinct examples of the replay sessions mixed into each step
    update_memory_size: int = 16  # examples of earlier updates taught again at each update
    update_guard_size: int = 64  # most frequent replay examples that must stay accepted

    def validate(self) -> None:
        """Raise :class:`ValueError` when a setting is out of range."""
        for name in ("window", "num_layers", "hidden_size", "embedding_dim", "ensemble"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(
            self.top_g == "auto" or (_is_int(self.top_g) and self.top_g >= 1),
            f"top_g must be a positive int or 'auto', got {self.top_g!r}",
        )
        require(
            self.min_probability == "auto"
            or (
                isinstance(self.min_probability, int | float) and 0.0 <= self.min_probability < 1.0
            ),
            f"min_probability must be in [0, 1) or 'auto', got {self.min_probability!r}",
        )
        require_choice("encoding", self.encoding, ("onehot", "embedding"))
        require_choice("weighting", self.weighting, ("count", "sqrt", "log", "unit", "auto"))
        require_choice("validation_split", self.validation_split, ("novel", "sessions"))
        require(self.spare_keys >= 0, f"spare_keys must be >= 0, got {self.spare_keys}")
        require(
            0.0 <= self.target_fpr < 1.0, f"target_fpr must be in [0, 1), got {self.target_fpr}"
        )
        require(0.0 < self.refit_fraction <= 1.0, f"bad refit_fraction {self.refit_fraction}")
        require(
            self.max_distinct_sessions is None
            or (_is_int(self.max_distinct_sessions) and self.max_distinct_sessions >= 2),
            f"max_distinct_sessions must be an int >= 2 or None, got {self.max_distinct_sessions!r}",
        )
        require(
            self.validation_folds >= 1,
            f"validation_folds must be >= 1, got {self.validation_folds}",
        )
        for name in (
            "update_steps",
            "update_replay_size",
            "update_memory_size",
            "update_guard_size",
        ):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        require(
            self.update_max_steps >= 0,
            f"update_max_steps must be >= 0, got {self.update_max_steps}",
        )
        require(
            self.update_learning_rate > 0,
            f"update_learning_rate must be > 0, got {self.update_learning_rate}",
        )

    @classmethod
    def preset(cls, name: str = "recommended", **changes: Any) -> KeyModelConfig:
        """A named configuration, with ``changes`` on top.

        ``"recommended"``: the configuration validated on HDFS (README: h = 5, session counts, an
        ensemble of 3 networks, g and the probability floor chosen on 2 cross-fitted folds of the
        training sequences); what the workbench and the command line use unless told otherwise.
        ``"paper"``: the paper's exact model (h = 10, g = 9, L = 2, alpha = 64, one network, no
        session counts).

        >>> KeyModelConfig.preset("recommended").ensemble, KeyModelConfig.preset("paper").top_g
        (3, 9)
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **changes})

    def train_config(self, max_epochs: int | None = None) -> TrainConfig:
        """The optimisation settings handed to :func:`workbench.train.train_module`."""
        return TrainConfig(
            max_epochs=self.max_epochs if max_epochs is None else max_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            patience=self.patience,
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: Named key-model configurations (see :meth:`KeyModelConfig.preset`).
PRESETS: dict[str, dict[str, Any]] = {
    "recommended": {
        "window": 5,
        "top_g": "auto",
        "min_probability": "auto",
        "session_counts": True,
        "ensemble": 3,
        "validation_folds": 2,
    },
    "paper": {
        "window": 10,
        "top_g": 9,
        "min_probability": 0.0,
        "num_layers": 2,
        "hidden_size": 64,
        "session_counts": False,
        "ensemble": 1,
        "validation_folds": 1,
    },
}
