"""Detection over a key stream with online updates from false-positive feedback (docs/METHOD.md section 4).

The paper's BGL experiment treats the log as one chronological stream: train on the first part,
then detect entry by entry; whenever an entry is reported anomalous and the user says it is normal,
the model learns that (history -> key) example at once and detection goes on with the updated
weights. :func:`stream_detect` runs exactly that loop with a pluggable *oracle* (a person in the
workbench, the ground-truth labels in a benchmark) and reports what happened at every step.

Scoring is batched: the stream is scored a chunk at a time with the current weights, and only the
part after an update is scored again.

>>> import numpy as np
>>> from workbench.keys.model import KeyModel, KeyModelConfig
>>> train = [1, 2, 3] * 40
>>> model = KeyModel(KeyModelConfig(window=2, hidden_size=8, max_epochs=40, top_g=2, spare_keys=2))
>>> model = model.fit([train], seed=0, device="cpu", validation_fraction=0.0)
>>> stream = np.array([1, 2, 3, 1, 2, 4, 1, 2, 4, 1, 2, 3])
>>> # without feedback the new key 4 stays anomalous; with feedback it is learned at the first flag
>>> plain = stream_detect(model, stream, context=train)
>>> plain.flagged.astype(int).tolist()
[0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0]
>>> learned = stream_detect(model, stream, context=train, oracle=lambda i: False,
...                         resolve_unknown=lambda i, keys: 4)
>>> learned.flagged.astype(int).tolist(), learned.updates
([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], 1)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench import keyids
from workbench.keys.confirmed import confirmed_mask
from workbench.keys.scores import rank_of_actual

__all__ = [
    "StreamFollow",
    "StreamResult",
    "StreamSplit",
    "learn_unknown_with",
    "split_stream",
    "stream_detect",
]

logger = logging.getLogger(__name__)


@dataclass
class StreamResult:
    """What happened to every entry of the stream.

    ``flagged`` holds the verdict each entry got when it was reached (before any update it caused),
    ``rank`` the rank of its actual key then, ``updated`` whether an update followed it.
    """

    flagged: np.ndarray  # (n,) bool
    rank: np.ndarray  # (n,) int, 1-based; vocab candidates + 1 for a key the model cannot predict
    unknown: np.ndarray  # (n,) bool, the key was not in the vocabulary when reached
    updated: np.ndarray  # (n,) bool, an online update followed this entry
    update_seconds: list[float] = field(default_factory=list)  # each weight update (partial_fit)
    resolve_seconds: list[float] = field(default_factory=list)  # learning a new template, re-keying
    g: int = 0
    implied: list[int] = field(default_factory=list)  # entries taught with a flag (``follow``)

    @property
    def updates(self) -> int:
        """Number of online updates made."""
        return int(self.updated.sum())


def _windows(encoded: np.ndarray, start: int, stop: int, h: int) -> np.ndarray:
    # encoded holds h PAD entries of context before the stream; entry i's window is encoded[i:i+h]
    idx = np.arange(start, stop)[:, None] + np.arange(h)[None, :]
    return encoded[idx]


def stream_detect(
    model,
    stream: Sequence[int] | np.ndarray,
    *,
    context: Sequence[int] = (),
    g: int | None = None,
    min_probability: float | None = None,
    oracle: Callable[[int], bool] | None = None,
    resolve_unknown: Callable[[int, np.ndarray], int | None] | None = None,
    replay: Sequence[Sequence[int]] | None = None,
    chunk: int = 2048,
    follow: StreamFollow | None = None,
) -> StreamResult:
    """Top-g detection over ``stream`` with an update after every reported false positive.

    Ranks are :func:`workbench.keys.scores.rank_of_actual`'s (as for sessions); each update is one
    :meth:`~workbench.keys.model.KeyModel.partial_fit` with the config's ``update_*`` settings.

    Parameters
    ----------
    model
        A fitted :class:`~workbench.keys.model.KeyModel` (updated in place when feedback comes).
    stream
        Key ids in log order.
    context
        Keys that came just before the stream (the end of the training part), used as history.
    g, min_probability
        The top-g rule and probability floor; default the model's fitted ``g_`` and
        ``min_probability_``.
    oracle
        ``oracle(i) -> True`` when flagged entry ``i`` is a real anomaly, False when the user reports
        it as a false positive. None: no feedback (plain detection).
    resolve_unknown
        ``resolve_unknown(i, keys)`` is called for a false positive on a key the model does not know
        (a template never seen in training): it returns the key id to learn, or None to skip the
        update, and may re-key later entries of ``keys`` in place (a parser that just learned the
        template matches the later lines that share it).
    replay
        Normal sessions mixed into each update so the model does not forget (default: ``[context]``).
    chunk
        Most entries scored ahead in one batch.
    follow
        A :class:`StreamFollow`: a flag also teaches the steps after it (``implied``); None: not.
    """
    g, floor = _stream_rule(model, g, min_probability)
    keys = np.asarray(stream, dtype=np.int64).copy()
    n = len(keys)
    out = StreamResult(*(np.zeros(n, dtype=t) for t in (bool, np.int64, bool, bool)), g=g)
    ctx = np.asarray(list(context)[-model.config.window :], dtype=np.int64)
    replay_sessions = [tuple(int(k) for k in context)] if replay is None else replay
    learn = _learner(model, ctx, keys, oracle, (resolve_unknown, replay_sessions, follow), out)
    pos, size = 0, min(64, chunk)  # scored ahead: small after an update, doubling while none comes
    while pos < n:
        stop = min(n, pos + size)
        bad = _judge_chunk(model, ctx, keys, pos, stop, g, floor, out)
        updated = None if oracle is None else _first_learned(pos + np.flatnonzero(bad), learn)
        next_pos = stop if updated is None else updated + 1
        size = min(chunk, size * 2) if next_pos == stop else min(64, chunk)
        pos = next_pos
    return out


def _learner(
    model, ctx: np.ndarray, keys: np.ndarray, oracle: Callable[[int], bool] | None,
    how: tuple[Any, Sequence[Sequence[int]], StreamFollow | None], out: StreamResult,
) -> Callable[[int], bool]:  # fmt: skip
    """``learn(i)``: ask the oracle about flagged entry ``i`` and teach it when it is normal;
    True when the model learned. A confirmed anomaly is never learned from, and stops the steps
    a later flag teaches (``how``: resolve_unknown, replay, follow)."""
    resolve_unknown, replay, follow = how
    confirmed: set[int] = set()  # lines (1-based) the oracle confirmed as anomalies

    def learn(i: int) -> bool:
        if oracle(i):  # type: ignore[misc]  # only called with an oracle
            confirmed.add(i + 1)
            return False
        more = None if follow is None else (follow, confirmed)
        return _learn(model, ctx, keys, i, resolve_unknown, replay, out, more)

    return learn


def _stream_rule(model, g: int | None, min_probability: float | None) -> tuple[int, float]:
    """The rule's g and probability floor (default: the model's); a model that counts keys since
    the start of a session is refused (a stream has no sessions)."""
    if getattr(model.config, "session_counts", False):
        raise ValueError(
            "stream detection needs a window-only key model: session_counts counts keys since the "
            "start of a session, and a stream has no sessions"
        )
    floor = getattr(model, "min_probability_", 0.0) if min_probability is None else min_probability
    return int(model.g_ if g is None else g), float(floor)


def _first_learned(flagged: np.ndarray, learn: Callable[[int], bool]) -> int | None:
    """The first flagged entry the model learned from (everything after it is scored again with
    the updated weights), None when it learned from none."""
    for i in flagged.tolist():
        if learn(i):
            return i
    return None


def _judge_chunk(
    model,
    ctx: np.ndarray,
    keys: np.ndarray,
    pos: int,
    stop: int,
    g: int,
    floor: float,
    out: StreamResult,
) -> np.ndarray:
    """Score entries ``pos:stop`` with the current weights, record their rank and verdict in
    ``out``, and return the verdicts ``(stop - pos,)``."""
    h = model.config.window
    lo = pos + len(ctx) - h  # first key of entry pos's window in [ctx, keys]
    seg = model.vocab_.encode(np.concatenate([ctx, keys])[max(0, lo) : stop + len(ctx)])
    encoded = np.concatenate([np.zeros(max(0, -lo), dtype=np.int64), seg])  # PAD = 0
    win = _windows(encoded, 0, stop - pos, h)
    uniq, inv = np.unique(win, axis=0, return_inverse=True)
    actual = encoded[np.arange(stop - pos) + h]
    mask = model.vocab_.candidate_mask()
    r, p_actual = rank_of_actual(model.predict_proba(uniq), inv.reshape(-1), actual, mask)
    is_unknown = ~mask[actual]
    confirmed = confirmed_mask(model, win, actual)  # pairs a person confirmed normal
    bad = is_unknown | (((r > g) | (p_actual < floor)) & ~confirmed)
    out.rank[pos:stop] = r
    out.unknown[pos:stop] = is_unknown
    out.flagged[pos:stop] = bad
    return bad


def _learn(
    model,
    ctx: np.ndarray,
    keys: np.ndarray,
    i: int,
    resolve_unknown: Callable[[int, np.ndarray], int | None] | None,
    replay: Sequence[Sequence[int]],
    out: StreamResult,
    follow: tuple[StreamFollow, set[int]] | None = None,
) -> bool:
    """Teach the model that entry ``i`` is normal (with ``follow``, the steps after it too);
    False when it could not (an unknown key that ``resolve_unknown`` did not turn into one)."""
    if out.unknown[i]:
        t0 = time.perf_counter()
        new = resolve_unknown(i, keys) if resolve_unknown is not None else None
        out.resolve_seconds.append(time.perf_counter() - t0)
        if new is None:
            return False
        keys[i] = new
    h = model.config.window
    taught = [i]
    if follow is not None:
        more = follow[0].after(i, keys, h, follow[1], resolve_unknown)
        out.implied.extend(more)
        taught += more
    whole = np.concatenate([ctx, keys])
    histories = [whole[max(0, j + len(ctx) - h) : j + len(ctx)].tolist() for j in taught]
    t0 = time.perf_counter()
    model.partial_fit(histories, [int(keys[j]) for j in taught], replay=replay)
    out.update_seconds.append(time.perf_counter() - t0)
    out.updated[i] = True
    return True


class StreamFollow:
    """What "and the steps after it" means in a stream: the entries' sessions (BGL: the node),
    their raw lines and the parser's masked message. The steps after a flagged entry are the next
    entries of its session whose steps recur in other sessions
    (:func:`workbench.feedback.implied.following` on the stream read as sessions, as
    ``flag_false_positive(follow=True)``); each is taught with its stream window, in the flagged
    entry's update."""

    def __init__(
        self, sessions: Sequence[Any], raw: Sequence[str], masked: Callable[[str], str] | None
    ) -> None:
        self.frame = pd.DataFrame(
            {"session": list(sessions), "key": 0, "line": np.arange(1, len(raw) + 1),
             "parsed": True, "raw": list(raw)}
        )  # fmt: skip
        self.position = self.frame.groupby("session", sort=False).cumcount().to_numpy()
        self.masked = masked

    def after(
        self,
        i: int,
        keys: np.ndarray,
        window: int,
        stop_lines: set[int],
        resolve_unknown: Callable[[int, np.ndarray], int | None] | None,
    ) -> list[int]:
        """The entries (0-based) implied by calling entry ``i`` normal; a message never seen
        whose step recurs is learned (``resolve_unknown``) on the way, as in a workbench."""
        from workbench.feedback.implied import Steps, following

        tried: set[int] = set()
        while True:
            self.frame["key"] = keys
            masked = self.masked if resolve_unknown is not None else None
            found = following(self.frame, self.frame["session"].iat[i], int(self.position[i]),
                              window=window, stop_lines=stop_lines,
                              steps=Steps.of(self.frame), masked=masked)  # fmt: skip
            last = found[-1] if found else None
            if last is not None and last["next"] == keyids.UNKNOWN and last["line"] not in tried:
                tried.add(last["line"])
                new = resolve_unknown(last["line"] - 1, keys)  # type: ignore[misc]
                if new is not None:
                    keys[last["line"] - 1] = new
                    continue
            return [e["line"] - 1 for e in found if e["next"] not in (keyids.UNKNOWN, keyids.END)]


