"""A detection report as one self-contained HTML file (opens offline, from a file, anywhere).

The page holds the verdict and the coverage (with any warning), the anomaly table, and per anomaly
its diagnosis, the raw lines around it, the MSE plot of its key with the threshold lines (parameter
anomalies) or its workflow with the path that led to it (key anomalies). The figures are drawn by
plotly.js, embedded in the page: the script is read from the installed ``plotly`` package's data
folder as a file, so the core never imports the plotting library.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.util
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.detect.report import why
from workbench.detect.rules import rule_of_row

__all__ = ["plotly_js", "render_report"]

MAX_DETAILED = 40  #: anomalies with a diagnosis, context and a figure (the table lists all)
_NOT_KEPT = (
    "(the log was read in chunks, so the lines around this one were not kept: detect with "
    "--in-memory, or on the part of the log around it, for a diagnosis and its context)"
)
MAX_POINTS = 1500  #: points per MSE plot (a log's worth of a key is thinned evenly)


def plotly_js() -> str:
    """The plotly.js bundle shipped with the ``plotly`` package (read as a file, not imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the HTML report needs the plotly package (pip install plotly)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise RuntimeError("plotly.min.js was not found in the plotly package")


def _json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return None if not math.isfinite(float(o)) else float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, pd.Timestamp | dt.datetime):
            return o.isoformat()
        return str(o)

    text = json.dumps(obj, default=default, allow_nan=False)
    return text.replace("</", "<\\/")


def _clean(values: Any) -> list[Any]:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            out.append(None)
        elif isinstance(v, np.floating):
            out.append(float(v) if math.isfinite(float(v)) else None)
        else:
            out.append(v)
    return out


def _mse_figure(wb: Any, report: Any, row: pd.Series) -> dict[str, Any] | None:
    """The key's MSE per entry with the threshold at the report's level, from the report itself
    (no model is run again)."""
    key = int(row["key"])
    e = report.entries
    rows = np.flatnonzero((e["key"].to_numpy() == key) & (e["param_status"] == "scored").to_numpy())
    if not len(rows):
        return None
    s = pd.DataFrame(
        {
            "line": e["line"].to_numpy()[rows],
            "mse": e["mse"].to_numpy()[rows],
            "threshold": e["threshold"].to_numpy()[rows],
            "anomalous": e["param_anomalous"].to_numpy(dtype=bool)[rows],
        }
    )
    s = _thinned(s)
    x = s["line"].tolist()
    traces: list[dict[str, Any]] = [
        {
            "x": x,
            "y": _clean(s["mse"].tolist()),
            "mode": "markers",
            "type": "scattergl" if len(s) > 1000 else "scatter",
            "name": "MSE",
            "marker": {"size": 5, "color": "#4c78a8"},
            "hovertemplate": "line %{x}<br>MSE %{y:.3g}<extra></extra>",
        },
        {
            "x": x,
            "y": _clean(s["threshold"].tolist()),
            "mode": "lines",
            "type": "scatter",
            "name": f"threshold at {report.level:.1%}",
            "line": {"color": "#e45756", "dash": "dash", "width": 1},
        },
    ]
    me = s[s["line"] == int(row["line"])]
    if len(me):
        traces.append(
            {
                "x": me["line"].tolist(),
                "y": _clean(me["mse"].tolist()),
                "mode": "markers",
                "type": "scatter",
                "name": "this anomaly",
                "marker": {"size": 12, "color": "#d62728", "symbol": "x"},
            }
        )
    layout = {
        "title": {"text": f"key {key}: MSE per entry", "font": {"size": 13}},
        "xaxis": {"title": {"text": "line"}},
        "yaxis": {"title": {"text": "MSE"}, "type": "log"},
        "height": 300,
        "margin": {"l": 55, "r": 10, "t": 35, "b": 40},
        "legend": {"orientation": "h", "y": -0.25},
    }
    return {"data": traces, "layout": layout}


def _thinned(s: pd.DataFrame) -> pd.DataFrame:
    """At most ``MAX_POINTS`` rows, evenly spread, plus every anomalous one."""
    if len(s) <= MAX_POINTS:
        return s
    even = np.linspace(0, len(s) - 1, MAX_POINTS).astype(int)
    return s.iloc[np.unique(np.concatenate([even, np.flatnonzero(s["anomalous"])]))]


