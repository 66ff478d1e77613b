"""What the teaching notebooks share: the data guard, one figure theme, counts by rule, exercises.

Imported by the notebooks in this folder (they run with this folder as the working directory):

- :func:`find_data` finds ``../shared/data`` and says in one line when it is not there; then
  every cell whose first line is ``# needs the shared data`` prints "skipped: no data" instead;
- :func:`setup` makes every plotly figure a plain figure in the workbench theme (fonts of 16 px,
  the Okabe-Ito colours) saved into the notebook as plotly JSON, a few kB each, so an executed
  notebook stays small; :mod:`export_html` inlines plotly.js once when exporting to HTML;
- :data:`MODEL_COLOURS` gives every model one colour in every notebook;
- :func:`rule_table` counts detections by rule (top-g, probability floor, session end, unknown
  key, parameter threshold) for several detectors side by side;
- :func:`check` compares a student's prediction with the measured value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.io as pio

import workbench
from widgets.theme import PALETTE, TEMPLATE
from workbench.detect.rules import COUNT_VECTOR, RULES, counts_by_rule, entry_counts_by_rule

__all__ = ["MODEL_COLOURS", "RULES", "check", "find_data", "rule_table", "setup"]

#: first line of a notebook cell that needs the shared data (skipped without it)
NEEDS_DATA = "# needs the shared data"

#: one colour per model, the same in every notebook (Okabe-Ito)
MODEL_COLOURS: dict[str, str] = {
    "DeepLog": "#0072B2",
    "DeepLog + session counts": "#56B4E9",
    "DeepLog, the default": "#1f2933",
    "N-gram": "#E69F00",
    "PCA": "#009E73",
    "Invariant Mining": "#CC79A7",
    "simple": "#999999",
    "whitelist": "#999999",
    "method 2": "#0072B2",
    "method 1, LSTM": "#56B4E9",
    "method 1, 3-gram": "#E69F00",
    "ground truth": PALETTE["ink"],
}


def setup() -> None:
    """Plain plotly figures in the workbench theme, stored as plotly JSON in the notebook."""
    pio.templates["workbench"] = TEMPLATE
    pio.templates.default = "plotly_white+workbench"
    pio.renderers.default = "plotly_mimetype"
    pd.set_option("display.max_colwidth", 90)


def find_data(*paths: str) -> tuple[Path, bool]:
    """``(DATA, have)``: the shared data folder and whether every one of ``paths`` is in it.

    Looks in ``$WORKBENCH_DATA`` when set, else next to the repository (found from the package,
    so a copy of this folder works too), then at ``../shared/data`` from the working directory.
    Prints one line when data is missing.
    """
    repo = Path(workbench.__file__).resolve().parent.parent
    candidates = (repo.parent / "shared" / "data", Path("../shared/data").resolve())
    if os.environ.get("WORKBENCH_DATA"):
        candidates = (Path(os.environ["WORKBENCH_DATA"]),)
    data = next((p for p in candidates if p.is_dir()), candidates[0])
    missing = [p for p in paths if not (data / p).exists()]
    if missing:
        print(
            f"The benchmark data is not here ({data / missing[0]}): the cells below skip. "
            "Put the shared data folder next to the repository to run this notebook."
        )
    _skip_cells_needing_data(bool(missing))
    return data, not missing


def _skip_data_cell(lines: list[str]) -> list[str]:
    if lines and lines[0].strip() == NEEDS_DATA:
        return ['print("skipped: no data")\n']
    return lines


def _skip_cells_needing_data(skip: bool) -> None:
    """In a kernel, cells whose first line is :data:`NEEDS_DATA` print "skipped: no data" instead
    of running while ``skip`` holds (an IPython input transformer; nothing else changes)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - not in a kernel
        return
    shell = get_ipython()
    if shell is None:
        return
    transformers = shell.input_transformers_cleanup
    if _skip_data_cell in transformers:
        transformers.remove(_skip_data_cell)
    if skip:
        transformers.append(_skip_data_cell)


def rule_table(detections: dict[str, Any], *, entries: bool = False) -> pd.DataFrame:
    """Anomalous sessions (or entries, with ``entries=True``) by rule, one column per detector.

    A value of ``detections`` is a key-model ``Detection`` or a Series already counted by rule
    (e.g. :func:`workbench.detect.rules.report_counts_by_rule`). A total row is added.
    """
    cols = {}
    for name, d in detections.items():
        if isinstance(d, pd.Series):
            cols[name] = d
        else:
            cols[name] = entry_counts_by_rule(d) if entries else counts_by_rule(d)
    present = set().union(*(c.index for c in cols.values()))
    rows = [r for r in [*RULES, COUNT_VECTOR] if r in present]
    table = pd.DataFrame(cols).reindex(rows).fillna(0).astype(int)
    table.loc["total"] = table.sum()
    return table


def check(name: str, guess: Any, actual: Any, *, tolerance: float = 0.0) -> bool:
    """Print whether a prediction matched; ``guess`` None means "not answered yet"."""
    if guess is None:
        print(f"{name}: measured {actual!r} (write your prediction in the cell above first)")
        return False
    if isinstance(actual, int | float) and isinstance(guess, int | float):
        ok = abs(guess - actual) <= tolerance * max(1.0, abs(actual))
    else:
        ok = guess == actual
    print(f"{name}: you said {guess!r}, measured {actual!r}: {'right' if ok else 'not quite'}")
    return ok
