"""Review anomalies: a sortable, filterable table with inline "false positive" / "confirm" buttons.

Flagging a row runs the core's online update (``wb.flag_false_positive``) in the background, then
detects again over the same source with the updated model. Rows whose verdict changed are marked:
a row that the update turned normal stays in the table, greyed, with "normal now", so the effect of
the feedback is visible. Selecting a row shows its diagnosis sentence and tells the app, which
highlights the entry in the MSE plot and the path in the workflow graph.

Table state is plain data (:attr:`ReviewView.table`, :attr:`sort_by`, the filters, :attr:`page`)
and :meth:`ReviewView.visible_rows` is the filtered, sorted page; the widgets are redrawn from it.
"""

from __future__ import annotations

import html
import math
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
_WIDTHS = {"time": 165, "session": 115, "kind": 115, "severity": 185, "status": 150}


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


def score_text(row: pd.Series) -> str:
    """The raw score against its rule: 'rank 12 > g = 9' or 'MSE 5.2 > 1.8 (99 % CI)'.

    >>> score_text(pd.Series({"kind": "parameter", "mse": 5.2, "threshold": 1.8, "level": 0.99}))
    'MSE 5.2 > 1.8 (99 % CI)'
    """
    kind = row.get("kind")
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
    return f"rank {rank:.0f} > g = {g:.0f}" if g is not None else f"rank {rank:.0f}"


def candidates_text(candidates: Any, limit: int = 3) -> tuple[str, str]:
    """(short, full) texts of the top-g candidates ``[(key, template, probability), ...]``."""
    if candidates is None or (isinstance(candidates, float) and math.isnan(candidates)):
        return "", ""
    items = list(candidates)
    short = ", ".join(f"k{k} {p:.0%}" for k, _, p in items[:limit])
    if len(items) > limit:
        short += f" +{len(items) - limit}"
    full = "\n".join(f"k{k} {p:.1%}  {t}" for k, t, p in items)
    return short, full


