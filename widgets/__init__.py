"""DeepLog Workbench widgets: ipywidgets + plotly views over a :mod:`workbench` object.

``WorkbenchApp(wb)`` composes the views as tabs; each view also works alone. Figures are built by the
pure functions of :mod:`widgets.figures` (plain ``plotly.graph_objects.Figure``, testable without a
kernel) and shown in ``FigureWidget``s that are updated in place.

Views: :class:`LoadView` (load logs), :class:`TrainView` (train), :class:`ReviewView` (review
anomalies), :class:`MSEView` (MSE plot), :class:`WorkflowView` (workflow graph).
"""

from widgets.app import WorkbenchApp
from widgets.base import TaskRunner
from widgets.graph import WorkflowView
from widgets.load import LoadView
from widgets.mse import MSEView
from widgets.review import ReviewView
from widgets.train import TrainView

__all__ = [
    "LoadView",
    "MSEView",
    "ReviewView",
    "TaskRunner",
    "TrainView",
    "WorkbenchApp",
    "WorkflowView",
]
