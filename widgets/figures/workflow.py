"""The workflow graph on a layered layout (the drawing used where graphviz ``dot`` is not; see
:mod:`widgets.graph_layout` for dot's), and the folding of long tasks into bands."""

from __future__ import annotations

import html
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import networkx as nx
import numpy as np
import plotly.graph_objects as go

from widgets.figures.labels import edge_text, format_seconds, hover_text, json_id, with_message
from widgets.theme import PALETTE, styled

__all__ = ["workflow_figure", "wrap_layout"]


def _edge_hover(u: Any, v: Any, data: Mapping[str, Any]) -> str:
    prob = data.get("probability")
    return (
        f"<b>{html.escape(str(u))} → {html.escape(str(v))}</b><br>"
        f"count {data.get('count', '–')}"
        + (f" · p = {float(prob):.2f}" if prob is not None else "")
        + f"<br>elapsed: median {format_seconds(data.get('median'))}, "
        f"p95 {format_seconds(data.get('p95'))}"
    )


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
    annotations and a label "COUNTx, median" (:func:`~widgets.figures.labels.edge_text`, the same as
    the dot layout's); ``highlight_nodes``/``highlight_edges`` mark the selected
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
    ([1, 2], '5x, 0.5 s')
    """
    name = title or graph.graph.get("name") or "workflow"
    fig = go.Figure()
    styled(fig, title=f"Workflow: {name}", height=max(420, 110 * (1 + _max_order(layout))))
    if graph.number_of_nodes() == 0:
        return with_message(fig, "empty workflow")
    missing = [n for n in graph.nodes if n not in layout]
    if missing:
        raise ValueError(f"layout has no position for nodes {missing[:5]}")
    pos = {n: (float(layer), -float(order)) for n, (layer, order) in layout.items()}
    slow = tuple(slow_edge) if slow_edge is not None else None
    for trace in _edge_traces(fig, graph, pos, {tuple(e) for e in highlight_edges}, slow):
        fig.add_trace(trace)
    fig.add_trace(_node_trace(graph, pos, set(highlight_nodes), selected))
    node_x, node_y = [pos[n][0] for n in graph.nodes], [pos[n][1] for n in graph.nodes]
    fig.update_xaxes(visible=False, range=[min(node_x) - 0.5, max(node_x) + 0.5])
    fig.update_yaxes(visible=False, range=[min(node_y) - 0.6, max(node_y) + 0.7])
    fig.update_layout(hovermode="closest", clickmode="event", dragmode="pan")
    return fig


_GROUP_COLOURS = {"edges": "muted", "path": "highlight", "slow edge": "slow"}  # PALETTE keys
_GROUP_WIDTHS = {"edges": 2, "path": 5, "slow edge": 6}
Point = tuple[float, float]


def _edge_line(p0: Point, p1: Point, loop: bool) -> tuple[list[float], list[float], Point]:
    """The line of an edge and its midpoint; a self-loop is a small arc above the node."""
    (x0, y0), (x1, y1) = p0, p1
    if loop:
        xs = [x0 - 0.12, x0 - 0.12, x0 + 0.12, x0 + 0.12]
        return xs, [y0 + 0.1, y0 + 0.35, y0 + 0.35, y0 + 0.1], (x0, y0 + 0.35)
    return [x0, x1], [y0, y1], ((x0 + x1) / 2, (y0 + y1) / 2)


def _annotate_edge(
    fig: go.Figure, p0: Point, p1: Point, mid: Point, label: str, group: str, loop: bool
) -> None:
    """The edge's label above its midpoint, and its arrowhead (none on a self-loop)."""
    colour = PALETTE[_GROUP_COLOURS[group]]
    fig.add_annotation(x=mid[0], y=mid[1], text=html.escape(label) if label else "",
                       showarrow=False, yshift=12, bgcolor="rgba(255,255,255,0.85)",
                       font={"size": 13, "color": colour if group != "edges" else PALETTE["ink"]})  # fmt: skip
    if not loop:
        fig.add_annotation(x=p1[0], y=p1[1], ax=p0[0], ay=p0[1], xref="x", yref="y", axref="x",
                           ayref="y", showarrow=True, arrowhead=2, arrowsize=1.3,
                           arrowwidth=2 if group == "edges" else 4, arrowcolor=colour,
                           standoff=22, startstandoff=22, text="")  # fmt: skip


def _edge_traces(
    fig: go.Figure,
    graph: nx.DiGraph,
    pos: Mapping[Hashable, Point],
    hl_edges: set[tuple[Hashable, Hashable]],
    slow: tuple[Hashable, Hashable] | None,
) -> list[go.Scatter]:
    """One line trace per group ('edges', 'path', 'slow edge') and the clickable midpoints
    ('edge labels'); each edge's label and arrowhead are annotations of ``fig``."""
    groups: dict[str, tuple[list[float | None], list[float | None]]] = {
        g: ([], []) for g in _GROUP_COLOURS
    }
    mid_x, mid_y, mid_data, mid_hover, mid_colour = [], [], [], [], []
    for u, v, data in graph.edges(data=True):
        group = "slow edge" if (u, v) == slow else "path" if (u, v) in hl_edges else "edges"
        xs, ys, mid = _edge_line(pos[u], pos[v], u == v)
        groups[group][0].extend([*xs, None])
        groups[group][1].extend([*ys, None])
        mid_x.append(mid[0])
        mid_y.append(mid[1])
        mid_data.append([json_id(u), json_id(v)])
        mid_hover.append(_edge_hover(u, v, data))
        mid_colour.append(PALETTE[_GROUP_COLOURS[group]])
        _annotate_edge(fig, pos[u], pos[v], mid, edge_text(data), group, u == v)
    lines = [
        go.Scatter(x=gx, y=gy, mode="lines", name=group, hoverinfo="skip",
                   showlegend=bool(gx) and group != "edges",
                   line={"color": PALETTE[_GROUP_COLOURS[group]], "width": _GROUP_WIDTHS[group]})
        for group, (gx, gy) in groups.items()
    ]  # fmt: skip
    mids = go.Scatter(x=mid_x, y=mid_y, mode="markers", name="edge labels", customdata=mid_data,
                      hovertext=mid_hover, hovertemplate="%{hovertext}<extra></extra>",
                      showlegend=False,
                      marker={"size": 12, "color": mid_colour, "opacity": 0.35, "symbol": "diamond"})  # fmt: skip
    return [*lines, mids]


def _node_trace(
    graph: nx.DiGraph, pos: Mapping[Hashable, Point], hl_nodes: set[Hashable], selected: Any
) -> go.Scatter:
    """The nodes ('nodes', customdata = node id): key inside, template on hover, the anomaly's
    path filled, the selected node ringed."""
    nodes = list(graph.nodes)
    labels, hovers, fill, ring, ring_w = [], [], [], [], []
    for n in nodes:
        data = graph.nodes[n]
        key = data.get("key", n)
        labels.append(f"k{key}" if isinstance(key, int | np.integer) else html.escape(str(key)))
        hovers.append(
            f"<b>key {html.escape(str(key))}</b> · seen {data.get('count', '–')}<br>"
            f"{hover_text(data.get('template', ''), 120)}"
        )
        is_sel = selected is not None and not isinstance(selected, tuple) and n == selected
        fill.append(PALETTE["highlight"] if n in hl_nodes else PALETTE["normal"])
        ring.append(PALETTE["ink"] if is_sel else "#ffffff")
        ring_w.append(5 if is_sel else 2)
    return go.Scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
        name="nodes", customdata=[json_id(n) for n in nodes], text=labels,
        textposition="middle center", textfont={"color": "#ffffff", "size": 14},
        hovertext=hovers, hovertemplate="%{hovertext}<extra></extra>", showlegend=False,
        marker={"size": 40, "color": fill, "line": {"color": ring, "width": ring_w}},
    )  # fmt: skip


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
