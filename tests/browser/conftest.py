"""Real-browser harness: JupyterLab on loopback, headless Debian Chromium driven by Playwright.

Fixtures
--------
``lab_server``  one JupyterLab per session, started from this interpreter on 127.0.0.1 with a random
                token and port, in a temporary working copy of ``notebooks/`` (tests may add their own
                notebooks to ``lab_server.root``); its settings, workspaces and runtime files are
                temporary too, so every run starts clean.
``lab``         a fresh Chromium (its own ``--user-data-dir``) with a :class:`Lab` helper: open a
                notebook in a new workspace, wait for the kernel, run all cells, wait for the end,
                take numbered screenshots under ``tests/_output/browser/<test>/``.

Without chromium or the playwright package the tests skip with the reason, except under
``CI=true`` where a missing browser is an error. Playwright's own browser download is never used:
the Debian package is (``make browser-deps``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "tests" / "_output" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1500, "height": 1000}
START_TIMEOUT_S = 90
KERNEL_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a slow browser test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} not found: run `make browser-deps` (Debian chromium)")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.base}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def kernel_states(self, notebook: str) -> list[str]:
        """Execution states of the kernels the server has for ``notebook``."""
        return [
            s["kernel"]["execution_state"]
            for s in self.api("/api/sessions")
            if s.get("path") == notebook and s.get("kernel")
        ]


@pytest.fixture(scope="session")
def lab_server(
    sync_playwright: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    home = tmp_path_factory.mktemp("lab")
    root = home / "work"
    src = REPO / "notebooks"
    if src.is_dir():
        shutil.copytree(src, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    else:
        root.mkdir()
    settings = home / "settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        MPLBACKEND="Agg",
    )
    port = _free_port()
    token = uuid.uuid4().hex
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = OUTPUT / "jupyterlab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--allow-root",
        "--no-browser",
        f"--ServerApp.token={token}",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
    ]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT)
    server = LabServer(root=root, port=port, token=token, process=proc, log=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"jupyter lab exited ({proc.returncode}); see {log}:\n{log.read_text()[-3000:]}"
            )
        try:
            server.api("/api/status")
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.terminate()
                pytest.fail(f"jupyter lab did not answer in {START_TIMEOUT_S} s; see {log}")
            time.sleep(0.5)
    yield server
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class Lab:
    """Drives one JupyterLab page; every step can leave a numbered screenshot."""

    server: LabServer
    page: Any
    out: Path
    shots: list[Path] = field(default_factory=list)
    notebook: str | None = None

    def screenshot(self, name: str) -> Path:
        path = self.out / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def save_log_console(self) -> None:
        """Save JupyterLab's log console (errors raised in widget callbacks land there)."""
        try:
            self.menu("View", "Show Log Console")
            panel = self.page.locator(".jp-LogConsolePanel").first
            panel.wait_for(state="visible", timeout=10_000)
            self.page.wait_for_timeout(1000)
            (self.out / "log-console.txt").write_text(panel.inner_text())
            self.screenshot("log-console")
        except Exception as exc:  # diagnostics only: never hide the real failure
            (self.out / "log-console.txt").write_text(f"could not read the log console: {exc}")

    def open(self, notebook: str) -> None:
        """Open ``notebook`` (relative to the server root) in a fresh workspace; wait for the kernel."""
        self.notebook = notebook
        url = (
            f"{self.server.base}/lab/workspaces/t{uuid.uuid4().hex[:8]}/tree/{notebook}"
            f"?reset&token={self.server.token}"
        )
        self.page.goto(url)
        self.page.locator(".jp-Notebook").first.wait_for(state="visible", timeout=60_000)
        self.wait_kernel_idle()

    def wait_kernel_idle(self, timeout_s: float = KERNEL_TIMEOUT_S) -> None:
        """Idle both in the server (the kernel runs) and in the page (the page is connected to it).

        "Run All Cells" sent before the page's kernel connection is ready is silently dropped, so
        this waits for the notebook toolbar's execution indicator to say idle as well.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.server.kernel_states(self.notebook or "")
            indicator = self.page.locator(".jp-Notebook-ExecutionIndicator").first
            page_idle = indicator.count() > 0 and indicator.get_attribute("data-status") == "idle"
            if states and all(s == "idle" for s in states) and page_idle:
                return
            if time.monotonic() > deadline:
                self.screenshot("kernel-not-idle")
                raise AssertionError(f"kernel not idle after {timeout_s} s (server: {states})")
            time.sleep(0.25)

    def menu(self, menu: str, item: str) -> None:
        """Click ``item`` (its exact label) in the main menu ``menu``."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).first.click()
        entry = self.page.locator(
            ".lm-Menu-item",
            has=self.page.locator(
                ".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")
            ),
        ).first
        entry.wait_for(state="visible", timeout=10_000)
        entry.click()

    def run_all(self, timeout_s: float = 600) -> None:
        """Run all cells and wait until every code cell has run and the kernel is idle again."""
        self.wait_kernel_idle()
        self.menu("Run", "Run All Cells")
        self.page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
                return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            timeout=timeout_s * 1000,
        )
        self.wait_kernel_idle(timeout_s)
        errors = self.page.locator(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
        )
        if errors.count():
            self.screenshot("cell-error")
            raise AssertionError(f"a cell failed:\n{errors.first.inner_text()[:2000]}")

    def click_plot_point(
        self, plot: Any, trace_name: str, index: int, timeout_s: float = 20
    ) -> None:
        """Click a point of a plotly trace (``plot``: a ``.js-plotly-plot`` locator).

        Plotly takes mouse events on its drag layer, not on the point's SVG element, so the mouse
        is moved to the point's pixel position; the click is only sent once plotly's hover says
        that very point is under the mouse (the plot may still be resizing after a tab switch).
        """
        where = """(gd, args) => {
            const [name, index] = args;
            const t = gd._fullData.find(t => t.name === name);
            if (!t) return null;
            const xa = gd._fullLayout[t.xaxis === 'x' ? 'xaxis' : 'xaxis' + t.xaxis.slice(1)];
            const ya = gd._fullLayout[t.yaxis === 'y' ? 'yaxis' : 'yaxis' + t.yaxis.slice(1)];
            const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const hover = (gd._hoverdata || [])[0];
            return {x: r.left + xa.l2p(xa.d2l(t.x[index])), y: r.top + ya.l2p(ya.d2l(t.y[index])),
                    hit: !!hover && hover.data.name === name && hover.pointNumber === index};
        }"""
        deadline = time.monotonic() + timeout_s
        # the app may sit below the fold of a long notebook: the mouse only reaches what is shown
        plot.scroll_into_view_if_needed()
        while True:
            before = plot.evaluate(where, [trace_name, index])
            assert before is not None, f"no trace named {trace_name!r} in the plot"
            self.page.mouse.move(before["x"] - 3, before["y"] - 3)
            self.page.mouse.move(before["x"], before["y"])
            self.page.wait_for_timeout(250)
            pos = plot.evaluate(where, [trace_name, index])
            # click only on a plot that has stopped moving: right after a tab switch the plot is
            # resized to its container, and a click sent at the old position lands on a neighbour
            still = abs(pos["x"] - before["x"]) < 1 and abs(pos["y"] - before["y"]) < 1
            if pos["hit"] and still:
                self.page.mouse.click(pos["x"], pos["y"])
                return
            if time.monotonic() > deadline:
                self.screenshot("hover-missed")
                raise AssertionError(f"could not put the mouse on point {index} of {trace_name!r}")


@pytest.fixture
def lab(
    sync_playwright: Any, lab_server: LabServer, request: pytest.FixtureRequest, tmp_path: Path
):
    out = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        context.set_default_timeout(60_000)
        page = context.pages[0] if context.pages else context.new_page()
        console = out / "console.log"
        with console.open("w") as fh:
            page.on("console", lambda msg: fh.write(f"{msg.type}: {msg.text}\n"))
            helper = Lab(server=lab_server, page=page, out=out)
            try:
                yield helper
            finally:
                rep = getattr(request.node, "rep_call", None)
                if rep is not None and rep.failed:
                    helper.screenshot("failure")
                    helper.save_log_console()
                context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
