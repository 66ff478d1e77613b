"""Which rule made a detection: counts of anomalies by rule.

DeepLog flags an entry by one of five rules, named here as a reader would say them:

- ``"top-g"``: the key that came is not among the g most likely next keys (the paper's rule);
- ``"probability floor"``: it is in the top g but less probable than the validated floor;
- ``"session end"``: the session stopped where the model did not expect it to;
- ``"unknown key"``: the key never occurred in training (flagged whatever g is);
- ``"parameter threshold"``: the parameter vector's MSE is above its confidence-interval threshold.

The first four come from the key model (:func:`workbench.keys.topg.detect` gives each anomalous
entry a reason), the last from the parameter models. The count-vector baselines (PCA, Invariant
Mining) judge a whole session at once: their own reasons (a residual, a broken invariant) count as
``"count vector"``, a row shown only when it is not 0. A count of 0 is kept in the result, so a
table always shows all five rules and a rule that never fired is visible as such.

>>> import numpy as np
>>> counts_by_rule(np.array(["", "unknown key", "key not in top-g", "unknown key"])).to_dict()
{'top-g': 1, 'probability floor': 0, 'session end': 0, 'unknown key': 2, 'parameter threshold': 0}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

__all__ = [
    "COUNT_VECTOR",
    "RULES",
    "counts_by_rule",
    "entry_counts_by_rule",
    "report_counts_by_rule",
    "rule_of",
]

RULES: tuple[str, ...] = (
    "top-g",
    "probability floor",
    "session end",
    "unknown key",
    "parameter threshold",
)

COUNT_VECTOR = "count vector"

_RULE_OF: dict[str, str] = {
    "key not in top-g": "top-g",
    "key below probability floor": "probability floor",
    "session ended unexpectedly": "session end",
    "session end": "session end",
    "unknown key": "unknown key",
    "parameter": "parameter threshold",
}


def rule_of(reason: Any) -> str:
    """The rule's name for a detection reason (``Detection.reason``, ``key_reason`` or a review
    ``kind``); ``""`` for a normal entry or session. Names already in :data:`RULES` pass through;
    any other reason is a count-vector baseline's (``"count vector"``)."""
    if reason is None or (isinstance(reason, float) and reason != reason):
        return ""
    text = str(reason)
    if text in RULES or text == "":
        return text
    return _RULE_OF.get(text, COUNT_VECTOR)


def _count(rules: Iterable[str]) -> pd.Series:
    counts = pd.Series(0, index=[*RULES, COUNT_VECTOR], dtype="int64", name="count")
    for rule, n in pd.Series([r for r in rules if r], dtype=object).value_counts().items():
        counts[rule] = int(n)
    if counts[COUNT_VECTOR] == 0:
        counts = counts.drop(COUNT_VECTOR)
    counts.index.name = "rule"
    return counts


def counts_by_rule(reasons: Any) -> pd.Series:
    """Anomalous sessions by the rule of their first anomalous entry.

    ``reasons`` is a :class:`~workbench.keys.topg.Detection` (its per-session ``reason``) or any
    sequence of reasons (``""`` for normal sessions). Sessions count with multiplicity.
    """
    if hasattr(reasons, "reason"):
        reasons = reasons.reason
    return _count(rule_of(r) for r in reasons)


def entry_counts_by_rule(detection: Any) -> pd.Series:
    """Anomalous entries (not sessions) of a key-model :class:`~workbench.keys.topg.Detection` by
    rule; a session can hold several. Raises ``ValueError`` for a detector without entries."""
    entries = getattr(detection, "entries", None)
    if entries is None:
        raise ValueError("this detection has no per-entry verdicts (a count-vector detector?)")
    bad = entries.loc[entries["anomalous"].to_numpy(dtype=bool), "reason"]
    return _count(rule_of(r) for r in bad.astype(str))


def report_counts_by_rule(report: Any) -> pd.Series:
    """Rows of a workbench :class:`~workbench.workbench.DetectionReport`'s review table by rule.

    A row of kind ``"key"`` takes its rule from the entry's ``key_reason`` (top-g or probability
    floor); the other kinds name their rule themselves.
    """
    anomalies = report.anomalies
    why = report.entries.set_index("line")["key_reason"]
    why = why[~why.index.duplicated()]
    rules = []
    for kind, line in zip(anomalies["kind"], anomalies["line"], strict=True):
        rules.append(rule_of(why.get(line, "key not in top-g") if kind == "key" else kind))
    return _count(rules)
