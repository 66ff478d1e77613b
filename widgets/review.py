"""Review anomalies: a sortable, filterable table with inline "false positive" / "confirm" buttons.

Each row reads like a log viewer's: the message (the log line's content) is the row's main text,
with a readable time, the session, the kind and the score against its rule. Clicking the message
selects the row: its diagnosis, the raw lines around it in its session and the model's top-g
candidates show below the table, and the app highlights it in the other views.

Flagging a row runs the core's online update (``wb.flag_false_positive``) in the background; the
core re-scores the same log with the updated model. Rows whose verdict changed are marked both ways:
"normal now" (greyed, kept in the table) and "new" (newly anomalous), and the status line says "N
became normal, M newly anomalous". Undo restores the model before the last update. Training again
marks the table stale until Detect runs again.

Table state is plain data (:attr:`ReviewView.table`, :attr:`sort_by`, the filters, :attr:`page`)
and :meth:`ReviewView.visible_rows` is the filtered, sorted page; the widgets are redrawn from it.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from widgets.base import TaskRunner, View

__all__ = ["KINDS", "SORT_COLUMNS", "ReviewView", "score_text", "severity"]

KINDS = ("key", "unknown key", "session end", "parameter")
STATUSES = ("open", "false positive", "confirmed")
SORT_COLUMNS = {
    "time": "timestamp",
    "line": "line",
    "session": "session",
    "kind": "kind",
    "severity": "severity",
    "status": "status",
}
PAGE_SIZE = 20
_BADGE = {
    "key": "key",
    "unknown key": "unknown",
    "session end": "session",
    "parameter": "parameter",
}
# first line of a row: fixed columns that the sort buttons sit above; the raw line goes below
_WIDTHS = {"time": 120, "session": 150, "kind": 110, "severity": 190, "status": 170}
CONTEXT_LINES = 4  # raw lines shown before and after the selected one, in its session


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def severity(row: pd.Series) -> float:
    """One number to sort by: rank / g for keys, MSE / threshold for parameters, inf otherwise.

    >>> severity(pd.Series({"kind": "key", "rank": 18, "g": 9}))
    2.0
    >>> severity(pd.Series({"kind": "unknown key", "rank": None, "g": 9}))
    inf
    """
    if row.get("kind") == "parameter":
        mse, thr = _num(row.get("mse")), _num(row.get("threshold"))
        return mse / thr if mse is not None and thr else math.inf
    rank, g = _num(row.get("rank")), _num(row.get("g"))
    return rank / g if rank is not None and g else math.inf


def coverage_text(report: Any) -> str:
    """What a detection checked and found, with its warnings: never "no anomalies" when nothing
    was checked.

    >>> from types import SimpleNamespace as NS
    >>> cov = NS(warnings=["only 3 of 200 lines fit the format linux (2%): wrong format?"])
    >>> coverage_text(NS(verdict="nothing was checked (0 of 200 lines parsed)", coverage=cov))
    'nothing was checked (0 of 200 lines parsed) · only 3 of 200 lines fit the format linux (2%): wrong format?'
    """
    verdict = str(getattr(report, "verdict", "") or f"{len(report.anomalies)} anomalies")
    cov = getattr(report, "coverage", None)
    warnings = list(getattr(cov, "warnings", []) or [])
    return " · ".join([verdict, *warnings])


def score_text(row: pd.Series) -> str:
    """The raw score against its rule: 'rank 12 > g = 9' or 'MSE 5.2 > 1.8 (99 % CI)'; a row that
    an update made normal has no comparison any more.

    >>> score_text(pd.Series({"kind": "parameter", "mse": 5.2, "threshold": 1.8, "level": 0.99}))
    'MSE 5.2 > 1.8 (99 % CI)'
    >>> score_text(pd.Series({"kind": "parameter", "mse": 5.2, "verdict": "normal"}))
    'now within its rule'
    """
    kind = row.get("kind")
    if row.get("verdict", "anomalous") != "anomalous":
        return "now within its rule"
    if kind == "parameter":
        mse, thr, level = _num(row.get("mse")), _num(row.get("threshold")), _num(row.get("level"))
        text = f"MSE {mse:.3g}" if mse is not None else "MSE –"
        if thr is not None:
            text += f" > {thr:.3g}"
        if level is not None:
            text += f" ({round(level * 100, 6):g} % CI)"
        return text
    if kind == "unknown key":
        return "key never seen in training"
    rank, g = _num(row.get("rank")), _num(row.get("g"))
    if rank is None:
        return "not predicted" if kind != "session end" else "end not expected"
    if g is None:
        return f"rank {rank:.0f}"
    return f"rank {rank:.0f}, not in the top g = {g:.0f}"


def when_text(ts: Any) -> str:
    """A readable time: 'HH:MM:SS.mmm' (the date is in the tooltip); '' when there is none.

    >>> when_text(pd.Timestamp("2017-05-16 00:00:05.280"))
    '00:00:05.280'
    >>> when_text(None), when_text(float("nan"))
    ('', '')
    """
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return ""
    try:
        t = pd.Timestamp(ts)
    except (TypeError, ValueError):
        return str(ts)
    return t.strftime("%H:%M:%S.%f")[:-3]


def session_text(session: Any) -> str:
    """A session name, or 'no session' (never 'nan' or 'None').

    >>> session_text(None), session_text(float("nan")), session_text("blk_1")
    ('no session', 'no session', 'blk_1')
    """
    if session is None or (not isinstance(session, str) and pd.isna(session)):
        return "no session"
    text = str(session)
    return text if text not in ("", "nan", "None") else "no session"


def readable_sentence(sentence: Any) -> str:
    """A diagnosis sentence without placeholders for missing statistics ('?', 'nan', 'None').

    >>> readable_sentence("took 47 s, usually ? (p95 ?); value nan")
    'took 47 s; value unknown'
    """
    text = "" if sentence is None else str(sentence)
    text = re.sub(r",? usually \? \(p95 \?\)", "", text)
    return re.sub(r"(?<![\w?])(\?|nan|None)(?![\w?])", "unknown", text)


def candidates_text(candidates: Any, limit: int = 3) -> tuple[str, str]:
    """(short, full) texts of the top-g candidates ``[(key, template, probability), ...]``."""
    if candidates is None or (isinstance(candidates, float) and math.isnan(candidates)):
        return "", ""
    items = list(candidates)
    if not items:
        return "", ""
    short = ", ".join(f"k{k} {p:.0%}" for k, _, p in items[:limit])
    if len(items) > limit:
        short += f" +{len(items) - limit}"
    full = "\n".join(f"k{k} {p:.1%}  {t}" for k, t, p in items)
    return short, full


class ReviewView(View):
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
        self._row_widgets: dict[int, dict[str, W.Widget]] = {}
        self._pool: list[dict[str, W.Widget]] = []
        self._slot_ids: list[int] = []
        self._messages: dict[int, str] = {}

        self.detect_button = W.Button(description="Detect", button_style="primary", icon="search")
        self.undo_button = W.Button(description="Undo last update", icon="undo", disabled=True,
                                    tooltip="restore the model before the last false positive")  # fmt: skip
        self.source_text = W.Text(
            placeholder="log to check (empty: the loaded log)",
            description="Source",
            layout=W.Layout(width="420px"),
        )
        self.kind_filter = W.Dropdown(options=["all", *KINDS], value="all", description="Kind")
        self.status_filter = W.Dropdown(
            options=["all", *STATUSES], value="all", description="Status"
        )
        self.search = W.Text(placeholder="session or text in the line", description="Filter")
        self.prev_button = W.Button(description="◀", layout=W.Layout(width="44px"))
        self.next_button = W.Button(description="▶", layout=W.Layout(width="44px"))
        self.page_label = W.HTML()
        self.counts = W.HTML()
        self.rows = W.VBox()
        self.detail = W.HTML()
        self.clear_brush = W.Button(description="all times", icon="times", disabled=True,
                                    tooltip="clear the timeline's time filter",
                                    layout=W.Layout(width="120px"))  # fmt: skip
        self.sort_buttons = {
            label: W.Button(
                description=label,
                tooltip=f"sort by {label}",
                layout=W.Layout(width=f"{width}px", margin="0"),
            )
            for label, width in _WIDTHS.items()
        }
        for label, button in self.sort_buttons.items():
            button.add_class("dl-sort")
            button.on_click(lambda _b, label=label: self.sort(label))
        self.header = W.HBox([W.HTML(layout=W.Layout(width="44px")), *self.sort_buttons.values()])
        self.header.add_class("dl-header")
        from widgets.base import PlotSlot
        from widgets.figures import timeline_figure

        self._timeline_figure = timeline_figure
        self.timeline_slot = PlotSlot(timeline_figure(pd.DataFrame()), on_new=self._attach)
        self.children = [
            W.HBox([self.source_text, self.detect_button, self.undo_button]),
            self.status,
            self.counts,
            self.detail,
            self.timeline_slot.box,
            W.HBox([self.kind_filter, self.status_filter, self.search, self.clear_brush]),
            W.HBox([self.prev_button, self.page_label, self.next_button]),
            self.header,
            self.rows,
        ]
        self.detect_button.on_click(lambda _: self.detect())
        self.undo_button.on_click(lambda _: self.undo())
        self.clear_brush.on_click(lambda _: self.set_time_range(None))
        for control in (self.kind_filter, self.status_filter, self.search):
            control.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _: self.goto(self.page - 1))
        self.next_button.on_click(lambda _: self.goto(self.page + 1))
        self.bind(wb)

    # --------------------------------------------------------------------------------- state

    @property
    def timeline(self) -> Any:
        """The timeline's plot widget."""
        return self.timeline_slot.widget

    def _attach(self, fw: Any) -> None:
        for trace in fw.data:
            if str(trace.name).startswith("lane "):
                trace.on_selection(self._on_brush)
                trace.on_click(self._on_timeline_click)

    _brush_at = 0.0

    def _on_brush(self, trace: Any, points: Any, selector: Any = None) -> None:
        """A brush on the timeline: every lane trace reports its selected points in turn; the
        time range spans all of them (reports within a second belong to one brush)."""
        xr = getattr(selector, "xrange", None)
        if isinstance(xr, list | tuple) and len(xr) == 2:
            self.set_time_range((pd.Timestamp(xr[0]), pd.Timestamp(xr[1])))
            return
        xs = [x for x in (getattr(points, "xs", None) or []) if isinstance(x, str)]
        ts = pd.to_datetime(pd.Series(xs, dtype=object), errors="coerce").dropna()
        if not len(ts):
            return
        lo, hi = ts.min(), ts.max()
        now = time.monotonic()
        if self.time_range is not None and now - self._brush_at < 1.0:
            lo, hi = min(lo, self.time_range[0]), max(hi, self.time_range[1])
        self._brush_at = now
        self.set_time_range((lo, hi))

    def _on_timeline_click(self, trace: Any, points: Any, _selector: Any = None) -> None:
        if points.point_inds:
            self.select(int(trace.customdata[points.point_inds[0]]))

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
        for control, value in ((self.kind_filter, "all"), (self.status_filter, "all"),
                               (self.search, ""), (self.source_text, "")):  # fmt: skip
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
        frame = report.anomalies.copy() if report is not None else pd.DataFrame()
        entries = getattr(report, "entries", None)
        self.entries = entries if isinstance(entries, pd.DataFrame) else pd.DataFrame()
        self._messages = {}
        if len(self.entries) and "line" in self.entries:
            col = "content" if "content" in self.entries else "raw"
            self._messages = dict(
                zip(self.entries["line"].astype(int), self.entries[col].astype(str), strict=False)
            )
        if len(frame):
            frame["verdict"] = "anomalous"
            if len(self.entries) and "anomalous" in self.entries:
                now = dict(
                    zip(self.entries["line"].astype(int), self.entries["anomalous"], strict=False)
                )
                normal = [not bool(now.get(int(ln), True)) for ln in frame["line"]]
                frame.loc[normal, "verdict"] = "normal"
        else:
            frame["verdict"] = pd.Series(dtype=object)
        if keep is not None and len(keep):
            keep = keep[~keep["id"].isin(frame["id"])].copy() if len(frame) else keep.copy()
            keep["verdict"] = "normal"
            frame = pd.concat([frame, keep], ignore_index=True) if len(frame) else keep
        self.table = self._with_severity(frame)
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

    def _with_severity(self, frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame):
            frame["severity"] = frame.apply(severity, axis=1)
        else:
            frame["severity"] = pd.Series(dtype=float)
        return frame

    def message(self, row: pd.Series) -> str:
        """The row's main text: the log line's message (its content), else the raw line."""
        text = self._messages.get(int(row.get("line", -1)))
        return text if text else str(row.get("raw", ""))

    def filtered(self) -> pd.DataFrame:
        """The table after the kind/status/text/time filters, sorted."""
        t = self.table
        if not len(t):
            return t
        mask = np.ones(len(t), dtype=bool)
        if self.kind_filter.value != "all":
            mask &= (t["kind"] == self.kind_filter.value).to_numpy()
        if self.status_filter.value != "all":
            mask &= (t["status"] == self.status_filter.value).to_numpy()
        needle = self.search.value.strip().lower()
        if needle:
            text = t["session"].astype(str).str.lower() + " " + t["raw"].astype(str).str.lower()
            mask &= text.str.contains(needle, regex=False).to_numpy()
        if self.time_range is not None and "timestamp" in t:
            ts = pd.to_datetime(t["timestamp"], errors="coerce")
            lo, hi = self.time_range
            mask &= ((ts >= lo) & (ts <= hi)).fillna(False).to_numpy(dtype=bool)
        column = SORT_COLUMNS[self.sort_by]
        out = t[mask]
        if column in out:
            out = out.sort_values(
                [column, "id"], ascending=[self.ascending, True], na_position="last", kind="stable"
            )
        return out

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
        return self._row_widgets[anomaly_id]  # type: ignore[return-value]

    # ------------------------------------------------------------------------------- drawing

    def counts_text(self) -> str:
        """'N anomalies: a key, b parameter...' over the anomalous rows, in the core's kinds."""
        t = self.table
        if not len(t):
            return ""
        open_rows = t[t["verdict"] == "anomalous"]
        kinds = open_rows["kind"].astype(str).value_counts()
        by_kind = " · ".join(f"{n} {html.escape(k)}" for k, n in kinds.items())
        scored = ""
        if len(self.entries):
            n_sess = self.entries["session"].dropna().nunique() if "session" in self.entries else 0
            scored = f" in {len(self.entries):,} entries scored ({n_sess:,} sessions)"
        stale = ' · <span class="dl-error">stale: trained again since</span>' if self.stale else ""
        return (
            f'<div class="dl-counts"><b>{len(open_rows)}</b> anomalous{scored}: '
            f"{by_kind or 'none'}{stale}</div>"
        )

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
        while len(self._pool) < len(visible):
            self._pool.append(self._make_row(len(self._pool)))
        self._slot_ids = [int(r["id"]) for r in visible]
        self._row_widgets = {}
        for slot, r in enumerate(visible):
            self._fill_row(self._pool[slot], r)
            self._row_widgets[int(r["id"])] = self._pool[slot]
        children = tuple(p["row"] for p in self._pool[: len(visible)])
        if tuple(self.rows.children) != children:
            self.rows.children = children

    def draw_timeline(self) -> None:
        self.timeline_slot.show(self._timeline_figure(self.table, selected=self.selected_id))

    def _make_row(self, slot: int) -> dict[str, W.Widget]:
        """The widgets of one table row; its buttons act on whichever anomaly the row shows."""
        select = W.Button(layout=W.Layout(width="auto", flex="1 1 auto", min_width="0"))
        select.add_class("dl-msg")
        fp = W.Button(description="false positive", tooltip="this is normal: learn it (online update)",
                      button_style="warning", layout=W.Layout(width="130px", flex="0 0 auto"))  # fmt: skip
        like = W.Button(description="all like this",
                        tooltip="this and every open anomaly of the same kind and message template "
                        "are normal: learn them together (one update)",
                        layout=W.Layout(width="224px", height="24px", flex="0 0 auto"))  # fmt: skip
        ok = W.Button(description="confirm", tooltip="this is a real anomaly",
                      button_style="danger", layout=W.Layout(width="90px", flex="0 0 auto"))  # fmt: skip

        def act(method: Callable[[int], Any]) -> Callable[[Any], None]:
            return lambda _b: method(self._slot_ids[slot]) if slot < len(self._slot_ids) else None

        select.on_click(act(self.select))
        fp.on_click(act(self.flag))
        like.on_click(act(self.flag_like))
        ok.on_click(act(self.confirm))
        label = W.HTML(layout=W.Layout(width="100%", overflow="hidden"))
        main = W.VBox([label, select], layout=W.Layout(flex="1 1 auto", min_width="0"))
        actions = W.VBox([W.HBox([fp, ok]), like], layout=W.Layout(flex="0 0 auto"))
        row = W.HBox([main, actions])
        return {"select": select, "false positive": fp, "all like this": like, "confirm": ok,
                "label": label, "row": row}  # fmt: skip

    def _fill_row(self, ws: dict[str, W.Widget], r: pd.Series) -> None:
        aid = int(r["id"])
        w = _WIDTHS
        ts = r.get("timestamp")
        when = when_text(ts)
        full_when = "" if not when else str(pd.Timestamp(ts))
        short, full = candidates_text(r.get("candidates"))
        kind = str(r.get("kind"))
        verdict = r.get("verdict", "anomalous")
        status = str(r.get("status", "open"))
        if verdict == "anomalous":
            status_text = status
        else:
            status_text = "normal now" if status == "open" else f"{status} · normal now"
        if aid in self.newly_anomalous:
            status_text += " · new"

        def cell(text: str, width: int | None, cls: str = "", title: str | None = None) -> str:
            t = html.escape(title if title is not None else text, quote=True)
            size = f"width:{width}px" if width else "flex:1 1 auto;min-width:0"
            return (
                f'<span class="dl-cell {cls}" style="{size}" title="{t}">{html.escape(text)}</span>'
            )

        ws["label"].value = (
            '<div class="dl-line">'
            + cell(when or f"line {r.get('line')}", w["time"], title=full_when or None)
            + cell(session_text(r.get("session")), w["session"])
            + f'<span class="dl-cell" style="width:{w["kind"]}px">'
            f'<span class="dl-badge dl-badge-{_BADGE.get(kind, "key")}">{html.escape(kind)}</span>'
            "</span>"
            + cell(score_text(r), w["severity"])
            + cell(status_text, w["status"], "dl-state")
            + cell(f"expected: {short}" if short else "", None, "dl-cands", title=full)
            + "</div>"
        )
        ws["select"].description = self.message(r)[:400]
        ws["select"].tooltip = f"line {r.get('line')}: {str(r.get('raw', ''))[:600]}"
        closed = status != "open" or verdict != "anomalous"
        for name in ("false positive", "all like this", "confirm"):
            ws[name].disabled = closed
        classes = ["dl-row", f"dl-anomaly-{aid}"]
        if aid == self.selected_id:
            classes.append("dl-row-selected")
        if aid in self.newly_anomalous:
            classes.append("dl-row-new")
        if verdict != "anomalous":
            classes.append("dl-row-cleared")
        if status == "confirmed":
            classes.append("dl-row-confirmed")
        if status == "false positive":
            classes.append("dl-row-fp")
        if tuple(ws["row"]._dom_classes) != tuple(classes):
            ws["row"]._dom_classes = tuple(classes)

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
                return wb.detect(source)
            finally:
                self._detecting = False

        def done(report: Any) -> None:
            self.source = source
            self.became_normal, self.newly_anomalous = set(), set()
            self._fresh()
            self.set_report(report)
            self.say(coverage_text(report))

        return self.run_task("detecting anomalies", work, done)

    def flag(self, anomaly_id: int) -> bool:
        """Mark a row as a false positive: online update, re-scoring, changed rows marked."""
        return self._feedback(
            anomaly_id, "flag_false_positive", "false positive", "learning it as normal"
        )

    def flag_like(self, anomaly_id: int) -> bool:
        """Mark a row and every open one like it (``wb.similar``) as false positives: one update."""
        return self._feedback(
            anomaly_id,
            "flag_false_positive",
            "false positive",
            "learning them as normal",
            like=True,
        )

    def confirm(self, anomaly_id: int) -> bool:
        """Confirm a row as a real anomaly (never learned from)."""
        return self._feedback(anomaly_id, "confirm_anomaly", "confirmed", "confirming")

    def undo(self) -> bool:
        """Restore the model version before the last update, and show the re-scored table."""
        if self.wb is None:
            return False
        wb = self.wb
        before = self.table.copy()

        def work() -> Any:
            self._detecting = True
            try:
                version = wb.undo()
                return version, getattr(wb, "report", None)
            finally:
                self._detecting = False

        def done(out: tuple[Any, Any]) -> None:
            version, report = out
            if version is None:
                self.say("nothing to undo")
                return
            self._show_change(before, report)
            self.undo_button.disabled = True
            self.say(f"undone: model version {version} is current again; "
                     f"{self._change_text()}")  # fmt: skip
            self.draw_timeline()

        return self.run_task("undoing the last update", work, done)

    def _feedback(
        self, anomaly_id: int, method: str, status: str, label: str, *, like: bool = False
    ) -> bool:
        if self.wb is None:
            return False
        if self.runner.running is not None:
            self.say(f"busy with {self.runner.running}: try again when it ends", "error")
            return False
        wb, source = self.wb, self.source
        before = self.table.copy()
        ws = self._row_widgets.get(anomaly_id, {})
        for name in ("false positive", "all like this", "confirm"):
            if name in ws:
                ws[name].disabled = True
        acted = [anomaly_id]
        import time as _time

        t0 = _time.perf_counter()

        def work() -> tuple[Any, Any]:
            self._detecting = True
            try:
                if like:
                    acted[:] = [int(i) for i in wb.similar(anomaly_id)]
                result = getattr(wb, method)(acted if like else anomaly_id)
                report = getattr(result, "report", None)
                if report is None:
                    report = getattr(wb, "report", None) or wb.detect(source)
                return result, report
            finally:
                self._detecting = False

        def done(out: tuple[Any, Any]) -> None:
            result, report = out
            self._show_change(before, report)
            msg = f"anomaly {anomaly_id}: {label} done"
            if like:
                others = len(acted) - 1
                msg = f"anomaly {anomaly_id} and {others} like it: {label} done (one update)"
            if method == "flag_false_positive":
                self.undo_button.disabled = False
                msg += f"; {self._change_text()}"
                lb = getattr(result, "loss_before", getattr(result, "val_loss_before", None))
                la = getattr(result, "loss_after", getattr(result, "val_loss_after", None))
                if lb is not None and la is not None:
                    msg += f" · validation loss {lb:.4g} before, {la:.4g} after the update"
            self.last_feedback_seconds = _time.perf_counter() - t0
            self.say(msg)
            self.draw_timeline()  # after the table: the table is what the user waits for

        return self.run_task(f"{label} (anomaly {anomaly_id})", work, done)

    def _show_change(self, before: pd.DataFrame, report: Any) -> None:
        """Show the new report; rows marked both ways against the table ``before``."""
        was = (
            set(before.loc[before["verdict"] == "anomalous", "id"].astype(int))
            if len(before)
            else set()
        )
        gone = before[before["id"].isin(was)] if len(before) else before
        self.set_report(report, keep=gone, draw=False)
        now = (
            set(self.table.loc[self.table["verdict"] == "anomalous", "id"].astype(int))
            if len(self.table)
            else set()
        )
        self.became_normal = was - now
        self.newly_anomalous = now - was
        self.redraw()

    def _change_text(self) -> str:
        n, m = len(self.became_normal), len(self.newly_anomalous)
        return f"{n} became normal, {m} newly anomalous"

    def select(self, anomaly_id: int) -> None:
        """Select a row: its diagnosis and context below the table; the app highlights it."""
        rows = self.table[self.table["id"] == anomaly_id] if len(self.table) else self.table
        if not len(rows):
            return
        row = rows.iloc[0]
        self.selected_id = int(anomaly_id)
        for aid, ws in self._row_widgets.items():
            row_widget = ws["row"]
            if aid == anomaly_id:
                row_widget.add_class("dl-row-selected")
            else:
                row_widget.remove_class("dl-row-selected")
        try:
            self.diagnosis = self.wb.diagnose(anomaly_id) if self.wb is not None else None
        except Exception as exc:  # a diagnosis is a help, never a blocker
            self.diagnosis = None
            self.say(f"no diagnosis for anomaly {anomaly_id}: {exc}", "error")
        sentence = readable_sentence(getattr(self.diagnosis, "sentence", None) or "")
        self.detail.value = (
            f'<div class="dl-card dl-context"><b>Anomaly {anomaly_id}</b> · line {row.get("line")}'
            f" · {html.escape(when_text(row.get('timestamp')) or 'no time')}"
            f" · session {html.escape(session_text(row.get('session')))}"
            f" · {html.escape(score_text(row))}"
            f"<br><b>{html.escape(self.message(row))}</b>"
            f"<br><b>Diagnosis:</b> {html.escape(sentence) or '–'}"
            f"{self._candidates_table(row)}{self._context_html(row)}</div>"
        )
        for cb in self._select_callbacks:
            cb(row, self.diagnosis)

    def _context_html(self, row: pd.Series) -> str:
        """The raw lines around the selected one: in its session, else in the log."""
        e = self.entries
        if not len(e) or "line" not in e:
            return ""
        line = int(row.get("line"))
        sess = row.get("session")
        has_session = session_text(sess) != "no session" and "session" in e
        part = e[e["session"] == sess] if has_session else e
        lines = part["line"].to_numpy()
        at = int(np.searchsorted(lines, line))
        lo, hi = max(0, at - CONTEXT_LINES), min(len(part), at + CONTEXT_LINES + 1)
        body = []
        for _, r in part.iloc[lo:hi].iterrows():
            mark = ' class="dl-context-hit"' if int(r["line"]) == line else ""
            bad = bool(r.get("anomalous", False))
            text = str(r.get("content") or r.get("raw", ""))
            raw = html.escape(str(r.get("raw", "")), quote=True)
            body.append(
                f"<tr{mark}><td>{int(r['line'])}</td><td>{html.escape(when_text(r.get('timestamp')))}"
                f"</td><td>k{html.escape(str(r.get('key', '')))}</td><td>{'⚠' if bad else ''}</td>"
                f'<td class="dl-raw dl-context-msg" title="{raw}">{html.escape(text[:200])}</td></tr>'
            )
        where = f"in session {html.escape(session_text(sess))}" if has_session else "in the log"
        return (
            f"<br><b>Context</b> ({where}):"
            f'<table class="dl-table dl-context-table"><tr><th>line</th><th>time</th><th>key</th>'
            f"<th></th><th>message (hover: raw line)</th></tr>{''.join(body)}</table>"
        )

    def _candidates_table(self, row: pd.Series) -> str:
        cands = row.get("candidates")
        if cands is None or (isinstance(cands, float) and math.isnan(cands)) or not len(cands):
            return ""
        g = _num(row.get("g"))
        body = "".join(
            f"<tr><td>k{html.escape(str(k))}</td><td>{p:.1%}</td><td>{html.escape(str(t))}</td></tr>"
            for k, t, p in cands
        )
        actual = f"k{row.get('key')}"
        rank = _num(row.get("rank"))
        got = f"; the log had {html.escape(actual)}" + (
            f" at rank {rank:.0f}" if rank is not None else ""
        )
        return (
            f"<br><b>The model's top {len(cands) if g is None else int(g)} candidates</b>"
            f" (a key among them is normal{got}):"
            f'<table class="dl-table"><tr><th>key</th><th>p</th><th>template</th></tr>{body}</table>'
        )

    def select_line(self, line: int) -> bool:
        """Select the anomaly on log line ``line`` if there is one (a click in another view)."""
        if not len(self.table):
            return False
        hits = self.table[self.table["line"] == line]
        if not len(hits):
            return False
        self.select(int(hits.iloc[0]["id"]))
        return True
