"""The workbench app: the five views as tabs over one workbench object, with a shared selection.

Selecting an anomaly in Review highlights its entry in the MSE plot (parameter anomalies) and its
path and slow transition in the Workflow graph; clicking a point in the MSE plot selects the anomaly
on that line in Review. Loading new logs rebinds every view to the new workbench object.
"""

from __future__ import annotations

import logging
from typing import Any

import ipywidgets as W
import pandas as pd

from widgets.base import CSS, PlotSlot, TaskRunner
from widgets.graph import WorkflowView
from widgets.load import LoadView
from widgets.mse import MSEView
from widgets.review import ReviewView
from widgets.train import TrainView

__all__ = ["TAB_TITLES", "WorkbenchApp"]

logger = logging.getLogger(__name__)

TAB_TITLES = ("Load logs", "Train", "Review anomalies", "MSE plot", "Workflow graph")
DEMO_ANOMALIES = {"performance": 0.05, "execution": 0.05, "parameter": 0.03}


class WorkbenchApp(W.VBox):
    """``WorkbenchApp(wb)``: display it in a notebook cell.

    Parameters
    ----------
    wb:
        The workbench object (``workbench.Workbench``), or None to start from the Load tab.
    sync:
        Run long work inline instead of in a background thread (scripts and tests).
    workbench_cls:
        The class the Load tab builds new objects with (default: ``type(wb)``).
    """

    def __init__(
        self,
        wb: Any = None,
        *,
        sync: bool = False,
        workbench_cls: type | None = None,
    ) -> None:
        super().__init__()
        self.add_class("dl-app")
        self.wb = wb
        self.runner = TaskRunner(sync=sync)
        PlotSlot.defer_new = True  # plots are made when their tab is first shown
        try:
            self.load = LoadView(wb, workbench_cls=workbench_cls, runner=self.runner)
            self.train = TrainView(wb, runner=self.runner)
            self.review = ReviewView(wb, runner=self.runner)
            self.mse = MSEView(wb, runner=self.runner)
            self.graph = WorkflowView(wb, runner=self.runner)
        finally:
            PlotSlot.defer_new = False
        self.views = (self.load, self.train, self.review, self.mse, self.graph)
        self.tabs = W.Tab(children=list(self.views), titles=TAB_TITLES)
        self.header = W.HTML(
            CSS + '<div class="dl-title">DeepLog Workbench</div>'
            '<div class="dl-status">log anomaly detection and diagnosis (Du et al., CCS 2017)</div>'
        )
        self.children = [self.header, self.tabs]
        self.selected_id: int | None = None
        self._following = False
        self.tabs.observe(self._on_tab, names="selected_index")
        self.load.on_loaded(self.set_workbench)
        self.review.on_select(self._on_anomaly_selected)
        self.mse.on_select(self._on_line_clicked)
        if wb is None:
            self.tabs.selected_index = 0
        shown = self.tabs.selected_index or 0
        for i, view in enumerate(self.views):
            view.hidden = i != shown
        self.views[shown].fit_width()

    def _on_tab(self, change: dict) -> None:
        if change["new"] is not None:
            for i, view in enumerate(self.views):
                view.hidden = i != change["new"]
            self.views[change["new"]].fit_width()

    # ---------------------------------------------------------------------------- selection

    def set_workbench(self, wb: Any) -> None:
        """Show another workbench object in every view (after loading new logs)."""
        self.wb = wb
        self.selected_id = None
        for view in self.views:
            if view is not self.load:
                view.bind(wb)
        self.tabs.selected_index = 1

    def _on_anomaly_selected(self, row: pd.Series, diagnosis: Any) -> None:
        self.selected_id = int(row["id"])
        path = getattr(diagnosis, "path_nodes", None) or []
        followers = (
            (self.mse, lambda: self.mse.highlight_anomaly(row)),
            (self.graph, lambda: self.graph.highlight(path, getattr(diagnosis, "slow_edge", None))),
        )
        for view, follow in followers:  # a view that cannot follow says so; the selection stands
            try:
                follow()
            except Exception as exc:
                logger.exception("%s could not follow the selection", type(view).__name__)
                view.say(f"could not show anomaly {self.selected_id} here: {exc}", "error")

    def _on_line_clicked(self, line: int) -> None:
        if not self._following:
            self._following = True
            try:
                self.review.select_line(line)
            finally:
                self._following = False

    # ------------------------------------------------------------------------------ actions

    def train_then_detect(self, source: Any = None) -> bool:
        """Train with the Train tab's settings, then detect and open the Review tab."""

        def after(_wb: Any) -> None:
            self.review.detect(source)
            self.tabs.selected_index = 2

        self.tabs.selected_index = 1
        return self.train.train(then=after)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background work (training, then detection, an update) has ended.

        For scripts and executed notebooks; in an interactive session there is no need to wait.
        """
        return self.runner.wait(timeout)

    @classmethod
    def demo(
        cls,
        n_instances: int = 300,
        *,
        anomalies: dict[str, float] | None = None,
        seed: int = 7,
        key_config: dict[str, Any] | None = None,
        train: bool = True,
        sync: bool = False,
        workbench_cls: type | None = None,
    ) -> WorkbenchApp:
        """An app on simulated OpenStack logs with anomalies; trains and detects in the background.

        ``key_config`` presets fields of the Train tab (e.g. ``{"max_epochs": 5}`` for a quick class
        demo). With ``sync=True`` everything has finished when this returns.
        """
        if workbench_cls is None:
            from workbench import Workbench  # the core's front object

            workbench_cls = Workbench
        wb = workbench_cls.from_simulation(
            n_instances=n_instances, anomalies=dict(anomalies or DEMO_ANOMALIES), seed=seed
        )
        app = cls(wb, sync=sync, workbench_cls=workbench_cls)
        for name, value in (key_config or {}).items():
            app.train.key_inputs[name].value = value
        if train:
            app.train_then_detect()
        return app
