"""Sessions: grouping parsed entries into units of execution, and elapsed times.

A session is what DeepLog scores as one sequence: an HDFS block (``blk_...``), an OpenStack VM instance
(``[instance: UUID]``), a BGL node, or a time window when the log has no id. Rules:

* ``regex:PATTERN``: the first match in the message (group 1 when the pattern has a group);
* ``field:NAME``: the value of a header field (BGL's ``Node``);
* ``window:SECONDS``: fixed, non-overlapping time windows;
* ``sliding:SECONDS,STEP``: overlapping windows (a window of SECONDS starts every STEP seconds), so
  an entry may belong to several; ``df['session']`` names the latest window that covers it and
  :func:`session_groups` gives the full membership (what the key model scores).

:func:`session_groups` is the one grouping of entries into sessions: every part of the package that
needs the entries of each session (training and scoring the key model, workflow mining, counting
sessions) asks it, with its filter named: ``keep="parsed"`` (every parsed entry, unknown-key ones
included) or ``keep="known"`` (entries whose template is known, key > 0).

Window rules count from an *origin*: the first timestamp of the frame unless one is given (the
online detector passes the first timestamp it saw, so windows stay aligned across batches).

>>> df = pd.DataFrame({"content": ["open blk_1", "open blk_2", "close blk_1"], "key": [1, 1, 2],
...                    "parsed": [True, True, True], "line": [1, 2, 3]})
>>> apply_session_rule(df, SessionRule.parse(r"regex:(blk_\\d+)"))
>>> names, rows = session_groups(df)
>>> names, [r.tolist() for r in rows]
(['blk_1', 'blk_2'], [[0, 2], [1]])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import regex

from workbench.config import Config, require, require_choice
from workbench.logs.formats import LogFormat

__all__ = [
    "KEEP",
    "SessionGroups",
    "SessionRule",
    "add_elapsed_times",
    "apply_session_rule",
    "assign_default_sessions",
    "assign_sessions",
    "format_rule",
    "session_diffs",
    "session_groups",
]

_KINDS = ("regex", "field", "window", "sliding")
#: The filters of :func:`session_groups`: which entries of a session it keeps.
KEEP = ("parsed", "known")


@dataclass(frozen=True)
class SessionRule(Config):
    """How entries are grouped into sessions (see the module docstring for the kinds).

    A configuration: checked when made (ValueError), written and read back as the text
    :meth:`parse` reads (``str(rule)``), which is how a parser's state stores it.
    """

    kind: str  # one of 'regex', 'field', 'window', 'sliding'
    pattern: str | None = None  # for 'regex'
    field: str | None = None  # for 'field'
    seconds: float | None = None  # window length, for 'window' and 'sliding'
    step: float | None = None  # window step, for 'sliding'

    def validate(self) -> None:
        require(
            self.kind in _KINDS, f"session rule kind must be one of {_KINDS}, got {self.kind!r}"
        )
        if self.kind == "regex":
            require(bool(self.pattern), "a 'regex' session rule needs a pattern")
            try:
                re.compile(self.pattern)  # type: ignore[arg-type]
            except re.error as exc:
                raise ValueError(f"invalid session regex {self.pattern!r}: {exc}") from exc
        if self.kind == "field":
            require(bool(self.field), "a 'field' session rule needs a field name")
        if self.kind in ("window", "sliding"):
            require(
                bool(self.seconds and self.seconds > 0),
                f"a '{self.kind}' session rule needs a positive window length",
            )
        if self.kind == "sliding":
            require(
                bool(self.step and 0 < self.step <= self.seconds),  # type: ignore[operator]
                "a 'sliding' session rule needs 0 < step <= window length",
            )

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

    def __str__(self) -> str:
        """The text :meth:`parse` reads back.

        >>> str(SessionRule.parse("sliding:60,10")), str(SessionRule.parse("field:Node"))
        ('sliding:60,10', 'field:Node')
        """
        if self.kind == "regex":
            return f"regex:{self.pattern}"
        if self.kind == "field":
            return f"field:{self.field}"
        if self.kind == "window":
            return f"window:{self.seconds:g}"
        return f"sliding:{self.seconds:g},{self.step:g}"

    @property
    def needs_timestamps(self) -> bool:
        """Window rules group by time."""
        return self.kind in ("window", "sliding")


def format_rule(fmt: LogFormat) -> SessionRule | None:
    """The format's own session rule (id regex or header field), None when it has none."""
    if fmt.session_regex:
        return SessionRule("regex", pattern=fmt.session_regex)
    if fmt.session_field:
        return SessionRule("field", field=fmt.session_field)
    return None


