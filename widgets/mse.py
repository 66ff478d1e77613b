"""MSE plot: per log key, the MSE of each parameter vector with the confidence-interval lines.

Choose the key, switch the 98/99/99.9 % lines on and off (checkboxes, or the legend), plot over
entries or over instances (sessions, the paper's view). Anomalies are marked; hovering shows the raw
line; clicking a point selects that entry (the app then selects its anomaly in the Review table).
Below, the observed against the predicted parameter values of the same key.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go

from widgets.base import PlotSlot, TaskRunner, View
from widgets.figures import level_label, levels_of, mse_figure, observed_predicted_figure
from widgets.figures.labels import key_order

__all__ = ["MSEView"]


class MSEView(View):
    """Key selector, CI-line toggles, x-axis choice, the MSE plot and the observed/predicted plot.

    Public state: :attr:`key`, :attr:`series` (the key's ``wb.mse_series``), :attr:`levels`,
    :attr:`visible_levels`, :attr:`selected_line`, :attr:`x`.
    """

    refresh_on = ("fit", "detect", "update")

    def __init__(self, wb: Any = None, *, runner: TaskRunner | None = None) -> None:
        super().__init__(wb, runner=runner)
        self.key: Any = None
        self.series = pd.DataFrame()
        self.levels: list[float] = []
        self.visible_levels: set[float] = set()
        self.selected_line: int | None = None
        self.x = "entry"
        self._select_callbacks: list[Callable[[int], None]] = []
        self.key_select = W.Dropdown(
            options=[], description="Log key", layout=W.Layout(width="60%")
        )
        self.x_toggle = W.ToggleButtons(
            options=[("per entry", "entry"), ("per instance", "instance")], value="entry"
        )
        self.level_boxes = W.HBox()
        self.level_checks: dict[float, W.Checkbox] = {}
        self.mse_slot = PlotSlot(mse_figure(pd.DataFrame(), [], set()), on_new=self._attach)
        self.op_slot = PlotSlot(observed_predicted_figure(pd.DataFrame()))
        self.detail = W.HTML()
        self.children = [
            W.HBox([self.key_select, self.x_toggle]),
            W.HBox([W.HTML("<b>CI lines:</b>&nbsp;"), self.level_boxes]),
            self.status,
            self.mse_slot.box,
            self.detail,
            self.op_slot.box,
        ]
        self.key_select.observe(self._on_key, names="value")
        self.x_toggle.observe(self._on_x, names="value")
        self.bind(wb)

    # ---------------------------------------------------------------------------- callbacks

    def on_select(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(line)`` when the user clicks a point of the MSE plot."""
        self._select_callbacks.append(callback)

    @property
    def mse_plot(self) -> go.FigureWidget:
        return self.mse_slot.widget

    @property
    def op_plot(self) -> go.FigureWidget:
        return self.op_slot.widget

    def _attach(self, fw: go.FigureWidget) -> None:
        for trace in fw.data:
            if trace.name in ("MSE", "anomalies"):
                trace.on_click(self._on_click)

    def _on_click(self, trace: Any, points: Any, _selector: Any = None) -> None:
        if not points.point_inds:
            return
        line = int(trace.customdata[points.point_inds[0]])
        self.select_line(line, notify=True)

    def _on_key(self, change: dict) -> None:
        if change["new"] is not None and change["new"] != self.key:
            self.show_key(change["new"])

    def _on_x(self, change: dict) -> None:
        self.x = change["new"]
        self._draw()

    # -------------------------------------------------------------------------------- state

    def bind(self, wb: Any) -> None:
        """Show ``wb``; nothing of the previous log's plots or selection stays."""
        self.key = None
        self.series = pd.DataFrame()
        self.selected_line = None
        self.detail.value = ""
        self.status.value = ""
        with self.key_select.hold_trait_notifications():
            self.key_select.options = []
        self.mse_slot.show(mse_figure(pd.DataFrame(), [], set()))
        self.op_slot.show(observed_predicted_figure(pd.DataFrame()))
        super().bind(wb)

    def refresh(self) -> None:
        """Reload the list of keys with a parameter model and the current key's series."""
        if self.wb is None:
            return
        try:
            keys = sorted(self.wb.param_keys(), key=key_order)
        except Exception as exc:  # not fitted yet
            self.say(f"no parameter models yet ({exc})")
            return
        if getattr(self.wb, "report", None) is None:
            self.say("detect first: the MSE plot shows the scored log")
            return
        templates = self._templates()
        self.key_select.options = [(f"k{k}: {templates.get(k, '')}"[:90], k) for k in keys]
        if not keys:
            self.say("no key has a parameter model yet: train first")
            return
        key = self.key if self.key in keys else keys[0]
        self.key = None  # force the reload even when the key is the same (models changed)
        self.show_key(key)

    def _templates(self) -> dict[Any, str]:
        entries = getattr(self.wb, "entries", None)
        if entries is None or "template" not in getattr(entries, "columns", ()):
            return {}
        first = entries.drop_duplicates("key")
        return dict(zip(first["key"], first["template"].astype(str), strict=True))

    def show_key(self, key: Any) -> None:
        """Plot the MSE series of ``key`` (fetched from the workbench)."""
        self.key = key
        if self.key_select.value != key:
            with self.key_select.hold_trait_notifications():
                self.key_select.value = key
        self.series = self.wb.mse_series(key)
        levels = levels_of(self.series)
        if levels != self.levels:
            self.levels = levels
            self.visible_levels = set(levels)
            self._build_checks()
        if self.selected_line is not None and self.selected_line not in set(self.series["line"]):
            self.selected_line = None
        self._draw()
        n = int(self.series["anomalous"].sum()) if len(self.series) else 0
        self.say(f"key {key}: {len(self.series)} vectors, {n} anomalous")

    def _build_checks(self) -> None:
        self.level_checks = {}
        for level in self.levels:
            box = W.Checkbox(value=True, description=level_label(level), indent=False,
                             layout=W.Layout(width="130px"))  # fmt: skip
            box.observe(lambda ch, level=level: self.set_level_visible(level, ch["new"]), "value")
            self.level_checks[level] = box
        self.level_boxes.children = list(self.level_checks.values())

    def set_level_visible(self, level: float, visible: bool) -> None:
        """Show or hide one threshold line (in place, no redraw of the other traces)."""
        if visible:
            self.visible_levels.add(level)
        else:
            self.visible_levels.discard(level)
        box = self.level_checks.get(level)
        if box is not None and box.value != visible:
            box.value = visible
            return  # the checkbox observer comes back here
        if self.mse_plot is None:  # not drawn yet (hidden tab): the next draw reads the state
            return
        with self.mse_plot.batch_update():
            for trace in self.mse_plot.data:
                if trace.meta == level:
                    trace.visible = True if visible else "legendonly"

    def select_line(self, line: int | None, *, notify: bool = False) -> None:
        """Ring the entry on log line ``line``; ``notify`` tells the app (a user click)."""
        self.selected_line = line
        self._draw()
        row = (
            self.series[self.series["line"] == line]
            if line is not None and len(self.series)
            else None
        )
        if row is not None and len(row):
            r = row.iloc[0]
            flag = " · <b>anomalous</b>" if bool(r["anomalous"]) else ""
            self.detail.value = (
                f'<div class="dl-card">line {line} · session {html.escape(str(r["session"]))} · '
                f'MSE {float(r["mse"]):.4g}{flag}<br><span class="dl-raw">'
                f"{html.escape(str(r['raw']))}</span></div>"
            )
        else:
            self.detail.value = ""
        if notify and line is not None:
            for cb in self._select_callbacks:
                cb(line)

    def highlight_anomaly(self, row: pd.Series) -> None:
        """Follow a selection from the Review table: a parameter anomaly's key and entry."""
        if row.get("kind") != "parameter" or self.wb is None:
            return
        key = int(row.get("key"))
        if key not in {v for _, v in self.key_select.options}:
            self._dirty = False
            self.refresh()  # a hidden view may not have loaded its keys yet
        if key not in {v for _, v in self.key_select.options}:
            self.say(f"key {key} has no parameter model")
            return
        if key != self.key:
            self.show_key(key)
        self.select_line(int(row["line"]))

    def _draw(self) -> None:
        fig = mse_figure(
            self.series,
            self.levels,
            self.visible_levels,
            self.selected_line,
            x=self.x,
            title=f"MSE of key {self.key}" if self.key is not None else None,
        )
        self.mse_slot.show(fig)
        self.op_slot.show(observed_predicted_figure(self.series, selected_line=self.selected_line))
