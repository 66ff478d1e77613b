"""Export an executed notebook to one HTML file that shows every figure offline.

The notebooks store plotly figures as plotly JSON (``application/vnd.plotly.v1+json``), which
JupyterLab draws but a plain ``nbconvert --to html`` drops. This exporter turns each figure into an
HTML div drawn by plotly.js, and inlines plotly.js once, before the first figure: no network needed.

Run: ``python notebooks/export_html.py executed.ipynb [out.html]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    # hide an AMD loader (a page template may bring require.js) so plotly.js sets window.Plotly
    return (
        "<script>window.__wbDefine = window.define; window.define = undefined;</script>\n"
        f"<script>{get_plotlyjs()}</script>\n"
        "<script>window.define = window.__wbDefine;</script>\n"
    )


def _figure_html(fig: dict, div_id: str) -> str:
    data = json.dumps(fig.get("data", []))
    layout = json.dumps(fig.get("layout", {}))
    config = json.dumps({"responsive": True, "displaylogo": False})
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="width:100%;"></div>\n'
        f"<script>Plotly.newPlot({json.dumps(div_id)}, {data}, {layout}, {config});</script>\n"
    )


def inline_figures(nb: nbformat.NotebookNode) -> int:
    """Replace every plotly JSON output of ``nb`` by HTML (plotly.js once); returns the count."""
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME not in data:
                continue
            fig = data.pop(PLOTLY_MIME)
            if isinstance(fig, str):
                fig = json.loads(fig)
            html = (_plotly_js() if n == 0 else "") + _figure_html(fig, f"wb-figure-{n}")
            data["text/html"] = html
            data.pop("text/plain", None)
            n += 1
    return n


def export(notebook: Path, html: Path) -> int:
    """Write ``html`` from the executed ``notebook``; returns the number of figures."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    n = inline_figures(nb)
    body, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    html.write_text(body, encoding="utf-8")
    return n


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print("usage: export_html.py NOTEBOOK.ipynb [OUT.html]", file=sys.stderr)
        return 2
    src = Path(argv[0])
    if not src.is_file():
        print(f"no such notebook: {src}", file=sys.stderr)
        return 2
    dst = Path(argv[1]) if len(argv) > 1 else src.with_suffix(".html")
    n = export(src, dst)
    print(f"wrote {dst} with {n} figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
