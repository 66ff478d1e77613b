"""What the views show of a report beyond its tables: one key's MSE series with its thresholds (the
MSE plot), the diagnosis of one anomaly with the path that led to it in its workflow, and the
workflows of method 1 (from the key model's predictions)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from workbench.detect.report import DetectionReport
from workbench.detect.scoring import trained_keys
from workbench.params.levels import level_name
from workbench.workflow.cooccurrence import WorkflowConfig, build_workflows, key_sequences
from workbench.workflow.from_keymodel import keymodel_distribution, model_tasks

__all__ = ["Views", "diagnose_anomaly", "method1_workflows", "mse_series"]


def mse_series(
    scored: pd.DataFrame,
    entries: pd.DataFrame,
    key: int,
    levels: Sequence[float],
    level: float,
) -> pd.DataFrame:
    """Per-entry MSE of one key of ``entries`` with a threshold column per level and the verdict
    at ``level``, from ``scored`` (the parameter models' scores of every row of ``entries``)."""
    e = entries
    rows = np.flatnonzero(e["key"].to_numpy() == key)
    ps = scored.iloc[rows]
    out = pd.DataFrame(
        {
            "line": e["line"].to_numpy()[rows],
            "session": e["session"].to_numpy()[rows],
            "timestamp": e["timestamp"].to_numpy()[rows],
            "mse": ps["mse"].to_numpy(),
            "raw": e["raw"].to_numpy()[rows],
            "observed": ps["observed"].to_numpy(),
            "predicted": ps["predicted"].to_numpy(),
            "dimension": ps["dimension"].to_numpy(),
        }
    )
    for lv in levels:
        col = f"threshold_{level_name(lv)}"
        out[f"threshold_{lv}"] = ps[col].to_numpy() if col in ps else np.nan
    lvc = f"anomalous_{level_name(level)}"
    out["anomalous"] = ps[lvc].fillna(False).to_numpy(dtype=bool) if lvc in ps else False
    return out.reset_index(drop=True)


def diagnose_anomaly(report: DetectionReport, workflows: list[nx.DiGraph], anomaly_id: Any):
    """Explain one anomaly of ``report``: its place in its workflow (with the keys of its session
    that led there, in the workflow) and, for timing, the slow transition."""
    from workbench.workflow.diagnosis import diagnose

    row = report.anomaly(anomaly_id)
    kind = row["kind"]
    if kind == "parameter":
        dim = row["dimension"]
        idx = 0 if dim in (None, "elapsed") else int(str(dim).removeprefix("param"))
        rec = {"line": int(row["line"]), "kind": "parameter", "dimension": idx,
               "value": row["observed"], "score": row["mse"]}  # fmt: skip
    else:
        rec = {"line": int(row["line"]), "kind": "key", "score": row["rank"],
               "expected": tuple((k, p) for k, _, p in row["candidates"])}  # fmt: skip
    found = diagnose(rec, report.entries, workflows)
    graph = next((g for g in workflows if g.graph.get("task") == found.task), None)
    if graph is None or found.session is None:
        return found
    e = report.entries
    rows = np.flatnonzero(e["session"].to_numpy(dtype=object) == found.session)
    rows = rows[e["line"].to_numpy()[rows] <= found.line]
    path = tuple(dict.fromkeys(int(k) for k in e["key"].to_numpy()[rows] if int(k) in graph))
    return dataclasses.replace(found, path=path)


def method1_workflows(
    key_model: Any, entries: pd.DataFrame, config: WorkflowConfig, session_rule: Any = None
) -> list[nx.DiGraph]:
    """Workflow automata of method 1: tasks read off the key model's predictions, then built on
    ``entries`` as method 2 builds its own (by time lag where the sessions are not run ids)."""
    found = model_tasks(keymodel_distribution(key_model), key_sequences(entries))
    tasks = [list(t) for t in found.tasks]
    return build_workflows(entries, config, tasks=tasks, session_rule=session_rule)


class Views:
    """What the views read of a workbench beyond its report (a base class of
    :class:`~workbench.workbench.Workbench`): the keys with a parameter model, one key's MSE
    series, the workflows of either method, the diagnosis of an anomaly. It reads the workbench's
    report, models, configurations and workflows."""

    def param_keys(self) -> list[int]:
        """Keys that have a trained parameter model."""
        return trained_keys(self.param_model)

    def mse_series(self, key: int, report: DetectionReport | None = None) -> pd.DataFrame:
        """Per-entry MSE of one key with threshold columns per level (the MSE plot's data)."""
        self._check_fitted()
        report = report or self.report
        if report is None:
            raise RuntimeError("call detect() first")
        if self.param_model is None:
            raise RuntimeError("no parameter model was trained")
        e = report.entries
        # one scoring per (log, model) serves every key: views ask key after key
        cached = getattr(self, "_mse_cache", None)
        if cached is not None and cached[0] is e and cached[1] is self.param_model:
            scored = cached[2]
        else:
            scored = self.param_model.score(e)
            self._mse_cache = (e, self.param_model, scored)
        return mse_series(scored, e, key, self.param_config.levels, self.level)

    def workflows(self, method: int = 2) -> list[nx.DiGraph]:
        """The workflow automata (method 2: co-occurrence clustering; 1: from the key model's
        predictions, built on first use)."""
        if method == 2:
            return self.workflows_
        if method == 1:
            self._check_fitted()
            if self._method1 is None:
                self._method1 = method1_workflows(
                    self.key_model, self.entries, self.workflow_config, self.session_rule
                )
            return self._method1
        raise ValueError(f"method must be 1 or 2, got {method!r}")

    def diagnose(self, anomaly_id: str):
        """Explain one anomaly: its place in its workflow and, for timing, the slow transition."""
        if self.report is None:
            raise RuntimeError("call detect() first")
        return diagnose_anomaly(self.report, self.workflows_, anomaly_id)
