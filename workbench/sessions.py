"""Sessions: grouping parsed entries into units of execution, and elapsed times.

A session is what DeepLog scores as one sequence: an HDFS block (``blk_...``), an OpenStack VM instance
(``[instance: UUID]``), a BGL node, or a time window when the log has no id. Rules:

* ``regex:PATTERN``: the first match in the message (group 1 when the pattern has a group);
* ``field:NAME``: the value of a header field (BGL's ``Node``);
* ``window:SECONDS``: fixed, non-overlapping time windows;
* ``sliding:SECONDS,STEP``: overlapping windows, an entry may belong to several.

>>> df = pd.DataFrame({"content": ["open blk_1", "open blk_2", "close blk_1"], "key": [1, 1, 2],
...                    "parsed": [True, True, True], "line": [1, 2, 3]})
>>> apply_session_rule(df, SessionRule.parse(r"regex:(blk_\\d+)"))
>>> {k: v.tolist() for k, v in session_sequences(df).items()}
{'blk_1': [1, 2], 'blk_2': [1]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import regex

from workbench.formats import LogFormat

__all__ = [
    "SessionRule",
    "add_elapsed_times",
    "apply_session_rule",
    "assign_default_sessions",
    "group_sessions",
    "session_sequences",
]

_KINDS = ("regex", "field", "window", "sliding")


@dataclass(frozen=True)
class SessionRule:
    """How entries are grouped into sessions (see the module docstring for the kinds)."""

    kind: str  # one of 'regex', 'field', 'window', 'sliding'
    pattern: str | None = None  # for 'regex'
    field: str | None = None  # for 'field'
    seconds: float | None = None  # window length, for 'window' and 'sliding'
    step: float | None = None  # window step, for 'sliding'

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"session rule kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "regex":
            if not self.pattern:
                raise ValueError("a 'regex' session rule needs a pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"invalid session regex {self.pattern!r}: {exc}") from exc
        if self.kind == "field" and not self.field:
            raise ValueError("a 'field' session rule needs a field name")
        if self.kind in ("window", "sliding") and not (self.seconds and self.seconds > 0):
            raise ValueError(f"a '{self.kind}' session rule needs a positive window length")
        if self.kind == "sliding" and not (self.step and 0 < self.step <= self.seconds):  # type: ignore[operator]
            raise ValueError("a 'sliding' session rule needs 0 < step <= window length")

    @classmethod
    def parse(cls, text: str) -> SessionRule:
        """Read ``regex:PATTERN``, ``field:NAME``, ``window:SECONDS`` or ``sliding:SECONDS,STEP``.

        >>> SessionRule.parse("sliding:60,10")
        SessionRule(kind='sliding', pattern=None, field=None, seconds=60.0, step=10.0)
        """
        kind, sep, value = text.partition(":")
        if not sep:
            raise ValueError(f"session rule must look like KIND:VALUE, got {text!r}")
        try:
            if kind == "regex":
                return cls("regex", pattern=value)
            if kind == "field":
                return cls("field", field=value)
            if kind == "window":
                return cls("window", seconds=float(value))
            if kind == "sliding":
                size, _, step = value.partition(",")
                return cls("sliding", seconds=float(size), step=float(step or size))
        except ValueError as exc:
            raise ValueError(f"bad session rule {text!r}: {exc}") from exc
        raise ValueError(f"session rule kind must be one of {_KINDS}, got {kind!r}")


def assign_default_sessions(df: pd.DataFrame, fmt: LogFormat) -> None:
    """Set ``df['session']`` with the format's own rule (id regex or field), if it has one."""
    if fmt.session_regex:
        apply_session_rule(df, SessionRule("regex", pattern=fmt.session_regex))
    elif fmt.session_field and fmt.session_field in df.columns:
        apply_session_rule(df, SessionRule("field", field=fmt.session_field))


