"""Workflow graph: the task automata the core constructed, drawn as interactive layered graphs.

Choose the construction method (1: from the key model's predictions, 2: co-occurrence clustering)
and the task; click a node (its template, count, in and out transitions) or an edge's midpoint
marker (count, probability, median and p95 elapsed time). Zoom and pan are plotly's. When an anomaly
is selected elsewhere, its path and slow transition are highlighted in the task that holds it.

The layout is graphviz ``dot``'s when it is installed (:mod:`widgets.graph_layout`): layered top to
bottom, splines routed around the nodes, one label per edge placed beside it, the template's short
text in each node; long tasks scroll. Without dot, the core's layered layout is drawn.

Why plotly and not a dedicated graph widget: the automata are small (tens of nodes), a layered
left-to-right drawing is what the paper shows, plotly is already the figure library of every other
view (one style, one kind of click event, figures testable as plain data), and it adds no front-end
extension to install.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import ipywidgets as W
import networkx as nx
import plotly.graph_objects as go

from widgets.base import PlotSlot, TaskRunner, View
from widgets.figures import format_seconds, workflow_figure, wrap_layout
from widgets.graph_layout import dot_binary, dot_figure, dot_layout
from workbench.workflow.layout import layered_layout

__all__ = ["WorkflowView", "default_layout"]

Layout = Callable[[nx.DiGraph], Mapping[Hashable, tuple[int, int]]]


def default_layout(graph: nx.DiGraph) -> Mapping[Hashable, tuple[int, int]]:
    """The core's :func:`workbench.workflow.layout.layered_layout`, folded into bands when the
    task is long (:func:`widgets.figures.wrap_layout`)."""
    return wrap_layout(layered_layout(graph))


class WorkflowView(View):
    """Method and task selectors, the graph, a details panel.

    Public state: :attr:`method`, :attr:`graphs`, :attr:`graph` (the task shown), :attr:`selected`
    (a node or an (u, v) edge), :attr:`path_nodes`, :attr:`slow_edge`.
    """

    refresh_on = ("fit",)

    def __init__(
        self,
        wb: Any = None,
        *,
        runner: TaskRunner | None = None,
        layout: Layout = default_layout,
    ) -> None:
        super().__init__(wb, runner=runner)
        self.layout_fn = layout
        self._dot_cache: dict[int, tuple[nx.DiGraph, Any]] = {}
        self.method = 2
        self.graphs: list[nx.DiGraph] = []
        self.graph: nx.DiGraph | None = None
        self.selected: Any = None
        self.path_nodes: list[Hashable] = []
        self.slow_edge: tuple[Hashable, Hashable] | None = None
        self.method_toggle = W.ToggleButtons(
            options=[("1: from the key model", 1), ("2: co-occurrence", 2)],
            value=2,
            description="Method",
        )
        self.task_select = W.Dropdown(options=[], description="Task")
        self.plot_slot = PlotSlot(workflow_figure(nx.DiGraph(), {}), on_new=self._attach)
        self.detail = W.HTML()
        self.children = [
            W.HBox([self.method_toggle, self.task_select]),
            self.status,
            self.plot_slot.box,
            self.detail,
        ]
        self.method_toggle.observe(lambda ch: self.load(ch["new"]), names="value")
        self.task_select.observe(self._on_task, names="value")
        self.bind(wb)

    @property
    def plot(self) -> go.FigureWidget:
        """The graph's plot widget."""
        return self.plot_slot.widget

    def _attach(self, fw: go.FigureWidget) -> None:
        for trace in fw.data:
            if trace.name == "nodes":
                trace.on_click(self._on_node_click)
            elif trace.name == "edge labels":
                trace.on_click(self._on_edge_click)

    def _resolve(self, node_id: Any) -> Hashable:
        if self.graph is not None and node_id in self.graph:
            return node_id
        for n in self.graph.nodes if self.graph is not None else ():
            if str(n) == str(node_id):
                return n
        raise KeyError(node_id)

    def _on_node_click(self, trace: Any, points: Any, _selector: Any = None) -> None:
        if points.point_inds:
            self.select_node(self._resolve(trace.customdata[points.point_inds[0]]))

    def _on_edge_click(self, trace: Any, points: Any, _selector: Any = None) -> None:
        if points.point_inds:
            u, v = trace.customdata[points.point_inds[0]]
            self.select_edge(self._resolve(u), self._resolve(v))

    # -------------------------------------------------------------------------------- state

    def bind(self, wb: Any) -> None:
        """Show ``wb``; nothing of the previous log's graphs or selection stays."""
        self.graphs, self.graph = [], None
        self.selected, self.path_nodes, self.slow_edge = None, [], None
        self.detail.value = ""
        self.status.value = ""
        with self.task_select.hold_trait_notifications():
            self.task_select.options = []
        self.plot_slot.show(workflow_figure(nx.DiGraph(), {}))
        super().bind(wb)

    def refresh(self) -> None:
        """Reload the workflows (inline: a workbench event arrives inside the task that sent it)."""
        self.load(self.method, background=False)

    def load(self, method: int | None = None, *, background: bool = True) -> bool:
        """Fetch the workflows built by ``method`` (in the background: method 1 runs the model)."""
        if self.wb is None:
            return False
        method = self.method if method is None else method
        wb = self.wb

        def done(graphs: list[nx.DiGraph]) -> None:
            self.method = method
            self.graphs = list(graphs)
            names = [self._name(g, i) for i, g in enumerate(self.graphs)]
            current = self.task_select.value
            self.task_select.options = [(n, i) for i, n in enumerate(names)]
            how = next(
                (g.graph["mining_reason"] for g in self.graphs if g.graph.get("mining_reason")), ""
            )
            self.say(f"{len(self.graphs)} workflows (method {method})" + _sample_note(self.graphs)
                     + (f"; {how}" if how else ""))  # fmt: skip
            if self.graphs:
                self.show_task(current if current is not None and current < len(self.graphs) else 0)

        if not background:
            done(wb.workflows(method=method))
            return True
        label = f"building workflows (method {method})"
        return self.run_task(label, lambda: wb.workflows(method=method), done)

    @staticmethod
    def _name(g: nx.DiGraph, i: int) -> str:
        return str(g.graph.get("name") or f"task {i + 1}")

    def _on_task(self, change: dict) -> None:
        if change["new"] is not None and self.graphs:
            self.show_task(change["new"])

    def show_task(self, index: int) -> None:
        """Draw the ``index``-th workflow."""
        self.graph = self.graphs[index]
        if self.task_select.value != index:
            self.task_select.value = index
        if self.selected is not None and not self._has(self.selected):
            self.selected = None
            self.detail.value = ""
        self._draw()

    def _has(self, item: Any) -> bool:
        if self.graph is None:
            return False
        if isinstance(item, tuple) and len(item) == 2:
            return self.graph.has_edge(*item)
        return item in self.graph

    def _draw(self) -> None:
        if self.graph is None:
            return
        path = [n for n in self.path_nodes if n in self.graph]
        edges = [(u, v) for u, v in itertools.pairwise(path) if self.graph.has_edge(u, v)]
        slow = self.slow_edge if self.slow_edge and self.graph.has_edge(*self.slow_edge) else None
        if self.layout_fn is default_layout and dot_binary() is not None:
            try:
                layout = self._dot_cache.get(id(self.graph))
                if layout is None or layout[0] is not self.graph:
                    layout = (self.graph, dot_layout(self.graph))
                    self._dot_cache[id(self.graph)] = layout
                fig = dot_figure(self.graph, layout[1], highlight_nodes=path,
                                 highlight_edges=edges, slow_edge=slow, selected=self.selected)  # fmt: skip
                self.plot_slot.show(fig)
                return
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                self.say(f"graphviz layout failed ({exc}); simple layout shown", "error")
        fig = workflow_figure(
            self.graph,
            self.layout_fn(self.graph),
            highlight_nodes=path,
            highlight_edges=edges,
            slow_edge=slow,
            selected=self.selected,
        )
        self.plot_slot.show(fig)

    def select_node(self, node: Hashable) -> None:
        """Show a node's template, count and transitions."""
        g = self.graph
        assert g is not None and node in g, f"no node {node!r} in the shown workflow"
        self.selected = node
        data = g.nodes[node]

        def edges_html(pairs: list[tuple[Any, Any, dict]], arrow: str) -> str:
            return "".join(
                f"<tr><td>{arrow} {html.escape(str(other))}</td><td>×{d.get('count', '–')}</td>"
                f"<td>median {format_seconds(d.get('median'))}</td>"
                f"<td>p95 {format_seconds(d.get('p95'))}</td></tr>"
                for other, _, d in pairs
            )

        incoming = [(u, v, d) for u, v, d in g.in_edges(node, data=True)]
        outgoing = [(v, u, d) for u, v, d in g.out_edges(node, data=True)]
        self.detail.value = (
            f'<div class="dl-card"><b>Node {html.escape(str(node))}</b> · key '
            f"{html.escape(str(data.get('key', node)))} · seen {data.get('count', '–')}"
            f'<br><span class="dl-raw">{html.escape(str(data.get("template", "")))}</span>'
            f'<table class="dl-table">{edges_html(incoming, "from")}'
            f"{edges_html(outgoing, 'to')}</table></div>"
        )
        self._draw()

    def select_edge(self, u: Hashable, v: Hashable) -> None:
        """Show a transition's count, probability and elapsed-time statistics."""
        g = self.graph
        assert g is not None and g.has_edge(u, v), f"no edge {u!r} -> {v!r} in the shown workflow"
        self.selected = (u, v)
        d = g.edges[u, v]
        prob = d.get("probability")
        self.detail.value = (
            f'<div class="dl-card"><b>Transition {html.escape(str(u))} → {html.escape(str(v))}</b>'
            f" · ×{d.get('count', '–')}"
            + (f" · p = {float(prob):.2f}" if prob is not None else "")
            + f"<br>elapsed time: median {format_seconds(d.get('median'))}, "
            f"p95 {format_seconds(d.get('p95'))}"
            f'<br><span class="dl-raw">{html.escape(str(g.nodes[u].get("template", "")))}'
            f" → {html.escape(str(g.nodes[v].get('template', '')))}</span></div>"
        )
        self._draw()

    def highlight(self, path_nodes: Any = (), slow_edge: Any = None) -> None:
        """Highlight an anomaly's path and slow transition; shows the task that holds most of it."""
        self.path_nodes = list(path_nodes or [])
        self.slow_edge = tuple(slow_edge) if slow_edge is not None else None
        if self.graphs and self.path_nodes:
            best = max(
                range(len(self.graphs)),
                key=lambda i: sum(n in self.graphs[i] for n in self.path_nodes),
            )
            if sum(n in self.graphs[best] for n in self.path_nodes):
                self.show_task(best)
                return
        self._draw()


def _sample_note(graphs: list[nx.DiGraph]) -> str:
    """``"; mined on a seeded sample of U of N sessions"`` when the workflows were mined on a sample
    (a long log: counts and runs on the edges then describe the sample), else ``""``."""
    for g in graphs:
        used, total = g.graph.get("sessions_used"), g.graph.get("sessions")
        if used is not None and total is not None and used < total:
            return f"; mined on a seeded sample of {used:,} of {total:,} sessions (counts are the sample's)"
    return ""
