"""The timeline: anomalies over time in swim lanes, by kind (top) and by session (bottom).

Each half is one trace whose y values are the lane names (``"lanes by kind"``, ``"lanes by
session"``), so the figure has the same two traces whatever the table holds: a view updates its plot
in place after every flag, never builds a new plot widget.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.figures.labels import hover_text, with_message
from widgets.theme import PALETTE, styled

__all__ = ["KIND_COLOURS", "KIND_TRACE", "SESSION_TRACE", "timeline_figure"]

KIND_COLOURS: dict[str, str] = {
    "key": "#0072B2",
    "unknown key": "#7b2cbf",
    "session end": "#5f6b7a",
    "parameter": "#D55E00",
}
TIMELINE_SESSIONS = 12  # session lanes shown; the others share one lane
KIND_TRACE, SESSION_TRACE = "lanes by kind", "lanes by session"
LANE_CHARS = 28  # session names longer than this are cut on the axis


@dataclass
class _Points:
    """The anomalous rows as the lanes place them: x, ids, kind and session lane of each."""

    x: list[Any]
    ids: list[int]
    kinds: list[str]
    lane_of: list[str]
    lanes: list[str]  # the session lanes, busiest first
    use_time: bool


def _points(table: pd.DataFrame, sessions: int) -> _Points:
    """The rows still anomalous; the ``sessions`` sessions with most of them get a lane each."""
    t = table.reset_index(drop=True)
    if "verdict" in t:
        t = t[t["verdict"] == "anomalous"].reset_index(drop=True)
    ts = pd.to_datetime(t["timestamp"], errors="coerce") if "timestamp" in t else None
    use_time = ts is not None and ts.notna().any()
    x = [v.isoformat() if pd.notna(v) else None for v in ts] if use_time else t["line"].tolist()
    sess = [
        "no session" if s is None or (not isinstance(s, str) and pd.isna(s)) else str(s)
        for s in (t["session"] if "session" in t else [None] * len(t))
    ]
    counts = pd.Series(sess, dtype=object).value_counts()
    top = [s for s in counts.index if s != "no session"][:sessions]
    lane_of = [s if s in top or s == "no session" else "other sessions" for s in sess]
    lanes = [*top, *(["other sessions"] if "other sessions" in lane_of else []),
             *(["no session"] if "no session" in lane_of else [])]  # fmt: skip
    return _Points(x=x, ids=[int(i) for i in t["id"]], kinds=[str(k) for k in t["kind"]],
                   lane_of=lane_of, lanes=lanes, use_time=use_time)  # fmt: skip


def _lane_trace(
    name: str, p: _Points, ys: list[str], info: list[str], selected: int | None
) -> go.Scatter:
    return go.Scatter(
        x=p.x, y=ys, mode="markers", name=name, customdata=p.ids,
        hovertext=[f"anomaly {i} · {html.escape(s)}" for i, s in zip(p.ids, info, strict=True)],
        hovertemplate="%{hovertext}<br>%{x}<extra></extra>",
        marker={"color": [KIND_COLOURS.get(k, PALETTE["anomaly"]) for k in p.kinds],
                "size": [16 if i == selected else 10 for i in p.ids],
                "line": {"width": 1, "color": "#ffffff"}},
    )  # fmt: skip


def timeline_figure(
    table: pd.DataFrame, *, selected: int | None = None, sessions: int = TIMELINE_SESSIONS
) -> go.Figure:
    """Anomalies over time in swim lanes: one lane per kind (top) and per session (bottom).

    ``table`` is the review table (``id``, ``timestamp``, ``kind``, ``session``, optional
    ``verdict``). Rows without a time are placed by line number. The lanes are the y categories of
    the traces :data:`KIND_TRACE` and :data:`SESSION_TRACE` (customdata = anomaly id); the kinds
    are whatever the table holds. A horizontal brush (``dragmode='select'``) picks a time range.

    >>> t = pd.DataFrame({"id": [1, 2], "line": [1, 2], "kind": ["key", "parameter"],
    ...                   "session": ["a", None], "timestamp": pd.to_datetime(["2020-01-01",
    ...                   "2020-01-02"]), "verdict": ["anomalous", "anomalous"]})
    >>> fig = timeline_figure(t)
    >>> [(tr.name, tr.y) for tr in fig.data]
    [('lanes by kind', ('key', 'parameter')), ('lanes by session', ('a', 'no session'))]
    """
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.4, 0.6],
        subplot_titles=("by kind", "by session"),
    )  # fmt: skip
    empty = not len(table)
    p = _Points([], [], [], [], [], False) if empty else _points(table, sessions)
    lane_names = [hover_text(s, LANE_CHARS) for s in p.lane_of]
    fig.add_trace(_lane_trace(KIND_TRACE, p, p.kinds, p.lane_of, selected), row=1, col=1)
    fig.add_trace(_lane_trace(SESSION_TRACE, p, lane_names, p.kinds, selected), row=2, col=1)
    fig.update_layout(showlegend=False, dragmode="select", selectdirection="h",
                      hovermode="closest", clickmode="event+select",
                      margin={"l": 140, "r": 24, "t": 80, "b": 48})  # fmt: skip
    if empty:
        styled(fig, title="Anomalies over time", height=300)
        return with_message(fig, "no anomalies yet: Detect")
    kinds, lanes = list(dict.fromkeys(p.kinds)), [hover_text(s, LANE_CHARS) for s in p.lanes]
    styled(fig, title="Anomalies over time (drag across to filter the table)",
           height=min(760, 200 + 28 * (len(kinds) + len(lanes))))  # fmt: skip
    fig.update_xaxes(visible=True, title_text="time" if p.use_time else "line", row=2, col=1)
    fig.update_xaxes(visible=True, row=1, col=1)
    # every lane named (plotly would skip every other one), in a font that fits a lane's height
    fig.update_yaxes(visible=True, type="category", automargin=True, categoryorder="array",
                     dtick=1, tickfont={"size": 13})  # fmt: skip
    fig.update_yaxes(categoryarray=kinds, row=1, col=1)
    fig.update_yaxes(categoryarray=lanes, row=2, col=1)
    return fig
