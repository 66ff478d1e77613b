"""Train: the hyper-parameters of both models, a progress bar per model, a live loss curve, Stop.

Training runs in the background (see :class:`widgets.base.TaskRunner`); the core reports through a
callback ``cb(event: dict)`` with ``stage`` ('key' or 'param') and ``event``: the key model sends
``train_begin``, ``batch_end`` (``batch``/``batches``), ``epoch_end`` and ``train_end`` (with
``stopped``) per training phase (``phase``: 'split', 'refit'...); the parameter models send one
``epoch`` per epoch (``epochs`` is their ``max_epochs``). Stop calls ``wb.stop()``: the core ends the
loop after the current batch and keeps the model trained so far.

The form's values are the workbench's own configurations (``wb.key_config``, ``wb.param_config``),
and every shown field is sent to ``wb.fit``, so what the form shows is what trains. After training
the effective configuration is shown, the g chosen on validation included.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from widgets.base import PlotSlot, TaskRunner, View
from widgets.figures import level_label, loss_curve_figure
from widgets.figures.labels import key_order
from widgets.train_form import KEY_FIELDS, PARAM_FIELDS, config_dict, core_defaults, field_widget
from workbench.detect.rules import rule_choice

__all__ = ["TrainView", "rule_choice_html"]


def _share(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def rule_choice_html(selection: Any) -> str:
    """The key model's rule as chosen (g, END limit, probability floor), the validation FPR behind
    each setting and one sentence saying why; '' without a selection record."""
    if selection is None or getattr(selection, "g", None) is None:
        return ""
    choice = rule_choice(selection)
    rows = "".join(
        f"<tr><td>{html.escape(r['setting'])}</td><td><b>{r['value']:g}</b></td>"
        f"<td>{_share(r['validation_fpr'])}</td><td>{html.escape(r['meaning'])}</td></tr>"
        for r in choice["rows"]
    )
    return (
        f'<div class="dl-rule-choice"><b>Why this rule</b>: {html.escape(choice["sentence"])}'
        '<table class="dl-table"><tr><th>setting</th><th>value</th>'
        "<th>normal validation sessions flagged (with the settings above)</th><th>meaning</th></tr>"
        f"{rows}</table></div>"
    )


def _levels_map(per: Any) -> dict[float, float]:
    """level -> threshold from a mapping, or from an object with ``thresholds()`` (a fitted rule)."""
    if isinstance(per, Mapping):
        return {float(k): float(v) for k, v in per.items()}
    if callable(getattr(per, "thresholds", None)):
        return {float(k): float(v) for k, v in per.thresholds().items()}
    return {}


def _thresholds_html(param_model: Any) -> str:
    """The parameter models' MSE thresholds per key and level, folded; a line when there are none."""
    thresholds = getattr(param_model, "thresholds", None)
    if callable(thresholds):
        thresholds = thresholds()
    if param_model is None:
        return "<br>no parameter models (training was stopped before them)"
    if not (isinstance(thresholds, Mapping) and thresholds):
        return ""
    per_key = {k: _levels_map(v) for k, v in thresholds.items()}
    levels = sorted({lv for per in per_key.values() for lv in per})
    head = "".join(f"<th>{level_label(lv)}</th>" for lv in levels)
    rows = "".join(
        f"<tr><td>key {html.escape(str(k))}</td>"
        + "".join(f"<td>{per[lv]:.4g}</td>" if lv in per else "<td>–</td>" for lv in levels)
        + "</tr>"
        for k, per in sorted(per_key.items(), key=lambda kv: key_order(kv[0]))
    )
    return (
        f"<details><summary>MSE thresholds of {len(per_key)} keys (fitted on "
        f'validation MSEs)</summary><table class="dl-table"><tr><th></th>{head}</tr>'
        f"{rows}</table></details>"
    )


