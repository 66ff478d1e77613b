"""The app in a real JupyterLab, on the real workbench: train with both live curves, Stop and train
again, detect, a false positive timed from click to updated table, the timeline, the workflow graph
at projector size (1280x720).

Figures printed (``-s``): ``app cell: X s`` (from the notebook's last computation to the app's
first row on screen) and ``flag: median X s, max Y s`` (from the click to the updated table, over
:data:`FLAGS` false positives).
"""

from __future__ import annotations

import os
import re
import statistics
import time

import nbformat

from workbench.detect.rules import RULES

APP_CELL = """\
import time
from workbench import Workbench
from widgets import WorkbenchApp

wb = Workbench.from_simulation(n_instances=120, test_instances=60, seed=7,
                               anomalies={"performance": 0.08, "execution": 0.08, "parameter": 0.05})
app = WorkbenchApp(wb)
app.train.key_inputs["max_epochs"].value = 3
app.train.param_inputs["max_epochs"].value = 4
print(f"T0={time.time():.3f}")
app
"""
FLAGS = 5  # false positives timed one after the other


def tab(lab, title: str):
    return lab.page.locator(".widget-tab .lm-TabBar-tabLabel", has_text=title).first


def bar_width(lab, stage: str) -> float:
    """The filled share of a progress bar, from the page (0..100)."""
    return lab.page.evaluate(
        """(stage) => {
            const bar = document.querySelector(`.dl-bar-${stage} .progress-bar`);
            return bar ? parseFloat(bar.style.width || bar.style.height || '0') : -1;
        }""",
        stage,
    )


def curve_points(lab, name: str) -> int:
    return lab.page.evaluate(
        """(name) => Math.max(0, ...[...document.querySelectorAll('.dl-app .js-plotly-plot')]
              .filter(gd => gd.offsetParent !== null)
              .map(gd => ((gd._fullData || []).find(t => t.name === name) || {y: []}).y
                         .filter(v => v !== null).length))""",
        name,
    )


def status(lab, text: str, timeout_ms: int = 300_000):
    lab.page.locator(".dl-status:visible", has_text=text).first.wait_for(timeout=timeout_ms)


def epochs_input(lab, index: int):
    """The n-th visible "epochs (max)" field (0: key model, 1: parameter models)."""
    field = lab.page.locator(".widget-inline-hbox:visible", has_text="epochs (max)")
    return field.nth(index).locator("input").first


