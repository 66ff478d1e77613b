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
# # BGL: online update from false-positive feedback, and who did the work
#
# **Reads `../shared/data/bgl/BGL_20k.log.gz`** (the first 20,000 lines of Blue Gene/L, one label per
# line); without it every cell below prints a message and does nothing.
#
# The paper's protocol (as `bench/bgl_online.py`): BGL is one chronological stream. The parser and the
# key model learn from the **first 1 %** of the entries, and again from the **first 10 %**; detection
# runs entry by entry over the rest, once without feedback and once with an operator who reviews every
# alarm and reports each false positive as it happens (the model takes a few gradient steps on it; a
# message never seen in training first teaches the parser its template). g and the probability floor
# are chosen on held-out pieces of the training part only. The paper reports that the update raises
# precision a lot while recall stays near 1.
#
# Beside the LSTM: the **whitelist**, no model at all. An entry is an alarm when its message template
# was never seen; when the operator says it is normal, the template joins the whitelist. Every alarm
# is a review the operator must make; every false one they report is a **flag**.

# %%
from teaching import MODEL_COLOURS, check, find_data, rule_table, setup

setup()
DATA, HAVE_DATA = find_data("bgl/BGL_20k.log.gz")

# %%
# needs the shared data
import copy
import logging
import time

import numpy as np
import pandas as pd

from workbench import keyids
from workbench.detect.rules import counts_by_rule
from workbench.eval.metrics import confusion
from workbench.feedback.stream import learn_unknown_with, split_stream, stream_detect
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.logs.reading import read_lines

# far more distinct messages follow a 1 % head than there are spare key slots: the model warns once
# per message that stays unknown; we count them below instead
logging.getLogger("workbench.keys.model").setLevel(logging.ERROR)
LINES = [x.text for x in read_lines(DATA / "bgl" / "BGL_20k.log.gz")]
CONFIG = KeyModelConfig(top_g="auto", spare_keys=512, max_epochs=30, encoding="embedding")
RUNS = ("LSTM, no feedback", "LSTM, online update", "whitelist, learns on feedback")


def whitelist_stream(keys, train_keys, abnormal, learn):
    """Alarm on a template never seen; learn it when the operator says it is normal."""
    keys, known = keys.copy(), set(int(k) for k in train_keys)
    flagged = np.zeros(len(keys), bool)
    for i in range(len(keys)):
        if keys[i] == keyids.UNKNOWN or int(keys[i]) not in known:
            flagged[i] = True
            if not abnormal[i]:  # the operator says: normal, learn it
                new = learn(i, keys) if keys[i] == keyids.UNKNOWN else int(keys[i])
                if new:
                    known.add(int(new))
    return flagged


def reasons(result):
    """One rule per flagged stream entry (a stream has no sessions, so no session-end rule)."""
    rule = np.where(result.rank > result.g, "key not in top-g", "key below probability floor")
    return np.where(~result.flagged, "", np.where(result.unknown, "unknown key", rule))


def run_protocol(fraction):
    """Train on the first ``fraction`` of the stream, detect on the rest three ways."""
    split = split_stream(LINES, "bgl", fraction)
    abnormal, raw = split.abnormal, split.test["raw"].tolist()
    whitelist_parser = copy.deepcopy(split.parser)  # the whitelist learns templates on its own copy
    t0 = time.perf_counter()
    model = KeyModel(CONFIG).fit(split.pieces, seed=0, validation_fraction=0.2)
    state = model.to_state()
    stream = split.test["key"].to_numpy()
    plain = stream_detect(model, stream.copy(), context=split.train_keys)
    online = stream_detect(KeyModel.from_state(state), stream.copy(), context=split.train_keys,
                           oracle=lambda i: bool(abnormal[i]),
                           resolve_unknown=learn_unknown_with(split.parser, raw), replay=split.pieces)
    wl = whitelist_stream(stream, split.train_keys, abnormal, learn_unknown_with(whitelist_parser, raw))
    print(f"{fraction:.0%}: train {len(split.train)} entries, test {len(stream)} "
          f"({int(abnormal.sum())} abnormal); g = {model.g_}; {time.perf_counter() - t0:.0f} s")
    why = {RUNS[0]: reasons(plain), RUNS[1]: reasons(online), RUNS[2]: np.where(wl, "unknown key", "")}
    return {"abnormal": abnormal, "why": why, "flags": {n: w != "" for n, w in why.items()},
            "updates": online.updates}


results = {0.01: run_protocol(0.01)}  # the paper's 1 % (each split in its own cell: minutes each)

# %%
# needs the shared data
results[0.10] = run_protocol(0.10)

# %% [markdown]
# ### Predict before you run (1)
#
# With feedback, the operator reviews every alarm and flags every false one. Trained on the first
# 1 % (200 lines), how many flags do you think the operator makes over the remaining 19,800 entries
# with the **online LSTM**: about 10, 100 or 1,000?

# %%
guess_flags_1pct = None  # e.g. 100

# %%
# needs the shared data
rows = []
for fraction, r in results.items():
    abnormal = r["abnormal"]
    for name, f in r["flags"].items():
        c = confusion(f[~abnormal], f[abnormal])
        rows.append({"training": f"{fraction:.0%}", "run": name, "reviews (alarms)": int(f.sum()),
                     "flags (false positives reported)": c.fp if "no feedback" not in name else 0,
                     "tp": c.tp, "fp": c.fp, "fn": c.fn, "precision": c.precision,
                     "recall": c.recall, "f1": c.f1})
