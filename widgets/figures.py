"""Pure figure builders: data in, :class:`plotly.graph_objects.Figure` out.

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

>>> fig = loss_curve_figure([{"epoch": 1, "train_loss": 2.0, "val_loss": 2.5}])
>>> [t.name for t in fig.data]
['key train', 'key validation']
"""

from __future__ import annotations

import html
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.theme import PALETTE, level_colour, styled

__all__ = [
    "format_seconds",
    "level_label",
    "levels_of",
    "loss_curve_figure",
    "mse_figure",
    "observed_predicted_figure",
    "simple_layered_layout",
    "threshold_column",
    "timeline_figure",
    "workflow_figure",
    "wrap_layout",
]

_HOVER_CHARS = 160  # raw lines longer than this are cut in hover boxes


# --------------------------------------------------------------------------------------- helpers


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


def _short(text: Any, limit: int = _HOVER_CHARS) -> str:
    """Escape a raw log line for a hover box (log lines may hold '<' and '&') and cut it."""
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return html.escape(s)


def _contains(levels: Iterable[float], level: float) -> bool:
    return any(math.isclose(level, x, rel_tol=1e-9, abs_tol=1e-12) for x in levels)


def _empty(fig: go.Figure, message: str) -> go.Figure:
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


# ------------------------------------------------------------------------------------ loss curve


def loss_curve_figure(
    history: Sequence[Mapping[str, Any]], *, title: str = "Training loss"
) -> go.Figure:
    """Training and validation loss per epoch.

    ``history`` holds one dict per epoch with ``epoch``, ``train_loss`` and ``val_loss`` (None or NaN
    when there is no validation set). An optional ``stage`` ('key' or 'param', default 'key') draws
    one pair of curves per stage; several rows with the same stage and epoch (the per-key parameter
    models) are averaged, so the curve reads as "the parameter models, on average".

    >>> fig = loss_curve_figure([{"epoch": 1, "train_loss": 2.0, "val_loss": None}])
    >>> [t.name for t in fig.data], fig.data[1].y
    (['key train', 'key validation'], (None,))
    """
    fig = go.Figure()
    styled(fig, title=title, height=360)
    if not history:
        return _empty(fig, "no epoch yet: press Train")
    frame = pd.DataFrame(list(history))
    if "stage" not in frame:
        frame["stage"] = "key"
    frame["stage"] = frame["stage"].fillna("key")
    for col in ("train_loss", "val_loss"):
        if col not in frame:
            frame[col] = np.nan
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    dashes = {"key": "solid", "param": "dot"}
    for stage, part in frame.groupby("stage", sort=False):
        per_epoch = part.groupby("epoch", sort=True)[["train_loss", "val_loss"]].mean()
        epochs = per_epoch.index.tolist()
        for col, label, colour in (
            ("train_loss", "train", PALETTE["normal"]),
            ("val_loss", "validation", PALETTE["validation"]),
        ):
            values = [None if pd.isna(v) else float(v) for v in per_epoch[col]]
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=values,
                    mode="lines+markers",
                    name=f"{stage} {label}",
                    line={"color": colour, "width": 3, "dash": dashes.get(str(stage), "dash")},
                    marker={"size": 7},
                    hovertemplate=f"{stage} {label}<br>epoch %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
                )
            )
    last = int(frame["epoch"].max()) if len(frame) else 1
    fig.update_xaxes(title_text="epoch", visible=True, tick0=1, dtick=max(1, math.ceil(last / 10)))
    fig.update_yaxes(title_text="loss", rangemode="tozero", visible=True)
    return fig


