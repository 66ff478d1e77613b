"""Writes the demo notebooks (clean, no outputs) from the cell sources below.

Run from the repository root: ``python notebooks/make_notebooks.py``. Edit the cells here, not the
.ipynb files, so the notebooks stay reviewable as plain Python.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

DATA_GUARD = """\
from pathlib import Path

DATA = Path("../shared/data")
HAVE_DATA = {paths}
if not HAVE_DATA:
    print(f"The benchmark data is not here ({{DATA.resolve()}}): the cells below skip. "
          "Put the shared data folder next to the repository to run this notebook.")
"""


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"))


def guard(paths: list[str]) -> nbformat.NotebookNode:
    checks = " and ".join(f'(DATA / "{p}").exists()' for p in paths)
    return code(DATA_GUARD.format(paths=checks))


def skip(body: str) -> nbformat.NotebookNode:
    """A cell that runs ``body`` only when the data is there, and says so otherwise."""
    indented = "\n".join(("    " + line) if line.strip() else "" for line in body.strip("\n").split("\n"))
    return code(f'if not HAVE_DATA:\n    print("skipped: no data")\nelse:\n{indented}')


# --------------------------------------------------------------------------- 00 quick start
QUICKSTART = [
    md("""
# DeepLog Workbench: quick start

DeepLog (Du, Li, Zheng, Srikumar, CCS 2017) learns what *normal* logs look like and flags what
departs from it, in two ways:

* the **log-key model**: an LSTM reads the recent log keys (the constant part of each message) and
  predicts the next one; a key outside the top *g* predictions is an execution-path anomaly;