def apply_session_rule(df: pd.DataFrame, rule: SessionRule) -> None:
    """Set ``df['session']`` in place. Sliding windows overlap: use :func:`group_sessions` for them."""
    parsed = df["parsed"].to_numpy(dtype=bool)
    if rule.kind == "regex":
        from workbench.formats import REGEX_TIMEOUT, RegexTimeoutError

        rx = regex.compile(rule.pattern)  # type: ignore[arg-type]
        grp = 1 if rx.groups else 0
        out = []
        for content, ok in zip(df["content"], parsed, strict=True):
            try:  # a user pattern gets a time limit per line
                m = rx.search(content, timeout=REGEX_TIMEOUT) if ok else None
            except TimeoutError:
                raise RegexTimeoutError(
                    f"session regex {rule.pattern!r} ran over {REGEX_TIMEOUT:g} s on one line "
                    f"(catastrophic backtracking?): {content[:80]!r}"
                ) from None
            out.append(m.group(grp) if m else None)
        df["session"] = pd.Series(out, index=df.index, dtype=object)
    elif rule.kind == "field":
        if rule.field not in df.columns:
            raise ValueError(
                f"no field {rule.field!r} to group sessions by; have {list(df.columns)}"
            )
        s = df[rule.field].astype(object)
        df["session"] = s.where(parsed & s.notna().to_numpy(), None)
    elif rule.kind == "window":
        start = _window_index(df, rule.seconds)  # type: ignore[arg-type]
        df["session"] = pd.Series(
            [f"w{int(i)}" if i >= 0 else None for i in start], index=df.index, dtype=object
        )
    else:
        raise ValueError("sliding windows overlap; use group_sessions() to get their membership")


def _window_index(df: pd.DataFrame, seconds: float) -> np.ndarray:
    if "timestamp" not in df.columns or df["timestamp"].isna().all():
        raise ValueError("time-window sessions need timestamps, and this log has none")
    ts = df["timestamp"]
    t0 = ts.min()
    sec = (ts - t0).dt.total_seconds().to_numpy()
    idx = np.floor(sec / seconds)
    ok = df["parsed"].to_numpy(dtype=bool) & np.isfinite(idx)
    return np.where(ok, np.nan_to_num(idx, nan=-1), -1).astype(np.int64)


def group_sessions(df: pd.DataFrame, rule: SessionRule | None = None) -> pd.DataFrame:
    """Long-form membership: one row per (session, entry) with columns ``session`` and ``row``.

    For non-overlapping rules this is ``df['session']`` made long; for sliding windows an entry
    appears once per window that covers it. ``row`` is the positional index into ``df``.
    """
    if rule is None or rule.kind != "sliding":
        if rule is not None:
            df = df.copy()
            apply_session_rule(df, rule)
        s = df["session"].to_numpy(dtype=object)
        rows = np.flatnonzero(pd.notna(s))
        return pd.DataFrame({"session": s[rows], "row": rows})
    if df["timestamp"].isna().all():
        raise ValueError("time-window sessions need timestamps, and this log has none")
    sec = (df["timestamp"] - df["timestamp"].min()).dt.total_seconds().to_numpy()
    ok = df["parsed"].to_numpy(dtype=bool) & np.isfinite(sec)
    size, step = float(rule.seconds), float(rule.step)  # type: ignore[arg-type]
    sessions, rows = [], []
    last = np.nanmax(np.where(ok, sec, np.nan)) if ok.any() else 0.0
    k = 0
    while k * step <= last:
        lo = k * step
        members = np.flatnonzero(ok & (sec >= lo) & (sec < lo + size))
        sessions.extend([f"s{k}"] * len(members))
        rows.extend(members.tolist())
        k += 1
    return pd.DataFrame({"session": pd.Series(sessions, dtype=object), "row": rows})


def session_sequences(df: pd.DataFrame, rule: SessionRule | None = None) -> dict[str, np.ndarray]:
    """Key sequence of every session, in log order (unparsed lines are left out).

    Sessions come out in order of their first entry.
    """
    members = group_sessions(df, rule)
    keys = df["key"].to_numpy()
    members = members[keys[members["row"].to_numpy()] >= 0]
    out: dict[str, np.ndarray] = {}
    for name, grp in members.groupby("session", sort=False):
        out[str(name)] = keys[np.sort(grp["row"].to_numpy())]
    return out


def add_elapsed_times(df: pd.DataFrame) -> None:
    """Fill ``dt_global`` and ``dt_session`` (seconds since the previous entry; NaN for the first).

    Only parsed entries with a timestamp take part; the log is taken in row order.
    """
    ts = df["timestamp"]
    ok = df["parsed"].to_numpy(dtype=bool) & ts.notna().to_numpy()
    sec = np.full(len(df), np.nan)
    if ok.any():
        sec[ok] = (ts[ok] - ts[ok].iloc[0]).dt.total_seconds().to_numpy()
    dt_global = np.full(len(df), np.nan)
    idx = np.flatnonzero(ok)
    if len(idx) > 1:
        dt_global[idx[1:]] = np.diff(sec[idx])
    df["dt_global"] = dt_global
    dt_session = np.full(len(df), np.nan)
    sess = df["session"]
    has = ok & sess.notna().to_numpy()
    if has.any():
        sub = pd.DataFrame({"s": sess[has].to_numpy(), "t": sec[has]})
        dt_session[has] = sub.groupby("s", sort=False)["t"].diff().to_numpy()
    df["dt_session"] = dt_session
