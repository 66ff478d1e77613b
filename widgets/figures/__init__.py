"""Pure figure builders: data in, :class:`plotly.graph_objects.Figure` out, one module per figure.

- :mod:`~widgets.figures.loss`: the training loss curves
- :mod:`~widgets.figures.mse`: the MSE plot and the observed-against-predicted plot
- :mod:`~widgets.figures.workflow`: the workflow graph on a layered layout, long tasks folded
- :mod:`~widgets.figures.timeline`: anomalies over time in swim lanes
- :mod:`~widgets.figures.labels`: the names and texts they share

Trace data are plain Python lists, never numpy arrays: a ``FigureWidget`` holding numpy arrays fails
on the property deltas the browser sends back after a redraw (plotly's overlap check takes the
truth value of an array), and the click event travelling in the same message is lost with it.

Nothing here touches a kernel, a widget or the workbench object, so every builder is unit-tested on
hand-made frames. The views wrap the result in a ``FigureWidget`` and update it in place; to make
that possible every trace has a stable ``name`` (and the threshold lines a ``meta`` holding their
level), so a view can find "the 99 % line" or "the nodes" without knowing trace positions.

Trace names used by the views:

- loss curve: ``"<stage> train"`` and ``"<stage> validation"``
- MSE plot: ``"MSE"``, one ``"<level> % CI"`` per level (:func:`level_label`), ``"anomalies"``,
  ``"selected"``
- workflow graph: ``"edges"`` (lines), ``"slow edge"``, ``"path"``, ``"edge labels"`` (clickable
  midpoints, ``customdata = [u, v]``), ``"nodes"`` (``customdata = node id``)
- timeline: ``"lanes by kind"`` and ``"lanes by session"`` (``customdata = anomaly id``), the same
  two traces whatever the table holds

>>> fig = loss_curve_figure([{"epoch": 1, "train_loss": 2.0, "val_loss": 2.5}])
>>> [t.name for t in fig.data]
['key train', 'key validation']
"""

from widgets.figures.labels import format_seconds, level_label, levels_of, threshold_column
from widgets.figures.loss import loss_curve_figure
from widgets.figures.mse import mse_figure, observed_predicted_figure
from widgets.figures.timeline import timeline_figure
from widgets.figures.workflow import workflow_figure, wrap_layout

__all__ = [
    "format_seconds",
    "level_label",
    "levels_of",
    "loss_curve_figure",
    "mse_figure",
    "observed_predicted_figure",
    "threshold_column",
    "timeline_figure",
    "workflow_figure",
    "wrap_layout",
]
