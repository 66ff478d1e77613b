# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DeepLog Workbench: quick start
#
# DeepLog (Du, Li, Zheng, Srikumar, CCS 2017) learns what *normal* logs look like and flags what
# departs from it, in two ways:
#
# * the **log-key model**: an LSTM reads the recent log keys (the constant part of each message) and
#   predicts the next one; a key outside the top *g* predictions is an execution-path anomaly;
# * the **parameter-value models**: one LSTM per key predicts the next vector of values (the time
#   since the previous entry and the message's numbers); a prediction error (MSE) outside a
#   confidence interval of the validation errors is a performance anomaly.
#
# This notebook runs the whole loop on **simulated OpenStack logs** (no data download, about a minute
# on a laptop CPU): simulate, train, detect, review, flag a false positive, diagnose, plot, and finally
# the interactive app.

# %% [markdown]
# ## 1. Simulate a cloud
#
# `Workbench.from_simulation` writes a *normal* training log (VM instances created, paused, stopped,
# deleted ...) and a second, unseen test log with planted anomalies: **performance** (a slow
# transition, e.g. a throttled network during VM creation), **execution** (a missing or extra step) and
# **parameter** (an odd value). The test log's ground truth is kept in `wb.test_labels`.

# %%
import time

import pandas as pd

from teaching import check, setup
from workbench import Workbench
from workbench.keys.model import KeyModelConfig
from workbench.params.config import ParamModelConfig

setup()  # one figure theme for every notebook; figures saved as plain plotly JSON
START = time.perf_counter()

wb = Workbench.from_simulation(
    n_instances=200,          # training VMs (normal behaviour only)
    test_instances=100,       # test VMs, some with anomalies
    anomalies={"performance": 0.05, "execution": 0.05, "parameter": 0.03},
    seed=7,
    # the recommended key model (h = 5, session counts, 3 averaged networks, g and a probability
    # floor chosen on held-out normal sessions), with small networks so it trains in seconds on a CPU
    key_config=KeyModelConfig.preset("recommended", hidden_size=32, max_epochs=12, patience=3),
    param_config=ParamModelConfig(max_epochs=4, hidden_size=16),
)
print(wb.summary())
wb.entries[["line", "session", "key", "template"]].head(8)


# %% [markdown]
# ## 2. Train both models
#
# `fit` trains the key model (choosing *g* on held-out normal sessions), one parameter model per key
# with numbers, and builds the workflows. The callback receives one event per epoch.

# %%
def progress(event):
    # the key model reports "batch_end", "epoch_end" and "train_end" per training phase;
    # the parameter models one "epoch" per epoch
    if event["event"] == "epoch_end" and event["stage"] == "key":
        val = event.get("val_loss")
        val = "" if val is None else f", validation {val:.3f}"
        print(f"key model ({event['phase']}) epoch {event['epoch']}/{event['epochs']}: "
              f"loss {event['train_loss']:.3f}{val}")
    elif event["event"] == "epoch" and event["stage"] == "param" and event["epoch"] == 1:
        print("parameter models training...")

wb.fit(callbacks=[progress])
km = wb.key_model
print(f"trained in {wb.fit_seconds_:.1f} s; top-g rule with g = {km.g_} of {len(km.vocab_.keys)} keys, "
      f"probability floor {km.min_probability_:g}, both chosen on held-out normal sessions")

# %% [markdown]
# **Why this rule?** The workbench tries every g, END limit and probability floor on normal sessions
# held out from training, and on made-up anomalies (training sessions cut short, with a step skipped,
# moved or added). It keeps the rule that catches the most made-up anomalies while flagging few of
# the held-out normal sessions. The Train view of the app shows the same table and sentence.

# %%
from workbench.detect.rules import rule_choice

choice = rule_choice(km.g_selection_)
print(choice["sentence"])
pd.DataFrame(choice["rows"]).set_index("setting").assign(
    value=lambda t: [f"{v:g}" for v in t["value"]],
    validation_fpr=lambda t: (100 * t["validation_fpr"]).round(2),
).rename(columns={"validation_fpr": "normal validation sessions flagged %"})

