"""The review view's timeline: the table's anomalous rows in swim lanes; a brush across it reports a
time range, a click on a point reports its anomaly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from widgets.base import PlotSlot
from widgets.figures.timeline import KIND_TRACE, SESSION_TRACE, timeline_figure

__all__ = ["TimelinePanel"]

TimeRange = tuple[pd.Timestamp, pd.Timestamp]


class TimelinePanel:
    """The timeline plot in :attr:`slot`; ``on_range(range)`` after a brush, ``on_pick(id)`` after a
    click. ``current()`` gives the range in force (a brush's reports merge into it)."""

    def __init__(
        self,
        on_range: Callable[[TimeRange], None],
        on_pick: Callable[[int], None],
        current: Callable[[], TimeRange | None],
    ) -> None:
        self.on_range, self.on_pick, self.current = on_range, on_pick, current
        self._brush_at = 0.0
        self.slot = PlotSlot(timeline_figure(pd.DataFrame()), on_new=self._attach)

    @property
    def widget(self) -> Any:
        """The plot widget (None until its tab is first shown)."""
        return self.slot.widget

    def draw(self, table: pd.DataFrame, selected: int | None = None) -> None:
        """Show ``table``'s anomalous rows (updated in place: the traces are always the same two)."""
        self.slot.show(timeline_figure(table, selected=selected))

    def _attach(self, fw: Any) -> None:
        for trace in fw.data:
            if trace.name in (KIND_TRACE, SESSION_TRACE):
                trace.on_selection(self._on_brush)
                trace.on_click(self._on_click)

    def _on_brush(self, trace: Any, points: Any, selector: Any = None) -> None:
        """A brush on the timeline: every lane trace reports its selected points in turn; the
        time range spans all of them (reports within a second belong to one brush)."""
        xr = getattr(selector, "xrange", None)
        if isinstance(xr, list | tuple) and len(xr) == 2:
            self.on_range((pd.Timestamp(xr[0]), pd.Timestamp(xr[1])))
            return
        xs = [x for x in (getattr(points, "xs", None) or []) if isinstance(x, str)]
        ts = pd.to_datetime(pd.Series(xs, dtype=object), errors="coerce").dropna()
        if not len(ts):
            return
        lo, hi = ts.min(), ts.max()
        now, current = time.monotonic(), self.current()
        if current is not None and now - self._brush_at < 1.0:
            lo, hi = min(lo, current[0]), max(hi, current[1])
        self._brush_at = now
        self.on_range((lo, hi))

    def _on_click(self, trace: Any, points: Any, _selector: Any = None) -> None:
        if points.point_inds:
            self.on_pick(int(trace.customdata[points.point_inds[0]]))
