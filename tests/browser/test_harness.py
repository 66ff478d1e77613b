"""The harness itself: a widget notebook made at test time renders and reacts in real JupyterLab."""

from __future__ import annotations

import nbformat

BUTTON_CELL = """\
import ipywidgets as W

button = W.Button(description="Press me")
label = W.Label("not pressed")
button.on_click(lambda _: setattr(label, "value", f"pressed {button.description}!"))
W.VBox([button, label])
"""


def test_widget_button_changes_a_label(lab, lab_server):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# harness check"),
        nbformat.v4.new_code_cell(BUTTON_CELL),
    ]
    nbformat.write(nb, lab_server.root / "harness_button.ipynb")

    lab.open("harness_button.ipynb")
    lab.screenshot("opened")
    lab.run_all()
    button = lab.page.locator(".jupyter-widgets button", has_text="Press me")
    button.wait_for(state="visible")
    label = lab.page.locator(".widget-label", has_text="not pressed")
    label.wait_for(state="visible")
    lab.screenshot("rendered")
    button.click()
    lab.page.locator(".widget-label", has_text="pressed Press me!").wait_for(state="visible")
    lab.screenshot("clicked")
