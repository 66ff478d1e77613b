"""Review anomalies: a sortable, filterable table with inline "false positive" / "confirm" buttons.

Each row reads like a log viewer's: the message (the log line's content) is the row's main text,
with a readable time, the session, the kind and the score against its rule. Clicking the message
selects the row: its diagnosis, the raw lines around it in its session and the model's top-g
candidates show below the table, and the app highlights it in the other views.

Flagging a row runs the core's online update (``wb.flag_false_positive``) in the background; the
core re-scores the same log with the updated model. Rows whose verdict changed are marked both ways:
"normal now" (greyed, kept in the table until the next Detect) and "new" (newly anomalous), and the
status line says "N became normal, M newly anomalous". Undo restores the model before the last
update. Training again marks the table stale until Detect runs again.

Table state is plain data (:attr:`ReviewView.table`, :attr:`sort_by`, the filters, :attr:`page`)
and :meth:`ReviewView.visible_rows` is the filtered, sorted page; the widgets are redrawn from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import pandas as pd

from widgets.anomaly_rows import AnomalyRows
from widgets.anomaly_table import (
    KINDS,
    SORT_COLUMNS,
    STATUSES,
    counts_html,
    filter_table,
    messages_of,
    review_table,
)
from widgets.anomaly_text import WIDTHS, coverage_text, detail_html, when_text
from widgets.base import TaskRunner, View
from widgets.review_feedback import FeedbackActions
from widgets.timeline_panel import TimelinePanel
from workbench.detect.rules import RULES

__all__ = ["KINDS", "SORT_COLUMNS", "ReviewView"]

PAGE_SIZE = 20


class ReviewView(FeedbackActions, View):
    """The timeline, the anomaly table, its filters and sorting, feedback, selection and context.

    Public state: :attr:`table` (one row per anomaly, ``verdict`` 'anomalous' or 'normal'),
    :attr:`became_normal` and :attr:`newly_anomalous` (ids, after the last feedback),
    :attr:`stale` (the models changed since this detection), :attr:`time_range` (the timeline's
    brush), :attr:`selected_id`, :attr:`diagnosis`.
    """

    refresh_on = ("detect",)

    def __init__(
        self, wb: Any = None, *, runner: TaskRunner | None = None, page_size: int = PAGE_SIZE
    ) -> None:
        super().__init__(wb, runner=runner)
        self.page_size = page_size
        self.table = pd.DataFrame()
        self.entries = pd.DataFrame()  # the scored log of the report shown (context lines)
        self.source: Any = None
        self.sort_by = "time"
        self.ascending = True
        self.page = 0
        self.became_normal: set[int] = set()
        self.newly_anomalous: set[int] = set()
        self.selected_id: int | None = None
        self.diagnosis: Any = None
        self.stale = False
        self.time_range: tuple[pd.Timestamp, pd.Timestamp] | None = None
        self.last_feedback_seconds: float | None = None
        self._select_callbacks: list[Callable[[pd.Series, Any], None]] = []
        self._messages: dict[int, str] = {}
        self._build_controls()
        self.rows = AnomalyRows({"select": self.select, "false positive": self.flag,
                                 "all like this": self.flag_like, "confirm": self.confirm})  # fmt: skip
        self.timeline_panel = TimelinePanel(
            self.set_time_range, self.select, lambda: self.time_range
        )
        self.timeline_slot = self.timeline_panel.slot  # shown with the view's tab
        self.children = [
            W.HBox([self.source_text, self.detect_button, self.undo_button]),
            self.follow_check,
            self.status,
            self.counts,
            self.detail,
            self.timeline_slot.box,
            W.HBox([self.kind_filter, self.rule_filter, self.status_filter]),
            W.HBox([self.search, self.clear_brush]),
            W.HBox([self.prev_button, self.page_label, self.next_button]),
            self._sort_header(),
            self.rows.box,
        ]
        self._wire()
        self.bind(wb)

    def _build_controls(self) -> None:
        self.detect_button = W.Button(description="Detect", button_style="primary", icon="search")
        self.undo_button = W.Button(description="Undo last update", icon="undo", disabled=True,
                                    tooltip="restore the model before the last false positive")  # fmt: skip
        self.source_text = W.Text(placeholder="log to check (empty: the loaded log)",
                                  description="Source", layout=W.Layout(width="420px"))  # fmt: skip
        self.follow_check = W.Checkbox(
            value=False, indent=False, layout=W.Layout(width="auto"),
            description="a false positive also confirms the steps after it in its session that "
            "recur in other sessions (a new operation's later steps)",
        )  # fmt: skip
        self.kind_filter = W.Dropdown(options=["all", *KINDS], value="all", description="Kind")
        self.rule_filter = W.Dropdown(options=["all", *RULES], value="all", description="Rule",
                                      tooltip="the rule that flagged the row")  # fmt: skip
        self.status_filter = W.Dropdown(options=["all", *STATUSES], value="all",
                                        description="Status")  # fmt: skip
        self.search = W.Text(placeholder="session or text in the line", description="Filter")
        self.prev_button = W.Button(description="◀", layout=W.Layout(width="44px"))
        self.next_button = W.Button(description="▶", layout=W.Layout(width="44px"))
        self.page_label = W.HTML()
        self.counts = W.HTML()
        self.detail = W.HTML()
        self.clear_brush = W.Button(description="all times", icon="times", disabled=True,
                                    tooltip="clear the timeline's time filter",
                                    layout=W.Layout(width="120px"))  # fmt: skip

    def _sort_header(self) -> W.HBox:
        """The column headers above the rows: buttons that sort (again: the other way)."""
        self.sort_buttons = {
            label: W.Button(
                description=label,
                tooltip=f"sort by {label}",
                layout=W.Layout(width=f"{width}px", margin="0"),
            )
            for label, width in WIDTHS.items()
        }
        for label, button in self.sort_buttons.items():
            button.add_class("dl-sort")
            button.on_click(lambda _b, label=label: self.sort(label))
        header = W.HBox([W.HTML(layout=W.Layout(width="44px")), *self.sort_buttons.values()])
        header.add_class("dl-header")
        return header

    def _wire(self) -> None:
        self.detect_button.on_click(lambda _: self.detect())
        self.undo_button.on_click(lambda _: self.undo())
        self.clear_brush.on_click(lambda _: self.set_time_range(None))
        for control in (self.kind_filter, self.rule_filter, self.status_filter, self.search):
            control.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _: self.goto(self.page - 1))
        self.next_button.on_click(lambda _: self.goto(self.page + 1))

    # --------------------------------------------------------------------------------- state

    @property
    def timeline(self) -> Any:
        """The timeline's plot widget."""
        return self.timeline_panel.widget

    def on_select(self, callback: Callable[[pd.Series, Any], None]) -> None:
        """Call ``callback(row, diagnosis)`` when a row is selected."""
        self._select_callbacks.append(callback)

    def bind(self, wb: Any) -> None:
        """Show ``wb``: every piece of state of the previous log goes (filters, selection...)."""
        self.table = pd.DataFrame()
        self.entries = pd.DataFrame()
        self._messages = {}
        self.source = None
        self.page = 0
        self.became_normal, self.newly_anomalous = set(), set()
        self.selected_id, self.diagnosis = None, None
        self.stale = False
        self.time_range = None
        self.detail.value = ""
        self.counts.value = ""
        self.status.value = ""
        self.undo_button.disabled = True
        for control, value in ((self.kind_filter, "all"), (self.rule_filter, "all"),
                               (self.status_filter, "all"), (self.search, ""),
                               (self.source_text, "")):  # fmt: skip
            with control.hold_trait_notifications():
                control.value = value
        if wb is not None:
            wb.on("fit", self._on_fit)
        super().bind(wb)
        self.redraw()

    def _on_fit(self, _wb: Any) -> None:
        """The models changed: the table was scored with the old ones."""
        if len(self.table):
            self.stale = True
            self.detect_button.button_style = "warning"
            self.detect_button.description = "Detect again"
            self.say("the models were trained again: this table is stale, press Detect again",
                     "error")  # fmt: skip
            self.redraw()

    def set_report(
        self, report: Any, *, keep: pd.DataFrame | None = None, draw: bool = True
    ) -> None:
        """Show a detection report; ``keep`` adds earlier rows an update made normal."""
        self.table, self.entries = review_table(report, keep)
        self._messages = messages_of(self.entries)
        frame = self.table
        kinds = [*KINDS, *sorted({str(k) for k in frame.get("kind", [])} - set(KINDS))]
        if list(self.kind_filter.options) != ["all", *kinds]:  # whatever kinds the core reports
            with self.kind_filter.hold_trait_notifications():
                current = self.kind_filter.value
                self.kind_filter.options = ["all", *kinds]
                self.kind_filter.value = current if current in kinds else "all"
        if self.selected_id is not None and (
            not len(self.table) or self.selected_id not in set(self.table["id"])
        ):
            self.selected_id = None
            self.detail.value = ""
        self.page = min(self.page, max(0, math.ceil(len(self.filtered()) / self.page_size) - 1))
        if draw:
            self.redraw()
            self.draw_timeline()

    def message(self, row: pd.Series) -> str:
        """The row's main text: the log line's message (its content), else the raw line."""
        text = self._messages.get(int(row.get("line", -1)))
        return text if text else str(row.get("raw", ""))

    def filtered(self) -> pd.DataFrame:
        """The table after the kind/rule/status/text/time filters, sorted."""
        return filter_table(
            self.table, kind=self.kind_filter.value, rule=self.rule_filter.value,
            status=self.status_filter.value,
            needle=self.search.value, time_range=self.time_range, sort_by=self.sort_by,
            ascending=self.ascending,
        )  # fmt: skip

    def visible_rows(self) -> pd.DataFrame:
        """The rows on the current page."""
        f = self.filtered()
        start = self.page * self.page_size
        return f.iloc[start : start + self.page_size]

    def sort(self, label: str, ascending: bool | None = None) -> None:
        """Sort by a column label; clicking the same header again flips the direction."""
        if label not in SORT_COLUMNS:
            raise ValueError(f"cannot sort by {label!r}; choose one of {sorted(SORT_COLUMNS)}")
        if ascending is None:
            ascending = not self.ascending if label == self.sort_by else label != "severity"
        self.sort_by, self.ascending = label, ascending
        self.page = 0
        self.redraw()

    def goto(self, page: int) -> None:
        pages = max(1, math.ceil(len(self.filtered()) / self.page_size))
        self.page = min(max(page, 0), pages - 1)
        self.redraw()

    def set_time_range(self, time_range: Any) -> None:
        """Filter the table to anomalies within ``(start, end)`` (the timeline's brush); None: all."""
        if time_range is None:
            self.time_range = None
        else:
            lo, hi = (pd.Timestamp(t) for t in time_range)
            self.time_range = (min(lo, hi), max(lo, hi))
        self.clear_brush.disabled = self.time_range is None
        self.page = 0
        self.redraw()

    def _on_filter(self, _change: dict) -> None:
        self.page = 0
        self.redraw()

    def row_buttons(self, anomaly_id: int) -> dict[str, W.Button]:
        """The widgets of a visible row: 'select' (the message), 'false positive', 'all like
        this', 'confirm', 'label' and 'row'."""
        return self.rows.widgets[anomaly_id]  # type: ignore[return-value]

    # ------------------------------------------------------------------------------- drawing

    def counts_text(self) -> str:
        """'N anomalies: a key, b parameter...' over the anomalous rows, in the core's kinds."""
        return counts_html(self.table, self.entries, self.stale)

    def redraw(self) -> None:
        """Show the visible rows from the state (one page, so at most ``page_size`` rows).

        Row widgets are kept and refilled, never rebuilt: a new page or a re-scored table changes
        a few values per row, which the browser applies at once.
        """
        f = self.filtered()
        pages = max(1, math.ceil(len(f) / self.page_size))
        brush = ""
        if self.time_range is not None:
            lo, hi = self.time_range
            brush = f" · {when_text(lo)}–{when_text(hi)}"
        self.page_label.value = (
            f"&nbsp;page {self.page + 1}/{pages} · {len(f)} of {len(self.table)} rows{brush}&nbsp;"
        )
        self.counts.value = self.counts_text()
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        for label, button in self.sort_buttons.items():
            arrow = (" ▲" if self.ascending else " ▼") if label == self.sort_by else ""
            button.description = label + arrow
        visible = [r for _, r in self.visible_rows().iterrows()]
        self.rows.show(visible, self.message, selected=self.selected_id, new=self.newly_anomalous)

    def draw_timeline(self) -> None:
        self.timeline_panel.draw(self.table, self.selected_id)

    # ------------------------------------------------------------------------------- actions

    def refresh(self) -> None:
        """On binding, show the workbench's last report when it has one (a workbench detected on
        before the app was made); otherwise the table fills on Detect or on a 'detect' event."""
        report = getattr(self.wb, "report", None)
        if report is not None and hasattr(report, "anomalies") and self.table.empty:
            self.set_report(report)

    def _on_wb_event(self, *args: Any, **kwargs: Any) -> None:
        report = args[0] if args else None
        if report is not None and hasattr(report, "anomalies") and not self._detecting:
            self._fresh()
            self.set_report(report)

    _detecting = False

    def _fresh(self) -> None:
        self.stale = False
        self.detect_button.button_style = "primary"
        self.detect_button.description = "Detect"

    def detect(self, source: Any = None) -> bool:
        """Run detection (in the background) on ``source`` or the Source box or the loaded log."""
        if self.wb is None:
            self.say("load logs and train first", "error")
            return False
        if source is None:
            source = self.source_text.value.strip() or None
        wb = self.wb

        def work() -> Any:
            self._detecting = True
            try:
                return wb.detect(source, stream=False)  # the review needs every entry
            finally:
                self._detecting = False

        def done(report: Any) -> None:
            self.source = source
            self.became_normal, self.newly_anomalous = set(), set()
            self._fresh()
            self.set_report(report)
            self.say(coverage_text(report))

        return self.run_task("detecting anomalies", work, done)

    def select(self, anomaly_id: int) -> None:
        """Select a row: its diagnosis and context below the table; the app highlights it."""
        rows = self.table[self.table["id"] == anomaly_id] if len(self.table) else self.table
        if not len(rows):
            return
        row = rows.iloc[0]
        self.selected_id = int(anomaly_id)
        self.rows.mark_selected(self.selected_id)
        try:
            self.diagnosis = self.wb.diagnose(anomaly_id) if self.wb is not None else None
        except Exception as exc:  # a diagnosis is a help, never a blocker
            self.diagnosis = None
            self.say(f"no diagnosis for anomaly {anomaly_id}: {exc}", "error")
        sentence = str(getattr(self.diagnosis, "sentence", None) or "")
        self.detail.value = detail_html(row, self.message(row), sentence, self.entries)
        for cb in self._select_callbacks:
            cb(row, self.diagnosis)

    def select_line(self, line: int) -> bool:
        """Select the anomaly on log line ``line`` if there is one (a click in another view)."""
        if not len(self.table):
            return False
        hits = self.table[self.table["line"] == line]
        if not len(hits):
            return False
        self.select(int(hits.iloc[0]["id"]))
        return True
