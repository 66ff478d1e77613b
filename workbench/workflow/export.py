"""Exports of a workflow automaton: node-link JSON (and back) and Graphviz DOT text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np

from workbench.workflow.automaton import short_label
from workbench.workflow.layout import node_sort_key

__all__ = ["from_node_link", "to_dot", "to_node_link"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_node_link(g: nx.DiGraph) -> dict[str, Any]:
    """Node-link data (``nodes``, ``edges``) ready for ``json.dumps``; NaN becomes null.

    >>> g = nx.DiGraph([(1, 2)]); g.edges[1, 2]["median"] = float("nan")
    >>> d = to_node_link(g); d["edges"][0]["median"] is None, from_node_link(d).has_edge(1, 2)
    (True, True)
    """
    return _jsonable(nx.node_link_data(g, edges="edges"))


def from_node_link(data: Mapping[str, Any]) -> nx.DiGraph:
    """Inverse of :func:`to_node_link`."""
    return nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: nx.DiGraph, name: str | None = None) -> str:
    """Graphviz DOT text: nodes labelled with key and short template, edges with probability and
    median elapsed time.

    >>> g = nx.DiGraph(); g.add_node(1, label="Claim"); g.add_node(2, label='say "hi"')
    >>> g.add_edge(1, 2, probability=1.0, median=0.5, count=3)
    >>> print(to_dot(g, "t"))
    digraph "t" {
      rankdir=LR;
      node [shape=box, style=rounded, fontname="Helvetica"];
      "1" [label="1: Claim"];
      "2" [label="2: say \\"hi\\""];
      "1" -> "2" [label="p=1.00 n=3 0.5 s"];
    }
    """
    title = name or str(g.graph.get("name", "workflow"))
    lines = [f"digraph {_dot_quote(title)} {{", "  rankdir=LR;"]
    lines.append('  node [shape=box, style=rounded, fontname="Helvetica"];')
    for n, attrs in sorted(g.nodes(data=True), key=lambda x: node_sort_key(x[0])):
        label = attrs.get("label") or short_label(str(attrs.get("template", "")))
        lines.append(f"  {_dot_quote(str(n))} [label={_dot_quote(f'{n}: {label}')}];")
    for a, b, attrs in sorted(
        g.edges(data=True), key=lambda x: (node_sort_key(x[0]), node_sort_key(x[1]))
    ):
        parts = []
        if attrs.get("probability") is not None:
            parts.append(f"p={attrs['probability']:.2f}")
        if attrs.get("count") is not None:
            parts.append(f"n={attrs['count']}")
        med = attrs.get("median")
        if med is not None and math.isfinite(med):
            parts.append(f"{med:.3g} s")
        label = f" [label={_dot_quote(' '.join(parts))}]" if parts else ""
        lines.append(f"  {_dot_quote(str(a))} -> {_dot_quote(str(b))}{label};")
    lines.append("}")
    return "\n".join(lines)
