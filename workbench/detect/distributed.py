"""Detection on a Dask cluster: logs larger than one machine, the same verdicts as one process.

The fitted parser and models travel once, as a :class:`~workbench.detect.chunked.Scorer` (the
models' own state dicts), broadcast to every worker. Then, on futures of ``dask.distributed``:

1. **parse**: each worker reads byte ranges of the files (cut at line ends; a gzip file is one
   range) and matches them read-only; each range's line count and first timestamp pass to the
   next range as small futures, so lines get their global numbers and times their global origin
   while later ranges are still being parsed;
2. **shuffle by session**: every range sends its rows, less their text, to the partition that owns
   their session (a stable hash), where whole sessions get their elapsed times and are scored by
   the key model in batches of distinct windows, exactly as one process does
   (:func:`workbench.detect.scoring.score`);
3. **back to line order**: the key verdicts and key anomalies return to the ranges (where the
   anomalies get their line's text back); each range takes, from the ones before it (a chain of
   small futures), only the last ``history`` parameter vectors of every key (a few rows per key:
   the parameter models read a key's previous vectors across sessions, in line order), scores its
   vectors and joins both verdicts;
4. the anomalies come back to the client in line order; per-entry verdicts stay on the workers or
   go to ``out`` as parquet parts.

Feedback still happens on the client's workbench; the next detection ships the new weights.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.detect.chunked import (
    KEY_COLUMNS,
    Scorer,
    StreamReport,
    checked_counts,
    fitted_models,
    parse_lines,
    stream_report,
)
from workbench.detect.shuffle import (
    SHUFFLED,
    back_to_ranges,
    byte_ranges,
    cluster_failure,
    fill_raw,
    gather_pieces,
    merge_problems,
    read_range,
    shuffle,
)
from workbench.logs.parser import LogParser
from workbench.logs.sessions import SessionRule

__all__ = ["detect_dask", "parse_dask"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- tasks (run on workers)
def _parse(sc: Scorer, path: str, start: int, end: int) -> pd.DataFrame:
    return sc.parse(read_range(path, start, end), trim=True)


def _session_pass(sc: Scorer, g: int, *pieces: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    import torch

    torch.set_num_threads(1)
    rows = gather_pieces(pieces)
    if not len(rows):
        empty = pd.DataFrame(columns=["line", "dt_session", *KEY_COLUMNS, "_end", "_named"])
        return empty, pd.DataFrame(columns=["line"]), 0  # type: ignore[return-value]
    Scorer.elapsed(rows, rows["_sec"].to_numpy(), None, None)  # whole sessions: dt_session
    rows["raw"] = None  # the text of anomaly rows is filled in their range (fill_raw)
    keycols, anomalies = sc.key_pass(rows, g)
    keycols.insert(0, "dt_session", rows["dt_session"].to_numpy())
    keycols.insert(0, "line", rows["line"].to_numpy())
    keycols["_named"] = rows["session"].notna().to_numpy()
    sessions = int(rows["session"].dropna().nunique())
    return keycols, anomalies, sessions  # type: ignore[return-value]


def _key_result(res: tuple[pd.DataFrame, pd.DataFrame, int]) -> int:
    return res[2]


def _join_keys(
    df: pd.DataFrame, *back: tuple[pd.DataFrame, pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A range's rows joined with their key verdicts, and its key anomalies with their text."""
    found = [a for _, a in back if len(a)]
    anomalies = fill_raw(pd.concat(found, ignore_index=True), df) if found else pd.DataFrame()
    keycols = pd.concat([k for k, _ in back if len(k)] or [back[0][0]], ignore_index=True)
    keycols = keycols.sort_values("line", kind="stable").reset_index(drop=True)
    assert len(keycols) == len(df), f"{len(keycols)} key verdicts for {len(df)} lines"
    assert (keycols["line"].to_numpy() == df["line"].to_numpy()).all(), "key verdicts misaligned"
    df = df.reset_index(drop=True)
    named = keycols["_named"].to_numpy(dtype=bool)
    dt = df["dt_session"].to_numpy().copy()
    dt[named] = keycols["dt_session"].to_numpy()[named]
    df["dt_session"] = dt
    joined = pd.concat([df, keycols.drop(columns=["line", "dt_session", "_named"])], axis=1)
    return joined, anomalies