# -------------------------------------------------------------------------------------- MSE plot


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
        return _empty(fig, "no parameter vectors for this key")
    data = _per_instance(series) if x == "instance" else series.reset_index(drop=True)
    xs = np.arange(1, len(data) + 1)
    lines = data["line"].astype(int).to_numpy()
    mse = pd.to_numeric(data["mse"], errors="coerce").to_numpy(dtype=float)
    anomalous = data["anomalous"].fillna(False).astype(bool).to_numpy()
    sessions = data["session"].astype("object").where(data["session"].notna(), "–")
    hover = [
        f"line {ln} · session {html.escape(str(s))}<br>{_short(r)}"
        for ln, s, r in zip(lines, sessions, data["raw"], strict=True)
    ]
    xlabel = "entry (in order)" if x == "entry" else "instance (session, worst entry)"
    fig.add_trace(
        go.Scatter(
            x=xs.tolist(),
            y=mse.tolist(),
            mode="lines+markers",
            name="MSE",
            customdata=lines.tolist(),
            hovertext=hover,
            hovertemplate="%{hovertext}<br>MSE %{y:.4g}<extra></extra>",
            line={"color": PALETTE["normal"], "width": 1.5},
            marker={"size": 6, "color": PALETTE["normal"]},
        )
    )
    for i, level in enumerate(sorted(levels)):
        col = threshold_column(level)
        if col not in data:
            continue
        fig.add_trace(
            go.Scatter(
                x=xs.tolist(),
                y=pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=float).tolist(),
                mode="lines",
                name=level_label(level),
                meta=float(level),
                line={"color": level_colour(i), "width": 2.5, "dash": "dash", "shape": "hv"},
                hovertemplate=f"{level_label(level)} threshold %{{y:.4g}}<extra></extra>",
                visible=None if _contains(visible_levels, level) else "legendonly",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=xs[anomalous].tolist(),
            y=mse[anomalous].tolist(),
            mode="markers",
            name="anomalies",
            customdata=lines[anomalous].tolist(),
            hovertext=[h for h, a in zip(hover, anomalous, strict=True) if a],
            hovertemplate="<b>anomaly</b> %{hovertext}<br>MSE %{y:.4g}<extra></extra>",
            marker={
                "symbol": "x",
                "size": 13,
                "color": PALETTE["anomaly"],
                "line": {"width": 1, "color": PALETTE["anomaly"]},
            },
        )
    )
    chosen = lines == selected_line if selected_line is not None else np.zeros(len(xs), bool)
    fig.add_trace(
        go.Scatter(
            x=xs[chosen].tolist(),
            y=mse[chosen].tolist(),
            mode="markers",
            name="selected",
            customdata=lines[chosen].tolist(),
            hoverinfo="skip",
            showlegend=bool(chosen.any()),
            marker={
                "symbol": "circle-open",
                "size": 22,
                "color": PALETTE["highlight"],
                "line": {"width": 4, "color": PALETTE["highlight"]},
            },
        )
    )
    fig.update_xaxes(title_text=xlabel, visible=True)  # explicit: the browser merges layouts
    fig.update_yaxes(title_text="MSE (prediction vs observation)", rangemode="tozero", visible=True)
    fig.update_layout(hovermode="closest", clickmode="event")
    return fig


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
        return _empty(fig, "no observed/predicted values for this key")
    fig = make_subplots(
        rows=len(dims), cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=dims
    )
    styled(
        fig, title=title or "Observed vs predicted parameter values", height=180 + 170 * len(dims)
    )
    data = series.reset_index(drop=True)
    xs = np.arange(1, len(data) + 1)
    lines = data["line"].astype(int).to_numpy() if "line" in data else xs
    raw = data["raw"] if "raw" in data else pd.Series([""] * len(data))
    hover = [f"line {ln}<br>{_short(r)}" for ln, r in zip(lines, raw, strict=True)]
    anomalous = (
        data["anomalous"].fillna(False).astype(bool).to_numpy()
        if "anomalous" in data
        else np.zeros(len(data), bool)
    )
    for row, dim in enumerate(dims, start=1):
        obs = pd.to_numeric(data[f"observed_{dim}"], errors="coerce").to_numpy(dtype=float)
        pred = pd.to_numeric(data[f"predicted_{dim}"], errors="coerce").to_numpy(dtype=float)
        first = row == 1
        colours = np.where(anomalous, PALETTE["anomaly"], PALETTE["normal"])
        sizes = np.where(anomalous, 11, 5)
        if selected_line is not None:
            sizes = np.where(lines == selected_line, 18, sizes)
            colours = np.where(lines == selected_line, PALETTE["highlight"], colours)
        fig.add_trace(
            go.Scatter(
                x=xs.tolist(),
                y=obs.tolist(),
                mode="lines+markers",
                name=f"{dim} observed",
                legendgroup="observed",
                showlegend=first,
                customdata=[int(v) for v in lines],
                hovertext=hover,
                hovertemplate="%{hovertext}<br>observed %{y:.4g}<extra></extra>",
                line={"color": PALETTE["normal"], "width": 1.5},
                marker={"color": colours.tolist(), "size": sizes.tolist()},
            ),
            row=row,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=xs.tolist(),
                y=pred.tolist(),
                mode="lines",
                name=f"{dim} predicted",
                legendgroup="predicted",
                showlegend=first,
                hovertemplate="predicted %{y:.4g}<extra></extra>",
                line={"color": PALETTE["validation"], "width": 2, "dash": "dash"},
            ),
            row=row,
            col=1,
        )
    fig.update_xaxes(visible=True)
    fig.update_yaxes(visible=True)
    fig.update_xaxes(title_text="entry (in order)", row=len(dims), col=1)
    return fig


