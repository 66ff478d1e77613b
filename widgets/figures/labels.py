"""Names and texts the figures share: threshold columns and their legend names, durations, hover
text, ids plotly can carry, and the message an empty figure shows."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from widgets.theme import PALETTE

__all__ = [
    "edge_text",
    "format_seconds",
    "has_level",
    "hover_text",
    "json_id",
    "key_order",
    "level_label",
    "levels_of",
    "threshold_column",
    "with_message",
]

HOVER_CHARS = 160  # raw lines longer than this are cut in hover boxes


def threshold_column(level: float) -> str:
    """Column holding the threshold at ``level`` in an MSE series.

    >>> [threshold_column(x) for x in (0.98, 0.99, 0.999)]
    ['threshold_0.98', 'threshold_0.99', 'threshold_0.999']
    """
    return f"threshold_{level:g}"


def levels_of(series: pd.DataFrame) -> list[float]:
    """Confidence levels present as ``threshold_<level>`` columns, ascending.

    >>> levels_of(pd.DataFrame(columns=["mse", "threshold_0.999", "threshold_0.98"]))
    [0.98, 0.999]
    """
    out = []
    for col in series.columns:
        if isinstance(col, str) and col.startswith("threshold_"):
            try:
                out.append(float(col.removeprefix("threshold_")))
            except ValueError:
                continue
    return sorted(out)


def level_label(level: float) -> str:
    """Legend name of a threshold line: 0.99 -> '99 % CI', 0.999 -> '99.9 % CI'.

    >>> level_label(0.999)
    '99.9 % CI'
    """
    return f"{round(level * 100, 6):g} % CI"


def format_seconds(seconds: float | None) -> str:
    """Human duration for labels: ms below 0.1 s, then s, min, h.

    >>> [format_seconds(x) for x in (0.0042, 0.61, 12.0, 95.0, 7200.0, None)]
    ['4 ms', '0.61 s', '12 s', '1.6 min', '2 h', '–']
    """
    if seconds is None or not math.isfinite(float(seconds)):
        return "–"
    s = float(seconds)
    if abs(s) < 0.1:
        return f"{s * 1000:.0f} ms"
    if abs(s) < 60:
        return f"{s:.3g} s"
    if abs(s) < 3600:
        return f"{s / 60:.2g} min"
    return f"{s / 3600:.2g} h"


def hover_text(text: Any, limit: int = HOVER_CHARS) -> str:
    """Escape a raw log line for a hover box (log lines may hold '<' and '&') and cut it."""
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return html.escape(s)


def has_level(levels: Iterable[float], level: float) -> bool:
    """Whether ``level`` is one of ``levels`` (floats compared with a tolerance)."""
    return any(math.isclose(level, x, rel_tol=1e-9, abs_tol=1e-12) for x in levels)


def with_message(fig: go.Figure, message: str) -> go.Figure:
    """Write ``message`` in the middle of an empty figure and hide its axes."""
    fig.add_annotation(
        text=message,
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        font={"size": 18, "color": PALETTE["muted"]},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def json_id(node: Any) -> Any:
    """Node id as plotly can carry it in customdata (ints and strings as they are).

    >>> json_id(3), json_id(np.int64(4)), json_id(("a", 1))
    (3, 4, "('a', 1)")
    """
    if isinstance(node, bool | np.bool_):
        return str(node)
    if isinstance(node, int | np.integer):
        return int(node)
    return node if isinstance(node, str) else str(node)


def key_order(k: Any) -> tuple[int, Any]:
    """Sort key for log keys: numbers in numeric order, then anything else as text.

    >>> sorted([10, 2, "x", 1], key=key_order)
    [1, 2, 10, 'x']
    """
    try:
        return (0, float(k))
    except (TypeError, ValueError):
        return (1, str(k))


def edge_text(data: Mapping[str, Any]) -> str:
    """A transition's label: how often it was seen and its median elapsed time.

    >>> edge_text({"count": 80, "median": 0.002})
    '80x, 2 ms'
    """
    parts = []
    if data.get("count") is not None:
        parts.append(f"{int(data['count'])}x")
    if data.get("median") is not None:
        parts.append(format_seconds(data["median"]))
    return ", ".join(parts)