class ReviewView(View):
    """The anomaly table, its filters and sorting, feedback buttons, selection and diagnosis."""

    refresh_on = ("detect",)

    def __init__(
        self, wb: Any = None, *, runner: TaskRunner | None = None, page_size: int = PAGE_SIZE
    ) -> None:
        super().__init__(wb, runner=runner)
        self.page_size = page_size
        self.table = pd.DataFrame()
        self.source: Any = None
        self.sort_by = "time"
        self.ascending = True
        self.page = 0
        self.changed: set[int] = set()
        self.cleared: set[int] = set()
        self.selected_id: int | None = None
        self.diagnosis: Any = None
        self._select_callbacks: list[Callable[[pd.Series, Any], None]] = []
        self._row_widgets: dict[int, dict[str, W.Widget]] = {}

        self.detect_button = W.Button(description="Detect", button_style="primary", icon="search")
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
        self.rows = W.VBox()
        self.detail = W.HTML()
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
        self.children = [
            W.HBox([self.source_text, self.detect_button]),
            W.HBox([self.kind_filter, self.status_filter, self.search]),
            self.status,
            self.detail,
            W.HBox([self.prev_button, self.page_label, self.next_button]),
            self.header,
            self.rows,
        ]
        self.detect_button.on_click(lambda _: self.detect())
        for control in (self.kind_filter, self.status_filter, self.search):
            control.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _: self.goto(self.page - 1))
        self.next_button.on_click(lambda _: self.goto(self.page + 1))
        self.bind(wb)

    # --------------------------------------------------------------------------------- state

    def on_select(self, callback: Callable[[pd.Series, Any], None]) -> None:
        """Call ``callback(row, diagnosis)`` when a row is selected."""
        self._select_callbacks.append(callback)

    def set_report(self, report: Any) -> None:
        """Show a detection report (its ``anomalies`` frame); keeps the selection if still there."""
        frame = report.anomalies.copy() if report is not None else pd.DataFrame()
        frame["verdict"] = "anomalous"
        self.cleared -= set(frame.get("id", pd.Series(dtype=int)).tolist())
        self.table = self._with_severity(frame)
        self.page = 0
        self.redraw()

    def _with_severity(self, frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame):
            frame["severity"] = frame.apply(severity, axis=1)
        else:
            frame["severity"] = pd.Series(dtype=float)
        return frame

    def filtered(self) -> pd.DataFrame:
        """The table after the kind/status/text filters, sorted."""
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

    def _on_filter(self, _change: dict) -> None:
        self.page = 0
        self.redraw()

    def row_buttons(self, anomaly_id: int) -> dict[str, W.Button]:
        """The buttons of a visible row: 'select', 'false positive', 'all like this', 'confirm'."""
        return self._row_widgets[anomaly_id]  # type: ignore[return-value]

    # ------------------------------------------------------------------------------- drawing

    def redraw(self) -> None:
        """Rebuild the visible rows from the state (one page, so at most ``page_size`` rows)."""
        for widgets_of_row in self._row_widgets.values():
            for w in widgets_of_row.values():
                w.close()
        self._row_widgets = {}
        f = self.filtered()
        pages = max(1, math.ceil(len(f) / self.page_size))
        self.page_label.value = (
            f"&nbsp;page {self.page + 1}/{pages} · {len(f)} of {len(self.table)} anomalies&nbsp;"
        )
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        for label, button in self.sort_buttons.items():
            arrow = (" ▲" if self.ascending else " ▼") if label == self.sort_by else ""
            button.description = label + arrow
        self.rows.children = [self._row(r) for _, r in self.visible_rows().iterrows()]

    def _row(self, r: pd.Series) -> W.HBox:
        aid = int(r["id"])
        w = _WIDTHS
        ts = r.get("timestamp")
        when = "" if ts is None or pd.isna(ts) else str(pd.Timestamp(ts))
        short, full = candidates_text(r.get("candidates"))
        kind = str(r.get("kind"))
        verdict = r.get("verdict", "anomalous")
        status = str(r.get("status", "open"))
        if verdict == "anomalous":
            status_text = status
        else:
            status_text = "normal now" if status == "open" else f"{status} · normal now"
        if aid in self.changed:
            status_text += " · changed"

        def cell(text: str, width: int | None, cls: str = "", title: str | None = None) -> str:
            t = html.escape(title if title is not None else text, quote=True)
            size = f"width:{width}px" if width else "flex:1 1 auto;min-width:0"
            return (
                f'<span class="dl-cell {cls}" style="{size}" title="{t}">{html.escape(text)}</span>'
            )

        raw = str(r.get("raw", ""))
        cells = (
            '<div class="dl-line">'
            + cell(when or f"line {r.get('line')}", w["time"])
            + cell(str(r.get("session", "")), w["session"])
            + f'<span class="dl-cell" style="width:{w["kind"]}px">'
            f'<span class="dl-badge dl-badge-{_BADGE.get(kind, "key")}">{html.escape(kind)}</span>'
            "</span>"
            + cell(score_text(r), w["severity"])
            + cell(status_text, w["status"], "dl-state")
            + '</div><div class="dl-line">'
            + cell(raw, None, "dl-raw")
            + cell(f"expected: {short}" if short else "", 230, "dl-cands", title=full)
            + "</div>"
        )
        select = W.Button(description="", icon="crosshairs", tooltip="select: diagnose and highlight",
                          layout=W.Layout(width="40px", flex="0 0 auto"))  # fmt: skip
        fp = W.Button(description="false positive", tooltip="this is normal: learn it (online update)",
                      button_style="warning", layout=W.Layout(width="130px", flex="0 0 auto"))  # fmt: skip
        like = W.Button(description="all like this",
                        tooltip="this and every open anomaly of the same kind and message template "
                        "are normal: learn them together (one update)",
                        layout=W.Layout(width="224px", height="24px", flex="0 0 auto"))  # fmt: skip
        ok = W.Button(description="confirm", tooltip="this is a real anomaly",
                      button_style="danger", layout=W.Layout(width="90px", flex="0 0 auto"))  # fmt: skip
        for b in (fp, like, ok):
            b.disabled = status != "open" or verdict != "anomalous"
        select.on_click(lambda _: self.select(aid))
        fp.on_click(lambda _: self.flag(aid))
        like.on_click(lambda _: self.flag_like(aid))
        ok.on_click(lambda _: self.confirm(aid))
        label = W.HTML(cells, layout=W.Layout(flex="1 1 auto", min_width="0", overflow="hidden"))
        actions = W.VBox([W.HBox([fp, ok]), like], layout=W.Layout(flex="0 0 auto"))
        row = W.HBox([select, label, actions])
        row.add_class("dl-row")
        row.add_class(f"dl-anomaly-{aid}")
        if aid == self.selected_id:
            row.add_class("dl-row-selected")
        if aid in self.changed:
            row.add_class("dl-row-changed")
        if verdict != "anomalous":
            row.add_class("dl-row-cleared")
        self._row_widgets[aid] = {
            "select": select,
            "false positive": fp,
            "all like this": like,
            "confirm": ok,
            "label": label,
            "row": row,
        }
        return row

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
            self.set_report(report)

    _detecting = False

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
            self.changed = set()
            self.cleared = set()
            self.set_report(report)
            self.say(f"{len(self.table)} anomalies detected")

        return self.run_task("detecting anomalies", work, done)

    def flag(self, anomaly_id: int) -> bool:
        """Mark a row as a false positive: online update, then detect again and mark changes."""
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

    def _feedback(
        self, anomaly_id: int, method: str, status: str, label: str, *, like: bool = False
    ) -> bool:
        if self.wb is None:
            return False
        wb, source = self.wb, self.source
        before = self.table.copy()
        for w in self._row_widgets.get(anomaly_id, {}).values():
            if isinstance(w, W.Button):
                w.disabled = True
        acted = [anomaly_id]

        def work() -> tuple[Any, Any]:
            self._detecting = True
            try:
                if like:
                    acted[:] = [int(i) for i in wb.similar(anomaly_id)]
                result = getattr(wb, method)(acted if like else anomaly_id)
                return result, wb.detect(source)
            finally:
                self._detecting = False

        def done(out: tuple[Any, Any]) -> None:
            result, report = out
            changed = list(getattr(result, "changed", []) or [])
            self._merge(before, report, acted, status, changed)
            msg = f"anomaly {anomaly_id}: {label} done"
            if like:
                others = len(acted) - 1
                msg = f"anomaly {anomaly_id} and {others} like it: {label} done (one update)"
            if method == "flag_false_positive":
                n = len(self.changed)
                msg += f"; {n} other row{'s' if n != 1 else ''} changed verdict"
                lb, la = (
                    getattr(result, "val_loss_before", None),
                    getattr(result, "val_loss_after", None),
                )
                if lb is not None and la is not None:
                    msg += f" (validation loss {lb:.4g} → {la:.4g})"
            self.say(msg)

        return self.run_task(f"{label} (anomaly {anomaly_id})", work, done)

    def _merge(
        self,
        before: pd.DataFrame,
        report: Any,
        acted: int | list[int],
        status: str,
        changed: list[int],
    ) -> None:
        """New report rows, plus the earlier rows that the update turned normal (kept, greyed)."""
        acted_ids = {int(acted)} if np.ndim(acted) == 0 else {int(i) for i in acted}
        new = report.anomalies.copy()
        new["verdict"] = "anomalous"
        new_ids = set(new["id"].tolist()) if len(new) else set()
        keep = (set(changed) | acted_ids) - new_ids
        gone = before[before["id"].isin(keep)].copy() if len(before) else before.copy()
        if len(gone):
            gone["verdict"] = "normal"
            gone.loc[gone["id"].isin(acted_ids), "status"] = status
        self.changed = {int(i) for i in changed if i not in acted_ids}
        self.cleared = {int(i) for i in gone["id"]} if len(gone) else set()
        frame = pd.concat([new, gone], ignore_index=True) if len(gone) else new
        self.table = self._with_severity(frame)
        self.redraw()

    def select(self, anomaly_id: int) -> None:
        """Select a row: its diagnosis below the table, and the app highlights it elsewhere."""
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
        sentence = getattr(self.diagnosis, "sentence", None) or ""
        self.detail.value = (
            f'<div class="dl-card"><b>Anomaly {anomaly_id}</b> · line {row.get("line")} · '
            f"session {html.escape(str(row.get('session')))} · {html.escape(score_text(row))}"
            f'<br><span class="dl-raw">{html.escape(str(row.get("raw", "")))}</span>'
            f"<br><b>Diagnosis:</b> {html.escape(sentence) or '–'}"
            f"{self._candidates_table(row)}</div>"
        )
        for cb in self._select_callbacks:
            cb(row, self.diagnosis)

    def _candidates_table(self, row: pd.Series) -> str:
        cands = row.get("candidates")
        if cands is None or (isinstance(cands, float) and math.isnan(cands)) or not len(cands):
            return ""
        body = "".join(
            f"<tr><td>k{html.escape(str(k))}</td><td>{p:.1%}</td><td>{html.escape(str(t))}</td></tr>"
            for k, t, p in cands
        )
        return (
            "<br>Expected instead (top-g):"
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
