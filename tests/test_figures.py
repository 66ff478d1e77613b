"""The pure figure builders: trace names, visibility, markers, hover text, click payloads."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from widgets.figures import (
    format_seconds,
    level_label,
    levels_of,
    loss_curve_figure,
    mse_figure,
    observed_predicted_figure,
    threshold_column,
    workflow_figure,
)
from widgets.theme import PALETTE
from workbench.workflow.layout import layered_layout

LEVELS = (0.98, 0.99, 0.999)


def by_name(fig: go.Figure) -> dict[str, go.Scatter]:
    return {t.name: t for t in fig.data}


@pytest.fixture
def series(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 30
    mse = rng.gamma(2.0, 0.2, n)
    mse[[7, 21]] = [5.0, 7.5]
    frame = pd.DataFrame(
        {
            "line": np.arange(100, 100 + 3 * n, 3),
            "session": [f"vm-{i // 3}" for i in range(n)],
            "timestamp": pd.date_range("2017-05-16", periods=n, freq="s"),
            "mse": mse,
            "anomalous": False,
            "raw": [f"nova-compute <entry {i}> & more" for i in range(n)],
        }
    )
    frame.loc[[7, 21], "anomalous"] = True
    for i, level in enumerate(LEVELS):
        frame[threshold_column(level)] = 1.0 + i
    return frame


@pytest.fixture
def graph() -> nx.DiGraph:
    g = nx.DiGraph(name="VM creation")
    for k, tpl in [(1, "POST /servers"), (2, "Claim successful"), (3, "image <*>"), (4, "spawned")]:
        g.add_node(k, key=k, template=tpl, count=10)
    g.add_edge(1, 2, count=10, probability=1.0, median=0.4, p95=0.9)
    g.add_edge(2, 3, count=6, probability=0.6, median=2.0, p95=3.5)
    g.add_edge(2, 4, count=4, probability=0.4, median=1.0, p95=2.0)
    g.add_edge(3, 4, count=6, probability=1.0, median=61.0, p95=80.0)
    return g


# ------------------------------------------------------------------------------ loss curve


def test_loss_curve_empty_history_says_so():
    fig = loss_curve_figure([])
    assert len(fig.data) == 0
    assert "no epoch" in fig.layout.annotations[0].text


def test_loss_curve_train_and_validation():
    history = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.5 / e} for e in (1, 2, 3)]
    traces = by_name(loss_curve_figure(history))
    assert list(traces) == ["key train", "key validation"]
    assert traces["key train"].x == (1, 2, 3)
    assert traces["key validation"].y == pytest.approx((3.5, 1.75, 3.5 / 3))


def test_loss_curve_param_stage_is_averaged_per_epoch():
    history = [
        {"stage": "key", "epoch": 1, "train_loss": 1.0, "val_loss": 1.2},
        {"stage": "param", "epoch": 1, "train_loss": 2.0, "val_loss": None},
        {"stage": "param", "epoch": 1, "train_loss": 4.0, "val_loss": None},
    ]
    traces = by_name(loss_curve_figure(history))
    assert set(traces) == {"key train", "key validation", "param train", "param validation"}
    assert traces["param train"].y == (3.0,)
    assert traces["param validation"].y == (None,)


# -------------------------------------------------------------------------------- MSE plot


def test_mse_trace_names_are_stable(series):
    fig = mse_figure(series, LEVELS, set(LEVELS), None)
    assert [t.name for t in fig.data] == [
        "MSE",
        "98 % CI",
        "99 % CI",
        "99.9 % CI",
        "anomalies",
        "selected",
    ]
    assert [t.meta for t in fig.data[1:4]] == list(LEVELS)


@pytest.mark.parametrize("visible", [set(), {0.99}, set(LEVELS)])
def test_mse_hidden_levels_are_legendonly(series, visible):
    traces = by_name(mse_figure(series, LEVELS, visible, None))
    for level in LEVELS:
        expected = None if level in visible else "legendonly"
        assert traces[level_label(level)].visible == expected


def test_mse_marks_anomalies_and_carries_line_numbers(series):
    traces = by_name(mse_figure(series, LEVELS, set(LEVELS), None))
    assert list(traces["anomalies"].customdata) == [121, 163]
    assert list(traces["anomalies"].y) == [5.0, 7.5]
    assert list(traces["MSE"].customdata) == series["line"].tolist()
    assert list(traces["MSE"].x) == list(range(1, len(series) + 1))


def test_mse_hover_shows_escaped_raw_line(series):
    hover = by_name(mse_figure(series, LEVELS, set(), None))["MSE"].hovertext[0]
    assert "&lt;entry 0&gt; &amp; more" in hover
    assert "<entry" not in hover


def test_mse_selected_line_gets_a_ring(series):
    traces = by_name(mse_figure(series, LEVELS, set(), selected_line=121))
    assert list(traces["selected"].customdata) == [121]
    assert traces["selected"].showlegend
    none = by_name(mse_figure(series, LEVELS, set(), selected_line=None))
    assert len(none["selected"].x) == 0


def test_mse_per_instance_keeps_the_worst_entry(series):
    traces = by_name(mse_figure(series, LEVELS, set(), None, x="instance"))
    assert len(traces["MSE"].x) == series["session"].nunique()
    assert max(traces["MSE"].y) == 7.5
    assert list(traces["anomalies"].customdata) == [121, 163]


def test_mse_skips_levels_without_a_column(series):
    traces = by_name(mse_figure(series.drop(columns=["threshold_0.98"]), LEVELS, set(), None))
    assert "98 % CI" not in traces and "99 % CI" in traces
    assert levels_of(series) == list(LEVELS)


def test_mse_empty_and_bad_axis(series):
    assert len(mse_figure(series.iloc[:0], LEVELS, set(), None).data) == 0
    with pytest.raises(ValueError, match="x must be"):
        mse_figure(series, LEVELS, set(), None, x="time")


def test_observed_predicted_one_panel_per_dimension(series):
    frame = series.assign(
        observed_dt=np.arange(30.0), predicted_dt=1.0, observed_p1=2.0, predicted_p1=2.5
    )
    fig = observed_predicted_figure(frame, selected_line=121)
    assert [t.name for t in fig.data] == [
        "dt observed",
        "dt predicted",
        "p1 observed",
        "p1 predicted",
    ]
    colours = fig.data[0].marker.color
    assert colours[7] == PALETTE["highlight"] and colours[21] == PALETTE["anomaly"]
    assert len(observed_predicted_figure(series).data) == 0


# -------------------------------------------------------------------------- workflow graph


def test_workflow_nodes_are_clickable_by_id(graph):
    fig = workflow_figure(graph, layered_layout(graph))
    traces = by_name(fig)
    assert list(traces["nodes"].customdata) == [1, 2, 3, 4]
    assert [list(c) for c in traces["edge labels"].customdata] == [[1, 2], [2, 3], [2, 4], [3, 4]]
    assert "Claim successful" in traces["nodes"].hovertext[1]
    assert fig.layout.title.text == "Workflow: VM creation"


def test_workflow_edge_labels_show_count_and_time(graph):
    texts = [a.text for a in workflow_figure(graph, layered_layout(graph)).layout.annotations]
    assert "6x, 1 min" in texts
    assert "10x, 0.4 s" in texts


def test_workflow_highlights_path_and_slow_edge(graph):
    layout = layered_layout(graph)
    fig = workflow_figure(
        graph, layout, highlight_nodes=[1, 2, 3], highlight_edges=[(1, 2), (2, 3)], slow_edge=(3, 4)
    )
    traces = by_name(fig)
    assert traces["nodes"].marker.color[:4] == (
        PALETTE["highlight"],
        PALETTE["highlight"],
        PALETTE["highlight"],
        PALETTE["normal"],
    )
    assert len([x for x in traces["path"].x if x is not None]) == 4
    slow = [(x, y) for x, y in zip(traces["slow edge"].x, traces["slow edge"].y, strict=True)]
    assert slow[:2] == [(layout[3][0], -layout[3][1]), (layout[4][0], -layout[4][1])]
    assert len([x for x in traces["edges"].x if x is not None]) == 2


def test_workflow_selected_node_ring_and_self_loop(graph):
    graph.add_edge(4, 4, count=2, probability=0.1, median=0.01, p95=0.02)
    fig = workflow_figure(graph, layered_layout(graph), selected=3)
    nodes = by_name(fig)["nodes"]
    assert nodes.marker.line.width[2] > nodes.marker.line.width[0]
    assert [4, 4] in [list(c) for c in by_name(fig)["edge labels"].customdata]


def test_workflow_needs_a_position_for_every_node(graph):
    with pytest.raises(ValueError, match="no position"):
        workflow_figure(graph, {1: (0, 0)})
    assert len(workflow_figure(nx.DiGraph(), {}).data) == 0


def test_workflow_string_ids_and_json(graph):
    g = nx.relabel_nodes(graph, {k: f"n{k}" for k in graph.nodes})
    fig = workflow_figure(g, layered_layout(g))
    assert list(by_name(fig)["nodes"].customdata) == ["n1", "n2", "n3", "n4"]
    json.loads(fig.to_json())  # what a FigureWidget sends to the browser


def test_format_seconds_units():
    assert format_seconds(float("nan")) == "–"
    assert format_seconds(0.05) == "50 ms"
    assert format_seconds(3600 * 5) == "5 h"


def _arrays(value, path=""):
    """Paths of numpy arrays inside a trace's properties."""
    if isinstance(value, np.ndarray):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _arrays(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _arrays(v, f"{path}[{i}]")]
    return []