# -------------------------------------------------------------------------------- workflow graph


def simple_layered_layout(graph: nx.DiGraph) -> dict[Hashable, tuple[int, int]]:
    """A plain layered layout: layer = BFS distance from the sources, order = discovery order.

    Sources are the nodes without predecessors (or, in a graph that is one big cycle, its first
    node); nodes unreachable from them start new BFS runs in node order. Good enough for small task
    automata and for tests; the core's ``workbench.workflow.cooccurrence.layered_layout`` takes over when present.

    >>> g = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "a")])
    >>> simple_layered_layout(g)
    {'a': (0, 0), 'b': (1, 0), 'c': (1, 1), 'd': (2, 0)}
    """
    layers: dict[Hashable, int] = {}
    nodes = list(graph.nodes)
    starts = [n for n in nodes if graph.in_degree(n) == 0] or nodes[:1]
    pending = starts + nodes
    while pending:
        start = pending.pop(0)
        if start in layers:
            continue
        layers[start] = 0
        queue = [start]
        while queue:
            u = queue.pop(0)
            for v in graph.successors(u):
                if v not in layers:
                    layers[v] = layers[u] + 1
                    queue.append(v)
    counts: dict[int, int] = {}
    out: dict[Hashable, tuple[int, int]] = {}
    for node in sorted(layers, key=lambda n: (layers[n], nodes.index(n))):
        layer = layers[node]
        out[node] = (layer, counts.get(layer, 0))
        counts[layer] = counts.get(layer, 0) + 1
    return out


def _edge_label(data: Mapping[str, Any]) -> str:
    parts = []
    if data.get("count") is not None:
        parts.append(f"×{int(data['count'])}")
    if data.get("median") is not None:
        parts.append(format_seconds(data["median"]))
    return " · ".join(parts)


def _edge_hover(u: Any, v: Any, data: Mapping[str, Any]) -> str:
    prob = data.get("probability")
    return (
        f"<b>{html.escape(str(u))} → {html.escape(str(v))}</b><br>"
        f"count {data.get('count', '–')}"
        + (f" · p = {float(prob):.2f}" if prob is not None else "")
        + f"<br>elapsed: median {format_seconds(data.get('median'))}, "
        f"p95 {format_seconds(data.get('p95'))}"
    )


def _json_id(node: Any) -> Any:
    """Node id as plotly can carry it in customdata (ints and strings as they are)."""
    if isinstance(node, bool | np.bool_):
        return str(node)
    if isinstance(node, int | np.integer):
        return int(node)
    return node if isinstance(node, str) else str(node)