class TrainView(View):
    """Hyper-parameters, Train and Stop, per-model progress, the live loss curves, the result.

    Public state: :attr:`history` (per-epoch dicts, what the loss figure reads), :attr:`training`,
    :attr:`stopped` (the last training was stopped), :attr:`effective` (the configuration that
    trained, g included).
    """

    refresh_on = ("fit",)

    def __init__(self, wb: Any = None, *, runner: TaskRunner | None = None) -> None:
        super().__init__(wb, runner=runner)
        self.history: list[dict[str, Any]] = []
        self.training = False
        self.stopped = False
        self.effective: dict[str, Any] = {}
        self._done: list[Callable[[Any], None]] = []
        key_defaults, param_defaults = core_defaults()
        self._defaults = (key_defaults, param_defaults)
        self.key_inputs = {f.name: field_widget(f, key_defaults.get(f.name)) for f in KEY_FIELDS}
        self.param_inputs = {
            f.name: field_widget(f, param_defaults.get(f.name)) for f in PARAM_FIELDS
        }
        self.auto_g = W.Checkbox(value=True, description="choose g on validation", indent=False)
        self.auto_g.observe(self._on_auto_g, names="value")
        self.key_inputs["top_g"].disabled = True
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.reset_button = W.Button(description="defaults", icon="undo",
                                     tooltip="the workbench's own settings")  # fmt: skip
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
        for stage, bar in self.bars.items():
            bar.add_class(f"dl-bar-{stage}")
        self.bar_labels = {stage: W.HTML() for stage in self.bars}
        self.loss_slot = PlotSlot(loss_curve_figure([]))
        self.result = W.HTML()
        params = W.HBox(
            [
                W.VBox([W.HTML("<b>Log-key model</b>"), *self.key_inputs.values(), self.auto_g]),
                W.VBox([W.HTML("<b>Parameter-value models</b>"), *self.param_inputs.values()]),
            ]
        )
        self.form = W.Accordion(children=[params], titles=("Hyper-parameters (what will train)",),
                                selected_index=0)  # fmt: skip
        self.children = [
            self.form,
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

    def bind(self, wb: Any) -> None:
        """Show ``wb``; the form takes its configurations (what ``wb.fit()`` would train with)."""
        self.wb = wb
        if wb is not None:
            key = config_dict(getattr(wb, "key_config", None))
            param = config_dict(getattr(wb, "param_config", None))
            if key or param:
                base_key, base_param = core_defaults()
                self._defaults = ({**base_key, **key}, {**base_param, **param})
                self.reset_defaults()
        self.history = []
        self.stopped = False
        self.effective = {}
        for bar in self.bars.values():
            bar.value, bar.max, bar.bar_style = 0, 1, ""
        for label in self.bar_labels.values():
            label.value = ""
        self.loss_slot.show(loss_curve_figure([]))
        self.result.value = ""
        self.status.value = ""
        super().bind(wb)

    def _on_auto_g(self, change: dict) -> None:
        self.key_inputs["top_g"].disabled = bool(change["new"])

    def reset_defaults(self) -> None:
        """Put the workbench's own settings back in every field."""
        key, param = self._defaults
        for fields, inputs, values in (
            (KEY_FIELDS, self.key_inputs, key),
            (PARAM_FIELDS, self.param_inputs, param),
        ):
            for f in fields:
                value = values.get(f.name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    inputs[f.name].value = value
        self.auto_g.value = key.get("top_g") == "auto"
        if self.auto_g.value:  # the field shows the g in use (chosen on validation), else 9
            g = getattr(getattr(self.wb, "key_model", None), "g_", None)
            self.key_inputs["top_g"].value = int(g) if g is not None else 9

    def configs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(key_config, param_config): every field as shown; ``top_g`` is 'auto' when ticked."""
        key = {f.name: self.key_inputs[f.name].value for f in KEY_FIELDS}
        if self.auto_g.value:
            key["top_g"] = "auto"
        param = {f.name: self.param_inputs[f.name].value for f in PARAM_FIELDS}
        return key, param

    # ----------------------------------------------------------------------------- training

    def on_trained(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(wb)`` after training ends (finished or stopped), not after a failure."""
        self._done.append(callback)

    def train(self, then: Callable[[Any], None] | None = None) -> bool:
        """Start training in the background with the form's hyper-parameters.

        ``then(wb)`` runs once after this training ends (finished or stopped).
        """
        if self.wb is None:
            self.say("load logs first", "error")
            return False
        if self.runner.running is not None:
            self.say(f"busy with {self.runner.running}: try again when it ends", "error")
            return False
        key_config, param_config = self.configs()
        self.history = []
        self.stopped = False
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
            self.stopped = True
            self.wb.stop()
            self.say("stopping after the current batch…", "busy")

    def on_event(self, event: Mapping[str, Any]) -> None:
        """The training callback: progress bars, the loss curves (one redraw per epoch)."""
        stage = str(event.get("stage") or "key")
        kind = event.get("event")
        bar = self.bars.get(stage)
        label = self.bar_labels.get(stage)
        epochs = int(event.get("epochs") or 1)
        epoch = int(event.get("epoch") or 0)
        phase = event.get("phase")
        prefix = f"{phase} · " if phase and phase not in ("train", "split") else ""
        if kind in ("train_begin", "batch_end", "epoch_end", "epoch") and bar is not None:
            batches = int(event.get("batches") or 0)
            if kind == "batch_end" and batches:
                # fine-grained: batches of all epochs, so the bar moves within an epoch too
                bar.max = max(epochs * batches, 1)
                bar.value = min((epoch - 1) * batches + int(event.get("batch") or 0), bar.max)
            else:
                bar.max = max(epochs, 1)
                bar.value = min(epoch, bar.max)
        if kind == "batch_end" and label is not None and event.get("batches"):
            label.value = (
                f"{prefix}epoch {epoch}/{epochs} · batch {event.get('batch')}/{event['batches']}"
            )
        elif kind in ("epoch_end", "epoch"):
            self.history.append(
                {
                    "stage": stage,
                    "epoch": epoch if not prefix else epoch + self._epochs_before(stage, phase),
                    "train_loss": event.get("train_loss"),
                    "val_loss": event.get("val_loss"),
                }
            )
            if label is not None:
                loss = event.get("val_loss")
                loss = event.get("train_loss") if loss is None else loss
                label.value = f"{prefix}epoch {epoch}/{epochs}" + (
                    f" · loss {loss:.4g}" if loss is not None else ""
                )
            self.loss_slot.show(loss_curve_figure(self.history))
        elif kind == "train_end" and bar is not None and label is not None:
            why = event.get("stopped")
            if why == "interrupted":
                bar.bar_style = "warning"
                label.value += " · stopped"
            else:
                bar.value = bar.max
                label.value += " · early stop" if why == "early_stopping" else ""

    def _epochs_before(self, stage: str, phase: Any) -> int:
        """Epochs logged by earlier phases of the same stage (a refit continues the curve)."""
        seen = getattr(self, "_phase_base", {})
        key = (stage, phase)
        if key not in seen:
            seen[key] = max((h["epoch"] for h in self.history if h["stage"] == stage), default=0)
            self._phase_base = seen
        return seen[key]

    def _trained(self, wb: Any) -> None:
        self._phase_base = {}
        stopped = self.stopped or bool(getattr(self.wb, "stopped_", False))
        self.stopped = stopped
        for stage, bar in self.bars.items():
            if stopped and bar.bar_style != "warning":
                bar.bar_style = "warning"
                if stage == "param" and getattr(self.wb, "param_model", None) is None:
                    self.bar_labels[stage].value = "not trained (stopped before)"
            elif not stopped:
                bar.bar_style = "success"
                bar.value = bar.max
        self.say("stopped, model kept" if stopped else "trained")
        self.refresh()
        for cb in self._done:
            cb(self.wb)

    def refresh(self) -> None:
        """Show the effective configuration (g chosen included) and the parameter thresholds."""
        if self.wb is None:
            return
        key_model = getattr(self.wb, "key_model", None)
        g = getattr(key_model, "g_", None)
        if g is None:
            self.result.value = ""
            return
        key = config_dict(getattr(self.wb, "key_config", None))
        param = config_dict(getattr(self.wb, "param_config", None))
        selection = getattr(key_model, "g_selection_", None)
        how = getattr(selection, "method", None)
        info = getattr(key_model, "fit_info_", {}) or {}
        end_g = getattr(key_model, "end_g_", None)
        floor = getattr(key_model, "min_probability_", None)
        self.effective = {"key": {**key, "g": int(g), "end_g": end_g, "min_probability": floor},
                          "param": param}  # fmt: skip
        if selection is not None:
            self.effective["rule_choice"] = rule_choice(selection)
        if self.auto_g.value:
            self.key_inputs["top_g"].value = int(g)
        g_text = f"<b>g = {int(g)}</b>"
        if key.get("top_g") == "auto":
            g_text += " (chosen on validation)" if how == "validation" else f" ({how or 'auto'})"
        if end_g is not None:
            g_text += f" · END limit = {int(end_g)}"
        if floor is not None:
            g_text += f" · probability floor = {float(floor):g}"
        key_items = [g_text] + [
            f"{html.escape(f.label)} = {html.escape(str(key.get(f.name)))}"
            for f in KEY_FIELDS
            if f.name != "top_g" and f.name in key
        ]
        if info.get("epochs") is not None:
            key_items.append(f"epochs trained = {info['epochs']}")
        param_items = [
            f"{html.escape(f.label)} = {html.escape(str(param.get(f.name)))}"
            for f in PARAM_FIELDS
            if f.name in param
        ]
        parts = [
            '<div class="dl-card dl-effective"><b>Trained with</b><br>'
            f"log-key model: {' · '.join(key_items)}<br>"
            f"parameter models: {' · '.join(param_items)}",
            rule_choice_html(selection),
        ]
        parts.append(_thresholds_html(getattr(self.wb, "param_model", None)))
        parts.append("</div>")
        self.result.value = "".join(parts)
