"""DeepLog Workbench: the backing package.

Parsing raw logs into log keys and parameter vectors (:mod:`~workbench.parsing`,
:mod:`~workbench.formats`, :mod:`~workbench.sessions`), the DeepLog models (the log-key LSTM in
:mod:`~workbench.keymodel` with its top-g rule in :mod:`~workbench.detection`; the per-key
parameter-value LSTMs in :mod:`~workbench.parammodel` with the Gaussian thresholds of
:mod:`~workbench.thresholds`), baselines (:mod:`~workbench.baselines`), online update from feedback
(:mod:`~workbench.online`, the journal in :mod:`~workbench.journal`), workflow construction and
diagnosis (:mod:`~workbench.workflow`, :mod:`~workbench.workflow_model`, :mod:`~workbench.diagnosis`),
the built-in log simulator (:mod:`~workbench.simulator`), and the front object
:class:`~workbench.workbench.Workbench` that ties them together and saves runs
(:mod:`~workbench.runs`). Everything here works on pandas DataFrames and plain arrays; the UI layer
(``widgets``) builds on it and is never imported from here.

``Workbench`` is imported on first use, so ``import workbench`` (and the command line) stays light.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Workbench", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Workbench":
        from workbench.workbench import Workbench

        return Workbench
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
