"""Where an anomalous entry stands: its row, its session, the keys before it, and the workflow
automaton it belongs to (for :mod:`workbench.workflow.diagnosis`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np
import pandas as pd

from workbench.workflow.automaton import templates_of

__all__ = [
    "all_templates",
    "locate",
    "own_message",
    "recent_keys",
    "session_of",
    "session_rows",
    "task_of",
]


def locate(entries: pd.DataFrame, line: int) -> int:
    """The row of the entry with line number ``line``."""
    hits = np.flatnonzero(entries["line"].to_numpy() == line)
    if not len(hits):
        raise ValueError(f"line {line} is not in the entries")
    return int(hits[0])


def task_of(
    workflows: Sequence[nx.DiGraph], key: int, prev: int | None, recent: Sequence[int] = ()
) -> tuple[nx.DiGraph | None, bool]:
    """The workflow to read: one holding both the previous state and the key, else one holding
    the key, else one holding the previous state (an unexpected key). Among several, the one
    holding most of the session's recent keys (a key shared by tasks is read in the task the
    session is in), then the busiest. Second value: whether the key is in it."""

    def rank(g: nx.DiGraph, k: int) -> tuple[float, int]:
        fit = sum(0.5**i for i, r in enumerate(recent) if r in g)
        return fit, int(g.nodes[k]["count"])

    both = [g for g in workflows if key in g and prev is not None and prev in g]
    if both:
        return max(both, key=lambda g: rank(g, key)), True
    has_key = [g for g in workflows if key in g]
    if has_key:
        return max(has_key, key=lambda g: rank(g, key)), True
    has_prev = [g for g in workflows if prev is not None and prev in g]
    if has_prev:
        return max(has_prev, key=lambda g: rank(g, prev)), False
    return None, False


def session_rows(entries: pd.DataFrame, row: int) -> np.ndarray:
    """The rows with a key > 0 of the entry's session (of the whole log without one)."""
    sess = entries["session"].iloc[row] if "session" in entries.columns else None
    keys = entries["key"].to_numpy()
    if sess is None or (isinstance(sess, float) and math.isnan(sess)):
        return np.flatnonzero(keys > 0)
    return np.flatnonzero((entries["session"].to_numpy(dtype=object) == sess) & (keys > 0))


def session_of(entries: pd.DataFrame, row: int) -> str | None:
    """The entry's session, None without one."""
    if "session" not in entries.columns:
        return None
    s = entries["session"].iloc[row]
    return None if s is None or (isinstance(s, float) and math.isnan(s)) else str(s)


def all_templates(
    entries: pd.DataFrame, workflows: Sequence[nx.DiGraph], templates: Mapping[int, str] | None
) -> dict[int, str]:
    """Key -> template: those given, else the entries', else the workflows'."""
    tmpl = dict(templates or {})
    for k, t in templates_of(entries).items():
        tmpl.setdefault(k, t)
    for g in workflows:
        for k, attrs in g.nodes(data=True):
            tmpl.setdefault(int(k), str(attrs.get("template", "")))
    return tmpl


def recent_keys(
    entries: pd.DataFrame, rows: np.ndarray, row: int, workflows: Sequence[nx.DiGraph]
) -> list[int]:
    """The session's keys before the entry that some workflow knows, latest first (at most 4)."""
    keys = entries["key"].to_numpy()
    recent: list[int] = []
    for r in rows[rows < row][::-1]:
        if any(int(keys[r]) in g for g in workflows):
            recent.append(int(keys[r]))
            if len(recent) == 4:
                break
    return recent


def own_message(entries: pd.DataFrame, row: int, default: str) -> str:
    """An unknown key's own message (its content, else its template), to show it."""
    for col in ("content", "template"):
        if col in entries.columns and str(entries[col].iloc[row] or "").strip():
            return str(entries[col].iloc[row])
    return default
