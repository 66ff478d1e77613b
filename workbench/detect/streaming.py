"""Detection over logs larger than memory: read in chunks, score sessions when they close.

:meth:`Workbench.detect <workbench.workbench.Workbench.detect>` parses the whole log into one frame.
:func:`detect_streaming` gives the same verdicts, row for row, while holding only the sessions that
can still receive lines and one chunk of lines:

* the log is read ``chunk_lines`` lines at a time and matched read-only by the fitted parser;
* elapsed times carry over chunk boundaries (the last timestamp of the log and of every open
  session), measured from the log's first timestamp as in one process;
* the parameter models see each key's previous entries across sessions, in line order (that is how
  they were trained): a chunk is scored after the last ``history`` vectors of each key from the
  chunks before it, so a vector's window is the one it has in one process;
* a session is closed by a key that only ever ended sessions in training, by inactivity (no line
  for ``idle_seconds`` of log time or ``idle_lines`` lines) or by the end of the input, and is then
  scored by the key model;
* verdicts are written as they are decided (``out``: parquet parts and a CSV of anomalies).

A session that receives a line after it was closed (by an end key or inactivity) is scored again as
a new session from that line on; the report counts such sessions (``sessions_reopened``, and each
of them again in ``sessions``): its verdicts equal the one-process ones exactly when that count is 0.

:class:`~workbench.detect.follow.OnlineDetector` (``detect --follow``) feeds lines as they arrive
to the same :class:`SessionStream`, so it closes sessions the same way and gives the same verdicts.

The pieces (:class:`~workbench.detect.chunked.Scorer`: parse, elapsed times, key pass, parameter
pass, verdicts) are those of :mod:`workbench.detect.distributed` on a Dask cluster.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.detect.chunked import (
    CHUNKABLE,
    Scorer,
    StreamReport,
    checked_counts,
    fitted_models,
    stream_report,
)
from workbench.logs.reading import MAX_LINE_BYTES, TextLines, read_texts
from workbench.logs.sessions import SessionRule

__all__ = [
    "STREAM_ABOVE_BYTES", "SessionStream", "VerdictWriter", "detect_streaming", "read_chunks",
    "stream_above_bytes", "too_large_for_memory",
]  # fmt: skip

logger = logging.getLogger(__name__)

#: a plain log file larger than this is read in chunks unless asked otherwise; ``None``: the larger
#: of 256 MB and what one frame of parsed entries (about 15 times the file's size) holds in a third
#: of the memory available now. A gzip file counts eight times its size.
STREAM_ABOVE_BYTES: int | None = None


def stream_above_bytes() -> int:
    """The size over which a log file is read in chunks (see :data:`STREAM_ABOVE_BYTES`)."""
    if STREAM_ABOVE_BYTES is not None:
        return STREAM_ABOVE_BYTES
    available = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return max(256 * 1024**2, available // 45)


_SPENT = ["params", "dt_session", "dt_global", "label"]  # read by the parameter pass only
_COUNTS = ("lines", "parsed", "sessions", "key_entries", "param_checked", "sessions_reopened",
           "loose_entries", "unknown_rule_entries", "unknown_keys", "timestamps")  # fmt: skip


def _paths(items: list | tuple) -> bool:
    """A list of log files rather than of lines: Path objects, or a few names of existing files."""
    if not items:
        return False
    if all(isinstance(s, Path) for s in items):
        return True
    return len(items) <= 64 and all(
        isinstance(s, str) and "\n" not in s and len(s) < 4096 and Path(s).is_file() for s in items
    )


def too_large_for_memory(source: Any, rule: SessionRule | None = None) -> bool:
    """Whether ``source`` is a log file too large to parse into one frame (see
    :data:`STREAM_ABOVE_BYTES`) and ``rule`` lets chunked detection close its sessions (a time
    window needs the whole log's time range)."""
    if not isinstance(source, str | Path) or (rule is not None and rule.kind not in CHUNKABLE):
        return False
    from workbench.logs.reading import is_gzip

    path = Path(source)
    if not path.is_file():
        return False
    return path.stat().st_size * (8 if is_gzip(path) else 1) > stream_above_bytes()


def read_chunks(
    source: Any, chunk_lines: int, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[list[Any]]:
    """Lists of at most ``chunk_lines`` lines of ``source`` (a path, bytes, or lines), in order.
    A list of paths is read as one log, file after file. Files and bytes are decoded here, a block
    at a time (:class:`~workbench.logs.reading.TextLines`, lines longer than ``max_line_bytes``
    kept as unparsed rows), as a log read whole is; other lines pass as they are.

    >>> [len(c) for c in read_chunks(b"a\\nb\\nc\\n", 2)]
    [2, 1]
    """
    if chunk_lines < 1:
        raise ValueError(f"chunk_lines must be >= 1, got {chunk_lines}")
    wrap: Callable[[list[Any]], list[Any]] = TextLines
    if isinstance(source, list | tuple) and _paths(source):
        lines: Iterator[Any] = itertools.chain.from_iterable(
            read_texts(s, max_line_bytes) for s in source
        )
    elif isinstance(source, bytes | str | Path):
        lines = read_texts(source, max_line_bytes)
    else:
        lines, wrap = iter(source), list
    while True:
        chunk = wrap(itertools.islice(lines, chunk_lines))
        if not chunk:
            return
        yield chunk


class VerdictWriter:
    """Verdicts written as they are decided: parquet parts of the entries, a CSV of anomalies."""

    def __init__(self, out: str | Path | None) -> None:
        self.dir = Path(out) if out is not None else None
        self.n = 0
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            for old in self.dir.glob("entries-*.parquet"):
                old.unlink()
            (self.dir / "anomalies.csv").unlink(missing_ok=True)

    def write(self, entries: pd.DataFrame, anomalies: pd.DataFrame) -> None:
        if self.dir is None or not len(entries):
            return
        self.n += 1
        e = entries.copy()
        e["session"] = e["session"].astype(object).where(e["session"].notna(), None)
        e["dimension"] = e["dimension"].astype(object).where(e["dimension"].notna(), None)
        tmp = self.dir / f".entries-{self.n:06d}.parquet"
        e.to_parquet(tmp, index=False)
        tmp.replace(self.dir / f"entries-{self.n:06d}.parquet")
        if len(anomalies):
            path = self.dir / "anomalies.csv"
            anomalies.to_csv(path, mode="a", header=not path.exists(), index=False)


def detect_streaming(
    models: Any,
    source: Any,
    *,
    chunk_lines: int = 100_000,
    idle_seconds: float = 3600.0,
    idle_lines: int = 1_000_000,
    out: str | Path | None = None,
    session: str | SessionRule | None = None,
    level: float | None = None,
    g: int | None = None,
    keep_entries: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> StreamReport:
    """Detect anomalies in a log of any length with bounded memory (see the module docstring).

    Parameters
    ----------
    models
        The fitted models: ``wb.scorer(end_keys=True)`` of a fitted workbench, or the workbench
        itself (its parser, models, g and level are used; it is not changed).
    source
        A path (plain or gzip), a list of paths read as one log, bytes, or an iterable of lines.
    chunk_lines
        Lines read and matched at a time.
    idle_seconds, idle_lines
        A session is closed and scored when it had no line for ``idle_seconds`` of log time (the
        latest timestamp read so far) or among the last ``idle_lines`` lines.
    out
        Folder for the verdicts written as they are decided: ``entries-NNNNNN.parquet`` (the columns
        of :data:`~workbench.detect.chunked.VERDICT_COLUMNS`, each part in line order) and
        ``anomalies.csv``.
    session
        Session rule (``regex:`` or ``field:``); default: the format's.
    level, g
        The parameter models' confidence level and the key model's g; default: the models'.
    keep_entries
        Also return every entry's verdicts in ``report.entries`` (memory grows with the log).
    progress
        Called after every chunk with a dict: ``lines``, ``open_sessions``, ``anomalies``.
    """
    t_start = time.perf_counter()
    sc = Scorer(models := fitted_models(models), session=session, level=level)
    g = int(sc.key_model.g_ if g is None else g)
    stream = SessionStream(sc, g, VerdictWriter(out), idle_seconds, idle_lines, keep_entries)
    for chunk in read_chunks(source, chunk_lines, sc.parser.max_line_bytes):
        stream.feed(chunk)
        if progress is not None:
            progress({"lines": stream.counts["lines"], "open_sessions": len(stream.last_line),
                      "anomalies": sum(len(a) for a in stream.found)})  # fmt: skip
    stream.finish(stream.pending)
    if stream.counts["sessions_reopened"]:
        logger.warning("%d sessions received lines after they were closed (by a key that only "
                       "ended sessions in training, or by inactivity); they were scored again from "
                       "there, so their verdicts may differ from a detection that reads the log "
                       "whole (--in-memory)", stream.counts["sessions_reopened"])  # fmt: skip
    report = stream_report(stream.found, stream.keep, g, sc.level, stream.counts, stream.writer.dir,
                           t_start, keep_entries, scorer=sc)  # fmt: skip
    _what_was_noted(report.coverage, stream, models.params_elapsed)
    return report


def _what_was_noted(cov: Any, stream: SessionStream, params_elapsed: bool) -> None:
    """The unparsed lines by reason, and whether the rule or the parameter models need
    timestamps (so that their absence is a warning of the report, as in one process)."""
    sc = stream.sc
    cov.unparsed_reasons = dict(stream.reasons)
    rule = sc.rule if sc.rule is not None else sc.parser.effective_session_rule
    cov.rule_needs_timestamps = bool(rule is not None and rule.needs_timestamps)
    cov.params_need_timestamps = bool(params_elapsed and sc.n_params)


class SessionStream:
    """The state of one chunked detection: open sessions, their rows, the halo, the counts."""

    def __init__(
        self,
        sc: Scorer,
        g: int,
        writer: VerdictWriter,
        idle_seconds: float,
        idle_lines: int,
        keep_entries: bool,
        max_open: int | None = None,
    ) -> None:
        self.sc, self.g, self.writer = sc, g, writer
        self.max_open = max_open  # at most this many open sessions: the quietest close first
        self.idle_seconds, self.idle_lines, self.keep_entries = (
            idle_seconds,
            idle_lines,
            keep_entries,
        )
        self.keep: list[pd.DataFrame] = []
        self.found: list[pd.DataFrame] = []
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.reasons: dict[str, int] = {}  # unparsed lines by reason
        self.counts.update(peak_open_sessions=0, chunks=0)
        self.t0: pd.Timestamp | None = None
        self.last_global: float | None = None
        self.last_sec: dict[Any, float] = {}  # open sessions: seconds of their last entry
        self.last_line: dict[Any, int] = {}  # open sessions: their last line
        self.closed: OrderedDict[Any, None] = OrderedDict()  # recently closed sessions (bounded)
        self.pending = pd.DataFrame()  # rows of open sessions, parameter scores attached
        self.halo: pd.DataFrame | None = None
        self.line = 1
        self.now = -np.inf  # the latest time read, in seconds since the log's first timestamp

    def finish(self, rows: pd.DataFrame) -> None:
        """Score closed sessions (and session-less rows): key pass, then the verdicts."""
        if not len(rows):
            return
        sc, g, counts = self.sc, self.g, self.counts
        rows = rows.sort_values("line", kind="stable").reset_index(drop=True)
        keycols, key_anoms = sc.key_pass(rows, g)
        rows = pd.concat([rows, keycols], axis=1)
        verdicts, param_anoms = sc.verdicts(rows, g)
        anoms = pd.concat([a for a in (key_anoms, param_anoms) if len(a)] or [key_anoms])
        counts["sessions"] += int(rows["session"].dropna().nunique())
        for name, n in checked_counts(rows, verdicts).items():
            if name not in ("lines", "parsed"):  # counted as read
                counts[name] += n
        parsed = rows["parsed"].to_numpy(dtype=bool)
        for reason, n in rows["error"][~parsed].astype(str).value_counts().items():
            self.reasons[str(reason)] = self.reasons.get(str(reason), 0) + int(n)
        self.writer.write(verdicts, anoms)
        if len(anoms):
            self.found.append(anoms)
        if self.keep_entries:
            self.keep.append(verdicts)

    def feed(self, chunk: list[Any]) -> None:
        """Parse one chunk, score its parameter vectors, and score the sessions it closes."""
        df, sess, named = self._read(chunk)
        ends = self._ended(df, sess, named)
        pending = self.pending
        pending = pd.concat([pending, df[named]], ignore_index=True) if len(pending) else df[named]
        loose = df[~named]
        if ends:
            p_sess = pending["session"].to_numpy(dtype=object)
            done = pd.Series(p_sess, dtype=object).isin(ends).to_numpy()
            self.finish(pd.concat([pending[done], loose], ignore_index=True))
            pending = pending[~done].reset_index(drop=True)
            for s in ends:
                self.last_sec.pop(s, None)
                self.last_line.pop(s, None)
                self.closed[s] = None
            while len(self.closed) > 1_000_000:
                self.closed.popitem(last=False)
        else:
            self.finish(loose)
        self.pending = pending
        self.counts["peak_open_sessions"] = max(
            self.counts["peak_open_sessions"], len(self.last_line)
        )

    def _read(self, chunk: list[Any]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The chunk parsed, with elapsed times and parameter scores; its sessions."""
        sc, counts = self.sc, self.counts
        df = sc.parse(chunk, first_line=self.line, trim=True)
        self.line += len(chunk)
        counts["chunks"] += 1
        counts["lines"] += len(df)
        counts["parsed"] += int(df["parsed"].sum())
        sec, self.t0 = sc.seconds(df, self.t0)
        sess = df["session"].to_numpy(dtype=object)
        named = pd.notna(sess)
        again = [s for s in pd.unique(sess[named]) if s in self.closed]
        if again:
            counts["sessions_reopened"] += len(again)
            for s in again:
                del self.closed[s]
        self.last_global = sc.elapsed(df, sec, self.last_global, self.last_sec)
        ps = sc.param_pass(df, self.halo)
        if sc.param_model is not None:
            self.halo = sc.halo([self.halo, df] if self.halo is not None else [df])
        # what scoring and verdicts read from here on: not the vectors and elapsed times
        df = pd.concat([df.drop(columns=_SPENT, errors="ignore"), ps], axis=1)
        if named.any():
            # later lines of a session overwrite earlier ones: each keeps its last line
            lines = df["line"].to_numpy()[named].tolist()
            self.last_line.update(zip(sess[named].tolist(), lines, strict=True))
        return df, sess, named

    def _ended(self, df: pd.DataFrame, sess: np.ndarray, named: np.ndarray) -> set[Any]:
        """Sessions that end here: at a key that only ever ended sessions, or idle too long."""
        ends = set()
        if self.sc.end_keys:
            hit = named & np.isin(df["key"].to_numpy(), list(self.sc.end_keys))
            ends = set(pd.unique(sess[hit]).tolist())
        horizon = self.line - self.idle_lines
        ends |= {s for s, ln in self.last_line.items() if ln < horizon}
        if self.last_global is not None:
            self.now = max(self.now, self.last_global)
            ends |= {s for s, t in self.last_sec.items() if self.now - t > self.idle_seconds}
        over = len(self.last_line) - len(ends) - (self.max_open or len(self.last_line))
        if over > 0:
            still = [(ln, s) for s, ln in self.last_line.items() if s not in ends]
            ends |= {s for _, s in sorted(still, key=lambda t: t[0])[:over]}
        return ends