def _graph_figure(wb: Any, graph: Any, path: tuple[int, ...]) -> dict[str, Any] | None:
    from workbench.workflow.layout import layered_layout

    if graph is None or graph.number_of_nodes() == 0 or graph.number_of_nodes() > 200:
        return None
    lay = layered_layout(graph)
    pos = {n: (float(layer), -float(order)) for n, (layer, order) in lay.items()}
    on_path = set(itertools.pairwise(path))
    ex, ey, px, py = [], [], [], []
    for a, b in graph.edges():
        xs, ys = (px, py) if (a, b) in on_path else (ex, ey)
        xs += [float(pos[a][0]), float(pos[b][0]), None]
        ys += [float(pos[a][1]), float(pos[b][1]), None]
    ux, uy = [], []  # steps of the path the workflow has no transition for
    for a, b in on_path:
        if not graph.has_edge(a, b) and a in pos and b in pos:
            ux += [float(pos[a][0]), float(pos[b][0]), None]
            uy += [float(pos[a][1]), float(pos[b][1]), None]
    nodes = list(graph.nodes())
    in_path = set(path)
    labels = [
        wb.parser.template_of(int(n)) if isinstance(n, int | np.integer) else str(n) for n in nodes
    ]
    traces = [
        {"x": ex, "y": ey, "mode": "lines", "type": "scatter", "name": "transition",
         "line": {"color": "#bbbbbb", "width": 1}, "hoverinfo": "skip"},
        {"x": px, "y": py, "mode": "lines", "type": "scatter", "name": "path to the anomaly",
         "line": {"color": "#d62728", "width": 3}, "hoverinfo": "skip"},
        {"x": ux, "y": uy, "mode": "lines", "type": "scatter", "name": "unexpected step",
         "line": {"color": "#d62728", "width": 2, "dash": "dot"}, "hoverinfo": "skip"},
        {
            "x": [float(pos[n][0]) for n in nodes],
            "y": [float(pos[n][1]) for n in nodes],
            "mode": "markers+text",
            "type": "scatter",
            "name": "log key",
            "text": [str(n) for n in nodes],
            "textposition": "top center",
            "hovertext": [lb[:160] for lb in labels],
            "hoverinfo": "text",
            "marker": {
                "size": [14 if n in in_path else 9 for n in nodes],
                "color": ["#d62728" if n in in_path else "#4c78a8" for n in nodes],
            },
        },
    ]  # fmt: skip
    layout = {
        "title": {"text": f"workflow {graph.graph.get('task', '')}", "font": {"size": 13}},
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "height": 340,
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.05},
        "margin": {"l": 10, "r": 10, "t": 35, "b": 10},
    }
    return {"data": traces, "layout": layout}


def _context(entries: pd.DataFrame, line: int, k: int = 4) -> list[tuple[int, str]]:
    lines = entries["line"].to_numpy()
    i = int(np.searchsorted(lines, line))
    lo, hi = max(0, i - k), min(len(lines), i + k + 1)
    return [(int(lines[j]), str(entries["raw"].iloc[j])) for j in range(lo, hi)]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1200px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px}
