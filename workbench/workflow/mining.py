"""How a log's workflows are mined, and why: :func:`choose_mining`.

Method 2 separates tasks per session when the entries carry the id of one run (an HDFS block,
a VM instance): each session is then one run, and its automata are read from the runs. A log
whose sessions are not such ids is an interleaved log, where that reading invents transitions
between runs logged at the same time, and its workflows are mined from the consistent time lags
between keys instead (:func:`workbench.workflow.cooccurrence.grow_tasks_by_lag`, automata from
:mod:`workbench.workflow.lag_order`). The ids are not usable when

* no entry carries one (the format has no session rule, or its rule matched nothing);
* the session rule is a time window (``window:`` or ``sliding:``): a window holds every run
  logged in it, not one;
* every entry is in one session.

With ``per_session=None`` (the default of :class:`~workbench.workflow.cooccurrence.
WorkflowConfig`) the method follows the log: per session with usable ids, else by time lag
over ``window`` seconds (:data:`SESSIONLESS_WINDOW` unless set), else, without timestamps, by
position. ``per_session`` True or False is the user's choice and is kept (with ids that are not
usable, the automata are still never built per window). The choice and its reason go with
every automaton (graph attributes ``mining`` and ``mining_reason``) and into the fit report.

>>> df = pd.DataFrame({"key": [1, 2], "session": [None, None],
...                    "timestamp": pd.to_datetime([0, 1], unit="s")})
>>> m = choose_mining(df, per_session=None, window=None)
>>> m.method, m.window, m.ids
('time lag', 30.0, False)
>>> m.reason
'no entry carries a session id: tasks separated by consistent time lags within 30 s'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["SESSIONLESS_WINDOW", "Mining", "choose_mining"]

#: seconds: the horizon of time lags when a log without usable session ids is mined by time lag
#: and the configuration sets none; the setting ``bench/workflow.py`` chose on its selection seeds
SESSIONLESS_WINDOW = 30.0


@dataclass(frozen=True)
class Mining:
    """How the workflows of one log are mined (see the module docstring)."""

    method: str  # tasks separated "per session", by "time lag" or by "position"
    ids: bool  # the session ids are usable: automata from runs, sessions sampled on a long log
    window: float | None  # seconds of the time lags read (separation, automata); None: none
    reason: str  # one sentence: why


def _problem(entries: pd.DataFrame, rule: Any) -> tuple[str | None, int]:
    """Why the entries' sessions are not ids of one run each (None when they are): no entry in a
    session, sessions that are time windows (``rule``: the session rule that made them), or one
    session holding every entry; and the number of sessions.

    >>> _problem(pd.DataFrame({"key": [1, 2], "session": ["a", "a"]}), None)
    ("every entry is in one session ('a')", 1)
    """
    sess = entries["session"] if "session" in entries.columns else None
    n = int(sess.nunique()) if sess is not None else 0
    if n == 0:
        return "no entry carries a session id", 0
    if getattr(rule, "kind", None) in ("window", "sliding"):
        return f"the sessions are time windows ({rule}), each holding every run logged in it", n
    if n == 1:
        return f"every entry is in one session ({str(sess.dropna().iloc[0])!r})", n
    return None, n


def choose_mining(
    entries: pd.DataFrame,
    *,
    per_session: bool | None,
    window: float | None,
    rule: Any = None,
) -> Mining:
    """The :class:`Mining` of these entries under a configuration's ``per_session`` and
    ``window`` (``rule``: the session rule that made the sessions, when known)."""
    problem, n = _problem(entries, rule)
    has_time = "timestamp" in entries.columns and bool(entries["timestamp"].notna().any())
    if per_session is True:
        return Mining("per session", problem is None, window, "asked for (per_session=True)")
    if per_session is None and problem is None:
        by = f" by the rule {rule}" if rule is not None else ""
        return Mining("per session", True, window, f"{n:,} sessions{by}, one run each")
    why = "asked for (per_session=False)" if per_session is False else problem
    if per_session is None and window is None:
        window = SESSIONLESS_WINDOW
    if window is not None and has_time:
        how = f"tasks separated by consistent time lags within {window:g} s"
        return Mining("time lag", problem is None, window, f"{why}: {how}")
    if window is not None:
        why += " and no entry has a timestamp to read time lags from"
    return Mining("position", problem is None, None, f"{why}: tasks separated by position")