def workflow_figure(
    graph: nx.DiGraph,
    layout: Mapping[Hashable, tuple[int, int]],
    highlight_nodes: Iterable[Hashable] = (),
    highlight_edges: Iterable[tuple[Hashable, Hashable]] = (),
    slow_edge: tuple[Hashable, Hashable] | None = None,
    *,
    selected: Hashable | tuple[Hashable, Hashable] | None = None,
    title: str | None = None,
) -> go.Figure:
    """A task's automaton drawn left to right: one column per layer.

    Nodes carry ``key``, ``template`` and ``count``; edges ``count``, ``probability``, ``median`` and
    ``p95`` (seconds). ``layout`` maps a node to (layer, order). Edges are drawn as lines with arrow
    annotations and a label "×count · median"; ``highlight_nodes``/``highlight_edges`` mark the selected
    anomaly's path and ``slow_edge`` the transition that carried the unusual time. ``selected`` (a node
    or an (u, v) pair) gets a ring. Clickable traces: ``"nodes"`` (customdata = node id) and
    ``"edge labels"`` (customdata = [u, v]).

    >>> g = nx.DiGraph()
    >>> g.add_node(1, key=1, template="start <*>", count=5)
    >>> g.add_node(2, key=2, template="done", count=5)
    >>> g.add_edge(1, 2, count=5, probability=1.0, median=0.5, p95=0.9)
    >>> fig = workflow_figure(g, {1: (0, 0), 2: (1, 0)}, slow_edge=(1, 2))
    >>> [t.name for t in fig.data]
    ['edges', 'path', 'slow edge', 'edge labels', 'nodes']
    >>> list(fig.data[-1].customdata), fig.layout.annotations[0].text
    ([1, 2], '×5 · 0.5 s')
    """
    name = title or graph.graph.get("name") or "workflow"
    fig = go.Figure()
    styled(fig, title=f"Workflow: {name}", height=max(420, 110 * (1 + _max_order(layout))))
    if graph.number_of_nodes() == 0:
        return _empty(fig, "empty workflow")
    missing = [n for n in graph.nodes if n not in layout]
    if missing:
        raise ValueError(f"layout has no position for nodes {missing[:5]}")

    def pos(n: Hashable) -> tuple[float, float]:
        layer, order = layout[n]
        return float(layer), -float(order)

    hl_nodes = set(highlight_nodes)
    hl_edges = {tuple(e) for e in highlight_edges}
    slow = tuple(slow_edge) if slow_edge is not None else None
    groups: dict[str, tuple[list[float | None], list[float | None]]] = {
        "edges": ([], []),
        "path": ([], []),
        "slow edge": ([], []),
    }
    mid_x, mid_y, mid_data, mid_hover, mid_colour = [], [], [], [], []
    for u, v, data in graph.edges(data=True):
        (x0, y0), (x1, y1) = pos(u), pos(v)
        group = "slow edge" if (u, v) == slow else "path" if (u, v) in hl_edges else "edges"
        colour = {
            "edges": PALETTE["muted"],
            "path": PALETTE["highlight"],
            "slow edge": PALETTE["slow"],
        }[group]
        if u == v:  # a self-loop: a small arc above the node
            xs = [x0 - 0.12, x0 - 0.12, x0 + 0.12, x0 + 0.12]
            ys = [y0 + 0.1, y0 + 0.35, y0 + 0.35, y0 + 0.1]
            mx, my = x0, y0 + 0.35
        else:
            xs, ys = [x0, x1], [y0, y1]
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        gx, gy = groups[group]
        gx.extend([*xs, None])
        gy.extend([*ys, None])
        mid_x.append(mx)
        mid_y.append(my)
        mid_data.append([_json_id(u), _json_id(v)])
        mid_hover.append(_edge_hover(u, v, data))
        mid_colour.append(colour)
        label = _edge_label(data)
        fig.add_annotation(
            x=mx,
            y=my,
            text=html.escape(label) if label else "",
            showarrow=False,
            yshift=12,
            font={"size": 13, "color": colour if group != "edges" else PALETTE["ink"]},
            bgcolor="rgba(255,255,255,0.85)",
        )
        if u != v:
            fig.add_annotation(
                x=x1,
                y=y1,
                ax=x0,
                ay=y0,
                xref="x",
                yref="y",
                axref="x",
                ayref="y",
                showarrow=True,
                arrowhead=2,
                arrowsize=1.3,
                arrowwidth=2 if group == "edges" else 4,
                arrowcolor=colour,
                standoff=22,
                startstandoff=22,
                text="",
            )
    widths = {"edges": 2, "path": 5, "slow edge": 6}
    colours = {
        "edges": PALETTE["muted"],
        "path": PALETTE["highlight"],
        "slow edge": PALETTE["slow"],
    }
    for group, (gx, gy) in groups.items():
        fig.add_trace(
            go.Scatter(
                x=gx,
                y=gy,
                mode="lines",
                name=group,
                hoverinfo="skip",
                showlegend=bool(gx) and group != "edges",
                line={"color": colours[group], "width": widths[group]},
            )
        )
    fig.add_trace(
        go.Scatter(
            x=mid_x,
            y=mid_y,
            mode="markers",
            name="edge labels",
            customdata=mid_data,
            hovertext=mid_hover,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
            marker={"size": 12, "color": mid_colour, "opacity": 0.35, "symbol": "diamond"},
        )
    )
    nodes = list(graph.nodes)
    ids = [_json_id(n) for n in nodes]
    node_x = [pos(n)[0] for n in nodes]
    node_y = [pos(n)[1] for n in nodes]
    labels, hovers, fill, ring, ring_w = [], [], [], [], []
    for n in nodes:
        data = graph.nodes[n]
        key = data.get("key", n)
        labels.append(f"k{key}" if isinstance(key, int | np.integer) else html.escape(str(key)))
        hovers.append(
            f"<b>key {html.escape(str(key))}</b> · seen {data.get('count', '–')}<br>"
            f"{_short(data.get('template', ''), 120)}"
        )
        is_sel = selected is not None and not isinstance(selected, tuple) and n == selected
        fill.append(PALETTE["highlight"] if n in hl_nodes else PALETTE["normal"])
        ring.append(PALETTE["ink"] if is_sel else "#ffffff")
        ring_w.append(5 if is_sel else 2)
    fig.add_trace(
        go.Scatter(
            x=node_x,
            y=node_y,
            mode="markers+text",
            name="nodes",
            customdata=ids,
            text=labels,
            textposition="middle center",
            textfont={"color": "#ffffff", "size": 14},
            hovertext=hovers,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
            marker={"size": 40, "color": fill, "line": {"color": ring, "width": ring_w}},
        )
    )
    fig.update_xaxes(visible=False, range=[min(node_x) - 0.5, max(node_x) + 0.5])
    fig.update_yaxes(visible=False, range=[min(node_y) - 0.6, max(node_y) + 0.7])
    fig.update_layout(hovermode="closest", clickmode="event", dragmode="pan")
    return fig


