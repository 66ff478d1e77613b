"""Workflow graphs laid out by graphviz ``dot``: layered, one label per edge placed beside it by
dot (as a rank member, so labels never cross nodes or each other), splines routed around nodes.

``dot`` is the Debian ``graphviz`` binary when it is on the PATH, else the ``graphviz-pure`` build
that installs with the package (``pip``, declared in ``pyproject.toml``). Without either the view
falls back to :func:`widgets.figures.workflow_figure` on the core's layered layout.

The figure is drawn at one pixel per dot point: every node is a rectangle shape, every edge a path
shape (spline and arrowhead), texts are two scatter traces (``"nodes"``, customdata = node id;
``"edge labels"``, customdata = [u, v]), so a long task costs no per-label annotation. Texts are
measured by dot at :data:`MEASURE_PT` and drawn smaller (:data:`FONT_PX`), which leaves room for a
browser font wider than dot's metrics. :func:`label_boxes` gives the boxes a reader sees.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import plotly.graph_objects as go

from widgets.figures.labels import edge_text, format_seconds, json_id
from widgets.theme import PALETTE, styled

__all__ = ["DotLayout", "dot_binary", "dot_figure", "dot_layout", "label_boxes", "node_text"]

MEASURE_PT = 16  # font size dot measures texts with
FONT_PX = 12  # font size the browser draws them with
CHAR_EM = 0.6  # a generous average character width of a sans-serif font, in em
TEMPLATE_CHARS = 30
MARGIN = {"l": 20, "r": 20, "t": 70, "b": 20}


def dot_binary() -> str | None:
    """The ``dot`` program: graphviz on the PATH, else the packaged ``graphviz-pure``; or None."""
    found = shutil.which("dot")
    if found:
        return found
    here = Path(sys.executable).parent / "graphviz-pure"
    if here.exists():
        return str(here)
    return shutil.which("graphviz-pure")


def node_text(graph: nx.DiGraph, n: Hashable) -> list[str]:
    """The two lines of a node: its key, and the template's short text.

    >>> g = nx.DiGraph(); g.add_node(4, key=4, template="[instance: <*>] Attempting claim: memory")
    >>> node_text(g, 4)
    ['k4', 'Attempting claim: memory']
    """
    data = graph.nodes[n]
    key = data.get("key", n)
    text = str(data.get("label") or data.get("template") or "")
    if text.startswith("[") and "] " in text:  # "[instance: <UUID>] message": the message
        text = text.split("] ", 1)[1]
    text = " ".join(text.split())
    if len(text) > TEMPLATE_CHARS:
        text = text[: TEMPLATE_CHARS - 1].rstrip() + "…"
    return [f"k{key}", text] if text else [f"k{key}"]


@dataclass
class DotLayout:
    """Positions in points, y up: node centre and size, edge spline, arrow tip and label centre."""

    width: float
    height: float
    nodes: dict[Hashable, tuple[float, float, float, float]]  # x, y, w, h
    edges: dict[tuple[Hashable, Hashable], dict[str, Any]]  # points, tip, label (x, y), text


def _ascii(text: str) -> str:
    """dot's metrics only know ASCII: measure a stand-in of the same length."""
    return "".join(c if ord(c) < 128 else "m" for c in text)