# %% [markdown]
# ## 3. Detect and review
#
# Each row of the review table is one anomalous entry: the rule that flagged it (below), its key
# and, for parameter anomalies, the MSE and the threshold it crossed.

# %% [markdown]
# ### Predict before you run (1)
#
# The review lists five kinds of rule: top-g, probability floor, session end, unknown key and
# parameter threshold. Which one do you expect to raise the **most** rows of the review on this log?

# %%
guess_top_rule = None  # "top-g", "probability floor", "session end", "unknown key" or "parameter threshold"

# %%
from workbench.detect.rules import report_rules

report = wb.detect()
review = report.anomalies.assign(rule=report_rules(report))  # which rule flagged each row
print(f"{len(review)} anomalous entries in {review['session'].nunique()} sessions "
      f"(detection took {report.seconds:.1f} s)")
review[["id", "session", "rule", "key", "template", "rank", "mse", "threshold", "status"]].head(12)

# %% [markdown]
# Which rule raised each of these? **top-g** (the key was not among the g most likely next keys),
# **probability floor** (in the top g but improbable), **session end** (the instance stopped where the
# model did not expect it), **unknown key** (a message never seen in training) or **parameter
# threshold** (the values' MSE crossed its confidence-interval line).

# %%
from workbench.detect.rules import report_counts_by_rule

by_rule = report_counts_by_rule(report)
check("the rule with the most rows", guess_top_rule, str(by_rule.idxmax()))
print(f"of {len(review)} anomalies: {by_rule['parameter threshold']} from the parameter threshold, "
      f"{by_rule['unknown key']} unknown keys, {by_rule['session end']} session ends, "
      f"{by_rule['probability floor']} below the floor and {by_rule['top-g']} from the top-g rule, "
      "DeepLog's central idea")
by_rule.to_frame("anomalies in the review")

# %% [markdown]
# How does that compare with the ground truth? A VM instance counts as detected when at least one of
# its entries is reported.

# %%
labels = wb.test_labels
bad_instances = set(labels.loc[labels["anomaly"].notna(), "instance"].dropna())
flagged = set(review["session"].dropna())
print(f"planted anomalous instances: {len(bad_instances)}, "
      f"detected: {len(bad_instances & flagged)}, "
      f"flagged but normal: {len(flagged - bad_instances)}")
labels[labels["anomaly"].notna()].groupby("anomaly")["instance"].nunique().rename("instances")

# %% [markdown]
# ## 4. Flag a false positive
#
# We pick a reported entry whose VM instance is **not** anomalous in the ground truth (or an API line
# that belongs to no instance and carries no planted anomaly): the model was wrong there. Flagging it
# updates the model online with that example as normal (a few gradient steps, journaled as a new model
# version) and scores the log again; `changed` lists the anomalies whose verdict changed.

# %% [markdown]
# ### Predict before you run (2)
#
# One flag teaches the model one example. After it, will the review hold **fewer** anomalies than
# before (other entries like it become normal too), the same number, or more?

# %%
guess_after_flag = None  # "fewer", "the same" or "more"

# %%
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
went = "fewer" if len(after) < len(before) else "more" if len(after) > len(before) else "the same"
check("the review after one flag", guess_after_flag, went)
now = after.set_index("id")
if fp["id"] in now.index:
    row = now.loc[fp["id"]]
    print(f"anomaly {fp['id']} is now marked {row['status']!r}; MSE {fp['mse']:.3g} -> {row['mse']:.3g} "
          f"(threshold {row['threshold']:.3g})" if pd.notna(fp["mse"]) else f"now {row['status']!r}")
else:
    print(f"anomaly {fp['id']} is normal now")

# %% [markdown]
# One example moves the model only a little (a few gradient steps): an entry far above its threshold
# may stay reported, marked *false positive* so the review does not show it as open again; entries
# just above the line become normal, and similar entries elsewhere in the log can change with it.

