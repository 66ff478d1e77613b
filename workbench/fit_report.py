"""What a training run cost and what it read: :class:`FitReport`, kept by ``Workbench.fit`` as
``fit_report_``.

Each stage of a fit (the key model, the parameter models, the workflows) records its wall-clock
and CPU seconds (user + system of the whole process) and what it used: how many sessions,
windows, vectors, and of how many, where a model reads a sample of a long log (the defaults of
:class:`~workbench.keys.config.KeyModelConfig` (``max_distinct_sessions``),
:class:`~workbench.params.config.ParamModelConfig` and
:class:`~workbench.workflow.cooccurrence.WorkflowConfig` say the caps). :meth:`FitReport.summary`
says it in one sentence, so nothing sampled goes unsaid.

>>> r = FitReport(lines=10)
>>> with r.stage("workflows", sessions=5):
...     pass
>>> r.note("workflows", sessions_used=5)
>>> sorted(r.to_dict()["stages"]["workflows"])
['cpu_seconds', 'seconds', 'sessions', 'sessions_used']
>>> r.summary()
'10 lines; workflows: 5 sessions'
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FitReport", "cpu_seconds", "key_model_used"]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class FitReport:
    """Per stage of one fit: ``seconds``, ``cpu_seconds`` and what it used (see the module)."""

    lines: int = 0  # entries of the training log
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str, **used: Any) -> Iterator[dict[str, Any]]:
        """Time the body as stage ``name`` (its record is yielded, ``used`` already in it)."""
        record = self.stages.setdefault(name, {})
        record.update(used)
        t, c = time.perf_counter(), cpu_seconds()
        try:
            yield record
        finally:
            record["seconds"] = round(time.perf_counter() - t, 3)
            record["cpu_seconds"] = round(cpu_seconds() - c, 3)

    def note(self, name: str, **used: Any) -> None:
        """Add what stage ``name`` used."""
        self.stages.setdefault(name, {}).update(used)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: ``lines`` and ``stages`` (numpy numbers as Python numbers)."""
        stages = {k: {f: _plain(x) for f, x in v.items()} for k, v in self.stages.items()}
        return {"lines": int(self.lines), "stages": stages}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitReport:
        """The inverse of :meth:`to_dict` (a saved run's ``fit_report``)."""
        stages = {str(k): dict(v) for k, v in data.get("stages", {}).items()}
        return cls(lines=int(data.get("lines", 0)), stages=stages)

    def summary(self) -> str:
        """One sentence: what each stage read, with the share a sample kept."""
        parts = [f"{self.lines:,} lines"]
        for name, rec in self.stages.items():
            said = [_used(rec, what) for what in _SAID.get(name, ("sessions",))]
            said = [s for s in said if s]
            if rec.get("mining_reason"):  # how the workflows were mined, and why
                said.append(f"mined {rec.get('mining', '')} ({rec['mining_reason']})")
            if said:
                parts.append(f"{name}: " + ", ".join(said))
        return "; ".join(parts)


def _plain(value: Any) -> Any:
    """A numpy number as a Python one; anything else unchanged."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", None) == 0 else value


def key_model_used(key_model: Any) -> dict[str, Any]:
    """What a fitted key model read, from its ``fit_info_``: sessions and distinct sessions (of
    the log, and of the sample it was fitted on) and distinct windows.

    >>> class M:
    ...     fit_info_ = {"n_sessions": 9, "n_sessions_used": 6, "n_distinct_sessions": 5,
    ...                  "n_distinct_sessions_used": 2, "n_distinct_examples": 40}
    >>> FitReport(stages={"key model": key_model_used(M())}).summary()
    '0 lines; key model: 6 of 9 sessions (a seeded sample), 2 of 5 distinct sessions (a seeded \
sample), 40 distinct windows'
    """
    info = getattr(key_model, "fit_info_", {})
    used = {
        "sessions": info.get("n_sessions"),
        "sessions_used": info.get("n_sessions_used"),
        "distinct_sessions": info.get("n_distinct_sessions"),
        "distinct_sessions_used": info.get("n_distinct_sessions_used"),
        "distinct_windows": info.get("n_distinct_examples"),
    }
    return {k: v for k, v in used.items() if v is not None}


_SAID = {
    "key model": ("sessions", "distinct_sessions", "distinct_windows"),
    "parameter models": ("keys", "training_vectors", "validation_vectors"),
    "workflows": ("sessions",),
}


def _used(rec: dict[str, Any], what: str) -> str:
    """``'N what'``, or ``'M of N what (a seeded sample)'`` when a sample used fewer."""
    if rec.get(what) is None:
        return ""
    n, used = rec[what], rec.get(f"{what}_used", rec[what])
    name = what.replace("_", " ")
    if used == n:
        return f"{n:,} {name}"
    return f"{used:,} of {n:,} {name} (a seeded sample)"