def test_trace_data_are_plain_lists(series, graph):
    """Numpy arrays in a FigureWidget break the browser's property deltas (and the clicks with them)."""
    frames = series.assign(observed_dt=1.0, predicted_dt=2.0)
    figures = [
        loss_curve_figure([{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0}]),
        mse_figure(series, LEVELS, set(LEVELS), 121),
        mse_figure(series, LEVELS, set(), None, x="instance"),
        observed_predicted_figure(frames, selected_line=121),
        workflow_figure(graph, layered_layout(graph), slow_edge=(3, 4)),
    ]
    for fig in figures:
        for trace in fig.data:
            assert not _arrays(trace.to_plotly_json()), (
                trace.name,
                _arrays(trace.to_plotly_json()),
            )


# ------------------------------------------------------------------ workflow graph (graphviz dot)


def _graphs_quickstart():
    from workbench import Workbench
    from workbench.workflow.cooccurrence import build_workflows

    wb = Workbench.from_simulation(n_instances=200, test_instances=10, seed=7)
    graphs = build_workflows(wb.entries, wb.workflow_config)
    wb.close()
    return graphs


def _label_figures(graphs):
    """(graph, figure, (label-label, label-node, label-on-a-line)) per graph."""
    from widgets.graph_layout import dot_figure, dot_layout, label_boxes, labels_on_lines, overlaps

    out = []
    for g in graphs:
        layout = dot_layout(g)
        fig = dot_figure(g, layout)
        boxes = label_boxes(fig)
        out.append((g, fig, (*overlaps(boxes), labels_on_lines(layout, boxes))))
    return out


