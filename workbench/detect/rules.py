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

from workbench.keys.topg import RULE_OF_REASON

__all__ = [
    "COUNT_VECTOR",
    "RULES",
    "counts_by_rule",
    "entry_counts_by_rule",
    "report_counts_by_rule",
    "report_rules",
    "rule_choice",
    "rule_of",
    "rule_of_row",
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
    **RULE_OF_REASON,
    "session end": "session end",
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


def rule_of_row(row: Any, key_reason: Any = None) -> str:
    """The rule of one row of a review table (:data:`~workbench.detect.report.ANOMALY_COLUMNS`).

    A ``"key"`` row is top-g or probability floor: its entry's ``key_reason`` says which when
    given; else its rank does (within g, it was flagged by the floor).

    >>> rule_of_row({"kind": "key", "rank": 3, "g": 9}), rule_of_row({"kind": "key", "rank": 12, "g": 9})
    ('probability floor', 'top-g')
    >>> rule_of_row({"kind": "parameter"}), rule_of_row({"kind": "session end"})
    ('parameter threshold', 'session end')
    """
    kind = row.get("kind")
    if kind != "key":
        return rule_of(kind)
    if key_reason is not None and rule_of(key_reason) in ("top-g", "probability floor"):
        return rule_of(key_reason)
    try:
        within = float(row.get("rank")) <= float(row.get("g"))
    except (TypeError, ValueError):
        within = False
    return "probability floor" if within else "top-g"


def report_rules(report: Any) -> pd.Series:
    """The rule of every row of a report's review table (aligned with ``report.anomalies``).

    A ``"key"`` row takes its rule from its entry's ``key_reason`` when the report's entries have
    one, else from its rank against g (:func:`rule_of_row`).
    """
    anomalies = report.anomalies
    entries = getattr(report, "entries", None)
    why: pd.Series = pd.Series(dtype=object)
    if isinstance(entries, pd.DataFrame) and {"line", "key_reason"} <= set(entries.columns):
        why = entries.set_index("line")["key_reason"]
        why = why[~why.index.duplicated()]
    rules = [
        rule_of_row(row, why.get(row.get("line")) if len(why) else None)
        for row in anomalies.to_dict("records")
    ]
    return pd.Series(rules, index=anomalies.index, dtype=object, name="rule")


def report_counts_by_rule(report: Any) -> pd.Series:
    """Rows of a workbench :class:`~workbench.workbench.DetectionReport`'s review table by rule.

    A row of kind ``"key"`` takes its rule from the entry's ``key_reason`` (top-g or probability
    floor); the other kinds name their rule themselves (:func:`report_rules`).
    """
    return _count(report_rules(report))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def rule_choice(selection: Any) -> dict[str, Any]:
    """Why the key model's rule is what it is, from its selection record
    (:class:`~workbench.keys.selection.GSelection`, ``KeyModel.g_selection_``).

    Returns ``{"rows": [...], "sentence": str, "method": str}``: one row per setting (``setting``,
    ``value``, ``validation_fpr``: the share of normal validation sessions the rule flags with this
    setting and the ones above it; ``meaning``), and a plain-language sentence saying why.

    >>> from workbench.keys.selection import GSelection
    >>> sel = GSelection(g=4, method="validation", rule="", target_fpr=0.002,
    ...     n_validation_sessions=500, validation_fpr={3: 0.05, 4: 0.004, 5: 0.002},
    ...     min_probability=1e-4, floor_fpr={0.0: 0.006, 1e-4: 0.008}, end_g=2,
    ...     estimated_fpr=0.008, synthetic_recall=0.93)
    >>> [(r["setting"], r["value"], r["validation_fpr"]) for r in rule_choice(sel)["rows"]]
    [('g', 4, 0.004), ('END limit', 2, 0.006), ('probability floor', 0.0001, 0.008)]
    >>> print(rule_choice(sel)["sentence"])  # doctest: +NORMALIZE_WHITESPACE
    Of the rules tried on 500 held-out normal sessions, g = 4 with END limit 2 and floor 0.0001
    flags the most made-up anomalies (93.0 % of training sessions cut short, with a step skipped,
    moved or added) while flagging 0.80 % of the normal ones, within the budget of 0.20 % more
    than the unavoidable share; g = 3 would flag 5.00 %.
    """
    g, end_g = int(selection.g), getattr(selection, "end_g", None)
    floor = float(getattr(selection, "min_probability", 0.0) or 0.0)
    by_g = dict(getattr(selection, "validation_fpr", {}) or {})
    by_floor = dict(getattr(selection, "floor_fpr", {}) or {})
    method = str(getattr(selection, "method", ""))
    n = int(getattr(selection, "n_validation_sessions", 0) or 0)
    rows = [
        {"setting": "g", "value": g, "validation_fpr": by_g.get(g),
         "meaning": f"a key outside the model's {g} most likely next keys is anomalous"},
    ]  # fmt: skip
    if end_g is not None:
        rows.append(
            {"setting": "END limit", "value": int(end_g), "validation_fpr": by_floor.get(0.0),
             "meaning": f"a session that stops where its end is not among the {end_g} most "
             "likely next events is anomalous"}
        )  # fmt: skip
    rows.append(
        {"setting": "probability floor", "value": floor,
         "validation_fpr": by_floor.get(floor, getattr(selection, "estimated_fpr", None)),
         "meaning": f"a key in the top g but less likely than {floor:g} is anomalous"
         if floor else "off: the top-g rule alone"}
    )  # fmt: skip
    return {"rows": rows, "sentence": _choice_sentence(selection, rows, n), "method": method}


def _choice_sentence(selection: Any, rows: list[dict[str, Any]], n: int) -> str:
    g, method = rows[0]["value"], str(getattr(selection, "method", ""))
    by_g = dict(getattr(selection, "validation_fpr", {}) or {})
    fpr = rows[-1]["validation_fpr"]
    smaller = ""
    if g - 1 in by_g and g in by_g and by_g[g - 1] != by_g[g]:
        smaller = f"; g = {g - 1} would flag {_pct(by_g[g - 1])}"
    if method != "validation":
        how = {"fixed": "set by hand",
               "fixed g, floor on validation": "set by hand (the floor chosen on validation)"}.get(
            method, f"not chosen on validation ({method})")  # fmt: skip
        seen = f": the rule flags {_pct(fpr)} of {n} held-out normal sessions" if n else ""
        return f"g = {g} was {how}{seen}{smaller}."
    recall = getattr(selection, "synthetic_recall", None)
    budget = getattr(selection, "target_fpr", None)
    within = (
        f", within the budget of {_pct(budget)} more than the unavoidable share"
        if budget is not None
        else ""
    )
    if recall is None:
        return (
            f"g = {g} is the most sensitive g that flags at most {_pct(fpr)} of {n} held-out "
            f"normal sessions{within}{smaller}."
        )
    setting = f"g = {g}" + "".join(
        f" with END limit {r['value']}" if r["setting"] == "END limit" else "" for r in rows
    )
    if rows[-1]["value"]:
        setting += f" and floor {rows[-1]['value']:g}"
    return (
        f"Of the rules tried on {n} held-out normal sessions, {setting} flags the most made-up "
        f"anomalies ({100 * recall:.1f} % of training sessions cut short, with a step skipped, "
        f"moved or added) while flagging {_pct(fpr)} of the normal ones{within}{smaller}."
    )