def test_train_stop_train_detect_flag(lab, lab_server):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nb.cells = [nbformat.v4.new_code_cell(APP_CELL)]
    nbformat.write(nb, lab_server.root / "app_real.ipynb")
    lab.open("app_real.ipynb")
    page = lab.page
    page.locator(".jp-Notebook").first.click()
    lab.menu("Run", "Run All Cells")
    out = page.locator(".jp-OutputArea-output", has_text="T0=").first
    out.wait_for(timeout=300_000)
    t0 = float(re.search(r"T0=([\d.]+)", out.inner_text()).group(1))
    page.locator(".dl-app .widget-tab").first.wait_for(state="visible", timeout=120_000)
    app_cell = time.time() - t0
    print(f"app cell: {app_cell:.2f} s")
    lab.wait_kernel_idle()

    # 1. Train: both progress bars move, both loss curves draw
    tab(lab, "Train").click()
    page.locator("button:visible", has_text="Train").first.click()
    page.wait_for_function("() => true")
    deadline = time.monotonic() + 300
    seen_key_moving = False
    while time.monotonic() < deadline:
        k = bar_width(lab, "key")
        seen_key_moving |= 0 < k < 100
        if curve_points(lab, "param train") >= 2:
            break
        time.sleep(0.2)
    assert curve_points(lab, "key train") >= 2, "the key model's loss curve drew"
    assert curve_points(lab, "param train") >= 2, "the parameter models' loss curve drew"
    status(lab, "trained")
    assert bar_width(lab, "key") == 100 and bar_width(lab, "param") == 100
    assert seen_key_moving or curve_points(lab, "key train") >= 2
    page.locator(".dl-effective", has_text="g = ").first.wait_for()
    page.locator(".dl-app .js-plotly-plot:visible").first.scroll_into_view_if_needed()
    lab.screenshot("train-both-curves")
    why = page.locator(".dl-rule-choice:visible", has_text="Why this rule").first
    why.wait_for()  # the chosen g, END limit and floor, each with its validation FPR, and why
    text = why.inner_text()
    assert "held-out normal sessions" in text and "probability floor" in text and "%" in text
    why.scroll_into_view_if_needed()
    page.screenshot(path=str(lab.out / "01b-train-why-this-rule.png"))

    # 2. Train long, Stop: "stopped, model kept", and the app is free again
    box = epochs_input(lab, 0)
    box.fill("400")
    box.press("Enter")
    page.wait_for_timeout(300)
    page.locator("button:visible", has_text="Train").first.click()
    page.wait_for_function("() => document.querySelector('.dl-bar-key .progress-bar') && "
                           "parseFloat(document.querySelector('.dl-bar-key .progress-bar')"
                           ".style.width || '0') > 0", timeout=120_000)  # fmt: skip
    page.locator("button:visible", has_text="Stop").first.click()
    status(lab, "stopped, model kept", 120_000)
    lab.screenshot("stopped-model-kept")

    # 3. train again (short), then detect
    box.fill("2")
    box.press("Enter")
    page.wait_for_timeout(300)
    page.locator("button:visible", has_text="Train").first.click()
    status(lab, "trained")
    lab.screenshot("trained-again")
    tab(lab, "Review anomalies").click()
    page.locator("button:visible", has_text="Detect").first.click()
    page.locator(".dl-row:visible").first.wait_for(timeout=120_000)
    status(lab, "checked entries")
    lab.screenshot("review")
    rules = page.locator(".dl-row:visible .dl-rule").all_inner_texts()  # each row names its rule
    assert rules and set(rules) <= set(RULES), rules
    counts = page.locator(".dl-counts:visible").first.inner_text()
    assert all(rule in counts for rule in set(rules)), counts

    # 4. false positives, each timed from the click to the updated table (the status line that
    # names the anomaly is set after the table's rows)
    flags = []
    for _ in range(FLAGS):
        row = (
            page.locator(".dl-row:visible")
            .filter(has=page.locator("button:not([disabled])", has_text="false positive"))
            .first
        )
        aid = re.search(r"dl-anomaly-(\d+)", row.get_attribute("class")).group(1)
        button = row.locator("button", has_text="false positive")
        button.scroll_into_view_if_needed()
        t = time.monotonic()
        button.click()
        status(lab, f"anomaly {aid}: learning it as normal done", 60_000)
        flags.append(time.monotonic() - t)
        lab.wait_kernel_idle()
    flag, flag_max = statistics.median(flags), max(flags)
    load = os.getloadavg()[0]  # the machine's load: the flag's time depends on it
    print(f"flag: median {flag:.2f} s, max {flag_max:.2f} s over {len(flags)} flags: "
          + ", ".join(f"{f:.2f}" for f in flags) + f" (load average {load:.1f})")  # fmt: skip
    page.locator(".dl-row:visible", has_text="false positive").first.wait_for()
    page.locator(
        ".dl-status:visible", has_text="newly anomalous"
    ).first.scroll_into_view_if_needed()
    lab.screenshot("after-false-positive")
    page.locator(".dl-header:visible").first.scroll_into_view_if_needed()
    page.screenshot(path=str(lab.out / "05b-rows-after-flags.png"))  # greyed "normal now" rows

    # 5. a row click selects: context and candidates
    page.locator(".dl-row:visible .dl-msg").nth(1).click()
    context = page.locator(".dl-context:visible").first
    context.wait_for()
    context.scroll_into_view_if_needed()
    page.screenshot(path=str(lab.out / "06-selected-context.png"))
    lab.shots.append(lab.out / "06-selected-context.png")

    # 5b. the timeline: lanes by kind and by session
    timeline = page.locator(".dl-app .js-plotly-plot:visible").first
    timeline.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(lab.out / "06b-timeline.png"))
    # a brush across the session lanes filters the table to that time range
    area = timeline.locator(".nsewdrag").last.bounding_box()
    y = area["y"] + area["height"] / 2
    page.mouse.move(area["x"] + area["width"] * 0.15, y)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.5, y, steps=8)
    page.mouse.move(area["x"] + area["width"] * 0.6, y, steps=4)
    page.mouse.up()
    page.locator(
        ".widget-html:visible", has_text=re.compile(r"rows · \d\d:\d\d:\d\d\.\d{3}–")
    ).first.wait_for(timeout=60_000)
    page.screenshot(path=str(lab.out / "06c-timeline-brush.png"))

    # 5c. the MSE plot and the observed-vs-predicted plot draw
    tab(lab, "MSE plot").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.dl-app .js-plotly-plot')].some(
               gd => gd.offsetParent !== null && (gd._fullData || []).some(
                   t => / observed$/.test(t.name) && t.y.some(v => v !== null)))""",
        timeout=120_000,
    )
    page.screenshot(path=str(lab.out / "06d-mse.png"))

    # 6. the workflow graph at projector size
    page.set_viewport_size({"width": 1280, "height": 720})
    tab(lab, "Workflow graph").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.dl-app .js-plotly-plot')].some(
               gd => gd.offsetParent !== null && (gd._fullData || []).some(t => t.name === 'nodes'))""",
        timeout=120_000,
    )
    page.wait_for_timeout(1000)
    page.locator(".dl-app .js-plotly-plot:visible").first.scroll_into_view_if_needed()
    lab.page.screenshot(path=str(lab.out / "07-graph-1280x720.png"))  # the viewport, as projected
    lab.shots.append(lab.out / "07-graph-1280x720.png")
    (lab.out / "figures.txt").write_text(
        f"app_cell_s={app_cell:.2f}\nflag_median_s={flag:.2f}\nflag_max_s={flag_max:.2f}\n"
        f"flags_s={' '.join(f'{f:.2f}' for f in flags)}\nload_average={load:.1f}\n"
    )
    # one second on a machine with a CPU free; the suite's other worker, or other work, shares
    # the CPUs, and the limit grows with the load per CPU (bench/flag_latency.py gives the figures)
    limit = max(1.0, load / (os.cpu_count() or 1))
    assert flag < limit, (
        f"a flag takes {flag:.2f} s (median of {flags}) from the click to the table, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs (limit {limit:.1f} s)"
    )


def test_quickstart_run_all_gives_a_usable_app(lab, lab_server):
    """Run all of notebooks/00_quickstart.ipynb; time the whole run to the app's first row, and
    the app cell alone (from the last computation's output to the first row on screen)."""
    lab.open("00_quickstart.ipynb")
    page = lab.page
    t0 = time.monotonic()
    lab.menu("Run", "Run All Cells")
    last = page.locator(".jp-OutputArea-output", has_text="everything above took").first
    last.wait_for(timeout=600_000)
    t_last = time.monotonic()
    page.locator(".dl-app .dl-row").first.wait_for(state="visible", timeout=120_000)
    t_app = time.monotonic()
    run_all, app_cell = t_app - t0, t_app - t_last
    print(f"quick start run all to a usable app: {run_all:.1f} s; app cell: {app_cell:.2f} s")
    page.locator(".dl-app .dl-row").first.scroll_into_view_if_needed()
    lab.screenshot("quickstart-app")
    (lab.out / "figures.txt").write_text(f"run_all_s={run_all:.1f}\napp_cell_s={app_cell:.2f}\n")
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0
    assert app_cell < 10.0  # the target is 5 s; the machine under test may be loaded
