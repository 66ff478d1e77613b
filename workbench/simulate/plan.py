"""The simulated system before it is written: who runs what, when, and what may be logged.

:func:`draw_fleet` draws the instances and the task sequence of each (a random walk over power
states), :func:`draw_timeline` when every task starts and how long each of its steps takes,
:class:`Usage` the resources held at any moment, and :class:`Records` every line that may be logged
(instance steps, and the API and background lines) until the time-ordered merge.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from workbench.simulate import vocabulary as tpl
from workbench.simulate.config import SimulatorConfig
from workbench.simulate.draws import lognormal, uuids

__all__ = ["Fleet", "Records", "Timeline", "Usage", "draw_fleet", "draw_timeline"]


@dataclass(frozen=True)
class Fleet:
    """The instances, their ids and flavors, and the task sequence of each (``plans``); tasks are
    numbered over all instances in creation order (``task_type``, ``task_inst``, ``task_req``)."""

    arrivals: np.ndarray  # boot time of each instance, seconds since the start
    flavors: np.ndarray  # (memory MB, disk GB, vcpus) per instance
    uuids: list[str]
    user: str
    tenant: str
    service_tenant: str
    event_req: str  # the compute service's lifecycle-event request id
    plans: list[list[str]]
    task_type: list[str]
    task_inst: np.ndarray  # the instance of each task
    task_req: list[str]  # the request id of each task
    first_task: np.ndarray  # the first task of each instance

    @property
    def n(self) -> int:
        return len(self.plans)

    @property
    def n_tasks(self) -> int:
        return len(self.task_type)


def draw_fleet(cfg: SimulatorConfig, rng: np.random.Generator) -> Fleet:
    """The instances of ``cfg`` (Poisson arrivals) and their task sequences."""
    n = cfg.n_instances
    arrivals = 2.0 + np.cumsum(rng.exponential(cfg.arrival_interval, n))
    flavors = np.asarray(tpl.FLAVORS)[rng.choice(len(tpl.FLAVORS), n, p=tpl.FLAVOR_WEIGHTS)]
    ids = uuids(rng, n)
    user, tenant, service_tenant = (u.replace("-", "") for u in uuids(rng, 3))
    event_req = uuids(rng, 1)[0]
    plans = _plans(cfg, rng)
    task_type = [t for plan in plans for t in plan]
    task_inst = np.repeat(np.arange(n), [len(p) for p in plans])
    task_req = uuids(rng, len(task_type))
    first_task = np.concatenate([[0], np.cumsum([len(p) for p in plans])[:-1]])
    return Fleet(arrivals, flavors, ids, user, tenant, service_tenant, event_req, plans,
                 task_type, task_inst, task_req, first_task)  # fmt: skip


def _plans(cfg: SimulatorConfig, rng: np.random.Generator) -> list[list[str]]:
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


@dataclass(frozen=True)
class Timeline:
    """When each task starts and each instance ends; per task type, each step's offset from the
    start of each of its occurrences (``by_type[t]`` the tasks of type t, ``pos_in_type`` a task's
    position among them)."""

    by_type: dict[str, np.ndarray]
    pos_in_type: np.ndarray
    offsets: dict[str, dict[str, np.ndarray]]
    start: np.ndarray  # per task
    ends: np.ndarray  # per instance: when its last task is done


def draw_timeline(
    cfg: SimulatorConfig, rng: np.random.Generator, fleet: Fleet, slow_tasks: set[int]
) -> Timeline:
    """Step delays (vectorised over the tasks of one type; the throttled step of ``slow_tasks``
    ``cfg.slowdown`` times slower) and think times between the tasks of an instance."""
    type_arr = np.asarray(fleet.task_type)
    present = set(fleet.task_type)
    by_type = {t: np.flatnonzero(type_arr == t) for t in tpl.TASKS if t in present}
    pos_in_type = np.empty(fleet.n_tasks, dtype=np.int64)
    offsets: dict[str, dict[str, np.ndarray]] = {}
    duration = np.empty(fleet.n_tasks)
    for t, occ in by_type.items():
        pos_in_type[occ] = np.arange(len(occ))
        slow = np.isin(occ, list(slow_tasks))
        off: dict[str, np.ndarray] = {}
        for s in tpl.TASKS[t]:
            delay = lognormal(rng, s.median, s.sigma, len(occ))
            if s.event == cfg.throttled[1]:
                delay = np.where(slow, delay * cfg.slowdown, delay)
            base = np.max([off[p] for p in s.parents], axis=0) if s.parents else 0.0
            off[s.event] = base + delay
        offsets[t] = off
        duration[occ] = np.max(list(off.values()), axis=0)
    think = lognormal(rng, cfg.think_time, 0.5, fleet.n_tasks)
    start = np.empty(fleet.n_tasks)
    ends = np.empty(fleet.n)
    for i in range(fleet.n):
        clock = fleet.arrivals[i]
        for ti in range(fleet.first_task[i], fleet.first_task[i] + len(fleet.plans[i])):
            start[ti] = clock
            clock += duration[ti] + think[ti]
        ends[i] = clock - think[ti]
    return Timeline(by_type, pos_in_type, offsets, start, ends)


class Usage:
    """Resources in use at given times: the flavors of the instances alive then."""

    def __init__(self, fleet: Fleet, ends: np.ndarray) -> None:
        end_order = np.argsort(ends, kind="stable")
        self.arrivals = fleet.arrivals
        self.ends_sorted = ends[end_order]
        self.cum_start = np.vstack([np.zeros(3), np.cumsum(fleet.flavors, axis=0)])
        self.cum_end = np.vstack([np.zeros(3), np.cumsum(fleet.flavors[end_order], axis=0)])

    def __call__(self, t: np.ndarray, strict: bool) -> tuple[np.ndarray, np.ndarray]:
        """(memory, disk, vcpus) in use at each time of ``t``, and the number of live instances;
        ``strict`` leaves out an instance that boots at that very time."""
        started = np.searchsorted(self.arrivals, t, side="left" if strict else "right")
        ended = np.searchsorted(self.ends_sorted, t, side="right")
        return self.cum_start[started] - self.cum_end[ended], started - ended


class Records:
    """Every line that may be logged, collected before the time-ordered merge.

    Instance records (one per logged step of each task) are numbered 0, 1, ... and rendered from
    their step (``step``), task (``task``) and reported duration (``value``); an anomaly may hide
    one (``emit``) and labels them (``anomaly``, ``detail``). Extra records (API and background
    lines, already rendered) are referred to as -1, -2, ...
    """

    def __init__(self, timeline: Timeline) -> None:
        self.t: list[np.ndarray] = []  # seconds since the start, per block of instance records
        self.ref: list[np.ndarray] = []
        self.extra_t: list[float] = []
        self.extras: list[tuple[str, str, str, str, str, str]] = []
        self.pos_in_type = timeline.pos_in_type
        self.base: dict[str, int] = {}  # the first record of each step
        task, step, value = [], [], []
        n_rec = 0
        for t, occ in timeline.by_type.items():
            t0, off = timeline.start[occ], timeline.offsets[t]
            ms = {e: np.round((t0 + o) * 1000).astype(np.int64) for e, o in off.items()}
            for s in tpl.TASKS[t]:
                if s.thread == tpl.HIDDEN:
                    continue
                self.base[s.event] = n_rec
                self.t.append(t0 + off[s.event])
                self.ref.append(np.arange(n_rec, n_rec + len(occ)))
                task.append(occ)
                step.append(np.full(len(occ), tpl.STEP_ID[s.event]))
                no_took = np.full(len(occ), np.nan)
                value.append((ms[s.event] - ms[s.took_from]) / 1000 if s.took_from else no_took)
                n_rec += len(occ)
        self.task = np.concatenate(task)
        self.step = np.concatenate(step)
        self.value = np.concatenate(value)
        self.emit = np.ones(n_rec, dtype=bool)
        self.anomaly = np.full(n_rec, None, dtype=object)
        self.detail = np.full(n_rec, None, dtype=object)

    def rec(self, ti: int, event: str) -> int:
        """The record of step ``event`` in task ``ti``."""
        return self.base[event] + int(self.pos_in_type[ti])

    def mark(self, r: int, kind: str, detail: str) -> None:
        self.anomaly[r], self.detail[r] = kind, detail

    def extra(self, t: float, service: str, level: str, comp: str, addr: str, text: str, ev: str):
        self.extra_t.append(float(t))
        self.extras.append((service, level, comp, addr, text, ev))

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """Times and references of all records."""
        t = np.concatenate([*self.t, np.asarray(self.extra_t, dtype=float)])
        ref = np.concatenate([*self.ref, -1 - np.arange(len(self.extras))])
        return t, ref