def _tail(sc: Scorer, joined: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return sc.halo([joined[0]])


def _halos(sc: Scorer, *tails: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Per range after the first, its halo: the last vectors of every key in the ranges before it
    (from their ``tails``), in one task: a chain of one task a range would wait at every link for
    a worker busy with a parameter pass."""
    halos: list[pd.DataFrame] = []
    for t in tails:
        halos.append(sc.halo([*halos[-1:], t]))
    return tuple(halos)


def _param_pass(
    sc: Scorer, joined: tuple[pd.DataFrame, pd.DataFrame], halo: pd.DataFrame | None, g: int,
    out: str | None, me: int, keep: bool,
) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame | None, dict[str, int]]:  # fmt: skip
    import torch

    torch.set_num_threads(1)
    df, key_anomalies = joined
    if not len(df):
        counts = dict.fromkeys(("lines", "parsed", "key_entries", "param_checked"), 0)
        return pd.DataFrame(), counts, None, {}
    unparsed = ~df["parsed"].to_numpy(dtype=bool)
    reasons = df["error"][unparsed].astype(str).value_counts()
    ps = sc.param_pass(df, halo if halo is not None and len(halo) else None)
    rows = pd.concat([df, ps], axis=1)
    verdicts, anomalies = sc.verdicts(rows, g)
    found = [a for a in (key_anomalies, anomalies) if len(a)]
    anomalies = pd.concat(found, ignore_index=True) if found else anomalies
    counts = checked_counts(df, verdicts)
    if out is not None and len(verdicts):
        e = verdicts.copy()
        for c in ("session", "dimension"):
            e[c] = e[c].astype(object).where(e[c].notna(), None)
        tmp = Path(out) / f".entries-{me:06d}.parquet"
        e.to_parquet(tmp, index=False)
        tmp.replace(Path(out) / f"entries-{me:06d}.parquet")
    return (
        anomalies,
        counts,
        verdicts if keep else None,
        {str(r): int(n) for r, n in reasons.items()},
    )


# ---------------------------------------------------------------------- client side
def detect_dask(
    models: Any,
    paths: str | Path | Sequence[str | Path],
    client: Any,
    *,
    blocksize: int = 32 * 2**20,
    partitions: int | None = None,
    out: str | Path | None = None,
    session: str | Any | None = None,
    level: float | None = None,
    g: int | None = None,
    keep_entries: bool = False,
) -> StreamReport:
    """Detect anomalies in log files on the cluster behind ``client`` (see the module docstring).

    ``models``: ``wb.scorer(end_keys=True)`` of a fitted workbench, or the workbench (it is not
    changed). ``paths``: one log file or several read as one log, in order (plain or gzip), at the
    same path on every worker. ``client``: a ``dask.distributed.Client``. ``blocksize``: bytes per
    parse task. ``partitions``: session partitions of the shuffle (default: twice the cluster's
    threads, at most one per parse task; the shuffle is ``ranges x partitions`` pieces, each one
    scheduler task). ``out``: a folder seen by the workers for the per-entry verdicts as parquet
    parts, and ``anomalies.csv`` written by the client. ``session``, ``level``, ``g``: as for
    :func:`workbench.detect.streaming.detect_streaming`. ``keep_entries``: gather every entry's
    verdicts into ``report.entries`` (memory grows with the log).

    ``Workbench.detect(paths, client=client)`` and ``deeplog-workbench detect RUN LOG --workers N
    | --scheduler ADDRESS`` call this.
    """
    t_start = time.perf_counter()
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        raise ValueError("no log file to detect anomalies in")
    models = fitted_models(models)
    sc = Scorer(models, session=session, level=level)
    g = int(sc.key_model.g_ if g is None else g)
    ranges = byte_ranges(paths, blocksize, _threads(client))
    n_out = _n_out(client, len(ranges), partitions)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        for old in Path(out).glob("entries-*.parquet"):
            old.unlink()
    clock = _Clock(t_start)
    outs = str(out) if out is not None else None
    try:
        results, key_results, notes = _run(client, sc, g, ranges, n_out, outs, keep_entries, clock)
    except Exception as exc:
        raise cluster_failure(exc, "detection") from None
    counts, found = _collect(results, key_results)
    counts.update(sessions_reopened=0, partitions=len(ranges), session_partitions=n_out)
    keep = [r[2] for r in results if r[2] is not None]
    report = stream_report(found, keep, g, sc.level, counts, Path(out) if out else None, t_start,
                           keep_entries, scorer=sc)  # fmt: skip
    report.stages = clock.stages()
    _what_was_noted(report.coverage, sc, results, notes)
    report.coverage.params_need_timestamps = bool(models.params_elapsed and sc.n_params)
    return report


def _what_was_noted(cov: Any, sc: Scorer, results: list[Any], notes: list[Any]) -> None:
    """The parts of a one-process coverage that counts alone do not give: unparsed lines by
    reason, the problems noted while parsing (unreadable timestamps), and whether the rule or
    the parameter models need timestamps (so that their absence is a warning, not silence)."""
    rule = sc.rule if sc.rule is not None else sc.parser.effective_session_rule
    cov.format = sc.parser.format.name
    cov.session_rule = None if rule is None else str(rule)
    reasons: dict[str, int] = {}
    for r in results:
        for reason, n in r[3].items():
            reasons[reason] = reasons.get(reason, 0) + n
    cov.unparsed_reasons = reasons
    cov.problems = merge_problems(notes)
    cov.rule_needs_timestamps = bool(rule is not None and rule.needs_timestamps)


def _run(
    client: Any,
    sc: Scorer,
    g: int,
    ranges: list[tuple[str, int, int]],
    n_out: int,
    out: str | None,
    keep_entries: bool,
    clock: _Clock,
) -> tuple[list[Any], list[Any], list[Any]]:
    """The futures of one detection: parse and shuffle by session, key model per session
    partition, back to the ranges, parameter models in line order. The per-range results, the
    per-partition key results and the per-range parser notes, gathered. Only these final gathers
    wait on the client: every step
    between stages travels as futures, so workers go on as soon as their inputs are ready."""
    remote = client.scatter(sc, broadcast=True, hash=False)
    noted: list[Any] = []
    frames, pieces, bounds = shuffle(
        client, _parse, remote, ranges, n_out, SHUFFLED, clock.parsed, notes=noted
    )
    submit = client.submit
    sess = [submit(_session_pass, remote, g, *pieces[j], pure=False) for j in range(n_out)]
    del pieces
    counted = [submit(_key_result, s, priority=1) for s in sess]
    clock.keyed(counted)
    joined = back_to_ranges(client, sess, frames, bounds, _join_keys, n_frames=2)
    del frames, sess
    halos: list[Any] = [None] * len(joined)  # per range, from the ranges before it
    if sc.param_model is not None and len(joined) > 1:
        tails = [submit(_tail, remote, f, priority=1) for f in joined[:-1]]
        every = submit(_halos, remote, *tails, priority=1)
        halos[1:] = [submit(operator.getitem, every, p, priority=1) for p in range(len(tails))]
    finals = [
        submit(_param_pass, remote, f, halos[p], g, out, p, keep_entries, pure=False)
        for p, f in enumerate(joined)
    ]
    del joined, halos
    results = client.gather(finals)
    key_results = client.gather(counted)
    return results, key_results, client.gather(noted)


class _Clock:
    """When the stages of a detection ended, seen from the client: the last parse, the last key
    model pass, then the end. Stages overlap on the workers (a worker may number and split ranges
    while another parses); each stage's seconds run from the end of the one before."""

    def __init__(self, t_start: float) -> None:
        self.t_start = t_start
        self.ends: dict[str, float] = {}
        self.held: list[Any] = []  # the futures watched stay referenced until the end

    def _watch(self, stage: str, futures: list[Any]) -> None:
        self.held += futures
        for f in futures:
            f.add_done_callback(lambda _f, s=stage: self._ended(s))

    def _ended(self, stage: str) -> None:  # in a thread of the client
        self.ends[stage] = max(self.ends.get(stage, 0.0), time.perf_counter())

    def parsed(self, futures: list[Any]) -> None:
        self._watch("ship_and_parse", futures)

    def keyed(self, futures: list[Any]) -> None:
        self._watch("sessions_and_key_model", futures)

    def stages(self) -> dict[str, float]:
        """Seconds per stage: parsing, the key model, the parameter models (to now)."""
        out, start = {}, self.t_start
        for name in ("ship_and_parse", "sessions_and_key_model", "parameter_models"):
            end = self.ends.get(name, time.perf_counter())
            out[name] = round(max(end - start, 0.0), 3)
            start = max(start, end)
        return out


def _threads(client: Any) -> int:
    return sum(client.nthreads().values()) or 1


def _n_out(client: Any, n: int, partitions: int | None) -> int:
    return max(1, partitions or min(n, 2 * _threads(client)))  # the shuffle: n * n_out pieces


def _collect(results: list[Any], key_results: list[Any]) -> tuple[dict[str, int], list]:
    counts = dict.fromkeys(("lines", "parsed", "sessions", "key_entries", "param_checked"), 0)
    found = []
    for anomalies, c, *_ in results:
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
        if len(anomalies):
            found.append(anomalies)
    counts["sessions"] += sum(key_results)
    return counts, found


class _ParserBox:
    """A fitted parser and a session rule, travelling by the parser's own state."""

    def __init__(self, parser: LogParser, rule: SessionRule | None) -> None:
        self.parser, self.rule = parser, rule

    def __getstate__(self) -> dict[str, Any]:
        return {"parser": self.parser.to_state(), "rule": self.rule}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.parser, self.rule = LogParser.from_state(state["parser"]), state["rule"]


def _parse_only(box: _ParserBox, path: str, start: int, end: int) -> pd.DataFrame:
    return parse_lines(box.parser, box.rule, read_range(path, start, end))


def _session_times(*pieces: pd.DataFrame) -> tuple[pd.DataFrame]:
    rows = gather_pieces(pieces)
    Scorer.elapsed(rows, rows["_sec"].to_numpy(dtype=float), None, None)
    return (rows[["line", "dt_session"]].assign(_named=rows["session"].notna().to_numpy()),)


def _join_times(df: pd.DataFrame, *back: tuple[pd.DataFrame]) -> pd.DataFrame:
    got = pd.concat([b for (b,) in back if len(b)] or [back[0][0]], ignore_index=True)
    got = got.sort_values("line", kind="stable").reset_index(drop=True)
    assert len(got) == len(df), f"{len(got)} elapsed times for {len(df)} lines"
    df = df.reset_index(drop=True).drop(columns=["_sec"])
    named = got["_named"].to_numpy(dtype=bool)
    dt = df["dt_session"].to_numpy().copy()
    dt[named] = got["dt_session"].to_numpy()[named]
    df["dt_session"] = dt
    return df


def parse_dask(
    parser: LogParser,
    paths: str | Path | Sequence[str | Path],
    client: Any,
    *,
    session: str | SessionRule | None = None,
    blocksize: int = 32 * 2**20,
    partitions: int | None = None,
) -> pd.DataFrame:
    """Parse log files read-only on a cluster: the frame ``parser.transform`` gives for the files
    read as one log (line numbers, sessions and elapsed times included), row for row.

    The parser is fitted already (templates mined on a sample; matching is read-only, so byte
    ranges are matched independently); sessions are shuffled by id for their elapsed times. The
    frame comes back to the client: for logs larger than its memory, detect instead
    (:func:`detect_dask` returns only the anomalies).

    Wiring: ``deeplog-workbench parse LOG --run RUN --workers N | --scheduler ADDRESS`` calls this
    with the run's parser and its session rule (plain ``parse`` mines its templates on the whole
    log in one process instead).
    """
    rule = SessionRule.parse(session) if isinstance(session, str) else session
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    ranges = byte_ranges(paths, blocksize, _threads(client))
    n_out = _n_out(client, len(ranges), partitions)
    try:
        box = client.scatter(_ParserBox(parser, rule), broadcast=True, hash=False)
        cols = ["line", "session", "_sec"]
        noted: list[Any] = []
        frames, pieces, bounds = shuffle(client, _parse_only, box, ranges, n_out, cols, notes=noted)
        times = [client.submit(_session_times, *pieces[j]) for j in range(n_out)]
        joined = client.gather(back_to_ranges(client, times, frames, bounds, _join_times))
        notes = client.gather(noted)
    except Exception as exc:
        raise cluster_failure(exc, "parsing") from None
    out = pd.concat(joined, ignore_index=True) if joined else parser.transform([])
    for key in ("timestamp_problem", "session_problem"):  # as parser.transform notes them
        found = merge_problems([(n, {key: p[key]} if key in p else {}) for n, p in notes])
        if found:
            out.attrs[key] = found[0]
    return out