def wrap_layout(
    layout: Mapping[Hashable, tuple[int, int]], max_layers: int = 9
) -> dict[Hashable, tuple[int, int]]:
    """Fold a layout with more than ``max_layers`` layers into bands stacked top to bottom.

    A long task (the 17-state VM creation) drawn on one row packs its nodes and the clickable edge
    labels so tightly that a click meant for a node lands on an edge label. Band ``b`` holds layers
    ``b * max_layers ...``; its orders start below the previous band's, with one empty row between.

    >>> wrap_layout({"a": (0, 0), "b": (1, 0), "c": (2, 0), "d": (2, 1)}, max_layers=2)
    {'a': (0, 0), 'b': (1, 0), 'c': (0, 3), 'd': (0, 4)}
    """
    if max_layers < 1:
        raise ValueError(f"max_layers must be >= 1, got {max_layers}")
    n_layers = 1 + max((layer for layer, _ in layout.values()), default=0)
    if n_layers <= max_layers:
        return dict(layout)
    band_rows = 2 + _max_order(layout)  # the band's rows and one empty row
    return {
        node: (layer % max_layers, order + (layer // max_layers) * band_rows)
        for node, (layer, order) in layout.items()
    }


def _max_order(layout: Mapping[Hashable, tuple[int, int]]) -> int:
    return max((order for _, order in layout.values()), default=0)


# ------------------------------------------------------------------------------------ timeline

KIND_COLOURS: dict[str, str] = {
    "key": "#0072B2",
    "unknown key": "#7b2cbf",
    "session end": "#5f6b7a",
    "parameter": "#D55E00",
}
TIMELINE_SESSIONS = 12  # session lanes shown; the others share one lane


def timeline_figure(
    table: pd.DataFrame, *, selected: int | None = None, sessions: int = TIMELINE_SESSIONS
) -> go.Figure:
    """Anomalies over time in swim lanes: one lane per kind (top) and per session (bottom).

    ``table`` is the review table (``id``, ``timestamp``, ``kind``, ``session``, optional
    ``verdict``). Rows without a time are placed by line number. Lanes are the traces
    ``"lane kind: <kind>"`` and ``"lane session: <name>"`` (customdata = anomaly id); the kinds are
    whatever the table holds. A horizontal brush (``dragmode='select'``) picks a time range.

    >>> t = pd.DataFrame({"id": [1, 2], "line": [1, 2], "kind": ["key", "parameter"],
    ...                   "session": ["a", None], "timestamp": pd.to_datetime(["2020-01-01",
    ...                   "2020-01-02"]), "verdict": ["anomalous", "anomalous"]})
    >>> [tr.name for tr in timeline_figure(t).data]
    ['lane kind: key', 'lane kind: parameter', 'lane session: a', 'lane session: no session']
    """
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.4, 0.6],
        subplot_titles=("by kind", "by session"),
    )  # fmt: skip
    if not len(table):
        styled(fig, title="Anomalies over time", height=300)
        return _empty(fig, "no anomalies yet: Detect")
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
    kinds = list(dict.fromkeys(str(k) for k in t["kind"]))
    ids = [int(i) for i in t["id"]]
    for kind in kinds:
        idx = [i for i in range(len(t)) if str(t["kind"].iloc[i]) == kind]
        _lane(fig, f"lane kind: {kind}", [x[i] for i in idx], [kind] * len(idx),
              [ids[i] for i in idx], KIND_COLOURS.get(kind, PALETTE["anomaly"]), selected, 1,
              [sess[i] for i in idx])  # fmt: skip
    lanes = [*top, *(["other sessions"] if "other sessions" in lane_of else []),
             *(["no session"] if "no session" in lane_of else [])]  # fmt: skip
    for lane in lanes:
        idx = [i for i in range(len(t)) if lane_of[i] == lane]
        colours = [KIND_COLOURS.get(str(t["kind"].iloc[i]), PALETTE["anomaly"]) for i in idx]
        _lane(fig, f"lane session: {lane}", [x[i] for i in idx], [_short(lane, 28)] * len(idx),
              [ids[i] for i in idx], colours, selected, 2,
              [f"{t['kind'].iloc[i]}" for i in idx])  # fmt: skip
    n_lanes = len(kinds) + len(lanes)
    styled(fig, title="Anomalies over time (drag across to filter the table)",
           height=min(760, 200 + 28 * n_lanes))  # fmt: skip
    fig.update_xaxes(visible=True, title_text="time" if use_time else "line", row=2, col=1)
    fig.update_yaxes(visible=True, type="category", automargin=True)
    fig.update_layout(showlegend=False, dragmode="select", selectdirection="h",
                      hovermode="closest", clickmode="event+select",
                      margin={"l": 140, "r": 24, "t": 80, "b": 48})  # fmt: skip
    return fig


def _lane(
    fig: go.Figure, name: str, xs: list, ys: list, ids: list[int], colour: Any,
    selected: int | None, row: int, info: list[str],
) -> None:  # fmt: skip
    sizes = [16 if i == selected else 10 for i in ids]
    fig.add_trace(
        go.Scatter(
            x=xs, y=ys, mode="markers", name=name, customdata=ids,
            hovertext=[f"anomaly {i} · {html.escape(str(s))}" for i, s in zip(ids, info, strict=True)],
            hovertemplate="%{hovertext}<br>%{x}<extra></extra>",
            marker={"color": colour, "size": sizes, "line": {"width": 1, "color": "#ffffff"}},
        ),
        row=row, col=1,
    )  # fmt: skip
