"""Detection on a Dask cluster: logs larger than one machine, the same verdicts as one process.

The fitted parser and models travel once, as a :class:`~workbench.detect.streaming.Scorer` (the models'
own state dicts), broadcast to every worker. Then, on futures of ``dask.distributed``:

1. **parse**: each worker reads byte ranges of the files (cut at line ends; a gzip file is one
   range) and matches them read-only; the client learns each range's line count and first
   timestamp, so lines get their global numbers and times their global origin;
2. **shuffle by session**: every range sends its rows to the partition that owns their session (a
   stable hash), where whole sessions get their elapsed times and are scored by the key model in
   batches of distinct windows, exactly as ``Workbench._score`` does in one process;
3. **back to line order**: the key verdicts return to the ranges; each range takes, from the ones
   before it, only the last ``history`` parameter vectors of every key (a few rows per key: the
   parameter models read a key's previous vectors across sessions, in line order), scores its
   vectors and joins both verdicts;
4. the anomalies come back to the client in line order; per-entry verdicts stay on the workers or
   go to ``out`` as parquet parts.

Feedback still happens on the client's workbench; the next detection ships the new weights.
"""

from __future__ import annotations

import gzip
import logging
import operator
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.detect.streaming import KEY_COLUMNS, Scorer, StreamReport, _report, parse_lines
from workbench.logs.parser import LogParser
from workbench.logs.sessions import SessionRule
from workbench.workbench import Workbench

__all__ = ["byte_ranges", "detect_dask", "local_client", "parse_dask", "read_range"]

logger = logging.getLogger(__name__)

_SHUFFLED = ["line", "raw", "timestamp", "session", "key", "template", "parsed", "error", "_sec"]


