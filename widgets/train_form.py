"""The Train tab's form: the hyper-parameters shown for each model, named as the core's configs
name them, with the configurations a new workbench trains with as defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

__all__ = ["KEY_FIELDS", "PARAM_FIELDS", "Field", "config_dict", "core_defaults", "field_widget"]


@dataclass(frozen=True)
class Field:
    """One hyper-parameter: the core config's field name, its label, whether it is an int, bounds."""

    name: str
    label: str
    integer: bool
    low: float
    high: float
    help: str = ""


# Names are the core configs' fields (KeyModelConfig, ParamModelConfig); values come from them.
KEY_FIELDS: tuple[Field, ...] = (
    Field("window", "h (history)", True, 1, 100, "keys of history the model sees"),
    Field("top_g", "g (top candidates)", True, 1, 1000, "a key among the g most likely is normal"),
    Field("num_layers", "L (LSTM layers)", True, 1, 8, "stacked LSTM layers"),
    Field("hidden_size", "α (hidden units)", True, 1, 1024, "units per LSTM layer"),
    Field("max_epochs", "epochs (max)", True, 1, 10_000, "early stopping may end sooner"),
    Field("batch_size", "batch size", True, 1, 1 << 16, ""),
    Field("learning_rate", "learning rate", False, 1e-6, 1.0, "Adam step size"),
)
PARAM_FIELDS: tuple[Field, ...] = (
    Field("history", "h (history)", True, 1, 100, "vectors of history the model sees"),
    Field("num_layers", "L (LSTM layers)", True, 1, 8, ""),
    Field("hidden_size", "α (hidden units)", True, 1, 1024, ""),
    Field("max_epochs", "epochs (max)", True, 1, 10_000, ""),
    Field("batch_size", "batch size", True, 1, 1 << 16, ""),
    Field("learning_rate", "learning rate", False, 1e-6, 1.0, "Adam step size"),
)


def core_defaults() -> tuple[dict[str, Any], dict[str, Any]]:
    """The configurations a new workbench trains with (its key model chooses g on validation)."""
    from workbench.keys.model import KeyModelConfig
    from workbench.params.config import ParamModelConfig

    return (
        dataclasses.asdict(KeyModelConfig(top_g="auto")),
        dataclasses.asdict(ParamModelConfig()),
    )


def config_dict(config: Any) -> dict[str, Any]:
    """A configuration (dataclass, mapping or plain object) as a dict of its fields."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(vars(config))


def field_widget(f: Field, value: Any) -> W.ValueWidget:
    """The input box of one field, bounded, with ``value`` (the field's lower bound if none)."""
    style = {"description_width": "150px"}
    layout = W.Layout(width="300px")
    if f.integer:
        v = int(value) if isinstance(value, int | float) else int(f.low)
        return W.BoundedIntText(
            value=v, min=int(f.low), max=int(f.high), description=f.label,
            tooltip=f.help, style=style, layout=layout,
        )  # fmt: skip
    v = float(value) if isinstance(value, int | float) else f.low
    return W.BoundedFloatText(
        value=v, min=f.low, max=f.high, step=v / 10 if v else 0.001, description=f.label,
        tooltip=f.help, style=style, layout=layout,
    )  # fmt: skip
