"""A detection report: the per-entry verdicts of one log and its review table of anomalies.

:class:`DetectionReport` is what :meth:`Workbench.detect <workbench.workbench.Workbench.detect>`
returns and what every view reads. Its ``anomalies`` frame has the columns of
:data:`ANOMALY_COLUMNS`, one row per reported anomaly, built by :func:`anomaly_row`; :func:`why`
says in a few words why a row was reported (the command line, CSV/JSON and HTML reports print it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids
from workbench.detect.coverage import Coverage

__all__ = ["ANOMALY_COLUMNS", "DetectionReport", "anomaly_row", "set_unscored_params", "why"]

ANOMALY_COLUMNS = [
    "id", "line", "timestamp", "session", "raw", "kind", "key", "template", "position", "rank",
    "g", "probability", "candidates", "mse", "threshold", "level", "dimension", "observed",
    "predicted", "status",
]  # fmt: skip


@dataclass
class DetectionReport:
    """Verdicts on one log: every entry, and the anomalous ones as a review table.

    ``entries`` is the parsed frame with the detectors' columns added (``key_rank``, ``key_probability``,
    ``key_anomalous``, ``key_reason``, ``mse``, ``param_status``, ``param_anomalous``, ``anomalous``).
    ``anomalies`` has one row per reported anomaly with the columns of :data:`ANOMALY_COLUMNS`; its
    ``id`` is the entry's line number (negative for a session that ended early, on its last line),
    so it stays the same when the same log is scored again; ``status`` is ``'open'``, ``'false
    positive'`` or ``'confirmed'``.
    """

    entries: pd.DataFrame
    anomalies: pd.DataFrame
    g: int
    level: float
    seconds: float = 0.0
    coverage: Coverage | None = None  # what was read and checked, with warnings

    @property
    def verdict(self) -> str:
        """'N anomalies in M checked entries', or 'nothing was checked' when nothing was."""
        n = len(self.anomalies)
        return self.coverage.verdict(n) if self.coverage is not None else f"{n} anomalies"

    def anomaly(self, anomaly_id: int) -> pd.Series:
        """The row of one anomaly; KeyError with the id when there is none."""
        hit = self.anomalies.index[self.anomalies["id"] == anomaly_id]
        if not len(hit):
            raise KeyError(f"no anomaly {anomaly_id!r} in this report")
        return self.anomalies.loc[hit[0]]


def anomaly_row(
    e: Any, kind: str, g: int, level: float, cands: list, status_of: dict[int, str]
) -> dict[str, Any]:
    """One row of the review table (:data:`ANOMALY_COLUMNS`) for the scored entry ``e`` (a row of
    a report's ``entries``, or a dict with the same fields)."""
    aid = int(e["line"])
    param = kind == "parameter"
    return {
        "id": aid,
        "line": int(e["line"]),
        "timestamp": e["timestamp"],
        "session": e["session"],
        "raw": e["raw"],
        "kind": kind,
        "key": int(e["key"]),
        "template": e["template"],
        "position": int(e["position"]),
        "rank": None if param or pd.isna(e["key_rank"]) else int(e["key_rank"]),
        "g": g,
        "probability": None if param else _float(e["key_probability"]),
        "candidates": cands,
        "mse": _float(e["mse"]) if param else None,
        "threshold": _float(e["threshold"]) if param else None,
        "level": level if param else None,
        "dimension": e["dimension"] if param else None,
        "observed": _float(e["observed"]) if param else None,
        "predicted": _float(e["predicted"]) if param else None,
        "status": status_of.get(aid, "open"),
    }


def candidates(
    parser: Any, pairs: list[tuple[int, float]], g: int, memo: dict[int, str] | None = None
) -> list[tuple[int, str, float]]:
    """The key model's top predictions as ``(key, template, probability)``, at most ``g`` of them.
    ``memo``: templates already looked up (key -> text), filled as it goes (one scoring pass)."""
    out = []
    for k, p in pairs[: max(g, 1)]:
        k = int(k)
        tmpl = memo.get(k) if memo is not None else None
        if tmpl is None:
            tmpl = "<end of session>" if k == keyids.END else parser.template_of(k)
            if memo is not None:
                memo[k] = tmpl
        out.append((k, tmpl, round(float(p), 6)))
    return out


def set_unscored_params(out: pd.DataFrame) -> None:
    """The parameter columns of a report where no parameter model scored (set in place)."""
    out["mse"] = np.nan
    out["param_status"] = "no model"
    out["threshold"] = np.nan
    out["param_anomalous"] = False
    out["dimension"] = None
    out["observed"] = np.nan
    out["predicted"] = np.nan


def why(row: pd.Series) -> str:
    """Why an anomaly was reported, in a few words."""
    kind = row["kind"]
    if kind == "unknown key":
        return "a message never seen in training"
    if kind == "parameter":
        dim = row["dimension"] if row["dimension"] not in (None, "") else "value"
        return (
            f"{dim} {_fmt(row['observed'])} (predicted {_fmt(row['predicted'])}): MSE "
            f"{_fmt(row['mse'])} over the {_fmt(row['level'], '.1%')} threshold "
            f"{_fmt(row['threshold'])}"
        )
    cands = row["candidates"] or []
    expected = f"; expected {cands[0][1]!r}" if len(cands) else ""
    if kind == "session end":
        return f"the session ended here, which normal sessions never do (rank {_rank(row)})"
    rank, g, p = _float(row["rank"]), _float(row["g"]), _float(row.get("probability"))
    if rank is not None and g is not None and rank <= g:  # within g: the probability floor
        return (
            f"rank {_rank(row)} of the next-key prediction, within g = {row['g']}, but probability "
            f"{_fmt(p)} below the validated floor{expected}"
        )
    return f"rank {_rank(row)} of the next-key prediction, beyond g = {row['g']}{expected}"


def _fmt(x: Any, spec: str = ".3g") -> str:
    try:
        return format(float(x), spec)
    except (TypeError, ValueError):
        return "?"


def _rank(row: pd.Series) -> str:
    r = row["rank"]
    return "?" if r is None or pd.isna(r) else str(int(r))


def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(v) else v
