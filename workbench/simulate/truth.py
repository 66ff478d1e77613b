"""The ground truth of a simulated log: the true workflow of every task and the labelled log.

:class:`TaskWorkflow` is what a mined workflow is scored against; :class:`SimulatedLog` is what
:func:`workbench.simulate.engine.simulate` returns: the lines, one label row per line, one row per
instance, and the task workflows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.simulate import vocabulary as tpl
from workbench.simulate.config import ANOMALY_KINDS, SimulatorConfig

__all__ = ["SimulatedLog", "TaskWorkflow", "ancestors", "task_workflows"]


@dataclass(frozen=True)
class TaskWorkflow:
    """The true workflow of one task, to score a mined workflow against.

    ``events`` are the logged event names in their expected order; ``edges`` every (a, b) such
    that b can directly follow a within the task, concurrent alternatives included; ``concurrent``
    the pairs that may be logged in either order.
    """

    name: str
    events: tuple[str, ...]
    edges: frozenset[tuple[str, str]]
    concurrent: frozenset[frozenset[str]]
    first: frozenset[str]
    last: frozenset[str]


def _workflow(name: str, steps: tuple[tpl.Step, ...]) -> TaskWorkflow:
    ancestors: dict[str, set[str]] = {}
    expected: dict[str, float] = {}
    for s in steps:
        ancestors[s.event] = set().union(*([{p} | ancestors[p] for p in s.parents] or [set()]))
        expected[s.event] = max((expected[p] for p in s.parents), default=0.0) + s.median
    logged = [s.event for s in steps if s.thread != tpl.HIDDEN]
    order = {e: i for i, e in enumerate(logged)}
    events = tuple(sorted(logged, key=lambda e: (expected[e], order[e])))

    def before(a: str, b: str) -> bool:
        return a in ancestors[b]

    edges = frozenset(
        (a, b)
        for a in logged
        for b in logged
        if a != b and not before(b, a) and not any(before(a, z) and before(z, b) for z in logged)
    )
    concurrent = frozenset(
        frozenset((a, b))
        for a in logged
        for b in logged
        if a < b and not before(a, b) and not before(b, a)
    )
    first = frozenset(e for e in logged if not any(z in ancestors[e] for z in logged))
    last = frozenset(e for e in logged if not any(e in ancestors[z] for z in logged))
    return TaskWorkflow(name, events, edges, concurrent, first, last)


def task_workflows() -> dict[str, TaskWorkflow]:
    """Return the true workflow of every simulated task.

    Examples
    --------
    >>> wf = task_workflows()["create"]
    >>> wf.events[:2], sorted(wf.first)
    (('create.claim', 'create.claim_memory'), ['create.claim'])
    >>> {("create.image", "create.network"), ("create.network", "create.image")} <= wf.edges
    True
    """
    return {name: _workflow(name, steps) for name, steps in tpl.TASKS.items()}


@dataclass(frozen=True)
class SimulatedLog:
    """A simulated log with its ground truth.

    ``lines`` are the log lines (loghub OpenStack format, time-ordered); ``labels`` has one row
    per line (``line`` 1-based, ``instance``, ``task``, ``event``, ``anomaly``,
    ``anomaly_detail``; missing values are None); ``instances`` one row per instance
    (``instance``, ``anomaly``, ``detail``, ``tasks``, ``n_lines``); ``tasks`` the true workflow
    of every task (see :class:`TaskWorkflow`).
    """

    lines: list[str]
    labels: pd.DataFrame
    instances: pd.DataFrame
    tasks: Mapping[str, TaskWorkflow]
    config: SimulatorConfig

    def summary(self) -> dict[str, Any]:
        """Counts for a one-line report: lines, instances and anomalous instances per kind."""
        kinds = self.instances["anomaly"].value_counts()
        return {
            "lines": len(self.lines),
            "instances": len(self.instances),
            "anomalies": {k: int(kinds.get(k, 0)) for k in ANOMALY_KINDS},
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the log to ``path`` and the labels beside it (``<path>.labels.csv``,
        ``<path>.instances.csv``), creating parent directories; each file is written, then
        renamed into place."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: f.write("\n".join(self.lines) + "\n"))
        labels = path.with_name(path.name + ".labels.csv")
        _atomic_write(labels, lambda f: self.labels.to_csv(f, index=False))
        instances = path.with_name(path.name + ".instances.csv")
        _atomic_write(instances, lambda f: self.instances.to_csv(f, index=False))
        return path


def _atomic_write(path: Path, fill: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        fill(f)
    os.replace(tmp, path)


def ancestors(steps: tuple[tpl.Step, ...], event: str) -> set[str]:
    """Every step that must happen before ``event`` within ``steps``."""
    parents = {s.event: s.parents for s in steps}
    seen: set[str] = set()
    todo = list(parents[event])
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(parents[p])
    return seen