def learn_unknown_with(parser, raw_lines: Sequence[str]) -> Callable[[int, np.ndarray], int | None]:
    """A ``resolve_unknown`` for :func:`stream_detect` backed by a log parser.

    When entry ``i`` (raw text ``raw_lines[i]``) is a confirmed-normal message never seen in training,
    the parser learns it (:meth:`~workbench.logs.parser.LogParser.learn_line`, which never widens a
    mined template) and the later entries still unknown are matched again, so they pick up the key.
    """

    lengths: dict[int, int] = {}  # line -> token count of its masked content, as Drain reads it

    def length(j: int) -> int:
        if j not in lengths:
            masked = parser.masked_content(raw_lines[j])
            lengths[j] = -1 if masked is None else len(parser.drain_.get_content_as_tokens(masked))
        return lengths[j]

    def resolve(i: int, keys: np.ndarray) -> int | None:
        key = parser.learn_line(raw_lines[i])
        # A template matches only contents of its own token count (Drain's first level), so only
        # the later unknown lines of the learned line's length can pick up a key from it.
        later = [
            j
            for j in np.flatnonzero(keys[i + 1 :] == keyids.UNKNOWN) + i + 1
            if length(j) == length(i)
        ]
        if later:
            again = parser.transform([raw_lines[j] for j in later], sessions=False)
            keys[later] = again["key"].to_numpy()
        return key if key > 0 else None

    return resolve


