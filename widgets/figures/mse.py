"""The MSE plot (per log key: each parameter vector's MSE against the confidence-interval
thresholds) and the observed-against-predicted parameter values of the same key."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.figures.labels import (
    has_level,
    hover_text,
    level_label,
    threshold_column,
    with_message,
)
from widgets.theme import PALETTE, level_colour, styled

__all__ = ["mse_figure", "observed_predicted_figure"]


def _per_instance(series: pd.DataFrame) -> pd.DataFrame:
    """One row per session: the entry with the largest MSE (the paper's x axis is the VM instance)."""
    order = series.reset_index(drop=True)
    order["_first"] = np.arange(len(order))
    order["_sess"] = order["session"].astype("object").where(order["session"].notna(), "(none)")
    worst = order.loc[order.groupby("_sess", sort=False)["mse"].idxmax()]
    anomalous = order.groupby("_sess", sort=False)["anomalous"].any()
    worst = worst.assign(anomalous=worst["_sess"].map(anomalous).astype(bool))
    first = order.groupby("_sess", sort=False)["_first"].min()
    worst = worst.assign(_first=worst["_sess"].map(first)).sort_values("_first")
    return worst.drop(columns=["_first", "_sess"]).reset_index(drop=True)


def mse_figure(
    series: pd.DataFrame,
    levels: Sequence[float],
    visible_levels: set[float] | frozenset[float],
    selected_line: int | None = None,
    *,
    x: str = "entry",
    title: str | None = None,
) -> go.Figure:
    """MSE of one log key's parameter vectors, with the confidence-interval threshold lines.

    ``series`` has one row per entry of the key, in order, with columns ``line``, ``session``,
    ``timestamp``, ``mse``, ``anomalous``, ``raw`` and one ``threshold_<level>`` column per level
    (:func:`threshold_column`). ``x="entry"`` plots every entry in order; ``x="instance"`` plots one
    point per session, its worst entry (the paper's per-VM view).

    Threshold lines are separate traces named by :func:`level_label`, with ``meta=level``; a level
    outside ``visible_levels`` is drawn ``visible="legendonly"`` so it can be switched back on from
    the legend or by the view. Every point carries its line number as ``customdata`` for clicks.

    >>> s = pd.DataFrame({"line": [3, 9], "session": ["a", "b"], "timestamp": [None, None],
    ...                   "mse": [0.1, 4.0], "anomalous": [False, True], "raw": ["x", "y <z>"],
    ...                   "threshold_0.99": [1.0, 1.0]})
    >>> fig = mse_figure(s, [0.99], set(), selected_line=9)
    >>> [(t.name, t.visible) for t in fig.data]
    [('MSE', None), ('99 % CI', 'legendonly'), ('anomalies', None), ('selected', None)]
    >>> list(fig.data[2].customdata)
    [9]
    """
    if x not in ("entry", "instance"):
        raise ValueError(f"x must be 'entry' or 'instance', got {x!r}")
    fig = go.Figure()
    styled(fig, title=title or "Parameter-vector MSE", height=420)
    if series is None or len(series) == 0:
        return with_message(fig, "no parameter vectors for this key")
    p = _MsePoints.of(_per_instance(series) if x == "instance" else series.reset_index(drop=True))
    fig.add_trace(
        go.Scatter(x=p.xs.tolist(), y=p.mse.tolist(), mode="lines+markers", name="MSE",
                   customdata=p.lines.tolist(), hovertext=p.hover,
                   hovertemplate="%{hovertext}<br>MSE %{y:.4g}<extra></extra>",
                   line={"color": PALETTE["normal"], "width": 1.5},
                   marker={"size": 6, "color": PALETTE["normal"]})
    )  # fmt: skip
    for trace in _threshold_traces(p, levels, visible_levels):
        fig.add_trace(trace)
    fig.add_trace(_anomaly_trace(p))
    fig.add_trace(_selected_trace(p, selected_line))
    xlabel = "entry (in order)" if x == "entry" else "instance (session, worst entry)"
    fig.update_xaxes(title_text=xlabel, visible=True)  # explicit: the browser merges layouts
    fig.update_yaxes(title_text="MSE (prediction vs observation)", rangemode="tozero", visible=True)
    fig.update_layout(hovermode="closest", clickmode="event")
    return fig


@dataclass
class _MsePoints:
    """The plotted entries (or instances): x, line numbers, MSE, anomalous flags, hover texts."""

    data: pd.DataFrame
    xs: np.ndarray
    lines: np.ndarray
    mse: np.ndarray
    anomalous: np.ndarray
    hover: list[str]

    @classmethod
    def of(cls, data: pd.DataFrame) -> _MsePoints:
        lines = data["line"].astype(int).to_numpy()
        sessions = data["session"].astype("object").where(data["session"].notna(), "–")
        hover = [
            f"line {ln} · session {html.escape(str(s))}<br>{hover_text(r)}"
            for ln, s, r in zip(lines, sessions, data["raw"], strict=True)
        ]
        return cls(data=data, xs=np.arange(1, len(data) + 1), lines=lines,
                   mse=pd.to_numeric(data["mse"], errors="coerce").to_numpy(dtype=float),
                   anomalous=data["anomalous"].fillna(False).astype(bool).to_numpy(),
                   hover=hover)  # fmt: skip


def _threshold_traces(
    p: _MsePoints, levels: Sequence[float], visible_levels: set[float] | frozenset[float]
) -> list[go.Scatter]:
    """One dashed step line per level present (``meta`` = level), hidden to the legend unless the
    level is in ``visible_levels``."""
    out = []
    for i, level in enumerate(sorted(levels)):
        col = threshold_column(level)
        if col not in p.data:
            continue
        out.append(
            go.Scatter(x=p.xs.tolist(), mode="lines", name=level_label(level), meta=float(level),
                       y=pd.to_numeric(p.data[col], errors="coerce").to_numpy(dtype=float).tolist(),
                       line={"color": level_colour(i), "width": 2.5, "dash": "dash", "shape": "hv"},
                       hovertemplate=f"{level_label(level)} threshold %{{y:.4g}}<extra></extra>",
                       visible=None if has_level(visible_levels, level) else "legendonly")
        )  # fmt: skip
    return out


def _anomaly_trace(p: _MsePoints) -> go.Scatter:
    a = p.anomalous
    return go.Scatter(
        x=p.xs[a].tolist(), y=p.mse[a].tolist(), mode="markers", name="anomalies",
        customdata=p.lines[a].tolist(),
        hovertext=[h for h, on in zip(p.hover, a, strict=True) if on],
        hovertemplate="<b>anomaly</b> %{hovertext}<br>MSE %{y:.4g}<extra></extra>",
        marker={"symbol": "x", "size": 13, "color": PALETTE["anomaly"],
                "line": {"width": 1, "color": PALETTE["anomaly"]}},
    )  # fmt: skip


def _selected_trace(p: _MsePoints, selected_line: int | None) -> go.Scatter:
    chosen = p.lines == selected_line if selected_line is not None else np.zeros(len(p.xs), bool)
    return go.Scatter(
        x=p.xs[chosen].tolist(), y=p.mse[chosen].tolist(), mode="markers", name="selected",
        customdata=p.lines[chosen].tolist(), hoverinfo="skip", showlegend=bool(chosen.any()),
        marker={"symbol": "circle-open", "size": 22, "color": PALETTE["highlight"],
                "line": {"width": 4, "color": PALETTE["highlight"]}},
    )  # fmt: skip


def _wide_observed(series: pd.DataFrame) -> pd.DataFrame:
    """The core's long form (``observed``, ``predicted``, ``dimension``: the dimension each entry
    was judged on) as ``observed_<dim>``/``predicted_<dim>`` columns, empty where another one was.

    >>> s = pd.DataFrame({"line": [1, 2], "observed": [1.0, 2.0], "predicted": [1.1, 1.9],
    ...                   "dimension": ["elapsed", "param1"]})
    >>> sorted(c for c in _wide_observed(s).columns if "_" in c)
    ['observed_elapsed', 'observed_param1', 'predicted_elapsed', 'predicted_param1']
    """
    out = series.copy()
    dims = [str(d) for d in dict.fromkeys(series["dimension"].dropna().astype(str))]
    for d in dims:
        on = series["dimension"].astype(str) == d
        out[f"observed_{d}"] = pd.to_numeric(series["observed"], errors="coerce").where(on)
        out[f"predicted_{d}"] = pd.to_numeric(series["predicted"], errors="coerce").where(on)
    return out


def observed_predicted_figure(
    series: pd.DataFrame, selected_line: int | None = None, *, title: str | None = None
) -> go.Figure:
    """Observed against predicted parameter values, one panel per dimension.

    Dimensions are the suffixes of paired ``observed_<dim>`` / ``predicted_<dim>`` columns, in column
    order; ``line``, ``anomalous`` and ``raw`` are used when present. Trace names are
    ``"<dim> observed"`` and ``"<dim> predicted"``.

    >>> s = pd.DataFrame({"line": [1, 2], "observed_dt": [1.0, 9.0], "predicted_dt": [1.1, 1.2]})
    >>> [t.name for t in observed_predicted_figure(s).data]
    ['dt observed', 'dt predicted']
    """
    if {"observed", "predicted", "dimension"} <= set(series.columns):
        series = _wide_observed(series)
    dims = [
        c.removeprefix("observed_")
        for c in series.columns
        if isinstance(c, str)
        and c.startswith("observed_")
        and "predicted_" + c.removeprefix("observed_") in series
    ]
    if not dims:
        fig = go.Figure()
        styled(fig, title=title or "Observed vs predicted", height=300)
        return with_message(fig, "no observed/predicted values for this key")
    fig = make_subplots(
        rows=len(dims), cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=dims
    )
    styled(
        fig, title=title or "Observed vs predicted parameter values", height=180 + 170 * len(dims)
    )
    data = series.reset_index(drop=True)
    for row, dim in enumerate(dims, start=1):
        for trace in _dimension_traces(data, dim, selected_line, first=row == 1):
            fig.add_trace(trace, row=row, col=1)
    fig.update_xaxes(visible=True)
    fig.update_yaxes(visible=True)
    fig.update_xaxes(title_text="entry (in order)", row=len(dims), col=1)
    return fig


def _dimension_traces(
    data: pd.DataFrame, dim: str, selected_line: int | None, *, first: bool
) -> list[go.Scatter]:
    """The observed values of one dimension (anomalies and the selected entry marked) and the
    predicted ones; only the first panel's pair shows in the legend."""
    xs = np.arange(1, len(data) + 1)
    lines = data["line"].astype(int).to_numpy() if "line" in data else xs
    raw = data["raw"] if "raw" in data else pd.Series([""] * len(data))
    hover = [f"line {ln}<br>{hover_text(r)}" for ln, r in zip(lines, raw, strict=True)]
    anomalous = (
        data["anomalous"].fillna(False).astype(bool).to_numpy()
        if "anomalous" in data
        else np.zeros(len(data), bool)
    )
    obs = pd.to_numeric(data[f"observed_{dim}"], errors="coerce").to_numpy(dtype=float)
    pred = pd.to_numeric(data[f"predicted_{dim}"], errors="coerce").to_numpy(dtype=float)
    colours = np.where(anomalous, PALETTE["anomaly"], PALETTE["normal"])
    sizes = np.where(anomalous, 11, 5)
    if selected_line is not None:
        sizes = np.where(lines == selected_line, 18, sizes)
        colours = np.where(lines == selected_line, PALETTE["highlight"], colours)
    observed = go.Scatter(
        x=xs.tolist(), y=obs.tolist(), mode="lines+markers", name=f"{dim} observed",
        legendgroup="observed", showlegend=first, customdata=[int(v) for v in lines],
        hovertext=hover, hovertemplate="%{hovertext}<br>observed %{y:.4g}<extra></extra>",
        line={"color": PALETTE["normal"], "width": 1.5},
        marker={"color": colours.tolist(), "size": sizes.tolist()},
    )  # fmt: skip
    predicted = go.Scatter(
        x=xs.tolist(), y=pred.tolist(), mode="lines", name=f"{dim} predicted",
        legendgroup="predicted", showlegend=first,
        hovertemplate="predicted %{y:.4g}<extra></extra>",
        line={"color": PALETTE["validation"], "width": 2, "dash": "dash"},
    )  # fmt: skip
    return [observed, predicted]
