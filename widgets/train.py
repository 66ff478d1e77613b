"""Train: the hyper-parameters of both models, a progress bar per model, a live loss curve, Stop.

Training runs in the background (see :class:`widgets.base.TaskRunner`); the core reports through a
callback ``cb(event: dict)`` with ``stage`` ('key' or 'param'), ``event`` ('batch', 'epoch' or
'done'), ``epoch``, ``epochs``, ``train_loss``, ``val_loss``. Stop calls ``wb.stop()``: the core ends
after the current batch and keeps a usable model. When training ends the chosen g and the thresholds
are shown.

Only the fields the user changed are sent to ``wb.fit`` (``key_config``/``param_config`` dicts, or
None when nothing changed), so the core's own defaults (the paper's) stay the single source of truth.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from widgets.base import PlotSlot, TaskRunner, View
from widgets.figures import level_label, loss_curve_figure

__all__ = ["KEY_FIELDS", "PARAM_FIELDS", "Field", "TrainView"]


@dataclass(frozen=True)
class Field:
    """One hyper-parameter: the config field name, its label, the paper's default, bounds."""

    name: str
    label: str
    default: int | float
    low: float
    high: float
    help: str = ""


# Defaults are the paper's (h = 10, g = 9, L = 2, alpha = 64); names are the core configs' fields.
KEY_FIELDS: tuple[Field, ...] = (
    Field("window", "h (history)", 10, 1, 100, "keys of history the model sees"),
    Field("top_g", "g (top candidates)", 9, 1, 100, "a key among the g most likely is normal"),
    Field("num_layers", "L (LSTM layers)", 2, 1, 8, "stacked LSTM layers"),
    Field("hidden_size", "α (hidden units)", 64, 1, 1024, "units per LSTM layer"),
    Field("max_epochs", "epochs (max)", 100, 1, 10_000, "early stopping may end sooner"),
    Field("batch_size", "batch size", 512, 1, 1 << 16, ""),
    Field("learning_rate", "learning rate", 3e-3, 1e-6, 1.0, "Adam step size"),
)
PARAM_FIELDS: tuple[Field, ...] = (
    Field("window", "h (history)", 10, 1, 100, "vectors of history the model sees"),
    Field("num_layers", "L (LSTM layers)", 2, 1, 8, ""),
    Field("hidden_size", "α (hidden units)", 64, 1, 1024, ""),
    Field("max_epochs", "epochs (max)", 100, 1, 10_000, ""),
    Field("batch_size", "batch size", 512, 1, 1 << 16, ""),
    Field("learning_rate", "learning rate", 3e-3, 1e-6, 1.0, ""),
)


def _field_widget(f: Field) -> W.ValueWidget:
    style = {"description_width": "150px"}
    layout = W.Layout(width="300px")
    if isinstance(f.default, int):
        return W.BoundedIntText(
            value=f.default, min=int(f.low), max=int(f.high), description=f.label,
            tooltip=f.help, style=style, layout=layout,
        )  # fmt: skip
    return W.BoundedFloatText(
        value=f.default, min=f.low, max=f.high, step=f.default / 10, description=f.label,
        tooltip=f.help, style=style, layout=layout,
    )  # fmt: skip


def _levels_map(per: Any) -> dict[float, float]:
    """level -> threshold from a mapping, or from an object with ``thresholds()`` (a fitted rule)."""
    if isinstance(per, Mapping):
        return {float(k): float(v) for k, v in per.items()}
    if callable(getattr(per, "thresholds", None)):
        return {float(k): float(v) for k, v in per.thresholds().items()}
    return {}