def assign_sessions(
    df: pd.DataFrame, fmt: LogFormat, rule: SessionRule | None = None, origin: Any = None
) -> SessionRule | None:
    """Set ``df['session']`` with ``rule``, else the format's own rule; the rule used (or None)."""
    if rule is None:
        rule = format_rule(fmt)
        if rule is None or (rule.kind == "field" and rule.field not in df.columns):
            return None
    apply_session_rule(df, rule, origin=origin)
    return rule


def assign_default_sessions(df: pd.DataFrame, fmt: LogFormat) -> None:
    """Set ``df['session']`` with the format's own rule (id regex or field), if it has one."""
    assign_sessions(df, fmt)


def apply_session_rule(df: pd.DataFrame, rule: SessionRule, origin: Any = None) -> None:
    """Set ``df['session']`` in place. Sliding windows overlap: ``session`` names the latest window
    covering each entry; :func:`session_groups` gives every window's members."""
    parsed = df["parsed"].to_numpy(dtype=bool)
    if rule.kind == "regex":
        out = _regex_sessions(df["content"].tolist(), parsed, rule.pattern)  # type: ignore[arg-type]
        df["session"] = pd.Series(out, index=df.index, dtype=object)
    elif rule.kind == "field":
        if rule.field not in df.columns:
            raise ValueError(
                f"no field {rule.field!r} to group sessions by; have {list(df.columns)}"
            )
        s = df[rule.field].astype(object)
        df["session"] = s.where(parsed & s.notna().to_numpy(), None)
    else:
        # fixed windows are named w0, w1, ...; a sliding window by its start, s0, s1, ...
        step = rule.seconds if rule.kind == "window" else rule.step
        start = _window_index(df, step, origin)  # type: ignore[arg-type]
        prefix = "w" if rule.kind == "window" else "s"
        df["session"] = pd.Series(
            [f"{prefix}{int(i)}" if i >= 0 else None for i in start], index=df.index, dtype=object
        )


def _regex_sessions(contents: list[str], parsed: np.ndarray, pattern: str) -> list[str | None]:
    """The session id found by ``pattern`` (its first group, else the whole match) in each
    parsed content; None where it finds none."""
    from workbench.logs.formats import REGEX_TIMEOUT, TRUSTED_SESSION_PATTERNS, RegexTimeoutError

    if pattern in TRUSTED_SESSION_PATTERNS:  # a built-in pattern: ``re``, faster, no time limit
        search = re.compile(pattern).search
        grp = 1 if search.__self__.groups else 0
        # each match is read as it is found: a list of match objects would keep them all alive
        return [
            m.group(grp) if ok and (m := search(c)) else None
            for c, ok in zip(contents, parsed.tolist(), strict=True)
        ]
    rx = regex.compile(pattern)
    grp = 1 if rx.groups else 0
    out = []
    for content, ok in zip(contents, parsed, strict=True):
        try:  # a user pattern gets a time limit per line
            m = rx.search(content, timeout=REGEX_TIMEOUT) if ok else None
        except TimeoutError:
            raise RegexTimeoutError(
                f"session regex {pattern!r} ran over {REGEX_TIMEOUT:g} s on one line "
                f"(catastrophic backtracking?): {content[:80]!r}"
            ) from None
        out.append(m.group(grp) if m else None)
    return out


def _seconds(df: pd.DataFrame, origin: Any = None) -> np.ndarray:
    if "timestamp" not in df.columns or df["timestamp"].isna().all():
        raise ValueError("time-window sessions need timestamps, and none could be read in this log")
    ts = df["timestamp"]
    t0 = ts.min() if origin is None else pd.Timestamp(origin)
    return (ts - t0).dt.total_seconds().to_numpy()


def _window_index(df: pd.DataFrame, seconds: float, origin: Any = None) -> np.ndarray:
    sec = _seconds(df, origin)
    idx = np.floor(sec / seconds)
    ok = df["parsed"].to_numpy(dtype=bool) & np.isfinite(idx)
    return np.where(ok, np.nan_to_num(idx, nan=-1), -1).astype(np.int64)


class SessionGroups(NamedTuple):
    """What :func:`session_groups` returns (a pair: ``names, rows = session_groups(df)``)."""

    names: list[str]  #: session names, in order of their first kept entry
    rows: list[np.ndarray]  #: per session, the positional rows of its kept entries, in log order


