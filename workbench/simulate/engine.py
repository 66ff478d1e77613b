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

from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from workbench.simulate import anomalies, background
from workbench.simulate import vocabulary as tpl
from workbench.simulate.config import SimulatorConfig
from workbench.simulate.plan import Fleet, Records, Usage, draw_fleet, draw_timeline
from workbench.simulate.truth import SimulatedLog, task_workflows

__all__ = ["simulate"]


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
    cfg = config.replace(**overrides) if config else SimulatorConfig(**overrides)
    plan_rng, time_rng, noise_rng, anomaly_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4)
    )
    fleet = draw_fleet(cfg, plan_rng)
    kind_of, slow_tasks = anomalies.choose(cfg, anomaly_rng, fleet)
    timeline = draw_timeline(cfg, time_rng, fleet, slow_tasks)
    usage = Usage(fleet, timeline.ends)
    records = Records(timeline)
    detail_of, missing = anomalies.inject(cfg, anomaly_rng, fleet, records, kind_of)
    background.add_api_lines(cfg, noise_rng, fleet, timeline, records)
    if cfg.noise > 0:
        horizon = float(timeline.ends.max()) + 10.0
        background.add_noise(cfg, noise_rng, fleet, records, horizon, usage)
    ms, refs = _merge(records, fleet, missing)
    lines, labels = _render(cfg, fleet, records, _claim_fields(fleet, usage), ms, refs)
    n_lines = labels["instance"].value_counts()
    instances = pd.DataFrame(
        {
            "instance": np.array(fleet.uuids, dtype=object),
            "anomaly": np.array([kind_of.get(i) for i in range(fleet.n)], dtype=object),
            "detail": np.array([detail_of.get(i) for i in range(fleet.n)], dtype=object),
            "tasks": np.array([" ".join(p) for p in fleet.plans], dtype=object),
            "n_lines": [int(n_lines.get(u, 0)) for u in fleet.uuids],
        }
    )
    return SimulatedLog(lines, labels, instances, MappingProxyType(task_workflows()), cfg)


def _claim_fields(fleet: Fleet, usage: Usage) -> list[dict[str, Any]]:
    """The values an instance's claim lines print: its flavor and what was in use when it booted."""
    used, _ = usage(fleet.arrivals, strict=True)
    limit = tpl.HOST["total_mem"] * tpl.HOST["mem_ratio"]
    return [
        {
            "mem": int(fleet.flavors[i, 0]),
            "disk": int(fleet.flavors[i, 1]),
            "vcpus": int(fleet.flavors[i, 2]),
            "used_mem": tpl.HOST["reserved_mem"] + used[i, 0],
            "mem_limit": limit,
            "free_mem": limit - tpl.HOST["reserved_mem"] - used[i, 0],
            "used_disk": used[i, 1],
            "used_vcpu": used[i, 2],
            "uuid": fleet.uuids[i],
            **tpl.HOST,
        }
        for i in range(fleet.n)
    ]


def _merge(
    records: Records, fleet: Fleet, missing: anomalies.Missing
) -> tuple[np.ndarray, np.ndarray]:
    """The logged records in time order (ties kept in record order): their times in ms and their
    references; a missing step's neighbour is labelled before the missing step is dropped."""
    t_all, ref_all = records.merged()
    ms_all = np.round(t_all * 1000).astype(np.int64)
    order = np.lexsort((np.arange(len(ms_all)), ms_all))
    ref_sorted = ref_all[order]
    anomalies.label_missing(records, fleet, ref_sorted, missing)
    keep = (ref_sorted < 0) | records.emit[np.maximum(ref_sorted, 0)]
    return ms_all[order[keep]], ref_sorted[keep]


def _render(
    cfg: SimulatorConfig,
    fleet: Fleet,
    records: Records,
    fields: list[dict[str, Any]],
    ms: np.ndarray,
    refs: np.ndarray,
) -> tuple[list[str], pd.DataFrame]:
    """The log lines (loghub OpenStack format) and one label row per line."""
    day0 = np.datetime64(cfg.start.replace(" ", "T"), "ms")
    stamps = np.datetime_as_string(day0 + ms.astype("timedelta64[ms]"), unit="ms")
    stamp0 = str(day0.astype("datetime64[s]")).replace("T", "_")
    record = {
        "nova-compute": (f"nova-compute.log.1.{stamp0}", 2931),
        "nova-api": (f"nova-api.log.1.{stamp0}", 25746),
        "nova-scheduler": (f"nova-scheduler.log.1.{stamp0}", 25998),
        "nova-api-events": (f"nova-api.log.1.{stamp0}", 25743),
    }
    compute_file, compute_pid = record["nova-compute"]
    user_ctx = f"{fleet.user} {fleet.tenant} - - -"
    addr_of = {tpl.EVENT: f"req-{fleet.event_req} - - - - -", tpl.DRIVER: "-"}
    lines: list[str] = []
    columns: list[tuple[Any, ...]] = []  # (instance, task, event, anomaly, detail) per line
    steps_l, task_l, value_l = records.step.tolist(), records.task.tolist(), records.value.tolist()
    inst_l, anom_l = fleet.task_inst.tolist(), records.anomaly.tolist()
    detail_l = records.detail.tolist()
    for stamp, q in zip(stamps.tolist(), refs.tolist(), strict=True):
        ts = f"{stamp[:10]} {stamp[11:]}"
        if q >= 0:
            s = tpl.STEPS[steps_l[q]]
            ti = task_l[q]
            i = inst_l[ti]
            text = (
                s.template.format(took=value_l[q], **fields[i]) if "{" in s.template else s.template
            )
            addr = addr_of.get(s.thread) or f"req-{fleet.task_req[ti]} {user_ctx}"
            lines.append(
                f"{compute_file} {ts} {compute_pid} {s.level} {s.component} [{addr}] "
                f"[instance: {fleet.uuids[i]}] {text}"
            )
            columns.append((fleet.uuids[i], fleet.task_type[ti], s.event, anom_l[q], detail_l[q]))
        else:
            service, level, comp, addr, text, event = records.extras[-1 - q]
            logfile, pid = record[service]
            lines.append(f"{logfile} {ts} {pid} {level} {comp} [{addr}] {text}")
            columns.append((None, None, event, None, None))
    return lines, _labels(columns)


def _labels(columns: list[tuple[Any, ...]]) -> pd.DataFrame:
    names = ("instance", "task", "event", "anomaly", "anomaly_detail")
    values = list(zip(*columns, strict=True)) if columns else [()] * len(names)
    return pd.DataFrame(
        {
            "line": np.arange(1, len(columns) + 1),
            **{n: pd.Series(list(v), dtype=object) for n, v in zip(names, values, strict=True)},
        }
    )
