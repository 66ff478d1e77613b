"""Every notebook in ``notebooks/`` runs top to bottom without an error (nbclient, the venv's kernel),
stays small, and exports to one HTML file that holds every one of its figures.

Each notebook runs once per test session in a temporary copy of ``notebooks/`` (so relative paths
work and nothing is written into the repository); the executed copy and its HTML export are kept
under ``tests/_output/notebooks/`` for a look when one fails. The kernel is ``python3`` as started by
this interpreter's jupyter_client, which runs it with ``sys.executable``: the same environment as the
tests.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
OUTPUT = REPO / "tests" / "_output" / "notebooks"
CELL_TIMEOUT_S = 900  # training cells on a CPU are allowed to be slow, not to hang
MAX_BYTES = 5_000_000  # an executed notebook a class can download and open quickly
PLOTLY_MIME = "application/vnd.plotly.v1+json"

_executed: dict[Path, Path] = {}


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "notebooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _execute(path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``path`` once per session; returns the executed copy (raises on a cell's error)."""
    if path in _executed:
        return _executed[path]
    from nbclient import NotebookClient

    work = tmp_path_factory.mktemp("nb") / "notebooks"
    shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(work / path.name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(work)}},
        allow_errors=False,
    )
    OUTPUT.mkdir(parents=True, exist_ok=True)
    try:
        client.execute()
    finally:
        # saved as JupyterLab saves by default: without the widgets' state (the app's widgets carry
        # megabytes of it, and an HTML export cannot draw widgets offline anyway)
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, OUTPUT / path.name)
    _executed[path] = OUTPUT / path.name
    return _executed[path]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    executed = _execute(path, tmp_path_factory)
    size = executed.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size / 1e6:.1f} MB executed"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_html_export_holds_every_figure(
    path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    executed = _execute(path, tmp_path_factory)
    nb = nbformat.read(executed, as_version=4)
    figures = [
        out["data"][PLOTLY_MIME]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if PLOTLY_MIME in out.get("data", {})
    ]
    html_path = OUTPUT / (path.stem + ".html")
    n = _module("export_html").export(executed, html_path)
    html = html_path.read_text(encoding="utf-8")
    assert n == len(figures)
    assert html.count("Plotly.newPlot(") == len(figures)
    assert html.count("window.__wbDefine = window.define") == (1 if figures else 0)
    for i, fig in enumerate(figures):  # each figure's own traces are in the page, in order
        assert f'id="wb-figure-{i}"' in html
        assert json.dumps(fig.get("data", [])) in html


DATA_NOTEBOOKS = [p for p in NOTEBOOKS if "find_data(" in p.read_text(encoding="utf-8")]