table = pd.DataFrame(rows).set_index(["training", "run"]).round(4)
flags_1pct = int(table.loc[("1%", RUNS[1]), "flags (false positives reported)"])
check("flags with the online LSTM, 1 % training", guess_flags_1pct, flags_1pct, tolerance=0.5)
table

# %% [markdown]
# ## Which rule fired
#
# Every alarm of the stream by the rule behind it, for each training split, split into true alarms
# (abnormal lines) and false alarms (normal lines).

# %%
# needs the shared data
by_rule = {}
for fraction, r in results.items():
    abnormal = r["abnormal"]
    for kind, mask in (("true alarms", abnormal), ("false alarms", ~abnormal)):
        t = rule_table({n: counts_by_rule(w[mask]) for n, w in r["why"].items()})
        t.index = pd.MultiIndex.from_product([[f"{fraction:.0%}"], [kind], t.index])
        by_rule[(fraction, kind)] = t
rules = pd.concat(by_rule.values())
rules

# %% [markdown]
# ### Predict before you run (2)
#
# Which of the three runs do you expect to make the fewest false alarms over the whole stream with
# 10 % training?

# %%
guess_fewest = None  # "LSTM, no feedback", "LSTM, online update" or "whitelist, learns on feedback"

# %%
# needs the shared data
from plotly.subplots import make_subplots

colours = {RUNS[0]: MODEL_COLOURS["DeepLog"], RUNS[1]: MODEL_COLOURS["DeepLog + session counts"],
           RUNS[2]: MODEL_COLOURS["whitelist"]}
fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                    subplot_titles=[f"trained on {f:.0%}" for f in results])
for col, (fraction, r) in enumerate(results.items(), start=1):
    abnormal = r["abnormal"]
    x = np.arange(len(abnormal))
    for name, f in r["flags"].items():
        y = np.cumsum(f & ~abnormal)
        step = max(1, len(x) // 400)  # a few hundred points per line keep the notebook small
        fig.add_scatter(x=x[::step].tolist() + [int(x[-1])], y=y[::step].tolist() + [int(y[-1])],
                        name=name, mode="lines", legendgroup=name, showlegend=col == 1,
                        line={"color": colours[name], "width": 3}, row=1, col=col)
    fig.update_xaxes(title_text="test entry", row=1, col=col)
fig.update_yaxes(type="log")
fig.update_yaxes(title_text="false alarms so far (log)", row=1, col=1)
fig.update_layout(title="BGL 20k: cumulative false alarms along the stream", height=520,
                  legend={"orientation": "h", "y": -0.2, "yanchor": "top"}, margin={"b": 130})
fp10 = {n: int((f & ~results[0.10]["abnormal"]).sum()) for n, f in results[0.10]["flags"].items()}
check("fewest false alarms, 10 %", guess_fewest, min(fp10, key=fp10.get))
fig.show()

# %% [markdown]
# ### What did the work
#
# The sentence below is computed from the tables above, not written in advance.

# %%
# needs the shared data
for fraction, r in results.items():
    abnormal, why = r["abnormal"], r["why"]
    lstm_tp = {n: int(((why[n] != "") & (why[n] != "unknown key") & abnormal).sum()) for n in RUNS[:2]}
    fp = {n: int((r["flags"][n] & ~abnormal).sum()) for n in RUNS}
    tp = {n: int((r["flags"][n] & abnormal).sum()) for n in RUNS}
    print(f"{fraction:.0%} training: of the online LSTM's {tp[RUNS[1]]} true alarms, "
          f"{lstm_tp[RUNS[1]]} come from the LSTM's ranking (top-g or floor), the rest from the "
          f"unknown-key rule; feedback took false alarms from {fp[RUNS[0]]} to {fp[RUNS[1]]} "
          f"({r['updates']} updates); the whitelist makes {fp[RUNS[2]]} false alarms and "
          f"catches {tp[RUNS[2]]} of {int(abnormal.sum())} abnormal lines.")

# %% [markdown]
# Honestly (figures of this run, seed 0; `bench/bgl_online.py` trains longer and prints its own):
#
# * **Without feedback** the LSTM is unusable on BGL: about 7,000 false alarms either way, almost all
#   from the unknown-key rule (a message never seen in the short training head).
# * **Trained on 1 %**, feedback takes the false alarms from about 7,000 to about 700. Whether the
#   LSTM's ranking also earns its place stands on a knife edge: once a new template is learned from a
#   false positive, the LSTM may or may not rank the *abnormal* lines of that template outside the
#   top g. Over model seeds 0-4 (`bench/bgl_spread.py`), the ranking added about 700 true alarms
#   (recall about 0.99, as the paper reports) on four seeds and about 90 (recall 0.57) on one, and on
#   an earlier version moving a single weight by one float step after training flipped the outcome:
#   the online updates amplify any rounding. A figure that moves this much is one to measure over several
#   seeds before trusting it: read the table above, not this sentence. The price is the operator's
#   time: some 700 flags, because the top-g rule also flags
#   the normal lines of each freshly learned template until the model has seen it often enough. The
#   whitelist needs only 175 flags but catches half the abnormal lines (every abnormal line whose
#   template was first seen on a normal line slips by).
# * **Trained on 10 %**, the top-g rule adds only a few dozen true alarms over the unknown-key rule,
#   for several hundred false ones; the whitelist, with no model at all, has the best F1 and needs
#   about half the reviews and a fifth of the flags. On this stream the unknown-key rule
#   does most of the work, and the LSTM only pays when training is very short and the operator
#   can afford many reviews.