def session_groups(
    entries: pd.DataFrame,
    rule: SessionRule | None = None,
    *,
    origin: Any = None,
    keep: Literal["parsed", "known"] = "parsed",
) -> SessionGroups:
    """THE grouping of entries into sessions: each session's name and its entries' rows.

    Parameters
    ----------
    entries
        A parsed frame (the row schema of :mod:`workbench.logs.parser`) with its ``session``
        column assigned (:func:`assign_sessions`).
    rule
        Only a sliding-window rule changes anything: its windows overlap, so an entry is in every
        window that covers it (``origin`` as in :func:`apply_session_rule`); without readable
        timestamps, or for any other rule, the groups are those of ``entries['session']``.
    keep
        Which entries of a session are kept: ``"parsed"`` every parsed entry (the ``parsed``
        column), unknown-key ones included: what the key model trains on and scores;
        ``"known"`` only entries with a known template (``key > 0``): what workflow mining reads
        (no ``parsed`` column needed). Entries without a session are never kept.

    Sessions come in order of their first kept entry; a session with no kept entry is left out.
    Rows are positional (``entries.iloc``), ascending.

    >>> df = pd.DataFrame({"session": ["a", "b", None, "a", "b"], "key": [0, 2, 3, 1, -1],
    ...                    "parsed": [True, True, True, True, False]})
    >>> [r.tolist() for r in session_groups(df).rows]
    [[0, 3], [1]]
    >>> session_groups(df, keep="known")
    SessionGroups(names=['b', 'a'], rows=[array([1]), array([3])])
    """
    require_choice("keep", keep, KEEP)
    if rule is not None and rule.kind == "sliding" and entries["timestamp"].notna().any():
        names, rows = _sliding_members(entries, rule, origin)
    else:
        s = entries["session"].to_numpy(dtype=object)
        rows = np.flatnonzero(pd.notna(s))
        names = s[rows]
    if keep == "parsed":
        kept = entries["parsed"].to_numpy(dtype=bool)
    else:
        kept = entries["key"].to_numpy() > 0
    ok = kept[rows] if len(rows) else np.zeros(0, bool)
    names, rows = names[ok], rows[ok]
    if not len(rows):
        return SessionGroups([], [])
    return _by_first_entry(names, rows)


def _sliding_members(
    df: pd.DataFrame, rule: SessionRule, origin: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Every (window name, row) pair of a sliding rule: an entry appears once per window that
    covers it; pairs ordered by window, then row."""
    sec = _seconds(df, origin)
    ok = df["parsed"].to_numpy(dtype=bool) & np.isfinite(sec)
    size, step = float(rule.seconds), float(rule.step)  # type: ignore[arg-type]
    # entry at t belongs to the windows k with k*step <= t < k*step + size
    rows_ok = np.flatnonzero(ok & (sec >= 0))
    t = sec[rows_ok]
    last_k = np.floor(t / step).astype(np.int64)
    first_k = np.maximum(np.floor((t - size) / step).astype(np.int64) + 1, 0)
    first_k = np.where(first_k * step + size <= t, first_k + 1, first_k)
    counts = last_k - first_k + 1
    row = np.repeat(rows_ok, counts)
    offs = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    k = np.repeat(first_k, counts) + offs
    order = np.lexsort((row, k))
    names = np.array([f"s{i}" for i in k[order]], dtype=object)
    return names, row[order]


def _by_first_entry(names: np.ndarray, rows: np.ndarray) -> SessionGroups:
    """Group (name, row) pairs by name: sessions by their first row, rows ascending."""
    codes, uniques = pd.factorize(pd.Series(names, dtype=object), sort=False)
    rows = rows.astype(np.int64)
    first = np.full(len(uniques), np.iinfo(np.int64).max)
    np.minimum.at(first, codes, rows)
    rank = np.empty(len(uniques), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniques))
    codes = rank[codes]
    ordered = np.asarray(uniques, dtype=object)[np.argsort(first, kind="stable")]
    order = np.lexsort((rows, codes))
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return SessionGroups([str(n) for n in ordered], np.split(rows[order], bounds))


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


def session_diffs(names: np.ndarray, t: np.ndarray, last: dict[Any, float] | None) -> np.ndarray:
    """Each entry's time since the previous entry of its session (``names``, in line order), the
    first from ``last`` (the session's time before these rows; NaN when absent), and ``last``
    updated in place. Sessions are grouped by integer codes: no frame of names is built.

    >>> last = {"a": 1.0}
    >>> names = np.array(["a", "b", "a"], dtype=object)
    >>> session_diffs(names, np.array([2.0, 3.0, 5.0]), last).tolist()
    [1.0, nan, 3.0]
    >>> last
    {'a': 5.0, 'b': 3.0}
    """
    codes, uniques = pd.factorize(pd.Series(names, dtype=object), sort=False)
    order = np.argsort(codes, kind="stable")
    grouped = codes[order]
    same = grouped[1:] == grouped[:-1]
    prev = np.full(len(t), np.nan)
    prev[order[1:][same]] = t[order[:-1][same]]
    firsts = order[np.concatenate([[True], ~same])]  # each session's first row, by code
    names_u = list(uniques)
    if last:
        prev[firsts] = [last.get(u, np.nan) for u in names_u]
    if last is not None:
        lasts = order[np.concatenate([~same, [True]])]
        last.update(zip(names_u, t[lasts].tolist(), strict=True))
    return t - prev