needs_dot = pytest.mark.skipif(
    __import__("widgets.graph_layout", fromlist=["dot_binary"]).dot_binary() is None,
    reason="graphviz dot is not installed",
)


@needs_dot
def test_quickstart_graphs_have_no_overlapping_labels():
    """Every edge has one label; no two label boxes overlap and no label sits on a node."""
    results = _label_figures(_graphs_quickstart())
    assert results
    for g, fig, counts in results:
        labels = next(t for t in fig.data if t.name == "edge labels")
        assert len(labels.x) == g.number_of_edges(), "one label per edge"
        assert counts == (0, 0, 0), (g.graph.get("name"), counts)
        nodes = next(t for t in fig.data if t.name == "nodes")
        assert all("<br>" in t for t in nodes.text), "each node shows its template's short text"
        assert not fig.layout.annotations, "no per-label annotations (slow to validate)"
        assert fig.layout.width <= 1280, "fits a 1280 px projector across (long tasks scroll down)"


@needs_dot
@pytest.mark.data
def test_openstack_2k_graphs_have_no_overlapping_labels(shared_data):
    from workbench import Workbench
    from workbench.workflow.cooccurrence import build_workflows

    path = shared_data / "loghub_2k/OpenStack/OpenStack_2k.log"
    if not path.exists():
        pytest.skip("no loghub_2k OpenStack")
    wb = Workbench.from_logs(path, "openstack")
    graphs = build_workflows(wb.entries, wb.workflow_config)
    wb.close()
    for g, _fig, counts in _label_figures(graphs):
        assert counts == (0, 0, 0), (g.graph.get("name"), counts)


def test_label_boxes_find_an_overlap():
    """The measuring itself: two labels at one place overlap, a label on a node is found."""
    from widgets.graph_layout import DotLayout, dot_figure, label_boxes, overlaps

    g = nx.DiGraph()
    g.add_node(1, key=1, template="a")
    g.add_node(2, key=2, template="b")
    g.add_node(3, key=3, template="c")
    g.add_edge(1, 2, count=3, median=1.0)
    g.add_edge(1, 3, count=4, median=2.0)
    lay = DotLayout(
        width=200, height=200,
        nodes={1: (100, 180, 40, 20), 2: (50, 20, 40, 20), 3: (150, 20, 40, 20)},
        edges={(1, 2): {"points": [(100, 170), (80, 100), (60, 60), (50, 30)], "tip": (50, 30),
                        "label": (100, 100), "text": "3x, 1 s"},
               (1, 3): {"points": [(100, 170), (120, 100), (140, 60), (150, 30)], "tip": (150, 30),
                        "label": (102, 100), "text": "4x, 2 s"}},
    )  # fmt: skip
    assert overlaps(label_boxes(dot_figure(g, lay))) == (1, 0)
    lay.edges[(1, 3)]["label"] = (150, 20)
    assert overlaps(label_boxes(dot_figure(g, lay))) == (0, 1)


@needs_dot
def test_dot_figure_highlights_the_path_and_slow_edge():
    from widgets.graph_layout import dot_figure, dot_layout
    from widgets.theme import PALETTE

    g = nx.DiGraph()
    for k in (1, 2, 3):
        g.add_node(k, key=k, template=f"[instance: <*>] step {k}", count=5)
    g.add_edge(1, 2, count=5, median=0.5)
    g.add_edge(2, 3, count=5, median=9.0)
    fig = dot_figure(g, dot_layout(g), [1, 2, 3], [(1, 2)], (2, 3), selected=2)
    colours = [s.line.color for s in fig.layout.shapes if s.type == "path"]
    assert PALETTE["highlight"] in colours and PALETTE["slow"] in colours
    nodes = next(t for t in fig.data if t.name == "nodes")
    assert list(nodes.customdata) == [1, 2, 3] and nodes.text[0] == "k1<br>step 1"
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert max(s.line.width for s in rects) == 4, "the selected node has a thick ring"
