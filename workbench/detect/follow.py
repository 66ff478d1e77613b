"""Detection as lines arrive (the paper's online setting; ``deeplog-workbench detect --follow``).

:class:`OnlineDetector` is fed lines in the order they are written. With a session rule that names
a session on each line (``regex:``, ``field:``, or a format's own id rule) it feeds them to the
:class:`~workbench.detect.streaming.SessionStream` of chunked detection, so a session is scored
when it closes in the same way (a key that only ever ended sessions in training, ``idle_lines``
lines or ``idle_seconds`` of log time without an entry of it, more than ``max_open`` sessions
open, or :meth:`~OnlineDetector.close`) and its verdicts are those of one process over the same
lines whenever no session was closed too early (``sessions_reopened`` counts those).

A time-window rule (``window:`` or ``sliding:``) needs a window's whole time range: its rows are
held until the window has been quiet for ``idle_lines`` lines and scored together then.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.detect.chunked import Scorer, fitted_models
from workbench.detect.coverage import Coverage
from workbench.detect.report import ANOMALY_COLUMNS
from workbench.detect.scoring import score
from workbench.detect.streaming import SessionStream, VerdictWriter
from workbench.logs.sessions import add_elapsed_times, assign_sessions

__all__ = ["OnlineDetector"]

_TOTALS = ["lines", "parsed", "sessions", "key_entries", "param_entries", "loose_entries"]
_TOTALS += ["unknown_rule_entries", "unknown_keys", "timestamps"]


class OnlineDetector:
    """Detection as lines arrive, with bounded memory (see the module docstring).

    ``models``: ``wb.scorer(end_keys=True)`` of a fitted workbench, or the workbench. :meth:`feed`
    takes the next lines and returns the anomalies of the sessions that closed, in line order;
    :attr:`coverage` says what was checked so far, :attr:`anomalies` how many were found.
    """

    def __init__(
        self,
        models: Any,
        *,
        idle_lines: int = 2000,
        max_open: int = 5000,
        idle_seconds: float = 3600.0,
    ) -> None:
        models = fitted_models(models)
        self.models, self.idle_lines, self.max_open = models, idle_lines, max_open
        rule = models.parser.effective_session_rule
        self.coverage = Coverage(
            format=models.parser.format.name,
            session_rule=None if rule is None else str(rule),
        )
        self.anomalies = 0
        self.peak_rows = 0
        try:
            sc = Scorer(models)
        except ValueError:  # a time-window rule: windows are scored whole
            self.stream: SessionStream | None = None
            self.next_line, self.origin = 1, None
            self.pending: pd.DataFrame | None = None
            self.last_seen: dict[str, int] = {}
        else:
            g = int(sc.key_model.g_)
            self.stream = SessionStream(
                sc, g, VerdictWriter(None), idle_seconds, idle_lines, False, max_open=max_open
            )

    @property
    def sessions_reopened(self) -> int:
        """Sessions that received a line after they were closed (scored again from there)."""
        return 0 if self.stream is None else int(self.stream.counts["sessions_reopened"])

    def feed(self, lines: list[str]) -> list[pd.Series]:
        """Parse ``lines`` (the next ones of the stream); the anomalies found in what closed."""
        if not lines:
            return []
        if self.stream is None:
            return self._feed_windows(lines)
        st = self.stream
        before = len(st.found)
        st.feed(list(lines))
        self.peak_rows = max(self.peak_rows, len(st.pending) + len(lines))
        return self._found(st.found[before:])

    def close(self) -> list[pd.Series]:
        """Score everything still open."""
        if self.stream is None:
            return self._score_windows(set(self.last_seen), everything=True)
        st = self.stream
        before = len(st.found)
        st.finish(st.pending)
        st.pending = st.pending.iloc[:0]
        st.last_line.clear()
        st.last_sec.clear()
        return self._found(st.found[before:])

    def _found(self, frames: list[pd.DataFrame]) -> list[pd.Series]:
        c, t = self.stream.counts, self.coverage  # type: ignore[union-attr]
        t.lines, t.parsed, t.sessions = c["lines"], c["parsed"], c["sessions"]
        t.key_entries, t.param_entries = c["key_entries"], c["param_checked"]
        t.loose_entries, t.unknown_rule_entries = c["loose_entries"], c["unknown_rule_entries"]
        t.unknown_keys, t.timestamps = c["unknown_keys"], c["timestamps"]
        t.unparsed_reasons = dict(self.stream.reasons)  # type: ignore[union-attr]
        if not frames:
            return []
        new = pd.concat(frames, ignore_index=True).reindex(columns=ANOMALY_COLUMNS)
        new = new.sort_values(["line", "id"], kind="stable").reset_index(drop=True)
        self.anomalies += len(new)
        return [row for _, row in new.iterrows()]

    # ---------------------------------------------------------------- time-window rules
    def _feed_windows(self, lines: list[str]) -> list[pd.Series]:
        p = self.models.parser
        df = p.transform(lines, first_line=self.next_line, sessions=False)
        self.next_line += len(lines)
        if self.origin is None and df["timestamp"].notna().any():
            self.origin = df["timestamp"].dropna().iloc[0]
        try:
            assign_sessions(df, p.format, p.session_rule, origin=self.origin)
        except ValueError as exc:
            note = f"session rule {p.effective_session_rule}: {exc}"
            if note not in self.coverage.problems:
                self.coverage.problems.append(note)
        sess = df["session"].to_numpy(dtype=object)
        for name, line in zip(sess, df["line"].to_numpy(), strict=True):
            if name is not None:
                self.last_seen[name] = int(line)
        self.pending = df if self.pending is None else pd.concat([self.pending, df])
        self.peak_rows = max(self.peak_rows, len(self.pending))
        now = self.next_line - 1
        closed = {s for s, last in self.last_seen.items() if now - last >= self.idle_lines}
        if len(self.last_seen) - len(closed) > self.max_open:
            by_age = sorted(self.last_seen, key=self.last_seen.__getitem__)
            closed |= set(by_age[: len(self.last_seen) - len(closed) - self.max_open])
        return self._score_windows(closed)

    def _score_windows(self, closed: set[str], everything: bool = False) -> list[pd.Series]:
        if self.pending is None or not len(self.pending):
            return []
        sess = self.pending["session"].to_numpy(dtype=object)
        done = pd.isna(sess) | np.isin(sess.astype(str), list(closed)) if closed else pd.isna(sess)
        if everything:
            done = np.ones(len(sess), dtype=bool)
        if not done.any():
            return []
        batch = self.pending[done].reset_index(drop=True)
        self.pending = self.pending[~done].reset_index(drop=True)
        for s in closed:
            self.last_seen.pop(s, None)
        add_elapsed_times(batch)
        report = score(self.models, batch)
        self._add(report.coverage)
        self.anomalies += len(report.anomalies)
        return [row for _, row in report.anomalies.iterrows()]

    def _add(self, c: Coverage) -> None:
        t = self.coverage
        for name in _TOTALS:
            setattr(t, name, getattr(t, name) + getattr(c, name))
        for r, n in c.unparsed_reasons.items():
            t.unparsed_reasons[r] = t.unparsed_reasons.get(r, 0) + n
        t.rule_needs_timestamps |= c.rule_needs_timestamps
        t.params_need_timestamps |= c.params_need_timestamps
        for p in c.problems:
            if p not in t.problems:
                t.problems.append(p)
