"""A simulated OpenStack-like cloud that writes nova logs with ground truth: the built-in demo data.

The simulated system
--------------------
One compute node runs many virtual machines. Users boot instances at random times (a Poisson
process), so the lifecycles of many instances overlap and their log lines interleave in one
time-ordered file, exactly as in a real ``nova-*.log`` merge. Each instance lives through a
sequence of *tasks*: ``create``, then zero or more of ``pause``/``unpause``, ``suspend``/``resume``,
``stop``/``start`` and ``reboot``, then ``delete`` (always last).

A task is a small graph of steps (see :mod:`workbench.simulate.vocabulary`). Booting, for instance,
claims resources, then creates the image while the network is allocated concurrently (either line
may come first), copies the image from the controller to the compute node (the slow step), launches
the domain paused, waits for neutron to plug the port, and resumes it while the driver reports
"spawned" (again in either order). Every step waits a lognormal delay after its parents, and every
"Took X seconds to ..." message reports exactly the time its steps took, so the numbers agree with
the timestamps. Periodic background work of the node (image cache, resource tracker, power-state
sync, scheduler sync) and API polling are mixed in as noise that belongs to no instance.

Anomalies (each affects one instance, which is labelled with its kind and a detail):

* ``performance``: the network from controller to compute node is throttled, so ONE transition (by
  default the image copy ``create.image -> create.vm_started``) is ``slowdown`` times slower; the
  "Took X seconds to spawn/build" lines grow with it.
* ``execution``: a step is missing, an error occurs during cleanup after the instance was destroyed,
  or two steps are logged out of order.
* ``parameter``: a reported duration is far out of range while every timestamp stays as it was.

The per-line labels mark where each anomaly becomes visible (the slow step's line and the Took lines
spanning it; the line that follows a missing step; the error line; both swapped lines; the line with
the wrong number). Simulation is deterministic by seed; the anomaly draws use their own random
stream, so the same seed with ``anomalies={}`` gives the same system without the injected faults
(a parameter anomaly changes only the number on its line).

Choices where real nova differs: one compute node; a delete emits the same lines whatever the power
state; API lines that mention an instance only in a URL are labelled as background (they carry no
``[instance: ...]`` tag, so a session grouping by that tag does not see them).

Examples
--------
>>> log = simulate(n_instances=3, anomalies={}, noise=0.0, api_lines=False, seed=1)
>>> print(log.lines[0][:62])
nova-compute.log.1.2017-05-16_00:00:00 2017-05-16 00:00:15.712
>>> log.labels.loc[0, ["task", "event"]].tolist()
['create', 'create.claim']
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from workbench.simulate import vocabulary as tpl

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_ANOMALIES",
    "EXECUTION_KINDS",
    "SimulatedLog",
    "SimulatorConfig",
    "TaskWorkflow",
    "add_simulate_command",
    "simulate",
    "task_workflows",
    "transitions",
]

ANOMALY_KINDS = ("performance", "execution", "parameter")
EXECUTION_KINDS = ("missing", "cleanup_error", "out_of_order")
DEFAULT_ANOMALIES = MappingProxyType({"performance": 0.05, "execution": 0.03, "parameter": 0.02})

# Every step of every task, plus the cleanup error, indexed once at import.
_STEPS: list[tpl.Step] = [s for steps in tpl.TASKS.values() for s in steps] + [tpl.CLEANUP_ERROR]
_STEP_ID = {s.event: i for i, s in enumerate(_STEPS)}
_TASK_OF = {s.event: s.event.split(".", 1)[0] for s in _STEPS}


def transitions() -> list[tuple[str, str]]:
    """Return every (parent, step) pair whose delay can be throttled, as event names.

    Examples
    --------
    >>> ("create.image", "create.vm_started") in transitions()
    True
    """
    return [(p, s.event) for steps in tpl.TASKS.values() for s in steps for p in s.parents]


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes a simulated log; validated on construction.

    ``anomalies`` maps a kind of :data:`ANOMALY_KINDS` to a rate in [0, 1] (a float: that fraction
    of the instances, rounded) or a count (an int). Anomalous instances are distinct; those among
    the first ``normal_head`` fraction (by creation time) stay normal, so one file can hold a clean
    training prefix.

    Examples
    --------
    >>> SimulatorConfig(n_instances=50, anomalies={"performance": 0.1}).anomaly_counts()
    {'performance': 5, 'execution': 0, 'parameter': 0}
    >>> SimulatorConfig(anomalies={"slow": 0.1})
    Traceback (most recent call last):
    ...
    ValueError: unknown anomaly kind 'slow'; expected one of performance, execution, parameter
    """

    n_instances: int = 1000  # VM lifecycles to simulate
    anomalies: Mapping[str, float | int] = field(default_factory=lambda: dict(DEFAULT_ANOMALIES))
    seed: int = 0
    noise: float = (
        1.0  # rate multiplier of background lines (API polling, periodic tasks); 0 = none
    )
    api_lines: bool = True  # API lines of each operation (POST /servers, DELETE, external events)
    arrival_interval: float = 5.0  # mean seconds between two boots (Poisson arrivals)
    think_time: float = 8.0  # median seconds between two tasks of one instance
    operation_probability: float = 0.6  # chance of one more operation before delete
    max_operations: int = 6  # operations between create and delete, at most
    throttled: tuple[str, str] = ("create.image", "create.vm_started")  # the performance transition
    slowdown: float = 4.0  # how many times slower the throttled transition is
    parameter_factor: tuple[float, float] = (8.0, 30.0)  # reported duration x uniform(lo, hi)
    execution_kinds: tuple[str, ...] = EXECUTION_KINDS  # drawn uniformly per execution anomaly
    normal_head: float = 0.0  # fraction of the first instances kept free of anomalies
    start: str = "2017-05-16 00:00:00"  # time of the first line's day, "YYYY-MM-DD HH:MM:SS"

    def __post_init__(self) -> None:
        if isinstance(self.n_instances, bool) or not isinstance(self.n_instances, int | np.integer):
            raise ValueError(f"n_instances must be an int, got {self.n_instances!r}")
        if self.n_instances <= 0:
            raise ValueError(f"n_instances must be > 0, got {self.n_instances}")
        if not isinstance(self.anomalies, Mapping):
            raise ValueError(f"anomalies must be a mapping kind -> rate, got {self.anomalies!r}")
        for kind, value in self.anomalies.items():
            if kind not in ANOMALY_KINDS:
                raise ValueError(
                    f"unknown anomaly kind {kind!r}; expected one of {', '.join(ANOMALY_KINDS)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"anomaly {kind} must be a rate or a count, got {value!r}")
            if isinstance(value, float | np.floating) and not 0.0 <= value <= 1.0:
                raise ValueError(f"anomaly rate of {kind} must be in [0, 1], got {value}")
            if value < 0:
                raise ValueError(f"anomaly count of {kind} must be >= 0, got {value}")
        object.__setattr__(self, "anomalies", MappingProxyType(dict(self.anomalies)))
        for name in ("arrival_interval", "think_time", "slowdown"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if not 0.0 <= self.operation_probability < 1.0:
            raise ValueError(
                f"operation_probability must be in [0, 1), got {self.operation_probability}"
            )
        if self.max_operations < 0:
            raise ValueError(f"max_operations must be >= 0, got {self.max_operations}")
        if not 0.0 <= self.normal_head < 1.0:
            raise ValueError(f"normal_head must be in [0, 1), got {self.normal_head}")
        object.__setattr__(self, "throttled", tuple(self.throttled))
        if self.throttled not in transitions():
            raise ValueError(
                f"throttled must be a (parent, step) pair of event names such as "
                f"('create.image', 'create.vm_started'); got {self.throttled!r}"
            )
        lo, hi = self.parameter_factor
        if not 1.0 < lo <= hi:
            raise ValueError(
                f"parameter_factor must satisfy 1 < lo <= hi, got {self.parameter_factor}"
            )
        object.__setattr__(self, "execution_kinds", tuple(self.execution_kinds))
        bad = set(self.execution_kinds) - set(EXECUTION_KINDS) or not self.execution_kinds
        if bad:
            raise ValueError(f"execution_kinds must be a non-empty subset of {EXECUTION_KINDS}")
        try:
            np.datetime64(self.start.replace(" ", "T"), "ms")
        except ValueError:
            raise ValueError(
                f"start must look like 'YYYY-MM-DD HH:MM:SS', got {self.start!r}"
            ) from None
        total = sum(self.anomaly_counts().values())
        eligible = self.n_instances - self._head()
        if total > eligible:
            raise ValueError(
                f"{total} anomalous instances requested but only {eligible} can be anomalous "
                f"(n_instances={self.n_instances}, normal_head={self.normal_head})"
            )

    def _head(self) -> int:
        return int(np.ceil(self.normal_head * self.n_instances))

    def anomaly_counts(self) -> dict[str, int]:
        """Number of anomalous instances per kind (a rate is rounded to the nearest count)."""
        counts = {}
        for kind in ANOMALY_KINDS:
            value = self.anomalies.get(kind, 0)
            is_rate = isinstance(value, float | np.floating)
            counts[kind] = round(value * self.n_instances) if is_rate else int(value)
        return counts

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulatorConfig:
        """Build a config from a plain dict (e.g. read from JSON); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SimulatorConfig keys: {', '.join(unknown)}")
        return cls(**data)


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


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    h = rng.bytes(16 * n).hex()
    return [
        f"{h[k : k + 8]}-{h[k + 8 : k + 12]}-4{h[k + 13 : k + 16]}-"
        f"{'89ab'[int(h[k + 16], 16) & 3]}{h[k + 17 : k + 20]}-{h[k + 20 : k + 32]}"
        for k in range(0, 32 * n, 32)
    ]


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(size))


def _plan(cfg: SimulatorConfig, rng: np.random.Generator) -> list[list[str]]:
    """The task sequence of every instance: create, a random walk over power states, delete."""
    names = list(tpl.OPERATION_WEIGHTS)
    cum = np.cumsum([tpl.OPERATION_WEIGHTS[k] for k in names]) / sum(tpl.OPERATION_WEIGHTS.values())
    after = {t: s for ops in tpl.OPERATIONS.values() for t, s in ops}
    plans = []
    for _ in range(cfg.n_instances):
        plan, state = ["create"], "active"
        while len(plan) <= cfg.max_operations and rng.random() < cfg.operation_probability:
            if state == "active":
                task = names[min(bisect.bisect(cum, rng.random()), len(names) - 1)]
            else:
                task = tpl.OPERATIONS[state][0][0]
            plan.append(task)
            state = after[task]
        plan.append("delete")
        plans.append(plan)
    return plans


class _Builder:
    """Collects records (one per potential line) and renders them after the time-ordered merge.

    Instance records are numbered 0, 1, ... and rendered from their step; extra records (API and
    background lines, already rendered) are referred to as -1, -2, ...
    """

    def __init__(self) -> None:
        self.t: list[np.ndarray] = []  # seconds since the start, per block of instance records
        self.ref: list[np.ndarray] = []
        self.extra_t: list[float] = []
        self.extras: list[tuple[str, str, str, str, str, str]] = []

    def extra(self, t: float, service: str, level: str, comp: str, addr: str, text: str, ev: str):
        self.extra_t.append(float(t))
        self.extras.append((service, level, comp, addr, text, ev))

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """Times and references of all records."""
        t = np.concatenate([*self.t, np.asarray(self.extra_t, dtype=float)])
        ref = np.concatenate([*self.ref, -1 - np.arange(len(self.extras))])
        return t, ref


def simulate(config: SimulatorConfig | None = None, /, **overrides: Any) -> SimulatedLog:
    """Simulate an OpenStack-like cloud and return its log with ground-truth labels.

    Parameters
    ----------
    config : SimulatorConfig, optional
        The settings; keyword arguments override its fields (or build one from the defaults).
    **overrides
        Fields of :class:`SimulatorConfig`, e.g. ``n_instances=200, anomalies={}, seed=0``.

    Returns
    -------
    SimulatedLog

    Examples
    --------
    >>> log = simulate(n_instances=40, anomalies={"performance": 2, "parameter": 1}, seed=3)
    >>> log.summary()["anomalies"]
    {'performance': 2, 'execution': 0, 'parameter': 1}
    >>> log.instances.loc[log.instances["anomaly"] == "performance", "detail"].iloc[0]
    'slow transition create.image -> create.vm_started'
    >>> simulate(n_instances=40, seed=3).lines == simulate(n_instances=40, seed=3).lines
    True
    """
    cfg = dataclasses.replace(config, **overrides) if config else SimulatorConfig(**overrides)
    plan_rng, time_rng, noise_rng, anomaly_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4)
    )
    n = cfg.n_instances
    arrivals = 2.0 + np.cumsum(plan_rng.exponential(cfg.arrival_interval, n))
    flavors = np.asarray(tpl.FLAVORS)[plan_rng.choice(len(tpl.FLAVORS), n, p=tpl.FLAVOR_WEIGHTS)]
    uuids = _uuids(plan_rng, n)
    user, tenant, service_tenant = (u.replace("-", "") for u in _uuids(plan_rng, 3))
    event_req = _uuids(plan_rng, 1)[0]
    plans = _plan(cfg, plan_rng)
    task_type = [t for plan in plans for t in plan]
    task_inst = np.repeat(np.arange(n), [len(p) for p in plans])
    n_tasks = len(task_type)
    task_req = _uuids(plan_rng, n_tasks)
    first_task = np.concatenate([[0], np.cumsum([len(p) for p in plans])[:-1]])

    # --- which instances are anomalous (own random stream, so the base system stays the same)
    counts = cfg.anomaly_counts()
    pool = anomaly_rng.permutation(np.arange(cfg._head(), n))
    kind_of: dict[int, str] = {}
    for kind in ANOMALY_KINDS:
        throttled_task = _TASK_OF[cfg.throttled[1]]
        if kind == "performance":  # needs the throttled task in its lifecycle
            has = np.array([throttled_task in plans[i] for i in pool], dtype=bool)
            chosen = pool[has][: counts[kind]]
            if len(chosen) < counts[kind]:
                raise ValueError(f"only {len(chosen)} instances run task {throttled_task!r}")
        else:
            chosen = pool[: counts[kind]]
        pool = np.setdiff1d(pool, chosen, assume_unique=True)
        pool = anomaly_rng.permutation(pool)
        kind_of.update((int(i), kind) for i in chosen)
    perf_tasks = {
        int(first_task[i] + plans[i].index(_TASK_OF[cfg.throttled[1]]))
        for i, k in kind_of.items()
        if k == "performance"
    }

    # --- timing: per task type, each step's offset from the task start, vectorised over tasks
    type_arr = np.asarray(task_type)
    by_type = {t: np.flatnonzero(type_arr == t) for t in tpl.TASKS if t in set(task_type)}
    pos_in_type = np.empty(n_tasks, dtype=np.int64)
    offsets: dict[str, dict[str, np.ndarray]] = {}
    duration = np.empty(n_tasks)
    for t, occ in by_type.items():
        pos_in_type[occ] = np.arange(len(occ))
        slow = np.isin(occ, list(perf_tasks))
        off: dict[str, np.ndarray] = {}
        for s in tpl.TASKS[t]:
            delay = _lognormal(time_rng, s.median, s.sigma, len(occ))
            if s.event == cfg.throttled[1]:
                delay = np.where(slow, delay * cfg.slowdown, delay)
            base = np.max([off[p] for p in s.parents], axis=0) if s.parents else 0.0
            off[s.event] = base + delay
        offsets[t] = off
        duration[occ] = np.max(list(off.values()), axis=0)
    think = _lognormal(time_rng, cfg.think_time, 0.5, n_tasks)
    start = np.empty(n_tasks)
    ends = np.empty(n)
    for i in range(n):
        clock = arrivals[i]
        for ti in range(first_task[i], first_task[i] + len(plans[i])):
            start[ti] = clock
            clock += duration[ti] + think[ti]
        ends[i] = clock - think[ti]

    # --- resources in use when each instance claims (the instances alive at that moment)
    end_order = np.argsort(ends, kind="stable")
    ends_sorted = ends[end_order]
    cum_start = np.vstack([np.zeros(3), np.cumsum(flavors, axis=0)])
    cum_end = np.vstack([np.zeros(3), np.cumsum(flavors[end_order], axis=0)])

    def in_use(t: np.ndarray, strict: bool) -> np.ndarray:
        started = np.searchsorted(arrivals, t, side="left" if strict else "right")
        ended = np.searchsorted(ends_sorted, t, side="right")
        return cum_start[started] - cum_end[ended], started - ended

    used, _ = in_use(arrivals, strict=True)
    limit = tpl.HOST["total_mem"] * tpl.HOST["mem_ratio"]
    fields = [
        {
            "mem": int(flavors[i, 0]),
            "disk": int(flavors[i, 1]),
            "vcpus": int(flavors[i, 2]),
            "used_mem": tpl.HOST["reserved_mem"] + used[i, 0],
            "mem_limit": limit,
            "free_mem": limit - tpl.HOST["reserved_mem"] - used[i, 0],
            "used_disk": used[i, 1],
            "used_vcpu": used[i, 2],
            "uuid": uuids[i],
            **tpl.HOST,
        }
        for i in range(n)
    ]

    # --- instance records: for each task type, each logged step, each occurrence
    b = _Builder()
    rec_task, rec_step, rec_value, rec_base = [], [], [], {}
    n_rec = 0
    for t, occ in by_type.items():
        t0, off = start[occ], offsets[t]
        ms = {e: np.round((t0 + o) * 1000).astype(np.int64) for e, o in off.items()}
        for s in tpl.TASKS[t]:
            if s.thread == tpl.HIDDEN:
                continue
            rec_base[s.event] = n_rec
            b.t.append(t0 + off[s.event])
            b.ref.append(np.arange(n_rec, n_rec + len(occ)))
            rec_task.append(occ)
            rec_step.append(np.full(len(occ), _STEP_ID[s.event]))
            took = (
                (ms[s.event] - ms[s.took_from]) / 1000 if s.took_from else np.full(len(occ), np.nan)
            )
            rec_value.append(took)
            n_rec += len(occ)
    rec_task = np.concatenate(rec_task)
    rec_step = np.concatenate(rec_step)
    rec_value = np.concatenate(rec_value)
    rec_emit = np.ones(n_rec, dtype=bool)
    rec_anomaly = np.full(n_rec, None, dtype=object)
    rec_detail = np.full(n_rec, None, dtype=object)

    def rec(ti: int, event: str) -> int:
        return rec_base[event] + int(pos_in_type[ti])

    def mark(r: int, kind: str, detail: str) -> None:
        rec_anomaly[r], rec_detail[r] = kind, detail

    # --- inject anomalies into the records
    detail_of: dict[int, str] = {}
    missing: list[tuple[int, int, str]] = []  # (record, instance, detail)
    wf = task_workflows()
    a, bb = cfg.throttled
    steps_of = {s.event: s for s in _STEPS}
    # the lines where a slow (a -> bb) shows: bb itself (or, if bb prints nothing, the first lines
    # after it) and the "Took" lines whose span contains the transition
    task_steps = tpl.TASKS[_TASK_OF[bb]]
    anc = {s.event: _ancestors(task_steps, s.event) for s in task_steps}
    shown = [e for e in wf[_TASK_OF[bb]].events if e == bb or bb in anc[e]]
    shown_slow = [e for e in shown if not any(z in anc[e] for z in shown)] + [
        e for e in shown if steps_of[e].took_from and steps_of[e].took_from in anc[a] | {a}
    ]
    for i, kind in sorted(kind_of.items()):
        create, delete = int(first_task[i]), int(first_task[i] + len(plans[i]) - 1)
        if kind == "performance":
            ti = int(first_task[i] + plans[i].index(_TASK_OF[bb]))
            detail = f"slow transition {a} -> {bb}"
            for e in shown_slow:
                mark(rec(ti, e), kind, detail)
        elif kind == "parameter":
            event = tpl.PARAMETER_CANDIDATES[anomaly_rng.integers(len(tpl.PARAMETER_CANDIDATES))]
            r = rec(create if event.startswith("create.") else delete, event)
            true = rec_value[r]
            rec_value[r] = round(true * anomaly_rng.uniform(*cfg.parameter_factor), 2)
            detail = f"parameter {event}: reported {rec_value[r]:.2f} s, true {true:.2f} s"
            mark(r, kind, detail)
        else:
            sub = cfg.execution_kinds[anomaly_rng.integers(len(cfg.execution_kinds))]
            if sub == "missing":
                event = tpl.MISSING_CANDIDATES[anomaly_rng.integers(len(tpl.MISSING_CANDIDATES))]
                r = rec(create if event.startswith("create.") else delete, event)
                rec_emit[r] = False
                detail = f"missing {event}"
                missing.append((r, i, detail))
            elif sub == "cleanup_error":
                r = rec(delete, "delete.files")
                rec_step[r] = _STEP_ID[tpl.CLEANUP_ERROR.event]
                rec_emit[rec(delete, "delete.files_complete")] = False
                detail = "cleanup error delete.cleanup_error after delete.destroyed"
                mark(r, kind, detail)
            else:
                first, second = tpl.SWAP_CANDIDATES[anomaly_rng.integers(len(tpl.SWAP_CANDIDATES))]
                ti = create if first.startswith("create.") else delete
                r1, r2 = rec(ti, first), rec(ti, second)
                rec_step[[r1, r2]] = rec_step[[r2, r1]]
                rec_value[[r1, r2]] = rec_value[[r2, r1]]
                detail = f"out of order {second} before {first}"
                mark(r1, kind, detail)
                mark(r2, kind, detail)
        detail_of[i] = detail

    # --- API lines of each operation and background noise (labelled as no instance)
    ip = "10.20.0.1"
    api = ("nova-api", "INFO", "nova.osapi_compute.wsgi.server")
    secs = _lognormal(noise_rng, 0.25, 0.2, 4 * n_tasks)
    if cfg.api_lines:
        user_ctx = f"{user} {tenant} - - -"
        for ti in range(n_tasks):
            t, i, req = task_type[ti], int(task_inst[ti]), task_req[ti]
            kw = {"ip": ip, "tenant": tenant, "uuid": uuids[i], "secs": secs[4 * ti]}
            addr = f"req-{req} {user_ctx}"
            if t == "create":
                b.extra(start[ti] - 1.2 * secs[4 * ti + 1] / 0.25, *api, addr,
                        tpl.API_CREATE.format(**kw), "api.create_server")  # fmt: skip
                kw["secs"] = secs[4 * ti + 2]
                b.extra(start[ti] + 0.3, *api, f"req-{task_req[ti - 1]} {user_ctx}",
                        tpl.API_SHOW.format(**kw), "api.show_server")  # fmt: skip
                vif = start[ti] + offsets[t]["create.vif_plugged"][pos_in_type[ti]] - 0.02
                ev_addr = f"req-{task_req[(ti + 7) % n_tasks]} {user} {service_tenant} - - -"
                kw.update(service_tenant=service_tenant, secs=secs[4 * ti + 3] / 3)
                b.extra(vif, *api, ev_addr, tpl.API_EVENTS.format(**kw), "api.external_events")
                b.extra(vif + 0.001, "nova-api-events", "INFO",
                        "nova.api.openstack.compute.server_external_events", ev_addr,
                        tpl.API_VIF.format(port=task_req[(ti + 3) % n_tasks], uuid=uuids[i]),
                        "api.vif_plugged")  # fmt: skip
            elif t == "delete":
                b.extra(
                    start[ti] - 0.04, *api, addr, tpl.API_DELETE.format(**kw), "api.delete_server"
                )
            else:
                b.extra(
                    start[ti] - 0.08, *api, addr, tpl.API_ACTION.format(**kw), "api.server_action"
                )
    horizon = float(ends.max()) + 10.0
    if cfg.noise > 0:
        _noise(cfg, b, noise_rng, horizon, ip, tenant, user, in_use)

    # --- merge in time order, render, label
    t_all, ref_all = b.merged()
    ms_all = np.round(t_all * 1000).astype(np.int64)
    order = np.lexsort((np.arange(len(ms_all)), ms_all))
    ref_sorted = ref_all[order]
    for r, i, detail in missing:  # label the line that comes where the missing step should have
        p = int(np.flatnonzero(ref_sorted == r)[0])
        for q in ref_sorted[p + 1 :]:
            if q >= 0 and rec_emit[q] and task_inst[rec_task[q]] == i:
                mark(int(q), "execution", detail)
                break
    keep = (ref_sorted < 0) | rec_emit[np.maximum(ref_sorted, 0)]
    order, ref_sorted = order[keep], ref_sorted[keep]
    day0 = np.datetime64(cfg.start.replace(" ", "T"), "ms")
    stamps = np.datetime_as_string(day0 + ms_all[order].astype("timedelta64[ms]"), unit="ms")
    stamp0 = str(day0.astype("datetime64[s]")).replace("T", "_")
    record = {
        "nova-compute": (f"nova-compute.log.1.{stamp0}", 2931),
        "nova-api": (f"nova-api.log.1.{stamp0}", 25746),
        "nova-scheduler": (f"nova-scheduler.log.1.{stamp0}", 25998),
        "nova-api-events": (f"nova-api.log.1.{stamp0}", 25743),
    }
    compute_file, compute_pid = record["nova-compute"]
    user_ctx = f"{user} {tenant} - - -"
    addr_of = {tpl.EVENT: f"req-{event_req} - - - - -", tpl.DRIVER: "-"}
    lines: list[str] = []
    col_inst, col_task, col_event, col_anom, col_detail = [], [], [], [], []
    steps_l, task_l, value_l = rec_step.tolist(), rec_task.tolist(), rec_value.tolist()
    inst_l, anom_l, detail_l = task_inst.tolist(), rec_anomaly.tolist(), rec_detail.tolist()
    for stamp, q in zip(stamps.tolist(), ref_sorted.tolist(), strict=True):
        ts = f"{stamp[:10]} {stamp[11:]}"
        if q >= 0:
            s = _STEPS[steps_l[q]]
            ti = task_l[q]
            i = inst_l[ti]
            text = (
                s.template.format(took=value_l[q], **fields[i]) if "{" in s.template else s.template
            )
            addr = addr_of.get(s.thread) or f"req-{task_req[ti]} {user_ctx}"
            lines.append(
                f"{compute_file} {ts} {compute_pid} {s.level} {s.component} [{addr}] "
                f"[instance: {uuids[i]}] {text}"
            )
            col_inst.append(uuids[i])
            col_task.append(task_type[ti])
            col_event.append(s.event)
            col_anom.append(anom_l[q])
            col_detail.append(detail_l[q])
        else:
            service, level, comp, addr, text, event = b.extras[-1 - q]
            logfile, pid = record[service]
            lines.append(f"{logfile} {ts} {pid} {level} {comp} [{addr}] {text}")
            col_inst.append(None)
            col_task.append(None)
            col_event.append(event)
            col_anom.append(None)
            col_detail.append(None)
    labels = pd.DataFrame(
        {
            "line": np.arange(1, len(lines) + 1),
            "instance": pd.Series(col_inst, dtype=object),
            "task": pd.Series(col_task, dtype=object),
            "event": pd.Series(col_event, dtype=object),
            "anomaly": pd.Series(col_anom, dtype=object),
            "anomaly_detail": pd.Series(col_detail, dtype=object),
        }
    )
    n_lines = labels["instance"].value_counts()
    instances = pd.DataFrame(
        {
            "instance": np.array(uuids, dtype=object),
            "anomaly": np.array([kind_of.get(i) for i in range(n)], dtype=object),
            "detail": np.array([detail_of.get(i) for i in range(n)], dtype=object),
            "tasks": np.array([" ".join(p) for p in plans], dtype=object),
            "n_lines": [int(n_lines.get(u, 0)) for u in uuids],
        }
    )
    return SimulatedLog(lines, labels, instances, MappingProxyType(wf), cfg)


def _ancestors(steps: tuple[tpl.Step, ...], event: str) -> set[str]:
    parents = {s.event: s.parents for s in steps}
    seen: set[str] = set()
    todo = list(parents[event])
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(parents[p])
    return seen


def _noise(
    cfg: SimulatorConfig,
    b: _Builder,
    rng: np.random.Generator,
    horizon: float,
    ip: str,
    tenant: str,
    user: str,
    in_use: Any,
) -> None:
    """Background lines: API polling (Poisson) and the periodic tasks of the node and scheduler."""
    host = "compute-1.sim.cloud"
    image, base = _uuids(rng, 1)[0], "/var/lib/nova/instances/_base/" + rng.bytes(20).hex()
    periodic_req = f"req-{_uuids(rng, 1)[0]} - - - - -"
    n_polls = rng.poisson(0.3 * cfg.noise * horizon)
    poll_t = np.sort(rng.uniform(0, horizon, n_polls))
    poll_secs = _lognormal(rng, 0.26, 0.15, n_polls)
    poll_size = rng.choice([1759, 1893, 2027, 2161], n_polls)
    poll_req = _uuids(rng, n_polls)
    api = ("nova-api", "INFO", "nova.osapi_compute.wsgi.server")
    for t, s, size, req in zip(poll_t, poll_secs, poll_size, poll_req, strict=True):
        text = tpl.API_LIST.format(ip=ip, tenant=tenant, size=size, secs=s)
        b.extra(t, *api, f"req-{req} {user} {tenant} - - -", text, "api.list_servers")
    groups = (
        (tpl.PERIODIC_IMAGECACHE, 40.0, "nova-compute"),
        (tpl.PERIODIC_TRACKER, 60.0, "nova-compute"),
        (tpl.PERIODIC_SCHEDULER, 120.0, "nova-scheduler"),
        (tpl.PERIODIC_POWER_SYNC, 600.0, "nova-compute"),
    )
    for group, period, service in groups:
        period = period / cfg.noise
        times = np.arange(rng.uniform(0, period), horizon, period)
        times = times + rng.uniform(0, 0.5, len(times))
        used, active = in_use(times, strict=False)
        for t, u, k in zip(times, used, active, strict=True):
            lines = group
            if group is tpl.PERIODIC_IMAGECACHE and k == 0:
                lines = tpl.PERIODIC_IMAGECACHE_IDLE[int(rng.integers(2)) :][:1]
            values = {
                "image": image,
                "base": base,
                "host": host,
                "active": int(k),
                "vcpus": int(u[2]),
                "used_mem": int(tpl.HOST["reserved_mem"] + u[0]),
                "used_disk": int(u[1]),
                **tpl.HOST,
            }
            for j, (event, comp, level, template) in enumerate(lines):
                req = (
                    f"req-{_uuids(rng, 1)[0]} - - - - -"
                    if service == "nova-scheduler"
                    else periodic_req
                )
                b.extra(t + 0.002 * j, service, level, comp, req, template.format(**values), event)


def _anomaly_spec(text: str) -> dict[str, float | int]:
    """Parse ``kind=rate,kind=count`` (or ``none``) for the command line."""
    if text.strip().lower() in ("", "none"):
        return {}
    spec: dict[str, float | int] = {}
    for item in text.split(","):
        kind, sep, value = item.partition("=")
        kind = kind.strip()
        if not sep or kind not in ANOMALY_KINDS:
            raise argparse.ArgumentTypeError(
                f"expected kind=rate items with kind in {', '.join(ANOMALY_KINDS)}, got {item!r}"
            )
        try:
            number: float | int = int(value) if value.strip().isdigit() else float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number in {item!r}") from None
        if number < 0 or (isinstance(number, float) and number > 1):
            raise argparse.ArgumentTypeError(f"a rate must be in [0, 1] (or a count), got {item!r}")
        spec[kind] = number
    return spec


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_simulate_command(subparsers: Any) -> None:
    """Register ``deeplog-workbench simulate --out FILE [--instances N] [--anomalies ...] ...``."""
    d = SimulatorConfig()
    p = subparsers.add_parser(
        "simulate",
        help="write a simulated OpenStack log with ground-truth labels",
        description="Simulate an OpenStack-like cloud; writes FILE, FILE.labels.csv and "
        "FILE.instances.csv.",
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="log file to write")
    p.add_argument("--instances", type=_positive_int, default=d.n_instances, metavar="N")
    default = ",".join(f"{k}={v}" for k, v in DEFAULT_ANOMALIES.items())
    p.add_argument(
        "--anomalies",
        type=_anomaly_spec,
        default=dict(DEFAULT_ANOMALIES),
        metavar="KIND=RATE,...",
        help=f"rates in [0, 1] or integer counts per kind, or 'none' (default {default})",
    )
    p.add_argument("--seed", type=int, default=d.seed, metavar="S")
    options = (
        ("--noise", _non_negative, d.noise, "X", "background line rate multiplier, 0 for none"),
        ("--slowdown", float, d.slowdown, "F", "factor of the throttled transition"),
        ("--throttle", str, "->".join(d.throttled), "A->B", "the throttled transition"),
        ("--normal-head", float, d.normal_head, "F", "fraction of first instances kept normal"),
    )
    for flag, kind, value, metavar, text in options:
        p.add_argument(
            flag, type=kind, default=value, metavar=metavar, help=f"{text} (default {value})"
        )

    def run(args: argparse.Namespace) -> int:
        try:
            cfg = SimulatorConfig(
                n_instances=args.instances,
                anomalies=args.anomalies,
                seed=args.seed,
                noise=args.noise,
                slowdown=args.slowdown,
                throttled=tuple(x.strip() for x in args.throttle.split("->")),
                normal_head=args.normal_head,
            )
        except ValueError as exc:
            p.error(str(exc))
        from workbench.store.files import check_output_file

        out = Path(args.out)
        for target in (out, out.with_name(out.name + ".labels.csv"),
                       out.with_name(out.name + ".instances.csv")):  # fmt: skip
            check_output_file(target)
        log = simulate(cfg)
        path = log.write(args.out)
        s = log.summary()
        kinds = ", ".join(f"{k} {v}" for k, v in s["anomalies"].items())
        print(
            f"wrote {s['lines']} lines of {s['instances']} instances to {path} "
            f"(anomalous instances: {kinds}); labels in {path.name}.labels.csv and "
            f"{path.name}.instances.csv"
        )
        return 0

    p.set_defaults(func=run)