@pytest.mark.slow
@pytest.mark.parametrize("path", DATA_NOTEBOOKS, ids=[p.name for p in DATA_NOTEBOOKS])
def test_notebook_skips_cleanly_without_data(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the shared data every cell runs, says it skipped, and nothing fails."""
    from nbclient import NotebookClient

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "no-data-here"))
    work = tmp_path / "notebooks"
    shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(work / path.name, as_version=4)
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(work)}}
    ).execute()
    text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "The benchmark data is not here" in text
    assert "skipped: no data" in text
    assert not any(
        PLOTLY_MIME in out.get("data", {}) for c in nb.cells for out in c.get("outputs", [])
    )


def test_export_inlines_plotly_once_and_every_figure() -> None:
    import plotly.graph_objects as go

    export_html = _module("export_html")
    nb = nbformat.v4.new_notebook()
    for i in range(3):
        cell = nbformat.v4.new_code_cell("fig.show()")
        fig = go.Figure(go.Scatter(x=[1, 2], y=[i, i + 1], name=f"trace{i}")).to_plotly_json()
        cell.outputs = [
            nbformat.v4.new_output("display_data", data={PLOTLY_MIME: fig, "text/plain": "<F>"})
        ]
        nb.cells.append(cell)
    assert export_html.inline_figures(nb) == 3
    htmls = [c.outputs[0]["data"]["text/html"] for c in nb.cells]
    assert "window.__wbDefine" in htmls[0] and not any("__wbDefine" in h for h in htmls[1:])
    assert all(
        f"trace{i}" in h and PLOTLY_MIME not in c.outputs[0]["data"]
        for i, (h, c) in enumerate(zip(htmls, nb.cells, strict=True))
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_and_its_paired_source_hold_the_same_cells(path: Path) -> None:
    """Each notebook is paired with a percent-format ``.py`` of the same name (edit either, then
    ``jupytext --sync notebooks/*.ipynb``); both hold the same cells, and the committed ``.ipynb``
    holds no outputs."""
    jupytext = pytest.importorskip("jupytext")
    source = path.with_suffix(".py")
    assert source.exists(), f"{path.name} has no paired {source.name}"
    committed = nbformat.read(path, as_version=4)
    paired = jupytext.read(source)
    assert committed.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert [(c.cell_type, c.source) for c in paired.cells] == [
        (c.cell_type, c.source) for c in committed.cells
    ], f"{path.name} and {source.name} differ: run `jupytext --sync {path.name}`"
    assert all(not c.get("outputs") for c in committed.cells), f"{path.name} holds outputs"


def test_every_paired_source_has_its_notebook() -> None:
    """A percent-format source without its ``.ipynb`` would be a notebook nobody runs."""
    for source in (REPO / "notebooks").glob("*.py"):
        if "format_name: percent" in source.read_text(encoding="utf-8")[:1000]:
            assert source.with_suffix(".ipynb").exists(), f"{source.name} has no .ipynb"


def test_notebooks_are_found_or_absent_on_purpose() -> None:
    """Guards the glob: when ``notebooks/`` exists it must hold notebooks to execute."""
    folder = REPO / "notebooks"
    if folder.is_dir():
        assert NOTEBOOKS, f"{folder} has no .ipynb files"


def test_teaching_rule_table_and_data_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import pandas as pd

    teaching = _module("teaching")
    table = teaching.rule_table(
        {"a": np.array(["", "unknown key", "key not in top-g"]), "b": pd.Series({"top-g": 2})}
    )
    assert table.loc["total"].tolist() == [2, 2]
    assert table.loc["top-g"].tolist() == [1, 2]
    assert "count vector" not in table.index

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    (tmp_path / "here.txt").write_text("x")
    assert teaching.find_data("here.txt") == (tmp_path, True)
    assert teaching.find_data("here.txt", "missing/file") == (tmp_path, False)
    assert "missing/file" in capsys.readouterr().out

    assert teaching.check("n", None, 3) is False
    assert teaching.check("n", 10, 11, tolerance=0.1) is True
    assert teaching.check("rule", "top-g", "unknown key") is False


FIGURE_NOTEBOOKS = [p for p in NOTEBOOKS if p.name != "app.ipynb"]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("path", FIGURE_NOTEBOOKS, ids=[p.name for p in FIGURE_NOTEBOOKS])
def test_exported_figures_draw_offline_in_chromium(
    path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The HTML export, opened in headless Chromium with every network request refused, draws each
    of its figures (plotly.js comes from the page itself)."""
    chromium = Path("/usr/bin/chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    if not chromium.exists():
        pytest.skip(f"{chromium} not found")
    executed = _execute(path, tmp_path_factory)
    html = OUTPUT / (path.stem + ".offline.html")
    n = _module("export_html").export(executed, html)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.route("http*://**", lambda route: route.abort())  # offline: nothing from a CDN
            page.goto(html.as_uri(), wait_until="load", timeout=60_000)
            drawn = page.wait_for_function(
                """n => {
                    const divs = document.querySelectorAll("div.plotly-graph-div");
                    const ok = [...divs].filter(d => d.querySelector(".main-svg .trace"));
                    return divs.length === n && ok.length === n ? ok.length : false;
                }""",
                arg=n,
                timeout=30_000,
            ).json_value()
        finally:
            browser.close()
    assert drawn == n