def byte_ranges(paths: Sequence[str | Path], blocksize: int) -> list[tuple[str, int, int]]:
    """``(path, start, end)`` pieces of about ``blocksize`` bytes; a gzip file is one piece
    (``end = -1``). A piece owns the lines that start inside it."""
    if blocksize < 1:
        raise ValueError(f"blocksize must be >= 1, got {blocksize}")
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise FileNotFoundError(f"log file not found: {path}")
        if path.is_dir():
            raise IsADirectoryError(f"expected a log file, got a directory: {path}")
        with path.open("rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        size = path.stat().st_size
        if gz or size == 0:
            out.append((str(path), 0, -1))
            continue
        out.extend((str(path), s, min(s + blocksize, size)) for s in range(0, size, blocksize))
    return out


def read_range(path: str, start: int, end: int) -> list[bytes]:
    """The lines (without ``\\n``) that start in bytes ``[start, end)`` of ``path``; the whole file
    when ``end < 0`` (gzip or not).

    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile(delete=False); _ = f.write(b"ab\\ncd\\nef"); f.close()
    >>> read_range(f.name, 0, 4), read_range(f.name, 4, 8)
    ([b'ab', b'cd'], [b'ef'])
    >>> os.unlink(f.name)
    """
    if end < 0:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            return [r[:-1] if r.endswith(b"\n") else r for r in fh]
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # the line holding byte start-1 belongs to the piece before
        pos = fh.tell()
        if pos >= end:
            return []
        data = fh.read(end - pos)
        if not data.endswith(b"\n"):
            data += fh.readline()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


# ---------------------------------------------------------------------- tasks (run on workers)
def _parse(sc: Scorer, path: str, start: int, end: int) -> pd.DataFrame:
    return sc.parse(read_range(path, start, end), trim=True)


def _first_time(df: pd.DataFrame) -> tuple[int, Any]:
    _, t0 = Scorer.seconds(df, None)
    return len(df), t0


def _prep(df: pd.DataFrame, offset: int, t0: Any) -> pd.DataFrame:
    df = df.copy()
    df["line"] = df["line"].to_numpy() + offset
    sec, _ = Scorer.seconds(df, t0)
    Scorer.elapsed(df, sec, None, None)  # dt_global; its first value waits for the range before
    df["_sec"] = sec
    return df


def _last_sec(df: pd.DataFrame) -> float | None:
    sec = df["_sec"].to_numpy()
    ok = np.flatnonzero(np.isfinite(sec))
    return float(sec[ok[-1]]) if len(ok) else None


def _split(
    df: pd.DataFrame, prev: float | None, n_out: int, me: int, cols: Sequence[str] = _SHUFFLED
) -> tuple[Any, ...]:
    sec = df["_sec"].to_numpy()
    ok = np.flatnonzero(np.isfinite(sec))
    if len(ok) and prev is not None:
        df = df.copy()
        first = ok[0]
        df.iloc[first, df.columns.get_loc("dt_global")] = np.diff([prev, sec[first]])[0]
    s = df["session"].to_numpy(dtype=object)
    named = pd.notna(s)
    dest = np.full(len(df), me % n_out, dtype=np.int64)
    if named.any():
        h = pd.util.hash_array(s[named].astype(str).astype(object))
        dest[named] = (h % np.uint64(n_out)).astype(np.int64)
    part = df[list(cols)]
    return (df, *(part[dest == j] for j in range(n_out)))


def _session_pass(sc: Scorer, g: int, *pieces: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = pd.concat([p for p in pieces if len(p)] or [pieces[0]], ignore_index=True)
    rows = rows.sort_values("line", kind="stable").reset_index(drop=True)
    if not len(rows):
        empty = pd.DataFrame(columns=["line", "dt_session", *KEY_COLUMNS, "_end", "_named"])
        return empty, pd.DataFrame(), 0  # type: ignore[return-value]
    Scorer.elapsed(rows, rows["_sec"].to_numpy(), None, None)  # whole sessions: dt_session
    keycols, anomalies = sc.key_pass(rows, g)
    keycols.insert(0, "dt_session", rows["dt_session"].to_numpy())
    keycols.insert(0, "line", rows["line"].to_numpy())
    keycols["_named"] = rows["session"].notna().to_numpy()
    sessions = int(rows["session"].dropna().nunique())
    return keycols, anomalies, sessions  # type: ignore[return-value]


def _key_result(res: tuple[pd.DataFrame, pd.DataFrame, int]) -> tuple[pd.DataFrame, int]:
    return res[1], res[2]


def _route(res: tuple[pd.DataFrame, Any, int], bounds: np.ndarray) -> tuple[pd.DataFrame, ...]:
    keycols = res[0]
    where = np.searchsorted(bounds, keycols["line"].to_numpy(), side="right") - 1
    return tuple(keycols[where == p] for p in range(len(bounds) - 1))


def _join_keys(df: pd.DataFrame, *back: pd.DataFrame) -> pd.DataFrame:
    keycols = pd.concat([b for b in back if len(b)] or [back[0]], ignore_index=True)
    keycols = keycols.sort_values("line", kind="stable").reset_index(drop=True)
    assert len(keycols) == len(df), f"{len(keycols)} key verdicts for {len(df)} lines"
    assert (keycols["line"].to_numpy() == df["line"].to_numpy()).all(), "key verdicts misaligned"
    df = df.reset_index(drop=True)
    named = keycols["_named"].to_numpy(dtype=bool)
    dt = df["dt_session"].to_numpy().copy()
    dt[named] = keycols["dt_session"].to_numpy()[named]
    df["dt_session"] = dt
    return pd.concat([df, keycols.drop(columns=["line", "dt_session", "_named"])], axis=1)


def _tail(sc: Scorer, df: pd.DataFrame) -> pd.DataFrame:
    return sc.halo([df])


def _param_pass(
    sc: Scorer, df: pd.DataFrame, halo: pd.DataFrame | None, g: int, out: str | None, me: int,
    keep: bool,
) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame | None]:  # fmt: skip
    import torch

    torch.set_num_threads(1)
    if not len(df):
        return (
            pd.DataFrame(),
            dict.fromkeys(("lines", "parsed", "key_entries", "param_checked"), 0),
            None,
        )
    ps = sc.param_pass(df, halo if halo is not None and len(halo) else None)
    rows = pd.concat([df, ps], axis=1)
    verdicts, anomalies = sc.verdicts(rows, g)
    counts = {
        "lines": len(df),
        "parsed": int(df["parsed"].sum()),
        "key_entries": int((verdicts["position"].to_numpy() >= 0).sum()),
        "param_checked": int((verdicts["param_status"] == "scored").sum()),
    }
    if out is not None and len(verdicts):
        e = verdicts.copy()
        for c in ("session", "dimension"):
            e[c] = e[c].astype(object).where(e[c].notna(), None)
        tmp = Path(out) / f".entries-{me:06d}.parquet"
        e.to_parquet(tmp, index=False)
        tmp.replace(Path(out) / f"entries-{me:06d}.parquet")
    return anomalies, counts, verdicts if keep else None


# ---------------------------------------------------------------------- client side
def detect_dask(
    wb: Workbench,
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

    Parameters
    ----------
    wb
        A fitted workbench; it is not changed.
    paths
        One log file or several read as one log, in order (plain or gzip); every worker must see
        them at the same path.
    client
        A ``dask.distributed.Client``.
    blocksize
        Bytes per parse task.
    partitions
        Session partitions of the shuffle; default: twice the cluster's threads (at most one per
        parse task). The shuffle is ``ranges x partitions`` pieces, each one scheduler task.
    out
        Folder (seen by the workers) for the per-entry verdicts as parquet parts, and
        ``anomalies.csv`` written by the client.
    session, level, g
        As for :func:`workbench.detect.streaming.detect_streaming`.
    keep_entries
        Gather every entry's verdicts into ``report.entries`` (memory grows with the log).

    Wiring: ``Workbench.detect(paths, client=client)`` returns
    ``detect_dask(self, paths, client, level=level, g=g)`` when a client is given;
    ``deeplog-workbench detect RUN LOG... --workers N`` runs it inside
    ``with local_client(N) as client:``, and ``--scheduler ADDRESS`` inside
    ``with dask.distributed.Client(ADDRESS) as client:``.
    """
    t_start = time.perf_counter()
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        raise ValueError("no log file to detect anomalies in")
    sc = Scorer(wb, session=session, level=level)
    g = int(sc.key_model.g_ if g is None else g)
    ranges = byte_ranges(paths, blocksize)
    n = len(ranges)
    threads = sum(client.nthreads().values()) or 1
    n_out = max(1, partitions or min(n, 2 * threads))  # the shuffle costs n * n_out pieces
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        for old in Path(out).glob("entries-*.parquet"):
            old.unlink()
    remote = client.scatter(sc, broadcast=True, hash=False)
    submit = client.submit
    parsed = [submit(_parse, remote, *r, pure=False) for r in ranges]
    firsts = client.gather([submit(_first_time, f) for f in parsed])
    stages = {"ship_and_parse": time.perf_counter() - t_start}
    sizes = np.asarray([c for c, _ in firsts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    t0 = next((t for _, t in firsts if t is not None), None)
    prepped = [submit(_prep, f, int(offsets[p]), t0) for p, f in enumerate(parsed)]
    del parsed
    lasts = client.gather([submit(_last_sec, f) for f in prepped])
    prev: list[float | None] = []
    carry = None
    for v in lasts:
        prev.append(carry)
        carry = v if v is not None else carry
    split = [submit(_split, f, prev[p], n_out, p) for p, f in enumerate(prepped)]
    del prepped
    frames = [submit(operator.getitem, s, 0) for s in split]
    pieces = [[submit(operator.getitem, s, 1 + j) for s in split] for j in range(n_out)]
    del split
    sess = [submit(_session_pass, remote, g, *pieces[j], pure=False) for j in range(n_out)]
    del pieces
    bounds = offsets + 1  # range p owns lines bounds[p] .. bounds[p + 1] - 1
    routed = [submit(_route, s, bounds) for s in sess]
    back = [[submit(operator.getitem, r, p) for r in routed] for p in range(n)]
    del routed
    joined = [submit(_join_keys, frames[p], *back[p]) for p in range(n)]
    del frames, back
    tails = client.gather([submit(_tail, remote, f) for f in joined])
    stages["sessions_and_key_model"] = time.perf_counter() - t_start - sum(stages.values())
    halos: list[pd.DataFrame | None] = []
    halo: pd.DataFrame | None = None
    for t in tails:
        halos.append(halo)
        if sc.param_model is not None:
            halo = sc.halo([h for h in (halo, t) if h is not None])
    outs = str(out) if out is not None else None
    finals = [
        submit(_param_pass, remote, f, halos[p], g, outs, p, keep_entries, pure=False)
        for p, f in enumerate(joined)
    ]
    del joined
    results = client.gather(finals)
    key_results = client.gather([submit(_key_result, s) for s in sess])
    stages["parameter_models"] = time.perf_counter() - t_start - sum(stages.values())
    del sess, finals
    counts = dict.fromkeys(("lines", "parsed", "sessions", "key_entries", "param_checked"), 0)
    found = []
    for anomalies, c, _ in results:
        for k, v in c.items():
            counts[k] += v
        if len(anomalies):
            found.append(anomalies)
    for anomalies, n_sessions in key_results:
        counts["sessions"] += n_sessions
        if len(anomalies):
            found.append(anomalies)
    counts.update(sessions_reopened=0, partitions=n, session_partitions=n_out)
    keep = [v for _, _, v in results if v is not None]
    report = _report(found, keep, g, sc.level, counts, Path(out) if out else None, t_start,
                     keep_entries)  # fmt: skip
    report.stages = {k: round(v, 3) for k, v in stages.items()}
    return report


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
    rows = pd.concat([p for p in pieces if len(p)] or [pieces[0]], ignore_index=True)
    rows = rows.sort_values("line", kind="stable").reset_index(drop=True)
    Scorer.elapsed(rows, rows["_sec"].to_numpy(dtype=float), None, None)
    return (rows[["line", "dt_session"]].assign(_named=rows["session"].notna().to_numpy()),)


def _join_times(df: pd.DataFrame, *back: pd.DataFrame) -> pd.DataFrame:
    got = pd.concat([b for b in back if len(b)] or [back[0]], ignore_index=True)
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

    Wiring: ``deeplog-workbench parse LOG --workers N | --scheduler ADDRESS`` calls this with the
    parser of ``--run`` (or one fitted on the first ``--sample`` lines) and writes the frame.
    """
    rule = SessionRule.parse(session) if isinstance(session, str) else session
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    ranges = byte_ranges(paths, blocksize)
    n = len(ranges)
    threads = sum(client.nthreads().values()) or 1
    n_out = max(1, partitions or min(n, 2 * threads))
    submit = client.submit
    box = client.scatter(_ParserBox(parser, rule), broadcast=True, hash=False)
    parsed = [submit(_parse_only, box, *r, pure=False) for r in ranges]
    firsts = client.gather([submit(_first_time, f) for f in parsed])
    offsets = np.concatenate([[0], np.cumsum([c for c, _ in firsts])]).astype(np.int64)
    t0 = next((t for _, t in firsts if t is not None), None)
    prepped = [submit(_prep, f, int(offsets[p]), t0) for p, f in enumerate(parsed)]
    del parsed
    prev, carry = [], None
    for v in client.gather([submit(_last_sec, f) for f in prepped]):
        prev.append(carry)
        carry = v if v is not None else carry
    cols = ["line", "session", "_sec"]
    split = [submit(_split, f, prev[p], n_out, p, cols) for p, f in enumerate(prepped)]
    del prepped
    frames = [submit(operator.getitem, s, 0) for s in split]
    pieces = [[submit(operator.getitem, s, 1 + j) for s in split] for j in range(n_out)]
    times = [submit(_session_times, *pieces[j]) for j in range(n_out)]
    routed = [submit(_route, t, offsets + 1) for t in times]
    back = [[submit(operator.getitem, r, p) for r in routed] for p in range(n)]
    joined = client.gather([submit(_join_times, frames[p], *back[p]) for p in range(n)])
    out = pd.concat(joined, ignore_index=True) if joined else parser.transform([])
    return out


@contextmanager
def local_client(
    n_workers: int, *, memory_limit: str | int = "auto", **kwargs: Any
) -> Iterator[Any]:
    """``with local_client(n_workers) as client:`` a ``LocalCluster`` of ``n_workers`` worker
    processes (one thread each) on 127.0.0.1, closed on exit. ``memory_limit`` is per worker
    (Dask's syntax: ``"2GiB"``; ``"auto"``: the machine's memory shared out, beyond which a worker
    spills to disk; 0 for none)."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=memory_limit,
        **kwargs,
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m workbench.detect.distributed RUN LOG... (--workers N | --scheduler ADDRESS)``: detect
    on a cluster with a saved run; prints the summary line, writes the verdicts to ``--out``."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m workbench.detect.distributed",
        description="Detect anomalies in log files on a Dask cluster with a saved run.",
    )
    p.add_argument("run", type=Path, help="run directory written by Workbench.save")
    p.add_argument("logs", type=Path, nargs="+", help="log files, read as one log in this order")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--workers", type=int, metavar="N", help="start N local worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="use a running cluster")
    p.add_argument("--out", type=Path, help="folder for entries-*.parquet and anomalies.csv")
    p.add_argument("--blocksize", type=int, default=32, metavar="MB", help="MB per parse task")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    for log in args.logs:
        if not log.is_file():
            print(f"error: log file not found: {log}", file=sys.stderr)
            return 2
    try:
        wb = Workbench.load(args.run)
    except Exception as exc:  # a missing or damaged run: one line, no traceback
        print(f"error: cannot load the run {args.run}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.scheduler:
            from dask.distributed import Client

            try:
                client = Client(args.scheduler, timeout=10)
            except OSError as exc:
                print(f"error: no scheduler at {args.scheduler}: {exc}", file=sys.stderr)
                return 2
            with client:
                report = detect_dask(wb, args.logs, client, blocksize=args.blocksize * 2**20,
                                     out=args.out)  # fmt: skip
        else:
            with local_client(args.workers) as client:
                report = detect_dask(wb, args.logs, client, blocksize=args.blocksize * 2**20,
                                     out=args.out)  # fmt: skip
    finally:
        wb.close()
    print(report.summary())
    if args.out is not None:
        print(f"verdicts in {args.out}/entries-*.parquet, anomalies in {args.out}/anomalies.csv")
    return 0


if __name__ == "__main__":  # the tasks must pickle by reference to the package module
    from workbench.detect.distributed import main as _main

    sys.exit(_main())