def dot_layout(graph: nx.DiGraph, binary: str | None = None) -> DotLayout:
    """Run ``dot`` on ``graph`` (top to bottom, one label per edge) and read its positions."""
    binary = binary or dot_binary()
    if binary is None:
        raise RuntimeError("graphviz dot is not installed")
    index = {n: f"n{i}" for i, n in enumerate(graph.nodes)}
    back = {v: k for k, v in index.items()}

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        "digraph G {",
        "rankdir=TB; nodesep=0.35; ranksep=0.45; pad=0.1;",
        f'node [shape=box style=rounded fontname="Helvetica" fontsize={MEASURE_PT} margin="0.15,0.06"];',
        f'edge [fontname="Helvetica" fontsize={MEASURE_PT}];',
    ]
    for n in graph.nodes:
        label = "\\n".join(q(_ascii(t))[1:-1] for t in node_text(graph, n))
        lines.append(f'{index[n]} [label="{label}"];')
    for u, v, data in graph.edges(data=True):
        text = edge_text(data)
        lines.append(f"{index[u]} -> {index[v]} [label={q(_ascii(' ' + text + ' '))}];")
    lines.append("}")
    run = subprocess.run(
        [binary, "-Tjson0"],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if run.returncode != 0 or not run.stdout.strip():
        raise RuntimeError(f"dot failed: {run.stderr.strip()[:200]}")
    doc = json.loads(run.stdout)
    x0, y0, x1, y1 = (float(v) for v in doc["bb"].split(","))
    nodes = {}
    gvid = {}
    for obj in doc.get("objects", []):
        if obj.get("name") not in back:
            continue
        x, y = (float(v) for v in obj["pos"].split(","))
        nodes[back[obj["name"]]] = (x, y, float(obj["width"]) * 72, float(obj["height"]) * 72)
        gvid[obj["_gvid"]] = back[obj["name"]]
    edges = {}
    for e in doc.get("edges", []):
        u, v = gvid[e["tail"]], gvid[e["head"]]
        tip = None
        points = []
        for part in e["pos"].split(" "):
            if part.startswith("e,"):
                tip = tuple(float(c) for c in part[2:].split(","))
            elif part.startswith("s,"):
                continue
            else:
                points.append(tuple(float(c) for c in part.split(",")))
        lp = tuple(float(c) for c in e["lp"].split(",")) if e.get("lp") else None
        edges[(u, v)] = {"points": points, "tip": tip, "label": lp,
                         "text": edge_text(graph.edges[u, v])}  # fmt: skip
    return DotLayout(width=x1 - x0, height=y1 - y0, nodes=nodes, edges=edges)


def _path(points: list[tuple[float, ...]], tip: tuple[float, ...] | None) -> str:
    d = f"M {points[0][0]:.2f},{points[0][1]:.2f}"
    rest = points[1:]
    for i in range(0, len(rest) - 2, 3):
        (ax, ay), (bx, by), (cx, cy) = rest[i], rest[i + 1], rest[i + 2]
        d += f" C {ax:.2f},{ay:.2f} {bx:.2f},{by:.2f} {cx:.2f},{cy:.2f}"
    if tip is not None:
        d += f" L {tip[0]:.2f},{tip[1]:.2f}"
    return d


def _arrow(points: list[tuple[float, ...]], tip: tuple[float, ...] | None) -> str | None:
    if tip is None or not points:
        return None
    bx, by = points[-1]
    tx, ty = tip
    dx, dy = tx - bx, ty - by
    norm = (dx * dx + dy * dy) ** 0.5 or 1.0
    ux, uy = dx / norm, dy / norm
    size = 9.0
    px, py = -uy * size * 0.5, ux * size * 0.5
    base_x, base_y = tx - ux * size, ty - uy * size
    return (
        f"M {tx:.2f},{ty:.2f} L {base_x + px:.2f},{base_y + py:.2f} "
        f"L {base_x - px:.2f},{base_y - py:.2f} Z"
    )


def dot_figure(
    graph: nx.DiGraph,
    layout: DotLayout,
    highlight_nodes: Iterable[Hashable] = (),
    highlight_edges: Iterable[tuple[Hashable, Hashable]] = (),
    slow_edge: tuple[Hashable, Hashable] | None = None,
    *,
    selected: Any = None,
    title: str | None = None,
) -> go.Figure:
    """The task drawn from a :class:`DotLayout`, one pixel per point (scroll for long tasks)."""
    name = title or graph.graph.get("name") or "workflow"
    fig = go.Figure()
    width = layout.width + MARGIN["l"] + MARGIN["r"]
    height = layout.height + MARGIN["t"] + MARGIN["b"]
    styled(fig, title=f"Workflow: {name}", height=int(height))
    hl_nodes = set(highlight_nodes)
    hl_edges = {tuple(e) for e in highlight_edges}
    slow = tuple(slow_edge) if slow_edge is not None else None

    def edge_colour(u: Hashable, v: Hashable, normal: str) -> str:
        return (
            PALETTE["slow"]
            if (u, v) == slow
            else PALETTE["highlight"]
            if (u, v) in hl_edges
            else normal
        )

    shapes = [*_edge_shapes(layout, edge_colour), *_node_shapes(layout, hl_nodes, selected)]
    fig.update_layout(shapes=shapes)
    fig.add_trace(_edge_label_trace(graph, layout, edge_colour))
    fig.add_trace(_node_text_trace(graph, layout))
    fig.update_xaxes(visible=False, range=[0, layout.width], fixedrange=False)
    fig.update_yaxes(visible=False, range=[0, layout.height], fixedrange=False)
    fig.update_layout(width=int(max(width, 320)), autosize=False, margin=MARGIN,
                      hovermode="closest", clickmode="event", dragmode="pan")  # fmt: skip
    return fig


EdgeColour = Callable[[Hashable, Hashable, str], str]
_TEXT_FONT = "Arial, Helvetica, sans-serif"
_CLEAR = {"color": "rgba(255,255,255,0.01)", "symbol": "square", "line": {"width": 0}}


def _edge_shapes(layout: DotLayout, colour_of: EdgeColour) -> list[dict]:
    """Each edge's spline and arrowhead as path shapes below the texts."""
    shapes = []
    for (u, v), e in layout.edges.items():
        if not e["points"]:
            continue
        colour = colour_of(u, v, PALETTE["muted"])
        w = 1.5 if colour == PALETTE["muted"] else 4
        shapes.append({"type": "path", "path": _path(e["points"], e["tip"]),
                       "line": {"color": colour, "width": w}, "layer": "below"})  # fmt: skip
        head = _arrow(e["points"], e["tip"])
        if head:
            shapes.append({"type": "path", "path": head, "fillcolor": colour,
                           "line": {"color": colour, "width": 1}, "layer": "below"})  # fmt: skip
    return shapes


def _node_shapes(layout: DotLayout, hl_nodes: set[Hashable], selected: Any) -> list[dict]:
    """Each node's box: the anomaly's path filled, the selected node's outline thick."""
    shapes = []
    for n, (x, y, w, h) in layout.nodes.items():
        is_sel = selected is not None and not isinstance(selected, tuple) and n == selected
        fill = "#f6e6f0" if n in hl_nodes else "#eaf3fa"
        shapes.append({
            "type": "rect", "x0": x - w / 2, "x1": x + w / 2, "y0": y - h / 2, "y1": y + h / 2,
            "fillcolor": fill, "layer": "below",
            "line": {"color": PALETTE["ink"] if is_sel else
                     (PALETTE["highlight"] if n in hl_nodes else PALETTE["normal"]),
                     "width": 4 if is_sel else 2},
        })  # fmt: skip
    return shapes


def _edge_hover(graph: nx.DiGraph, u: Hashable, v: Hashable) -> str:
    d = graph.edges[u, v]
    prob = d.get("probability")
    return (
        f"<b>k{html.escape(str(graph.nodes[u].get('key', u)))} → "
        f"k{html.escape(str(graph.nodes[v].get('key', v)))}</b><br>count {d.get('count', '–')}"
        + (f" · p = {float(prob):.2f}" if prob is not None else "")
        + f"<br>elapsed: median {format_seconds(d.get('median'))}, "
        f"p95 {format_seconds(d.get('p95'))}"
    )


def _edge_label_trace(graph: nx.DiGraph, layout: DotLayout, colour_of: EdgeColour) -> go.Scatter:
    """The edge labels where dot placed them ('edge labels', customdata = [u, v])."""
    placed = [(u, v, e) for (u, v), e in layout.edges.items() if e["label"] is not None]
    return go.Scatter(
        x=[e["label"][0] for _, _, e in placed], y=[e["label"][1] for _, _, e in placed],
        mode="markers+text", name="edge labels", text=[html.escape(e["text"]) for _, _, e in placed],
        customdata=[[json_id(u), json_id(v)] for u, v, _ in placed],
        textposition="middle center",
        textfont={"size": FONT_PX, "family": _TEXT_FONT,
                  "color": [colour_of(u, v, PALETTE["ink"]) for u, v, _ in placed]},
        hovertext=[_edge_hover(graph, u, v) for u, v, _ in placed],
        hovertemplate="%{hovertext}<extra></extra>", showlegend=False,
        marker={"size": 14, **_CLEAR},
    )  # fmt: skip


def _node_text_trace(graph: nx.DiGraph, layout: DotLayout) -> go.Scatter:
    """The nodes' two lines of text ('nodes', customdata = node id), template on hover."""
    nodes = list(layout.nodes)
    ntext, nhover, nsize = [], [], []
    for n in nodes:
        ntext.append("<br>".join(html.escape(t) for t in node_text(graph, n)))
        data = graph.nodes[n]
        nhover.append(f"<b>key {html.escape(str(data.get('key', n)))}</b> · seen "
                      f"{data.get('count', '–')}<br>{html.escape(str(data.get('template', '')))[:160]}")  # fmt: skip
        nsize.append(max(10, min(layout.nodes[n][2], layout.nodes[n][3])))
    return go.Scatter(
        x=[layout.nodes[n][0] for n in nodes], y=[layout.nodes[n][1] for n in nodes],
        mode="markers+text", name="nodes", text=ntext, customdata=[json_id(n) for n in nodes],
        textposition="middle center",
        textfont={"size": FONT_PX, "color": PALETTE["ink"], "family": _TEXT_FONT},
        hovertext=nhover, hovertemplate="%{hovertext}<extra></extra>", showlegend=False,
        marker={"size": nsize, **_CLEAR},
    )  # fmt: skip


def label_boxes(fig: go.Figure, font_px: float | None = None) -> dict[str, list[tuple]]:
    """Boxes (x0, y0, x1, y1, text) in data units of the drawn edge labels and nodes.

    Text width is estimated generously (:data:`CHAR_EM` em per character), height as lines x 1.2 em;
    the figure is drawn at one pixel per data unit when its width holds the x range (checked here).
    """
    xr, yr = fig.layout.xaxis.range, fig.layout.yaxis.range
    m = fig.layout.margin
    px_x = (fig.layout.width - m.l - m.r) / (xr[1] - xr[0])
    px_y = (fig.layout.height - m.t - m.b) / (yr[1] - yr[0])
    boxes: dict[str, list[tuple]] = {"edge labels": [], "nodes": []}
    for tr in fig.data:
        if tr.name == "edge labels":
            size = font_px or tr.textfont.size
            for x, y, t in zip(tr.x, tr.y, tr.text, strict=True):
                text = html.unescape(t)
                w = len(text) * CHAR_EM * size / px_x
                h = 1.2 * size / px_y
                boxes["edge labels"].append((x - w / 2, y - h / 2, x + w / 2, y + h / 2, text))
    for shape in fig.layout.shapes:
        if shape.type == "rect":
            boxes["nodes"].append((shape.x0, shape.y0, shape.x1, shape.y1, "node"))
    return boxes


def overlaps(boxes: dict[str, list[tuple]]) -> tuple[int, int]:
    """(label-label overlaps, label-over-node overlaps) among :func:`label_boxes`."""

    def hit(a: tuple, b: tuple) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    labels, nodes = boxes["edge labels"], boxes["nodes"]
    ll = sum(hit(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :])
    ln = sum(hit(a, n) for a in labels for n in nodes)
    return ll, ln


def spline_points(points: list[tuple[float, ...]], steps: int = 20) -> list[tuple[float, float]]:
    """Points along dot's piecewise cubic Bézier (start point, then three points per piece)."""
    out: list[tuple[float, float]] = []
    for i in range(0, len(points) - 3, 3):
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = points[i : i + 4]
        for s in range(steps + 1):
            t = s / steps
            u = 1 - t
            out.append((
                u**3 * ax + 3 * u * u * t * bx + 3 * u * t * t * cx + t**3 * dx,
                u**3 * ay + 3 * u * u * t * by + 3 * u * t * t * cy + t**3 * dy,
            ))  # fmt: skip
    return out


def labels_on_lines(layout: DotLayout, boxes: dict[str, list[tuple]]) -> int:
    """How many edge-label boxes an edge's line passes through (a label should sit beside it)."""
    lines = [spline_points(e["points"]) for e in layout.edges.values() if e["points"]]
    return sum(
        any(x0 < px < x1 and y0 < py < y1 for line in lines for px, py in line)
        for x0, y0, x1, y1, _ in boxes["edge labels"]
    )
