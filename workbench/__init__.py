"""DeepLog Workbench: the backing package.

Parsing raw logs into log keys and parameter vectors (:mod:`~workbench.logs.parser`,
:mod:`~workbench.logs.formats`, :mod:`~workbench.logs.sessions`), the DeepLog models (the log-key LSTM in
:mod:`~workbench.keys.model` with its top-g rule in :mod:`~workbench.keys.topg`; the per-key
parameter-value LSTMs in :mod:`~workbench.params.model` with the Gaussian thresholds of
:mod:`~workbench.params.thresholds`), baselines (:mod:`~workbench.keys.baselines`), online update from feedback
(:mod:`~workbench.feedback.stream`, the journal in :mod:`~workbench.feedback.journal`), workflow construction and
diagnosis (:mod:`~workbench.workflow.cooccurrence`, :mod:`~workbench.workflow.from_keymodel`, :mod:`~workbench.workflow.diagnosis`),
the built-in log simulator (:mod:`~workbench.simulate.engine`), and the front object
:class:`~workbench.workbench.Workbench` that ties them together and saves runs
(:mod:`~workbench.store.rundir`), with detection in :mod:`~workbench.detect.scoring` (one process,
chunks in :mod:`~workbench.detect.streaming`, a Dask cluster in :mod:`~workbench.detect.distributed`)
and feedback in :mod:`~workbench.flagging`. Everything here works on pandas DataFrames and plain arrays; the UI layer
(``widgets``) builds on it and is never imported from here.

``Workbench`` is imported on first use, so ``import workbench`` (and the command line) stays light.
"""

from typing import Any

from workbench.version import __version__

__all__ = ["Workbench", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Workbench":
        from workbench.workbench import Workbench

        return Workbench
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