@dataclass
class StreamSplit:
    """A chronological log cut in a training head and a test tail (see :func:`split_stream`)."""

    parser: Any  # the LogParser fitted on the head
    train: pd.DataFrame  # parsed head entries (unparsed rows dropped)
    test: pd.DataFrame  # tail entries matched read-only (unknown templates: key 0), reindexed
    train_keys: np.ndarray  # keys of the head, in log order (context of the first test entries)
    pieces: list[tuple[int, ...]]  # the head cut in contiguous pieces: training "sessions"

    @property
    def abnormal(self) -> np.ndarray:
        """(n_test,) bool from the format's ``label`` column (BGL: ``-`` is normal; no label is
        normal)."""
        label = self.test["label"]
        return (label.notna() & (label != "-")).to_numpy()


def split_stream(
    lines: Sequence[str],
    fmt: str,
    train_fraction: float,
    *,
    n_pieces: int = 10,
    min_train: int = 50,
) -> StreamSplit:
    """The paper's protocol for one chronological log without sessions: mine templates on the first
    ``train_fraction`` of the lines (at least ``min_train``), match the rest read-only, and cut the
    training keys in ``n_pieces`` contiguous pieces so that a share can be held out for validation.

    >>> lines = [f"- {i} INFO job {i % 3} done" for i in range(20)]
    >>> s = split_stream(lines, "<Label> <Id> <Level> <Content>", 0.5, n_pieces=2, min_train=5)
    >>> len(s.train), len(s.test), [len(p) for p in s.pieces], bool(s.abnormal.any())
    (10, 10, [5, 5], False)
    """
    from workbench.logs.parser import LogParser

    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n_train = max(min_train, int(len(lines) * train_fraction))
    parser = LogParser(fmt)
    train = parser.parse(list(lines[:n_train]), sessions=False)
    train = train[train["parsed"]]
    test = parser.transform(list(lines[n_train:]), sessions=False)
    test = test[test["parsed"]].reset_index(drop=True)
    keys = train["key"].to_numpy()
    pieces = [tuple(int(k) for k in p) for p in np.array_split(keys, n_pieces) if len(p)]
    return StreamSplit(parser, train, test, keys, pieces)