* the **parameter-value models**: one LSTM per key predicts the next vector of values (the time
  since the previous entry and the message's numbers); a prediction error (MSE) outside a
  confidence interval of the validation errors is a performance anomaly.

This notebook runs the whole loop on **simulated OpenStack logs** (no data download, about a minute
on a laptop CPU): simulate, train, detect, review, flag a false positive, diagnose, plot, and finally
the interactive app.
"""),
    md("""
## 1. Simulate a cloud

`Workbench.from_simulation` writes a *normal* training log (VM instances created, paused, stopped,
deleted ...) and a second, unseen test log with planted anomalies: **performance** (a slow
transition, e.g. a throttled network during VM creation), **execution** (a missing or extra step) and
**parameter** (an odd value). The test log's ground truth is kept in `wb.test_labels`.
"""),
    code("""
import time

import pandas as pd

from workbench import Workbench
from workbench.keymodel import KeyModelConfig
from workbench.parammodel import ParamModelConfig

pd.set_option("display.max_colwidth", 90)
START = time.perf_counter()

wb = Workbench.from_simulation(
    n_instances=200,          # training VMs (normal behaviour only)
    test_instances=100,       # test VMs, some with anomalies
    anomalies={"performance": 0.05, "execution": 0.05, "parameter": 0.03},
    seed=7,
    # smaller than the paper's defaults so the demo trains in seconds on a CPU
    key_config=KeyModelConfig(top_g="auto", hidden_size=32, max_epochs=12, patience=3),
    param_config=ParamModelConfig(max_epochs=4, hidden_size=16),
)
print(wb.summary())
wb.entries[["line", "session", "key", "template"]].head(8)
"""),
    md("""
## 2. Train both models

`fit` trains the key model (choosing *g* on held-out normal sessions), one parameter model per key
with numbers, and builds the workflows. The callback receives one event per epoch.
"""),
    code("""
def progress(event):
    if event["event"] == "epoch" and event["stage"] == "key":
        val = event.get("val_loss")
        val = "" if val is None else f", validation {val:.3f}"
        print(f"key model epoch {event['epoch']}/{event['epochs']}: loss {event['train_loss']:.3f}{val}")
    elif event["event"] == "done" and event["stage"] == "param":
        print("parameter models trained")

wb.fit(callbacks=[progress])
print(f"trained in {wb.fit_seconds_:.1f} s; top-g rule with g = {wb.key_model.g_}")
"""),
    md("""
## 3. Detect and review

Each row of the review table is one anomalous entry: its kind (`key`, `unknown key`, `session end`
or `parameter`), its key and, for parameter anomalies, the MSE and the threshold it crossed.
"""),
    code("""
report = wb.detect()
review = report.anomalies
print(f"{len(review)} anomalous entries in {review['session'].nunique()} sessions "
      f"(detection took {report.seconds:.1f} s)")
review[["id", "session", "kind", "key", "template", "rank", "mse", "threshold", "status"]].head(12)
"""),
    md("""
How does that compare with the ground truth? A VM instance counts as detected when at least one of
its entries is reported.
"""),
    code("""
labels = wb.test_labels
bad_instances = set(labels.loc[labels["anomaly"].notna(), "instance"].dropna())
flagged = set(review["session"].dropna())
print(f"planted anomalous instances: {len(bad_instances)}, "
      f"detected: {len(bad_instances & flagged)}, "
      f"flagged but normal: {len(flagged - bad_instances)}")
labels[labels["anomaly"].notna()].groupby("anomaly")["instance"].nunique().rename("instances")
"""),
    md("""
## 4. Flag a false positive

We pick a reported entry whose VM instance is **not** anomalous in the ground truth (or an API line
that belongs to no instance and carries no planted anomaly): the model was wrong there. Flagging it
updates the model online with that example as normal (a few gradient steps, journaled as a new model
version) and scores the log again; `changed` lists the anomalies whose verdict changed.
"""),
    code("""
line_anomaly = labels.set_index("line")["anomaly"]

def truly_normal(row):
    planted = line_anomaly.get(row["line"])
    return pd.isna(planted) and row["session"] not in bad_instances

candidates = review[review.apply(truly_normal, axis=1)]
print(f"{len(candidates)} reported entries are normal in the ground truth")
# prefer an entry of a VM instance (a false alarm about a real VM) over an API line
candidates = candidates.sort_values("session", key=lambda s: s.isna(), kind="stable")
fp = candidates.iloc[0] if len(candidates) else review.iloc[0]
print(f"flagging anomaly {fp['id']} ({fp['kind']}): {fp['raw'][:110]}")
before = set(review["id"])
result = wb.flag_false_positive(int(fp["id"]))
after = wb.detect().anomalies
print(f"update: model version {result.version}, {result.seconds:.2f} s; "
      f"verdict changed for {len(result.changed)} anomalies: {sorted(result.changed)[:10]}")
print(f"anomalies before: {len(before)}, after: {len(after)}")
now = after.set_index("id")
if fp["id"] in now.index:
    row = now.loc[fp["id"]]
    print(f"anomaly {fp['id']} is now marked {row['status']!r}; MSE {fp['mse']:.3g} -> {row['mse']:.3g} "
          f"(threshold {row['threshold']:.3g})" if pd.notna(fp["mse"]) else f"now {row['status']!r}")
else:
    print(f"anomaly {fp['id']} is normal now")
"""),
    md("""
One example moves the model only a little (a few gradient steps): an entry far above its threshold
may stay reported, marked *false positive* so the review does not show it as open again; entries
just above the line become normal, and similar entries elsewhere in the log can change with it.
"""),
    md("""
## 5. Diagnose a parameter anomaly

For a performance anomaly the diagnosis names the workflow, the step, and the **slow transition**:
the pair of log keys whose elapsed time was out of its usual range.
"""),
    code("""
report = wb.report
templates = wb.entries.drop_duplicates("key").set_index("key")["template"]
vm_started = next(k for k in wb.param_keys() if "VM Started" in str(templates.get(k, "")))
params = report.anomalies[report.anomalies["kind"] == "parameter"]
diagnoses = {int(i): wb.diagnose(int(i)) for i in params["id"]}
# the paper's case: a VM whose "VM Started" came late because one transition was slow
slow = [i for i, d in diagnoses.items() if d.slow_edge is not None and d.key == vm_started]
slow = slow or [i for i, d in diagnoses.items() if d.slow_edge is not None]
chosen = slow[0] if slow else next(iter(diagnoses))
diagnosis = diagnoses[chosen]
print(f"anomaly {chosen}:")
print(diagnosis.sentence)
if diagnosis.slow_edge:
    u, v = diagnosis.slow_edge
    print(f"slow transition: key {u} ({templates[u]}) -> key {v} ({templates[v]})")
truth = labels.loc[labels["instance"] == diagnosis.session, "anomaly_detail"].dropna()
print("ground truth:", truth.iloc[0] if len(truth) else "none planted")
"""),
    md("""
## 6. The MSE plot of the "VM Started" key

Every dot is one entry of the key (in order); the horizontal lines are the 98 %, 99 % and 99.9 %
confidence-interval thresholds of the validation MSEs. Dots above the chosen line are anomalous.
"""),
    code("""
from widgets.figures import mse_figure

series = wb.mse_series(vm_started)
levels = [0.98, 0.99, 0.999]
fig = mse_figure(series, levels, set(levels), title=f"MSE of key {vm_started}: {templates[vm_started]}")
fig.show()
"""),
    md("""
## 7. The VM-creation workflow, with the slow transition

The workflow is built from the training log (method 2 of the paper: tasks separated by their
keys, then an automaton per task). The diagnosed anomaly's path is highlighted and its slow
transition drawn in its own colour.
"""),
    code("""
from widgets.figures import workflow_figure
from workbench.workflow import layered_layout

graphs = wb.workflows(method=2)
graph = next((g for g in graphs if g.graph.get("task") == diagnosis.task), graphs[0])
path = list(diagnosis.path_nodes)
edges = [(u, v) for u, v in zip(path, path[1:]) if graph.has_edge(u, v)]
workflow_figure(graph, layered_layout(graph), path, edges, diagnosis.slow_edge).show()
"""),
    md("""
## 8. The interactive app

The same workbench in the app: **Review anomalies** lists the rows (click one to see its diagnosis,
"false positive" to teach the model), **MSE plot** toggles the threshold lines and selects an entry
on click, **Workflow graph** shows node and edge details on click. **Train** retrains with other
settings; **Load logs** starts over with your own log.
"""),
    code("""
from widgets import WorkbenchApp

print(f"everything above took {time.perf_counter() - START:.0f} s")
app = WorkbenchApp(wb)
app.tabs.selected_index = 2  # Review anomalies
app
"""),
]

NOTEBOOKS = {"00_quickstart.ipynb": QUICKSTART}


def build(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating gives a clean diff
    return nb


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nbformat.write(build(cells), HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
