"""What a parse reports: lines in, lines understood, why the rest was not, keys and sessions.

>>> from workbench.logs.parser import LogParser
>>> p = LogParser("<Level> <Content>")
>>> print(p.summary(p.parse(["INFO took 3 s", "", "garbage"])))  # doctest: +NORMALIZE_WHITESPACE
3 lines, 1 parsed, 2 unparsed (1 empty line, 1 does not fit the format), 1 keys, 0 unknown-key
entries, 0 sessions; format custom, session rule none (no session rule), 0 with a timestamp
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids

__all__ = ["ParseSummary", "count_sessions", "summarize"]


@dataclass(frozen=True)
class ParseSummary:
    """Counts reported after a parse: what came in, what was understood, and why the rest was not."""

    lines: int
    parsed: int
    unparsed: int
    unparsed_reasons: dict[str, int]
    keys: int
    unknown: int
    sessions: int
    format: str | None = None  # the line format's name
    session_rule: str | None = None  # the rule sessions were grouped by (None: no rule)
    timestamps: int | None = None  # entries with a readable timestamp
    problems: tuple[str, ...] = ()  # plain sentences: unreadable timestamps, a rule that failed

    def __str__(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in self.unparsed_reasons.items()) or "none"
        text = (
            f"{self.lines} lines, {self.parsed} parsed, {self.unparsed} unparsed ({reasons}), "
            f"{self.keys} keys, {self.unknown} unknown-key entries, {self.sessions} sessions"
        )
        if self.format is not None:
            rule = self.session_rule or "none (no session rule)"
            text += f"; format {self.format}, session rule {rule}"
        if self.timestamps is not None:
            text += f", {self.timestamps} with a timestamp"
        return text + "".join(f"; {p}" for p in self.problems)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


def summarize(df: pd.DataFrame, format_name: str, rule: Any, rule_in_force: Any) -> ParseSummary:
    """The :class:`ParseSummary` of a parsed frame: ``rule`` is the parser's own session rule
    (sliding windows are counted window by window), ``rule_in_force`` the one sessions were
    grouped by (the parser's, else the format's; None when there is none)."""
    parsed = df["parsed"].to_numpy(dtype=bool) if len(df) else np.zeros(0, bool)
    reasons = Counter(str(e) for e, ok in zip(df["error"], parsed, strict=True) if not ok)
    keys = df.loc[parsed, "key"]
    problems = [str(df.attrs[k]) for k in ("timestamp_problem", "session_problem") if k in df.attrs]
    repaired = int(df.loc[parsed, "error"].notna().sum()) if len(df) else 0
    if repaired:  # the note of a parsed line: invalid UTF-8 replaced
        problems.append(
            f"{repaired} parsed lines had bytes that are not UTF-8 (replaced by U+FFFD, so their "
            "templates differ): a file in another encoding, such as Latin-1? Convert it with iconv"
        )
    return ParseSummary(
        lines=len(df),
        parsed=int(parsed.sum()),
        unparsed=int((~parsed).sum()),
        unparsed_reasons=dict(reasons.most_common()),
        keys=int(keys[keys > 0].nunique()),
        unknown=int((keys == keyids.UNKNOWN).sum()),
        sessions=count_sessions(df, rule),
        format=format_name,
        session_rule=None if rule_in_force is None else str(rule_in_force),
        timestamps=int(df.loc[parsed, "timestamp"].notna().sum()) if len(df) else 0,
        problems=tuple(problems),
    )


def count_sessions(df: pd.DataFrame, rule: Any) -> int:
    """Sessions in ``df``: overlapping sliding windows each count; else the distinct names."""
    if rule is not None and rule.kind == "sliding" and len(df) and df["timestamp"].notna().any():
        from workbench.logs.sessions import session_groups

        return len(session_groups(df, rule).names)
    return int(df["session"].dropna().nunique()) if len(df) else 0
