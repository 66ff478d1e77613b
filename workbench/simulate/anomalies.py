"""Which instances are anomalous, and how each anomaly changes the records of its lines.

The anomalies draw from their own random stream, so the same seed without anomalies gives the same
system. A performance anomaly slows the throttled transition (when the timeline is drawn) and is
labelled here; a parameter anomaly changes one reported duration; an execution anomaly hides a
step, replaces the file cleanup by an error, or swaps two steps.
"""

from __future__ import annotations

import numpy as np

from workbench.simulate import vocabulary as tpl
from workbench.simulate.config import ANOMALY_KINDS, SimulatorConfig
from workbench.simulate.plan import Fleet, Records
from workbench.simulate.truth import ancestors, task_workflows

__all__ = ["choose", "inject", "label_missing"]

Missing = list[tuple[int, int, str]]  # (record of the missing step, instance, detail)


def choose(
    cfg: SimulatorConfig, rng: np.random.Generator, fleet: Fleet
) -> tuple[dict[int, str], set[int]]:
    """The kind of each anomalous instance, and the tasks whose throttled transition is slow.

    Instances among the first ``cfg.normal_head`` stay normal; a performance anomaly needs the
    throttled task in the instance's lifecycle.
    """
    counts = cfg.anomaly_counts()
    pool = rng.permutation(np.arange(cfg._head(), fleet.n))
    throttled_task = tpl.TASK_OF[cfg.throttled[1]]
    kind_of: dict[int, str] = {}
    for kind in ANOMALY_KINDS:
        if kind == "performance":
            has = np.array([throttled_task in fleet.plans[i] for i in pool], dtype=bool)
            chosen = pool[has][: counts[kind]]
            if len(chosen) < counts[kind]:
                raise ValueError(f"only {len(chosen)} instances run task {throttled_task!r}")
        else:
            chosen = pool[: counts[kind]]
        pool = np.setdiff1d(pool, chosen, assume_unique=True)
        pool = rng.permutation(pool)
        kind_of.update((int(i), kind) for i in chosen)
    slow_tasks = {
        int(fleet.first_task[i] + fleet.plans[i].index(throttled_task))
        for i, k in kind_of.items()
        if k == "performance"
    }
    return kind_of, slow_tasks


def _slow_lines(cfg: SimulatorConfig) -> list[str]:
    """The lines where a slow (a -> b) shows: b itself (or, if b prints nothing, the first lines
    after it) and the "Took" lines whose span contains the transition."""
    a, b = cfg.throttled
    steps_of = {s.event: s for s in tpl.STEPS}
    task_steps = tpl.TASKS[tpl.TASK_OF[b]]
    anc = {s.event: ancestors(task_steps, s.event) for s in task_steps}
    shown = [e for e in task_workflows()[tpl.TASK_OF[b]].events if e == b or b in anc[e]]
    return [e for e in shown if not any(z in anc[e] for z in shown)] + [
        e for e in shown if steps_of[e].took_from and steps_of[e].took_from in anc[a] | {a}
    ]


def inject(
    cfg: SimulatorConfig,
    rng: np.random.Generator,
    fleet: Fleet,
    records: Records,
    kind_of: dict[int, str],
) -> tuple[dict[int, str], Missing]:
    """Change and label the records of every anomalous instance; returns the detail of each and
    the missing steps (labelled after the merge by :func:`label_missing`)."""
    detail_of: dict[int, str] = {}
    missing: Missing = []
    slow_lines = _slow_lines(cfg)
    a, b = cfg.throttled
    for i, kind in sorted(kind_of.items()):
        first, plan = int(fleet.first_task[i]), fleet.plans[i]
        create, delete = first, first + len(plan) - 1
        if kind == "performance":
            ti = int(fleet.first_task[i] + plan.index(tpl.TASK_OF[b]))
            detail = f"slow transition {a} -> {b}"
            for e in slow_lines:
                records.mark(records.rec(ti, e), kind, detail)
        elif kind == "parameter":
            detail = _parameter(cfg, rng, records, create, delete)
        else:
            detail = _execution(cfg, rng, records, create, delete, i, missing)
        detail_of[i] = detail
    return detail_of, missing


def _parameter(
    cfg: SimulatorConfig, rng: np.random.Generator, records: Records, create: int, delete: int
) -> str:
    """One reported duration far out of range; every timestamp stays as it was."""
    event = tpl.PARAMETER_CANDIDATES[rng.integers(len(tpl.PARAMETER_CANDIDATES))]
    r = records.rec(create if event.startswith("create.") else delete, event)
    true = records.value[r]
    records.value[r] = round(true * rng.uniform(*cfg.parameter_factor), 2)
    detail = f"parameter {event}: reported {records.value[r]:.2f} s, true {true:.2f} s"
    records.mark(r, "parameter", detail)
    return detail


def _execution(
    cfg: SimulatorConfig,
    rng: np.random.Generator,
    records: Records,
    create: int,
    delete: int,
    instance: int,
    missing: Missing,
) -> str:
    """A missing step, an error during cleanup, or two steps logged out of order."""
    sub = cfg.execution_kinds[rng.integers(len(cfg.execution_kinds))]
    if sub == "missing":
        event = tpl.MISSING_CANDIDATES[rng.integers(len(tpl.MISSING_CANDIDATES))]
        r = records.rec(create if event.startswith("create.") else delete, event)
        records.emit[r] = False
        detail = f"missing {event}"
        missing.append((r, instance, detail))
    elif sub == "cleanup_error":
        r = records.rec(delete, "delete.files")
        records.step[r] = tpl.STEP_ID[tpl.CLEANUP_ERROR.event]
        records.emit[records.rec(delete, "delete.files_complete")] = False
        detail = "cleanup error delete.cleanup_error after delete.destroyed"
        records.mark(r, "execution", detail)
    else:
        first, second = tpl.SWAP_CANDIDATES[rng.integers(len(tpl.SWAP_CANDIDATES))]
        ti = create if first.startswith("create.") else delete
        r1, r2 = records.rec(ti, first), records.rec(ti, second)
        records.step[[r1, r2]] = records.step[[r2, r1]]
        records.value[[r1, r2]] = records.value[[r2, r1]]
        detail = f"out of order {second} before {first}"
        records.mark(r1, "execution", detail)
        records.mark(r2, "execution", detail)
    return detail


def label_missing(records: Records, fleet: Fleet, ref_sorted: np.ndarray, missing: Missing) -> None:
    """Label the line that comes where each missing step should have been (the instance's next
    logged line after it in time order)."""
    for r, i, detail in missing:
        p = int(np.flatnonzero(ref_sorted == r)[0])
        for q in ref_sorted[p + 1 :]:
            if q >= 0 and records.emit[q] and fleet.task_inst[records.task[q]] == i:
                records.mark(int(q), "execution", detail)
                break
