"""DeepLog Workbench: the backing package.

Packages by concept, layered from the command line down (README "Layout"):
:mod:`workbench.logs` (raw lines to entries), :mod:`workbench.keys` (the log-key model, its top-g
rule and baselines), :mod:`workbench.params` (the parameter-value models and thresholds),
:mod:`workbench.workflow` (both workflow methods and diagnosis), :mod:`workbench.feedback` (the
journal), :mod:`workbench.detect` (scoring, reports, chunked and Dask detection),
:mod:`workbench.store` (the run directory), :mod:`workbench.eval`, :mod:`workbench.simulate` and
:mod:`workbench.cli`; :mod:`workbench.keyids`, :mod:`workbench.config` and :mod:`workbench.train`
are shared by all. The front object :class:`~workbench.workbench.Workbench` ties them together.
Everything here works on pandas DataFrames and plain arrays; the UI layer (``widgets``) builds on
it and is never imported from here.

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
