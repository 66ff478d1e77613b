"""Cluster plumbing of distributed detection and parsing: byte ranges of log files, global line
numbers and times, a shuffle of the rows by session and the way back to line order, and a local
Dask cluster.

Tasks run on workers through futures of ``dask.distributed``; what a range needs of the ones
before it (their line count, the log's first timestamp, the last time) reaches it as small
futures, never through the client, so no stage waits for the slowest range of the one before.
"""

from __future__ import annotations

import gzip
import logging
import operator
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.detect.chunked import Scorer
from workbench.logs.reading import is_gzip, log_path

__all__ = [
    "SHUFFLED",
    "back_to_ranges",
    "byte_ranges",
    "check_rule",
    "cluster_failure",
    "connect",
    "fill_raw",
    "gather_pieces",
    "local_client",
    "merge_problems",
    "quiet_dask",
    "read_range",
    "shuffle",
]

#: The columns a row takes to its session partition: not the line's text (the longest column by
#: far), which only an anomaly row needs; it is added back in its range (:func:`fill_raw`).
SHUFFLED = ["line", "timestamp", "session", "key", "template", "parsed", "error", "_sec"]


def byte_ranges(
    paths: Sequence[str | Path], blocksize: int, threads: int = 1
) -> list[tuple[str, int, int]]:
    """``(path, start, end)`` pieces of at most ``blocksize`` bytes; a gzip file is one piece
    (``end = -1``). A piece owns the lines that start inside it. The pieces of a plain file are of
    one size, and their number a multiple of ``threads`` (the cluster's), so that every thread
    gets as many bytes to parse: nine pieces on two threads would leave one thread idle for a
    ninth of the time.

    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile(delete=False); _ = f.write(b"x" * 900); f.close()
    >>> [(s, e) for _, s, e in byte_ranges([f.name], 100)][-2:], len(byte_ranges([f.name], 100, 2))
    ([(700, 800), (800, 900)], 10)
    >>> os.unlink(f.name)
    """
    if blocksize < 1:
        raise ValueError(f"blocksize must be >= 1, got {blocksize}")
    out = []
    for p in paths:
        path = log_path(p).absolute()  # workers of a cluster started elsewhere have another cwd
        size = path.stat().st_size
        if size == 0 or is_gzip(path):
            out.append((str(path), 0, -1))
            continue
        n = -(-size // blocksize)
        n += -n % max(threads, 1) if n > 1 else 0
        step = -(-size // n)
        out.extend((str(path), s, min(s + step, size)) for s in range(0, size, step))
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


def _first_time(df: pd.DataFrame) -> tuple[int, Any]:
    _, t0 = Scorer.seconds(df, None)
    return len(df), t0


def _number(before: tuple[int, Any], first: tuple[int, Any]) -> tuple[int, Any]:
    """The numbering after a range, from the one before it (the count of lines before the range
    and the log's first timestamp so far) and the range's own ``(lines, first timestamp)``."""
    (n, t0), (count, t) = before, first
    return n + count, t0 if t0 is not None else t


def _prep(df: pd.DataFrame, before: tuple[int, Any]) -> pd.DataFrame:
    """Global line numbers and seconds of a range. ``before``: the numbering of the ranges before
    it (:func:`_number`). Its first timestamp is the log's when none came before (it is the first
    range with timestamps), so every range counts its seconds from the log's first timestamp."""
    offset, t0 = before
    df = df.copy()
    df["line"] = df["line"].to_numpy() + offset
    sec, _ = Scorer.seconds(df, t0)
    Scorer.elapsed(df, sec, None, None)  # dt_global; its first value waits for the range before
    df["_sec"] = sec
    return df


def _noted(df: pd.DataFrame, before: tuple[int, Any]) -> tuple[int, dict[str, str]]:
    """The lines before a range and the problems its parser noted (``df.attrs``: unreadable
    timestamps, a failed session rule), each a sentence whose line numbers count from the
    range's first line."""
    keys = ("timestamp_problem", "session_problem")
    return before[0], {k: str(df.attrs[k]) for k in keys if k in df.attrs}


_UNREAD = re.compile(r"^(\d+) of (\d+) timestamps (.*) \(the first, on line (\d+): (.*)\)$", re.S)


def merge_problems(notes: Sequence[tuple[int, dict[str, str]]]) -> list[str]:
    """The problems of the whole log from those of its ranges (:func:`_noted`), as one process
    words them: the unreadable timestamps of every range summed, the first named by its line in
    the log; a session rule's failure once.

    >>> t = "{} of {} timestamps could not be read as %H (the first, on line {}: 'x')"
    >>> merge_problems([(0, {}), (10, {"timestamp_problem": t.format(2, 5, 3)}),
    ...                 (20, {"timestamp_problem": t.format(1, 4, 1)})]) == [t.format(3, 9, 13)]
    True
    """
    bad = total = 0
    first: tuple[str, int, str] | None = None
    out: list[str] = []
    for offset, found in notes:
        text = found.get("timestamp_problem")
        m = _UNREAD.match(text) if text else None
        if m is not None:
            bad, total = bad + int(m.group(1)), total + int(m.group(2))
            if first is None:
                first = (m.group(3), offset + int(m.group(4)), m.group(5))
        elif text and text not in out:
            out.append(text)
        rule = found.get("session_problem")
        if rule and rule not in out:
            out.append(rule)
    if first is not None:
        words, line, shown = first
        out.insert(0, f"{bad} of {total} timestamps {words} (the first, on line {line}: {shown})")
    return out


def cluster_failure(exc: BaseException, what: str) -> BaseException:
    """The error to raise for ``exc``, raised while waiting on a Dask cluster: a cluster that
    lost its workers or its scheduler (a killed worker, a task that killed too many, a closed
    connection, no worker at all) is a RuntimeError that says so on one line; any other error
    (bad input raised in a task) is itself."""
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from distributed.comm import CommClosedError

    lost = (KilledWorker, FutureCancelledError, CommClosedError, TimeoutError)
    no_worker = "no valid workers" in str(exc).lower()  # a ValueError or a TimeoutError
    if isinstance(exc, OSError) and getattr(exc, "filename", None):  # raised in a task
        return RuntimeError(
            f"a worker of the Dask cluster cannot read {exc.filename} ({exc.strerror}): the "
            "workers must see the log files at the same path as this machine"
        )
    if not isinstance(exc, lost) and not (no_worker and isinstance(exc, ValueError)):
        return exc
    if no_worker:
        cause = "it has no worker"
    elif isinstance(exc, KilledWorker):  # its own message is a paragraph
        cause = f"KilledWorker: every worker that ran {exc.task} died (out of memory? killed?)"
    else:
        cause = f"{type(exc).__name__}: {exc}"
    text = " ".join(cause.split())
    return RuntimeError(
        f"the Dask cluster failed during {what} ({text}); check that its scheduler and workers "
        "are running (a killed or out-of-memory worker), then run it again"
    )


def _bounds(before: tuple[int, Any], *numbers: tuple[int, Any]) -> np.ndarray:
    """Range p owns lines ``bounds[p] .. bounds[p + 1] - 1``."""
    return np.array([n for n, _ in numbers] + [before[0]], dtype=np.int64) + 1


def _last_sec(df: pd.DataFrame) -> float | None:
    sec = df["_sec"].to_numpy()
    ok = np.flatnonzero(np.isfinite(sec))
    return float(sec[ok[-1]]) if len(ok) else None


def _carry(before: float | None, last: float | None) -> float | None:
    """The log's last timestamp (in seconds) before a range, from the one before the range before
    and that range's own last."""
    return last if last is not None else before


def _split(
    df: pd.DataFrame, prev: float | None, n_out: int, me: int, cols: Sequence[str] = SHUFFLED
) -> tuple[Any, ...]:
    sec = df["_sec"].to_numpy()
    ok = np.flatnonzero(np.isfinite(sec))
    if len(ok) and prev is not None:
        df = df.copy()
        first = ok[0]
        df.iloc[first, df.columns.get_loc("dt_global")] = np.diff([prev, sec[first]])[0]
    # each session once: its partition from the hash of its id, and the id travels as a code
    codes, ids = pd.factorize(df["session"].to_numpy(dtype=object))
    dest = np.full(len(df), me % n_out, dtype=np.int64)
    named = codes >= 0
    if named.any():
        h = pd.util.hash_array(ids.astype(str).astype(object)) % np.uint64(n_out)
        dest[named] = h.astype(np.int64)[codes[named]]
    part = df[list(cols)].assign(session=pd.Categorical.from_codes(codes, categories=ids))
    return (df, *(part[dest == j] for j in range(n_out)))


def gather_pieces(pieces: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The rows of a session partition (its pieces from every range) in line order, the session
    ids text again (each range sent them coded against its own ids)."""
    rows = pd.concat([p for p in pieces if len(p)] or [pieces[0]], ignore_index=True)
    rows = rows.sort_values("line", kind="stable").reset_index(drop=True)
    ids = np.asarray(rows["session"], dtype=object)
    ids[pd.isna(ids)] = None
    rows["session"] = ids
    return rows


def _route(res: tuple[Any, ...], bounds: np.ndarray, n_frames: int) -> tuple[Any, ...]:
    """Per range, the rows of the first ``n_frames`` frames of ``res`` whose lines it owns."""
    parts = []
    for frame in res[:n_frames]:
        if "line" not in frame:  # an empty result
            assert not len(frame), "a routed frame needs its line numbers"
            parts.append([frame] * (len(bounds) - 1))
            continue
        where = np.searchsorted(bounds, frame["line"].to_numpy(), side="right") - 1
        parts.append([frame[where == p] for p in range(len(bounds) - 1)])
    return tuple(tuple(frames) for frames in zip(*parts, strict=True))


def fill_raw(anomalies: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """The ``raw`` text of anomaly rows from ``df`` (a range's rows, in line order, holding every
    line of ``anomalies``)."""
    if not len(anomalies):
        return anomalies
    lines = df["line"].to_numpy()
    at = np.searchsorted(lines, anomalies["line"].to_numpy())
    assert (lines[at] == anomalies["line"].to_numpy()).all(), "anomaly outside its range"
    anomalies = anomalies.copy()
    anomalies["raw"] = df["raw"].to_numpy(dtype=object)[at]
    return anomalies


def shuffle(
    client: Any,
    parse: Any,
    remote: Any,
    ranges: list[tuple[str, int, int]],
    n_out: int,
    cols: Sequence[str],
    watch: Any = None,
    notes: list[Any] | None = None,
) -> tuple[list[Any], list[list[Any]], Any]:
    """Parse the ranges on the cluster, number their lines and times globally, and split them by
    session: futures of each range's frame, of its pieces per session partition, and of the
    ranges' line bounds (:func:`back_to_ranges`).

    Nothing waits on the client: a range's numbering and its last time travel to the next range
    as small futures (two chains), so a worker numbers and splits the ranges already parsed while
    others are still parsing (these small tasks go first, ``priority=1``). ``watch(futures)``, when
    given, sees the futures whose end is the end of parsing. ``notes``, when given, receives
    per range a future of the problems its parser noted (:func:`merge_problems` reads them)."""
    submit = client.submit
    parsed = [submit(parse, remote, *r, pure=False) for r in ranges]
    firsts = [submit(_first_time, f, priority=1) for f in parsed]
    if watch is not None:
        watch(firsts)
    before: list[Any] = [(0, None)]  # lines before each range, and the first timestamp so far
    for f in firsts:
        before.append(submit(_number, before[-1], f, priority=1))
    if notes is not None:
        notes += [submit(_noted, f, before[p], priority=1) for p, f in enumerate(parsed)]
    prepped = [submit(_prep, f, before[p], priority=1) for p, f in enumerate(parsed)]
    del parsed
    carry: list[Any] = [None]  # the last time before each range
    for f in prepped[:-1]:
        carry.append(submit(_carry, carry[-1], submit(_last_sec, f, priority=1), priority=1))
    split = [submit(_split, f, carry[p], n_out, p, cols, priority=1) for p, f in enumerate(prepped)]
    del prepped
    frames = [submit(operator.getitem, s, 0, priority=1) for s in split]
    pieces = [[submit(operator.getitem, s, 1 + j, priority=1) for s in split] for j in range(n_out)]
    bounds = submit(_bounds, before[-1], *before[:-1], priority=1)
    return frames, pieces, bounds


def back_to_ranges(
    client: Any,
    results: list[Any],
    frames: list[Any],
    bounds: Any,
    join: Any,
    n_frames: int = 1,
) -> list[Any]:
    """Route the per-partition results (their first ``n_frames`` frames, by line) back to the
    ranges their lines belong to (``bounds``: the future :func:`shuffle` gives), and join them:
    ``join(frame, *pieces)``, each piece a tuple of ``n_frames`` frames."""
    submit = client.submit
    routed = [submit(_route, s, bounds, n_frames, priority=1) for s in results]
    back = [
        [submit(operator.getitem, r, p, priority=1) for r in routed] for p in range(len(frames))
    ]
    return [submit(join, frames[p], *back[p], priority=1) for p in range(len(frames))]


def quiet_dask(level: int = logging.CRITICAL) -> None:
    """Keep Dask's own log (a cluster starting and closing, a worker slow to stop, the traceback
    of a failed task) below ``level`` in this process: a command says what it did and why it
    failed in its own lines (:func:`cluster_failure`)."""
    import distributed  # noqa: F401  (its import sets its loggers' levels: set them after)

    logging.getLogger("distributed").setLevel(level)


def check_rule(rule: Any, how: str = "--workers/--scheduler") -> None:
    """Refuse, before any cluster starts, a session rule that needs the whole log's time range
    (``window:``, ``sliding:``): byte ranges are matched apart (a ValueError naming ``how``)."""
    if rule is not None and rule.kind not in ("regex", "field"):
        raise ValueError(
            f"{how}: the run's session rule {rule} needs the whole log's time range, which a "
            "cluster's byte ranges do not see; detect without them to read the log in one process"
        )


def connect(address: str, timeout: float = 10) -> Any:
    """A ``dask.distributed.Client`` of the running cluster at ``address``; a ValueError that
    says why on one line when the address is not one (``tcp://HOST:PORT``) or no scheduler
    answers there within ``timeout`` seconds."""
    from dask.distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"--scheduler {address!r} is not a Dask scheduler address (tcp://HOST:PORT): {exc}"
        ) from None


def warm_worker() -> None:
    """Run on each worker of a cluster once: import what detection runs (torch, pandas, the
    models) so the first detection does not pay for it, and keep torch to one thread (a worker
    process per core; more threads would compete with the other workers). The package's warnings
    about one byte range (an empty file among several) stay quiet on the worker: the client's
    report says what the whole log held."""
    import torch

    import workbench.detect.distributed  # noqa: F401

    torch.set_num_threads(1)
    logging.getLogger("workbench").setLevel(logging.ERROR)


@contextmanager
def local_client(
    n_workers: int, *, memory_limit: str | int = "auto", **kwargs: Any
) -> Iterator[Any]:
    """``with local_client(n_workers) as client:`` a ``LocalCluster`` of ``n_workers`` worker
    processes (one thread each) on 127.0.0.1, warmed (:func:`warm_worker`), closed on exit.
    ``memory_limit`` is per worker (Dask's syntax: ``"2GiB"``; ``"auto"``: the machine's memory
    shared out, beyond which a worker spills to disk; 0 for none)."""
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    import dask
    from dask.distributed import Client, LocalCluster

    # no dashboard, so no use for the workers' statistical profiler (a stack sample every 10 ms)
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # its HTTP routes on a free loopback port: never 8787 taken by another cluster (a
            # warning) nor every interface
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            memory_limit=memory_limit,
            **kwargs,
        )
    try:
        with Client(cluster) as client:
            client.run(warm_worker)
            yield client
    finally:
        cluster.close()
