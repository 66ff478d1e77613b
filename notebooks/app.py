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

# %%
# DeepLog Workbench as an app (`make app` serves this notebook alone with Voila).
# It opens on simulated OpenStack logs and trains in the background (watch the Train tab);
# "Load logs" takes your own log.
from widgets import WorkbenchApp

app = WorkbenchApp.demo(200, key_config={"max_epochs": 12, "hidden_size": 32})
app