.meta{color:#555;font-size:13px}.verdict{font-size:18px;font-weight:600;margin:12px 0}
.warn{background:#fff3cd;border:1px solid #e0c36b;padding:8px 12px;margin:6px 0;border-radius:4px}
.cov{background:#f4f6f8;padding:8px 12px;border-radius:4px;font-size:13px}
table{border-collapse:collapse;font-size:12.5px;width:100%}
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.tmpl{font-family:ui-monospace,monospace;word-break:break-word}
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow-x:auto;white-space:pre}
pre .hit{background:#ffd6d6;display:inline-block;min-width:100%}
.anom{border-top:2px solid #ccc;margin-top:18px;padding-top:6px}
.kind{display:inline-block;padding:1px 6px;border-radius:3px;background:#eee;font-size:12px}
"""


def render_report(wb: Any, report: Any, *, source: str = "", title: str | None = None) -> str:
    """The whole report as one HTML string (plotly.js inline)."""
    parts = _head(report, source, title)
    parts += _table(report.anomalies)
    details, figures = _details(wb, report)
    parts += details
    parts.append("<script>")
    for div, fig in figures:
        parts.append(
            f"Plotly.newPlot('{div}', {_json(fig['data'])}, {_json(fig['layout'])}, "
            "{responsive: true, displaylogo: false});"
        )
    parts.append("</script></body></html>")
    return "".join(parts)


def _head(report: Any, source: str, title: str | None) -> list[str]:
    """The page's head, title, verdict and coverage (with its warnings)."""
    esc = html.escape
    cov = report.coverage
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title or 'DeepLog report: ' + str(source))}</title>",
        f"<style>{_CSS}</style><script>{plotly_js()}</script></head><body>",
        f"<h1>{esc(title or 'DeepLog detection report')}</h1>",
        f"<div class='meta'>log {esc(str(source))} &middot; generated "
        f"{dt.datetime.now().isoformat(timespec='seconds')} &middot; g = {report.g}, "
        f"parameter level {report.level:.1%}</div>",
        f"<div class='verdict'>{esc(report.verdict)}</div>",
    ]
    if cov is not None:
        parts += [f"<div class='warn'>&#9888; {esc(w)}</div>" for w in cov.warnings]
        parts.append("<div class='cov'>" + "<br>".join(esc(x) for x in cov.lines_summary()))
        parts.append("</div>")
    return parts


def _table(a: pd.DataFrame) -> list[str]:
    """The anomaly table (every anomaly; the first ``MAX_DETAILED`` link to their details)."""
    esc = html.escape
    parts = ["<h2>Anomalies</h2>"]
    if not len(a):
        parts.append("<p>None reported.</p>")
        return parts
    parts.append(
        "<table><tr><th>id</th><th>line</th><th>time</th><th>session</th><th>rule</th>"
        "<th>template</th><th>why</th><th>status</th></tr>"
    )
    for i, (_, r) in enumerate(a.iterrows()):
        aid = esc(str(r["id"]))
        link = f"<a href='#a{aid}'>{aid}</a>" if i < MAX_DETAILED else aid
        ts = "" if pd.isna(r["timestamp"]) else str(r["timestamp"])[:23]
        sess = "" if r["session"] is None or pd.isna(r["session"]) else str(r["session"])
        parts.append(
            f"<tr><td>{link}</td><td>{r['line']}</td><td>{esc(ts)}</td>"
            f"<td>{esc(sess[:40])}</td><td><span class='kind'>{esc(rule_of_row(r))}</span></td>"
            f"<td class='tmpl'>{esc(str(r['template']))}</td><td>{esc(why(r))}</td>"
            f"<td>{esc(str(r['status']))}</td></tr>"
        )
    parts.append("</table>")
    if len(a) > MAX_DETAILED:
        parts.append(f"<p class='meta'>Details below for the first {MAX_DETAILED} of {len(a)}.</p>")
    return parts


def _details(wb: Any, report: Any) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """Per detailed anomaly: its diagnosis, the raw lines around it and a figure (the MSE plot of
    a parameter anomaly, the workflow of a key anomaly); the figures to draw, by div id."""
    esc = html.escape
    parts: list[str] = []
    figures: list[tuple[str, dict[str, Any]]] = []
    for _, r in report.anomalies.head(MAX_DETAILED).iterrows():
        aid = int(r["id"])
        parts.append(
            f"<div class='anom' id='a{aid}'><h2>#{aid}: line {r['line']}, {r['kind']}</h2>"
        )
        if not len(report.entries):  # read in chunks: the entries around it were not kept
            sentence, path, task = _NOT_KEPT, (), None
        else:
            try:
                d = wb.diagnose(aid)
                sentence, path, task = d.sentence, tuple(d.path or ()), d.task
            except Exception as exc:  # a diagnosis must not break the report
                sentence, path, task = f"(no diagnosis: {exc})", (), None
        parts.append(f"<p>{esc(sentence)}</p>")
        parts.append("<pre>")
        for line, raw in _context(report.entries, int(r["line"])):
            row = f"{line:>8}  {raw}"
            cls = " class='hit'" if line == int(r["line"]) else ""
            parts.append(f"<span{cls}>{esc(row)}</span>\n")
        parts.append("</pre>")
        if r["kind"] == "parameter":
            fig = _mse_figure(wb, report, r)
        else:
            graph = next((g for g in wb.workflows_ if g.graph.get("task") == task), None)
            fig = _graph_figure(wb, graph, path)
        if fig is not None:
            div = f"fig{len(figures)}"
            parts.append(f"<div id='{div}'></div>")
            figures.append((div, fig))
        parts.append("</div>")
    return parts, figures
