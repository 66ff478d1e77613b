"""Readability of the workflow graphs as drawn by the app; prints JSON.

For the quick start's graphs (simulated OpenStack, 200 VMs, seed 7) and, when ``../shared/data`` is
there, the loghub OpenStack 2k sample: per task, the nodes and edges, the edge labels drawn, and the
label boxes (computed from the figure, text width at 0.6 em per character) that overlap another
label or a node, and those an edge's line passes through. Also the figure's size in pixels (one pixel per graphviz point).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from widgets.graph_layout import (
    dot_binary,
    dot_figure,
    dot_layout,
    label_boxes,
    labels_on_lines,
    overlaps,
)
from workbench import Workbench
from workbench.workflow.cooccurrence import build_workflows

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def measure(name: str, wb: Workbench) -> dict:
    tasks = []
    for g in build_workflows(wb.entries, wb.workflow_config):
        t0 = time.perf_counter()
        layout = dot_layout(g)
        fig = dot_figure(g, layout)
        seconds = time.perf_counter() - t0
        boxes = label_boxes(fig)
        ll, ln = overlaps(boxes)
        tasks.append({
            "task": g.graph.get("name"), "nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
            "labels": len(boxes["edge labels"]), "label_label_overlaps": ll,
            "label_node_overlaps": ln, "labels_crossed_by_a_line": labels_on_lines(layout, boxes), "width_px": fig.layout.width, "height_px": fig.layout.height,
            "layout_and_figure_s": round(seconds, 3), "annotations": len(fig.layout.annotations),
        })  # fmt: skip
    return {
        "log": name,
        "tasks": tasks,
        "total_labels": sum(t["labels"] for t in tasks),
        "total_label_label_overlaps": sum(t["label_label_overlaps"] for t in tasks),
        "total_label_node_overlaps": sum(t["label_node_overlaps"] for t in tasks),
        "total_labels_crossed_by_a_line": sum(t["labels_crossed_by_a_line"] for t in tasks),
    }


def main() -> None:
    out = {"dot": dot_binary(), "logs": []}
    wb = Workbench.from_simulation(n_instances=200, test_instances=10, seed=7)
    out["logs"].append(measure("quick start (simulated OpenStack, 200 VMs, seed 7)", wb))
    wb.close()
    path = DATA / "loghub_2k" / "OpenStack" / "OpenStack_2k.log"
    if path.exists():
        wb = Workbench.from_logs(path, "openstack")
        out["logs"].append(measure("loghub OpenStack_2k", wb))
        wb.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