# %% [markdown]
# ## 5. Diagnose a parameter anomaly
#
# For a performance anomaly the diagnosis names the workflow, the step, and the **slow transition**:
# the pair of log keys whose elapsed time was out of its usual range.

# %%
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

# %% [markdown]
# ## 6. The MSE plot of the "VM Started" key
#
# Every dot is one entry of the key (in order); the horizontal lines are the 98 %, 99 % and 99.9 %
# confidence-interval thresholds of the validation MSEs. Dots above the chosen line are anomalous.

# %%
from widgets.figures import mse_figure

series = wb.mse_series(vm_started)
levels = [0.98, 0.99, 0.999]
fig = mse_figure(series, levels, set(levels), title=f"MSE of key {vm_started}: {templates[vm_started]}")
fig.show()

# %% [markdown]
# ## 7. The VM-creation workflow, with the slow transition
#
# The workflow is built from the training log (method 2 of the paper: tasks separated by their
# keys, then an automaton per task). The diagnosed anomaly's path is highlighted and its slow
# transition drawn in its own colour.

# %%
from widgets.graph_layout import dot_binary, dot_figure, dot_layout
from widgets.figures import workflow_figure, wrap_layout
from workbench.workflow.layout import layered_layout

graphs = wb.workflows(method=2)
graph = next((g for g in graphs if g.graph.get("task") == diagnosis.task), graphs[0])
path = list(diagnosis.path_nodes)
edges = [(u, v) for u, v in zip(path, path[1:]) if graph.has_edge(u, v)]
if dot_binary():  # graphviz: layered, one label per edge beside it
    dot_figure(graph, dot_layout(graph), path, edges, diagnosis.slow_edge).show()
else:
    workflow_figure(graph, wrap_layout(layered_layout(graph)), path, edges, diagnosis.slow_edge).show()

# %% [markdown]
# ## 8. What g does
#
# The key model ranks every possible next key. An entry is normal when the key that came is among
# the **top g** predictions; otherwise it is a *key* anomaly (the model did not expect it). A small g
# flags more entries, a large g fewer. The workbench chose g (and a probability floor: a key inside the
# top g but less likely than the floor is flagged too) on held-out normal sessions, never on this test
# log. Move the slider to see how many entries of this log the top-g rule alone would flag at each g;
# the floor, session ends and unknown keys add their own rows to the review.

# %% [markdown]
# ### Predict before you run (3)
#
# At **g = 1** only the single most likely next key counts as normal. How many entries of this log
# would the top-g rule alone flag then? (The slider in the next cell starts at the chosen g.)

# %%
guess_flagged_at_g1 = None  # a number of entries

# %%
import ipywidgets as W

ranks = wb.report.entries["key_rank"].dropna()

def flagged(g):
    n = int((ranks > g).sum())
    chosen = " (the chosen g)" if g == wb.key_model.g_ else ""
    print(f"g = {g}{chosen}: {n} of {len(ranks)} entries have their next key outside the top g")

check("entries flagged by top-g at g = 1", guess_flagged_at_g1, int((ranks > 1).sum()), tolerance=0.25)
W.interact(flagged, g=W.IntSlider(value=int(wb.key_model.g_), min=1, max=max(2, int(ranks.max())),
                                  description="g"));

# %% [markdown]
# ## 9. The interactive app
#
# The same workbench in the app: **Review anomalies** lists the rows (click one to see its diagnosis,
# "false positive" to teach the model), **MSE plot** toggles the threshold lines and selects an entry
# on click, **Workflow graph** shows node and edge details on click. **Train** retrains with other
# settings; **Load logs** starts over with your own log.

# %%
from widgets import WorkbenchApp

print(f"everything above took {time.perf_counter() - START:.0f} s")
app = WorkbenchApp(wb)
app.tabs.selected_index = 2  # Review anomalies
app
