"""The anomaly table's rows as widgets: a pool of rows refilled in place, never rebuilt.

A new page or a re-scored table changes a few values per row (its text, its marks, whether its
buttons are enabled), which the browser applies at once; a value that did not change sends nothing.
Each row's buttons act on whichever anomaly the row shows now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ipywidgets as W
import pandas as pd

from widgets.anomaly_text import row_classes, row_html

__all__ = ["ACTIONS", "AnomalyRows"]

#: the buttons of a row, by name; each calls the action of that name with the row's anomaly id
ACTIONS = ("select", "false positive", "all like this", "confirm")
FEEDBACK = ("false positive", "all like this", "confirm")


def _buttons() -> dict[str, W.Button]:
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
    return {"select": select, "false positive": fp, "all like this": like, "confirm": ok}


class AnomalyRows:
    """The visible rows of the table, in :attr:`box`.

    ``actions`` maps each name of :data:`ACTIONS` to a function of the anomaly id. :attr:`widgets`
    holds the widgets of each shown anomaly: its buttons, ``'label'`` (the first line) and
    ``'row'`` (the whole row, whose CSS classes mark it).
    """

    def __init__(self, actions: dict[str, Callable[[int], Any]]) -> None:
        self.actions = actions
        self.box = W.VBox()
        self.widgets: dict[int, dict[str, W.Widget]] = {}
        self._pool: list[dict[str, W.Widget]] = []
        self._slot_ids: list[int] = []

    def _make(self, slot: int) -> dict[str, W.Widget]:
        ws: dict[str, W.Widget] = _buttons()
        for name in ACTIONS:
            ws[name].on_click(lambda _b, name=name: self._act(name, slot))
        ws["label"] = W.HTML(layout=W.Layout(width="100%", overflow="hidden"))
        main = W.VBox([ws["label"], ws["select"]], layout=W.Layout(flex="1 1 auto", min_width="0"))
        actions = W.VBox([W.HBox([ws["false positive"], ws["confirm"]]), ws["all like this"]],
                         layout=W.Layout(flex="0 0 auto"))  # fmt: skip
        ws["row"] = W.HBox([main, actions])
        return ws

    def _act(self, name: str, slot: int) -> None:
        if slot < len(self._slot_ids):
            self.actions[name](self._slot_ids[slot])

    def show(
        self,
        rows: Sequence[pd.Series],
        message: Callable[[pd.Series], str],
        *,
        selected: int | None = None,
        new: Iterable[int] = (),
    ) -> None:
        """Show ``rows`` (one page); ``message(row)`` is a row's main text; ``new`` ids are marked."""
        new = set(new)
        while len(self._pool) < len(rows):
            self._pool.append(self._make(len(self._pool)))
        self._slot_ids = [int(r["id"]) for r in rows]
        self.widgets = {}
        for slot, r in enumerate(rows):
            aid = int(r["id"])
            self._fill(self._pool[slot], r, message(r), aid == selected, aid in new)
            self.widgets[aid] = self._pool[slot]
        children = tuple(p["row"] for p in self._pool[: len(rows)])
        if tuple(self.box.children) != children:
            self.box.children = children

    @staticmethod
    def _fill(
        ws: dict[str, W.Widget], r: pd.Series, message: str, selected: bool, new: bool
    ) -> None:
        ws["label"].value = row_html(r, new)
        with ws["select"].hold_sync():  # one message for both
            ws["select"].description = message[:400]
            ws["select"].tooltip = f"line {r.get('line')}: {str(r.get('raw', ''))[:600]}"
        closed = (
            str(r.get("status", "open")) != "open" or r.get("verdict", "anomalous") != "anomalous"
        )
        for name in FEEDBACK:
            ws[name].disabled = closed
        classes = row_classes(r, selected=selected, new=new)
        if tuple(ws["row"]._dom_classes) != classes:
            ws["row"]._dom_classes = classes

    def mark_selected(self, anomaly_id: int | None) -> None:
        """Mark the row of ``anomaly_id`` selected (and no other)."""
        for aid, ws in self.widgets.items():
            if aid == anomaly_id:
                ws["row"].add_class("dl-row-selected")
            else:
                ws["row"].remove_class("dl-row-selected")

    def disable_feedback(self, anomaly_id: int) -> None:
        """Grey out the feedback buttons of an anomaly while its feedback is under way."""
        ws = self.widgets.get(anomaly_id, {})
        for name in FEEDBACK:
            if name in ws:
                ws[name].disabled = True