class TrainView(View):
    """Hyper-parameters, Train and Stop, per-model progress, the live loss curve, the result.

    Public state: :attr:`history` (per-epoch dicts, what the loss figure reads), :attr:`training`.
    """

    refresh_on = ("fit",)

    def __init__(self, wb: Any = None, *, runner: TaskRunner | None = None) -> None:
        super().__init__(wb, runner=runner)
        self.history: list[dict[str, Any]] = []
        self.training = False
        self._done: list[Callable[[Any], None]] = []
        self.key_inputs = {f.name: _field_widget(f) for f in KEY_FIELDS}
        self.param_inputs = {f.name: _field_widget(f) for f in PARAM_FIELDS}
        self.auto_g = W.Checkbox(value=False, description="choose g on validation", indent=False)
        self.auto_g.observe(self._on_auto_g, names="value")
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.reset_button = W.Button(description="paper defaults", icon="undo")
        self.bars = {
            stage: W.IntProgress(
                value=0,
                min=0,
                max=1,
                description=label,
                style={"description_width": "150px"},
                layout=W.Layout(width="60%"),
            )
            for stage, label in (("key", "key model"), ("param", "parameter models"))
        }
        self.bar_labels = {stage: W.HTML() for stage in self.bars}
        self.loss_slot = PlotSlot(loss_curve_figure([]))
        self.result = W.HTML()
        params = W.HBox(
            [
                W.VBox([W.HTML("<b>Log-key model</b>"), *self.key_inputs.values(), self.auto_g]),
                W.VBox([W.HTML("<b>Parameter-value models</b>"), *self.param_inputs.values()]),
            ]
        )
        self.children = [
            W.Accordion(children=[params], titles=("Hyper-parameters (paper defaults)",)),
            W.HBox([self.train_button, self.stop_button, self.reset_button]),
            *[W.HBox([self.bars[s], self.bar_labels[s]]) for s in self.bars],
            self.status,
            self.loss_slot.box,
            self.result,
        ]
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.reset_button.on_click(lambda _: self.reset_defaults())
        self.bind(wb)

    @property
    def loss(self) -> go.FigureWidget:
        """The loss-curve plot widget."""
        return self.loss_slot.widget

    # ----------------------------------------------------------------------------- configs

    def _on_auto_g(self, change: dict) -> None:
        self.key_inputs["top_g"].disabled = bool(change["new"])

    def reset_defaults(self) -> None:
        """Put the paper's defaults back in every field."""
        for fields, inputs in ((KEY_FIELDS, self.key_inputs), (PARAM_FIELDS, self.param_inputs)):
            for f in fields:
                inputs[f.name].value = f.default
        self.auto_g.value = False

    def configs(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(key_config, param_config): the fields that differ from the defaults, or None."""

        def changed(fields: tuple[Field, ...], inputs: Mapping[str, W.ValueWidget]) -> dict:
            return {
                f.name: inputs[f.name].value for f in fields if inputs[f.name].value != f.default
            }

        key = changed(KEY_FIELDS, self.key_inputs)
        if self.auto_g.value:
            key["top_g"] = "auto"
        param = changed(PARAM_FIELDS, self.param_inputs)
        return key or None, param or None

    # ----------------------------------------------------------------------------- training

    def on_trained(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(wb)`` after training ends (finished or stopped), not after a failure."""
        self._done.append(callback)

    def train(self, then: Callable[[Any], None] | None = None) -> bool:
        """Start training in the background with the current hyper-parameters.

        ``then(wb)`` runs once after this training ends (finished or stopped).
        """
        if self.wb is None:
            self.say("load logs first", "error")
            return False
        key_config, param_config = self.configs()
        self.history = []
        for bar in self.bars.values():
            bar.value, bar.max, bar.bar_style = 0, 1, ""
        for label in self.bar_labels.values():
            label.value = ""
        self.loss_slot.show(loss_curve_figure([]))
        self.result.value = ""
        wb = self.wb

        def work() -> Any:
            try:
                return wb.fit(
                    key_config=key_config, param_config=param_config, callbacks=[self.on_event]
                )
            finally:
                self._set_training(False)

        self._set_training(True)

        def trained(result: Any) -> None:
            self._trained(result)
            if then is not None:
                then(self.wb)

        started = self.run_task("training", work, trained)
        if not started:
            self._set_training(False)
        return started

    def _set_training(self, flag: bool) -> None:
        self.training = flag
        self.train_button.disabled = flag
        self.stop_button.disabled = not flag

    def stop(self) -> None:
        """Ask the core to stop after the current batch; the model trained so far is kept."""
        if self.wb is not None and self.training:
            self.wb.stop()
            self.say("stopping after the current batch…", "busy")

    def on_event(self, event: Mapping[str, Any]) -> None:
        """The training callback: progress bars, the loss curve (one redraw per epoch)."""
        stage = event.get("stage", "key")
        bar = self.bars.get(stage)
        kind = event.get("event")
        epochs = event.get("epochs") or 1
        epoch = event.get("epoch") or 0
        if bar is not None:
            bar.max = max(int(epochs), 1)
            bar.value = min(int(epoch), bar.max)
        label = self.bar_labels.get(stage)
        if kind == "batch" and label is not None and event.get("batches"):
            label.value = f"epoch {epoch}/{epochs} · batch {event.get('batch')}/{event['batches']}"
        elif kind == "epoch":
            self.history.append(
                {
                    "stage": stage,
                    "epoch": epoch,
                    "train_loss": event.get("train_loss"),
                    "val_loss": event.get("val_loss"),
                }
            )
            if label is not None:
                loss = event.get("val_loss")
                loss = event.get("train_loss") if loss is None else loss
                label.value = f"epoch {epoch}/{epochs}" + (
                    f" · loss {loss:.4g}" if loss is not None else ""
                )
            self.loss_slot.show(loss_curve_figure(self.history))
        elif kind == "done" and bar is not None:
            stopped = event.get("stopped")
            bar.bar_style = "warning" if stopped else "success"
            if label is not None:
                label.value += " · stopped" if stopped else " · done"

    def _trained(self, wb: Any) -> None:
        self.say(
            "training stopped early; the model so far is kept" if self._stopped() else "trained"
        )
        self.refresh()
        for cb in self._done:
            cb(self.wb)

    def _stopped(self) -> bool:
        return any(b.bar_style == "warning" for b in self.bars.values())

    def refresh(self) -> None:
        """Show the chosen g and the parameter thresholds of the fitted models."""
        if self.wb is None:
            return
        key_model = getattr(self.wb, "key_model", None)
        g = getattr(key_model, "g_", None)
        if g is None:
            self.result.value = ""
            return
        parts = [f'<div class="dl-card"><b>Chosen g = {html.escape(str(g))}</b>']
        param_model = getattr(self.wb, "param_model", None)
        thresholds = getattr(param_model, "thresholds", None) or {}
        if isinstance(thresholds, Mapping) and thresholds:
            per_key = {k: _levels_map(v) for k, v in thresholds.items()}
            levels = sorted({lv for per in per_key.values() for lv in per})
            head = "".join(f"<th>{level_label(lv)}</th>" for lv in levels)
            rows = "".join(
                f"<tr><td>key {html.escape(str(k))}</td>"
                + "".join(f"<td>{per.get(lv, float('nan')):.4g}</td>" for lv in levels)
                + "</tr>"
                for k, per in sorted(per_key.items(), key=lambda kv: str(kv[0]))
            )
            parts.append(
                "<br>MSE thresholds per key (fitted on validation MSEs):"
                f'<table class="dl-table"><tr><th></th>{head}</tr>{rows}</table>'
            )
        if self.history:
            last = self.history[-1]
            parts.append(f"<br>{len(self.history)} epochs logged; last stage {last['stage']}")
        parts.append("</div>")
        self.result.value = "".join(parts)
