"""What a false positive implies beyond its own entry: the steps that follow it in its session, where
the same steps recur in other sessions of the log.

A reported entry that the user calls normal is often the first step of a behaviour the key model
never saw (a new operation). Each later step of it comes in a context that holds the confirmed
entry, a context the model never saw either, so each is reported in turn, and teaching the flagged
entry alone leaves them to be flagged one by one. A flag may therefore, when the user asks for it
(the user confirms them: unconfirmed anomalies are never learned from), also teach the entries that
follow the flagged one in its session, up to :data:`HORIZON` key-model windows after it (the
entries whose context holds the confirmed entry, or one taught with it), one step at a time, as
long as each step (the previous key, then
this one; the last key, then the session's end) occurs in at least :data:`MIN_SESSIONS` other
sessions of the same log. A step that recurs is part of the behaviour; a step seen in no other
session may be the anomaly, and the steps stop there. They stop too at an entry the user confirmed
as an anomaly. A message never seen before counts as a step when the same message (masked by the
parser) follows the same key in at least as many other sessions: the parser then learns its
template, as for a flagged one.

The entries so taught are journaled with the flag (``implied`` in its example) and undone with it;
``Workbench.flag_false_positive(..., follow=True)`` (``flag --and-following``, the review's "and
the steps after it" switch) asks for them; by default a flag teaches the flagged entries alone,
since the steps are taught unseen and where anomalies recur across sessions (BGL) a recurring step
can be one (docs/METHOD.md section 4). A stream's flags take the same steps through
:class:`workbench.feedback.stream.StreamFollow`.

>>> df = pd.DataFrame({
...     "session": ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 3,
...     "key": [1, 7, 8, 2, 1, 7, 8, 2, 1, 7, 8, 2, 1, 7, 3],
...     "line": range(1, 16), "parsed": True})
>>> [(e["line"], e["next"]) for e in following(df, "a", 1, window=10)]
[(3, 8), (4, 2), (4, -2)]
>>> [(e["line"], e["next"]) for e in following(df, "d", 1, window=10)]  # 7 -> 3 recurs nowhere
[]
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids

__all__ = ["MIN_SESSIONS", "Steps", "following", "implied", "like"]

MIN_SESSIONS = 2  # other sessions of the log that must hold a step for it to be taught
_LAST: dict[str, tuple[pd.DataFrame, bytes, Steps]] = {}  # the last frame asked (Steps.of)
HORIZON = 2  # how far the steps go after the flagged entry, in key-model windows


def following(
    entries: pd.DataFrame,
    session: Any,
    position: int,
    *,
    window: int,
    stop_lines: Collection[int] = (),
    min_sessions: int = MIN_SESSIONS,
    steps: Steps | None = None,
    masked: Callable[[str], str] | None = None,
) -> list[dict[str, Any]]:
    """The (history -> next key) examples implied by calling the entry at ``position`` of
    ``session`` normal (see the module docstring): ``{"line", "history", "next"}`` each, in order;
    the session's end is ``next = keyids.END`` with the line of its last entry.

    ``entries`` is a parsed frame (``session``, ``key``, ``line``, ``parsed``), ``window`` the key
    model's window, ``stop_lines`` the lines confirmed as anomalies and ``steps`` the log's
    :class:`Steps` (made when not given). With ``masked`` (a parser's masked message), an unknown
    message whose step recurs ends the list as ``{"line", "history", "next": UNKNOWN, "raw"}``:
    the caller learns its template and asks again."""
    if session is None or (isinstance(session, float) and np.isnan(session)):
        return []
    steps = Steps.of(entries) if steps is None else steps
    rows = steps.rows_of(session)
    keys = entries["key"].to_numpy()[rows].astype(np.int64).tolist()
    lines = entries["line"].to_numpy()[rows].astype(np.int64).tolist()
    stop = set(stop_lines)
    out: list[dict[str, Any]] = []
    for q in range(position + 1, min(len(keys), position + HORIZON * window) + 1):
        end = q == len(keys)
        nxt = keyids.END if end else keys[q]
        if keys[q - 1] == keyids.UNKNOWN or (not end and lines[q] in stop):
            break
        if nxt == keyids.UNKNOWN:
            raw = str(entries["raw"].iloc[rows[q]])
            if (
                masked is None
                or steps.sessions_with_message(keys[q - 1], masked(raw), masked, other_than=session)
                < min_sessions
            ):
                break
            out.append({"line": lines[q], "history": keys[:q], "next": nxt, "raw": raw})
            break
        if steps.sessions_with(keys[q - 1], nxt, other_than=session) < min_sessions:
            break
        out.append({"line": lines[q - 1 if end else q], "history": keys[:q], "next": nxt})
    return out


class Steps:
    """The steps (key, then key or END) of a log's sessions, to count the sessions holding one."""

    def __init__(self, entries: pd.DataFrame) -> None:
        has = entries["parsed"].to_numpy(dtype=bool) & pd.notna(entries["session"]).to_numpy()
        frame = pd.DataFrame(
            {
                "session": entries["session"].to_numpy(dtype=object)[has],
                "key": entries["key"].to_numpy()[has].astype(np.int64),
            }
        )
        grouped = frame.groupby("session", sort=False)["key"]
        self.rows = np.flatnonzero(has)  # positional rows of the entries counted
        self.groups = grouped.indices  # session -> positions in self.rows, in order
        self.session = frame["session"].to_numpy(dtype=object)
        raw = entries["raw"] if "raw" in entries.columns else pd.Series("", index=entries.index)
        self.raw = raw.to_numpy(dtype=object)[has]
        self.key = frame["key"].to_numpy()
        self.prev = grouped.shift(1).fillna(keyids.PAD).to_numpy().astype(np.int64)
        self.last = grouped.cumcount().to_numpy() + 1 == grouped.transform("size").to_numpy()

    @classmethod
    def of(cls, entries: pd.DataFrame) -> Steps:
        """The steps of ``entries``, kept for the last frame asked while its keys stay the same
        (flags on one report read it once; a template learned on the way changes the keys)."""
        sig = hashlib.sha1(entries["key"].to_numpy().tobytes()).digest()
        last = _LAST.get("steps")
        if last is None or last[0] is not entries or last[1] != sig:
            last = _LAST["steps"] = (entries, sig, cls(entries))
        return last[2]

    def rows_of(self, session: Any) -> np.ndarray:
        """The positional rows of a session's parsed entries, in order."""
        return self.rows[self.groups.get(session, np.zeros(0, dtype=np.int64))]

    def sessions_with(self, key: int, nxt: int, *, other_than: Any = None) -> int:
        """How many sessions (``other_than`` one) hold ``key`` followed by ``nxt``."""
        if nxt == keyids.END:
            hit = self.last & (self.key == key)
        else:
            hit = (self.prev == key) & (self.key == nxt)
        return self._count(hit, other_than)

    def sessions_with_message(
        self, key: int, message: str, masked: Callable[[str], str], *, other_than: Any = None
    ) -> int:
        """How many sessions hold ``key`` followed by an unknown message that masks to
        ``message``."""
        hit = (self.prev == key) & (self.key == keyids.UNKNOWN)
        idx = np.flatnonzero(hit)
        hit[idx] = [masked(str(r)) == message for r in self.raw[idx]]
        return self._count(hit, other_than)

    def _count(self, hit: np.ndarray, other_than: Any) -> int:
        found = pd.unique(self.session[hit])
        return len(found) - int(other_than is not None and other_than in set(found))


def like(anomalies: pd.DataFrame, row: pd.Series, parser: Any) -> list[int]:
    """The open anomalies like ``row`` (its id first): the same kind and message template (for an
    unknown key, the same masked message, ``parser.masked_content``), whatever their history."""
    same = (anomalies["kind"] == row["kind"]) & (anomalies["status"] == "open")
    if row["kind"] == "unknown key":
        masked = parser.masked_content(row["raw"])
        same &= anomalies["raw"].map(parser.masked_content) == masked
    else:
        same &= anomalies["template"] == row["template"]
    aid = int(row["id"])
    return [aid, *(int(i) for i in anomalies.loc[same, "id"] if int(i) != aid)]


def implied(
    report: Any,
    rows: list[pd.Series],
    *,
    window: int,
    learn: Callable[[str], int] | None = None,
    masked: Callable[[str], str] | None = None,
) -> list[list[dict[str, Any]]]:
    """For each flagged row of ``report`` (a detection report), the examples its flag implies:
    :func:`following` for a key anomaly, nothing for the others; an entry flagged itself or
    implied by an earlier row is taught once. Entries confirmed as anomalies stop the steps."""
    a = report.anomalies
    stop = set(a.loc[a["status"] == "confirmed", "line"].astype(int))
    taught = {int(row["line"]) for row in rows}
    steps = Steps.of(report.entries)
    tried: set[str] = set()
    out: list[list[dict[str, Any]]] = []
    for row in rows:
        more: list[dict[str, Any]] = []
        in_session = pd.notna(row.get("position")) and int(row["position"]) >= 0
        while in_session and row["kind"] in ("key", "unknown key"):
            found = following(report.entries, row["session"], int(row["position"]), window=window,
                              stop_lines=stop, steps=steps, masked=masked if learn else None)  # fmt: skip
            if found and found[-1]["next"] == keyids.UNKNOWN and found[-1]["raw"] not in tried:
                tried.add(found[-1]["raw"])
                learn(found[-1]["raw"])  # type: ignore[misc]  # entries matched again: ask again
                steps = Steps.of(report.entries)
                continue
            found = [e for e in found if e["next"] != keyids.UNKNOWN]
            more = [e for e in found if e["line"] not in taught or e["next"] == keyids.END]
            taught.update(e["line"] for e in more)
            break
        out.append(more)
    return out
