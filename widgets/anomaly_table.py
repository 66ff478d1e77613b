"""The review table as data: built from a detection report (with each row's verdict now), filtered,
sorted, counted. Pure functions of frames, so the view only holds state and draws."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from widgets.anomaly_text import severity
from workbench.detect.rules import report_rules, rule_of_row

__all__ = [
    "KINDS",
    "SORT_COLUMNS",
    "STATUSES",
    "anomalous_ids",
    "counts_html",
    "filter_table",
    "messages_of",
    "review_table",
]

KINDS = ("key", "unknown key", "session end", "parameter")
STATUSES = ("open", "false positive", "confirmed")
SORT_COLUMNS = {
    "time": "timestamp",
    "line": "line",
    "session": "session",
    "kind": "kind",
    "rule": "rule",
    "severity": "severity",
    "status": "status",
}


def messages_of(entries: pd.DataFrame) -> dict[int, str]:
    """Each scored line's message (its content, else the raw line), by line number."""
    if not len(entries) or "line" not in entries:
        return {}
    col = "content" if "content" in entries else "raw"
    return dict(zip(entries["line"].astype(int), entries[col].astype(str), strict=False))


def review_table(
    report: Any, keep: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, entries) of a report: one row per anomaly with its ``verdict`` now ('anomalous' or
    'normal', from the scored entries) and ``severity``; ``keep`` adds earlier rows an update made
    normal."""
    frame = report.anomalies.copy() if report is not None else pd.DataFrame()
    entries = getattr(report, "entries", None)
    entries = entries if isinstance(entries, pd.DataFrame) else pd.DataFrame()
    if len(frame):
        frame["rule"] = report_rules(report)
        frame["verdict"] = "anomalous"
        if len(entries) and "anomalous" in entries:
            now = dict(zip(entries["line"].astype(int), entries["anomalous"], strict=False))
            normal = [not bool(now.get(int(ln), True)) for ln in frame["line"]]
            frame.loc[normal, "verdict"] = "normal"
    else:
        frame["verdict"] = pd.Series(dtype=object)
    if keep is not None and len(keep):
        keep = keep[~keep["id"].isin(frame["id"])].copy() if len(frame) else keep.copy()
        keep["verdict"] = "normal"
        frame = pd.concat([frame, keep], ignore_index=True) if len(frame) else keep
    if len(frame):
        if "rule" not in frame:
            frame["rule"] = None
        missing = frame["rule"].isna().to_numpy()  # rows kept from an earlier table without one
        if missing.any():
            frame.loc[missing, "rule"] = [rule_of_row(r) for r in frame[missing].to_dict("records")]
        frame["severity"] = frame.apply(severity, axis=1)
    else:
        frame["severity"] = pd.Series(dtype=float)
    return frame, entries


def anomalous_ids(table: pd.DataFrame) -> set[int]:
    """Ids of the rows whose verdict is 'anomalous'."""
    if not len(table):
        return set()
    return set(table.loc[table["verdict"] == "anomalous", "id"].astype(int))


def filter_table(
    t: pd.DataFrame,
    *,
    kind: str = "all",
    rule: str = "all",
    status: str = "all",
    needle: str = "",
    time_range: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    sort_by: str = "time",
    ascending: bool = True,
) -> pd.DataFrame:
    """The rows of that ``kind``, ``rule`` and ``status`` ('all': any), whose session or raw line holds
    ``needle`` (any case), within ``time_range``; sorted by the column ``sort_by`` names (ties by
    id)."""
    if not len(t):
        return t
    mask = np.ones(len(t), dtype=bool)
    if kind != "all":
        mask &= (t["kind"] == kind).to_numpy()
    if rule != "all":
        mask &= (t["rule"] == rule).to_numpy() if "rule" in t else False
    if status != "all":
        mask &= (t["status"] == status).to_numpy()
    needle = needle.strip().lower()
    if needle:
        text = t["session"].astype(str).str.lower() + " " + t["raw"].astype(str).str.lower()
        mask &= text.str.contains(needle, regex=False).to_numpy()
    if time_range is not None and "timestamp" in t:
        ts = pd.to_datetime(t["timestamp"], errors="coerce")
        lo, hi = time_range
        mask &= ((ts >= lo) & (ts <= hi)).fillna(False).to_numpy(dtype=bool)
    column = SORT_COLUMNS[sort_by]
    out = t[mask]
    if column in out:
        out = out.sort_values(
            [column, "id"], ascending=[ascending, True], na_position="last", kind="stable"
        )
    return out


def counts_html(table: pd.DataFrame, entries: pd.DataFrame, stale: bool = False) -> str:
    """'N anomalous in E entries scored (S sessions): a top-g · b parameter threshold', over the
    anomalous rows, by the rule that flagged them (the core's kinds when there is no rule); ''
    for an empty table."""
    if not len(table):
        return ""
    open_rows = table[table["verdict"] == "anomalous"]
    kinds = open_rows["rule" if "rule" in open_rows else "kind"].astype(str).value_counts()
    by_kind = " · ".join(f"{n} {html.escape(k)}" for k, n in kinds.items())
    scored = ""
    if len(entries):
        n_sess = entries["session"].dropna().nunique() if "session" in entries else 0
        scored = f" in {len(entries):,} entries scored ({n_sess:,} sessions)"
    mark = ' · <span class="dl-error">stale: trained again since</span>' if stale else ""
    return (
        f'<div class="dl-counts"><b>{len(open_rows)}</b> anomalous{scored}: '
        f"{by_kind or 'none'}{mark}</div>"
    )
