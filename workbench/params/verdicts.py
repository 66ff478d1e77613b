"""Verdicts per VM instance from the parameter model's per-entry scores (the MSE-plot unit).

Per entry and per instance: :meth:`~workbench.params.model.ParamModel.score` decides every entry
at each level. The paper's MSE plot has one point per VM instance; :func:`instance_verdicts` gives
that decision from the same scores, with the level applied to the *instance* (its worst entry
against the Sidak-corrected per-entry level for its number of scored entries,
:func:`~workbench.params.levels.sidak_level`). An instance of ~25 scored entries judged "anomalous
when any entry is" at 99 % is a false alarm for about one normal instance in ten; the corrected
rule keeps that near the stated 0.5 % upper tail.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from workbench.params.levels import DEFAULT_LEVELS, instance_confidence, level_name, sidak_level

__all__ = ["instance_verdicts"]


def instance_verdicts(
    scores: pd.DataFrame, levels: Sequence[float] = DEFAULT_LEVELS
) -> pd.DataFrame:
    """Instance-level verdicts from :meth:`ParamModel.score`'s per-entry output (the MSE-plot unit).

    The paper's MSE plot has one point per VM instance. Here an instance (a ``session``) is
    anomalous at level ``L`` when its worst scored entry lies outside the per-entry interval at
    :func:`~workbench.params.levels.sidak_level` ``(L, m)``, ``m`` being how many of its entries were
    scored: the level then applies to the instance's decision, not to each of its entries (which
    would flag about ``m * (1 - L) / 2`` normal instances in ``L``'s upper tail). Per-entry
    verdicts (``anomalous_<L>`` of :meth:`ParamModel.score`) are unchanged; this is a separate
    rule over the same scores. Entries without a session are left out.

    Parameters
    ----------
    scores
        The frame returned by :meth:`ParamModel.score` (its ``confidence`` column is used).
    levels
        Instance-level confidence levels.

    Returns
    -------
    pandas.DataFrame
        One row per session with a scored entry, indexed by session: ``entries`` (m),
        ``confidence`` (worst entry's confidence ** m), ``line``, ``key``, ``mse``, ``dimension``,
        ``observed``, ``predicted`` (of the worst entry), and ``entry_level_<L>`` (the per-entry
        level it had to exceed), ``anomalous_<L>`` per level.

    >>> s = pd.DataFrame({"session": ["a", "a", "b"], "status": "scored", "line": [1, 2, 3],
    ...                   "key": 1, "mse": [0.1, 9.0, 0.5], "confidence": [0.3, 0.9999, 0.995],
    ...                   "dimension": "elapsed", "observed": 1.0, "predicted": 1.0})
    >>> v = instance_verdicts(s, [0.99])
    >>> v["entries"].tolist(), v["line"].tolist(), v["anomalous_99"].tolist()
    ([2, 1], [2, 3], [True, True])

    Each of three entries at 99.5 % confidence would be flagged on its own at 99 %, but for one
    instance of three entries that is not unusual (0.996 ** 3 < 0.99):

    >>> one = s.assign(session="a", confidence=[0.3, 0.996, 0.995])
    >>> instance_verdicts(one, [0.99])[["entries", "anomalous_99"]].values.tolist()
    [[3, False]]
    """
    sc = scores[(scores["status"] == "scored") & scores["session"].notna()]
    conf = sc["confidence"].fillna(0.0)
    worst = conf.groupby(sc["session"], sort=False).idxmax()
    m = sc.groupby("session", sort=False).size().reindex(worst.index)
    cols = ["line", "key", "mse", "dimension", "observed", "predicted"]
    out = sc.loc[worst.to_numpy(), cols].set_index(worst.index)
    out.insert(0, "entries", m.to_numpy())
    out.insert(1, "confidence", instance_confidence(conf[worst.to_numpy()].to_numpy(), m))
    for lv in levels:
        out[f"entry_level_{level_name(lv)}"] = sidak_level(lv, m.to_numpy())
    for lv in levels:
        out[f"anomalous_{level_name(lv)}"] = out["confidence"].to_numpy() > lv
    out.index.name = "session"
    return out
