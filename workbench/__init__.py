"""DeepLog Workbench: the backing package.

Parsing raw logs into log keys and parameter vectors, grouping them into sessions, the DeepLog models
(the log-key LSTM and the per-key parameter-value LSTMs), online update from user feedback, workflow
construction for diagnosis, and a built-in log simulator. Everything here works on pandas DataFrames and
plain arrays; the UI layer (``widgets``) builds on it and is never imported from here.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
