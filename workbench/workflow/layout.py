"""The layered layout of a workflow automaton: layers left to right, an order inside each layer.

Used to draw a workflow (the widgets, the HTML report, the benches) and to list an automaton's
keys in workflow order (:func:`workbench.workflow.automaton.build_fsa`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import networkx as nx
import numpy as np

__all__ = ["layered_layout", "node_sort_key"]


def layered_layout(g: nx.DiGraph) -> dict[Any, tuple[int, int]]:
    """Node -> ``(layer, order)`` for drawing a workflow left to right; cycles are handled.

    Back edges are found by a depth-first search from the start states (nodes with a ``starts``
    attribute > 0, else nodes without predecessors, else the smallest node) and ignored; layers
    are longest paths in what remains; the order inside a layer follows the mean order of the
    predecessors (one barycentre sweep), ties by node.

    >>> g = nx.DiGraph([(1, 2), (2, 3), (3, 2), (2, 4), (1, 4)])
    >>> layered_layout(g)
    {1: (0, 0), 2: (1, 0), 3: (2, 0), 4: (2, 1)}
    """
    if g.number_of_nodes() == 0:
        return {}
    nodes = sorted(g.nodes, key=node_sort_key)
    starts = [n for n in nodes if g.nodes[n].get("starts", 0) > 0]
    if not starts:
        starts = [n for n in nodes if g.in_degree(n) == 0] or nodes[:1]
    back = _back_edges(g, starts + nodes)
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from(e for e in g.edges if e not in back and e[0] != e[1])
    pos = _order_layers(dag, nodes, _longest_path_layers(dag))
    return {n: pos[n] for n in sorted(pos, key=lambda n: (pos[n], node_sort_key(n)))}


def _back_edges(g: nx.DiGraph, roots: list[Any]) -> set[tuple[Any, Any]]:
    """The edges that close a cycle in a depth-first search from ``roots`` in turn."""
    back: set[tuple[Any, Any]] = set()
    state: dict[Any, int] = {}  # 1 = on the stack, 2 = done
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(sorted(g.successors(root), key=node_sort_key)))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(g.successors(nxt), key=node_sort_key))))
    return back


def _longest_path_layers(dag: nx.DiGraph) -> dict[Any, int]:
    """Node -> the length of the longest path into it."""
    layer: dict[Any, int] = {}
    for n in nx.lexicographical_topological_sort(dag, key=node_sort_key):
        layer[n] = max((layer[p] + 1 for p in dag.predecessors(n)), default=0)
    return layer


def _order_layers(
    dag: nx.DiGraph, nodes: list[Any], layer: dict[Any, int]
) -> dict[Any, tuple[int, int]]:
    """Node -> ``(layer, order)``, the order inside a layer by the predecessors' mean order."""
    by_layer: dict[int, list[Any]] = defaultdict(list)
    for n in nodes:
        by_layer[layer[n]].append(n)
    pos: dict[Any, tuple[int, int]] = {}
    for lay in sorted(by_layer):
        members = by_layer[lay]

        def bary(n: Any) -> float:
            preds = [pos[p][1] for p in dag.predecessors(n) if p in pos]
            return sum(preds) / len(preds) if preds else 0.0

        members.sort(key=lambda n: (bary(n), node_sort_key(n)))
        for i, n in enumerate(members):
            pos[n] = (lay, i)
    return pos


def node_sort_key(n: Any) -> tuple[int, Any]:
    """Sort key for nodes of any type: integers (keys) first, in order, then the rest by text."""
    return (0, n) if isinstance(n, int | np.integer) else (1, str(n))
