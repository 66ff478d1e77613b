"""Framing sessions for next-key models, and distinct sessions and windows.

Next-key models see a session *framed*: ``h`` PAD entries before it and an END marker after it, so
that a session of ``n`` keys yields ``n + 1`` (history window -> next key) examples. The first key
is predicted from a window of pure padding (the start of a session is visible to the model),
sessions shorter than ``h`` are scored like any other, and END is a key the model predicts, which
catches sessions that stop where normal sessions never stop.

>>> from workbench.keys.vocabulary import KeyVocabulary
>>> vocab = KeyVocabulary.from_sessions([(5, 22, 11), (5, 9)])
>>> framed = frame_sessions([vocab.encode((5, 22))], window=3)
>>> framed.windows.tolist()
[[0, 0, 0], [0, 0, 3], [0, 3, 6]]
>>> vocab.decode(framed.targets).tolist()  # the END marker decodes to keyids.END
[5, 22, -2]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.config import require
from workbench.keys.vocabulary import END_INDEX, PAD_INDEX, Session

__all__ = ["FramedWindows", "frame_sessions", "unique_rows", "unique_sessions"]


def unique_sessions(sessions: Sequence[Session]) -> tuple[list[Session], np.ndarray, np.ndarray]:
    """Distinct sessions in first-seen order, the index of each input session among them, and
    counts.

    >>> distinct, inverse, counts = unique_sessions([(1, 2), (3,), (1, 2)])
    >>> distinct, inverse.tolist(), counts.tolist()
    ([(1, 2), (3,)], [0, 1, 0], [2, 1])
    """
    index: dict[Session, int] = {}
    inverse = np.fromiter(
        (index.setdefault(tuple(s), len(index)) for s in sessions),
        dtype=np.int64,
        count=len(sessions),
    )
    counts = np.bincount(inverse, minlength=len(index))
    return list(index), inverse, counts


def unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a 2-D array of non-negative integers, sorted, and each row's index among
    them: ``np.unique(a, axis=0, return_inverse=True)``, many times faster on key windows.

    Rows are packed into one int64 each (mixed radix, first column most significant, so the order is
    the same) when that fits. Wider rows (windows with session key counts) are hashed to one int64
    each instead and the distinct rows come in hash order; the result is checked row by row and
    ``np.unique`` does it in the (never yet seen) case of a collision.

    >>> uniq, inverse = unique_rows(np.array([[3, 1], [0, 2], [3, 1]]))
    >>> uniq.tolist(), inverse.tolist()
    ([[0, 2], [3, 1]], [1, 0, 1])
    """
    a = np.asarray(a)
    assert a.ndim == 2, f"expected a 2-D array, got shape {a.shape}"
    if len(a) == 0:
        return a.copy(), np.zeros(0, dtype=np.int64)
    base = int(a.max()) + 1
    if int(a.min()) >= 0 and a.shape[1] * math.log2(max(base, 2)) < 62:
        code = a[:, 0].astype(np.int64)
        for j in range(1, a.shape[1]):
            code = code * base + a[:, j]
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        return a[first], inverse.reshape(-1)
    weights = np.random.default_rng(0x5EED).integers(1, 2**62, size=a.shape[1]) | 1
    code = a.astype(np.int64) @ weights  # wraps around modulo 2**64: a hash of the row
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    uniq, inverse = a[first], inverse.reshape(-1)
    if np.array_equal(uniq[inverse], a):
        return uniq, inverse
    uniq, inverse = np.unique(a, axis=0, return_inverse=True)  # a hash collision
    return uniq, inverse.reshape(-1)


@dataclass(frozen=True)
class FramedWindows:
    """Every (history window -> next key) example of a list of framed sessions."""

    windows: np.ndarray  # (n_examples, h [+ c]) int64 internal indices, PAD-filled at session
    # starts; with ``count_columns = c`` the last c columns count each key so far in the session
    targets: np.ndarray  # (n_examples,) int64 internal index of the next key (END after the last)
    session: np.ndarray  # (n_examples,) int64 index of the session in the input list
    position: np.ndarray  # (n_examples,) int64 position of the target; len(session) for END

    def __len__(self) -> int:
        return len(self.targets)


def frame_sessions(
    encoded: Sequence[np.ndarray], window: int, *, count_columns: int = 0
) -> FramedWindows:
    """Slide a window of ``window`` keys over each session framed as ``[PAD]*h + keys + [END]``.

    Parameters
    ----------
    encoded
        Sessions as internal indices (:meth:`KeyVocabulary.encode`).
    window
        The history length ``h``.
    count_columns
        With ``c > 0`` (the vocabulary size), each example's row gets ``c`` more columns: how often
        each internal index occurs in the session *before* the target, the whole history and not
        only the last h keys (what a session's parallel threads have done so far, whatever their
        interleaving). 0: windows only, as in the paper.

    Returns
    -------
    FramedWindows
        ``len(s) + 1`` examples per session ``s``, in session order.

    >>> f = frame_sessions([np.array([3, 4, 3])], 2, count_columns=5)
    >>> f.windows.tolist()
    [[0, 0, 0, 0, 0, 0, 0], [0, 3, 0, 0, 0, 1, 0], [3, 4, 0, 0, 0, 1, 1], [4, 3, 0, 0, 0, 2, 1]]
    """
    require(window >= 1, f"window must be >= 1, got {window}")
    require(count_columns >= 0, f"count_columns must be >= 0, got {count_columns}")
    lengths = np.fromiter((len(s) for s in encoded), dtype=np.int64, count=len(encoded))
    n_sessions = len(lengths)
    if n_sessions == 0:
        empty = np.zeros(0, dtype=np.int64)
        return FramedWindows(np.zeros((0, window + count_columns), np.int64), empty, empty, empty)
    framed_len = lengths + window + 1
    starts = np.concatenate([[0], np.cumsum(framed_len)[:-1]])
    flat = np.full(int(framed_len.sum()), PAD_INDEX, dtype=np.int64)
    body = np.concatenate([np.asarray(s, dtype=np.int64) for s in encoded])
    # Each session's keys go after its padding; END after its keys.
    session_of_key = np.repeat(np.arange(n_sessions), lengths)
    key_offset = np.arange(len(body)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    flat[starts[session_of_key] + window + key_offset] = body
    flat[starts + window + lengths] = END_INDEX
    n_examples = lengths + 1
    session = np.repeat(np.arange(n_sessions), n_examples)
    position = np.arange(int(n_examples.sum())) - np.repeat(
        np.cumsum(n_examples) - n_examples, n_examples
    )
    first = starts[session] + position  # index of the first window entry in `flat`
    windows = np.lib.stride_tricks.sliding_window_view(flat, window)[first]  # (n_examples, h)
    targets = flat[first + window]
    if count_columns:
        if int(body.max(initial=0)) >= count_columns:
            raise ValueError(f"a key index is >= count_columns ({count_columns})")
        ex_start = np.concatenate([[0], np.cumsum(n_examples)[:-1]])
        counts = _counts_so_far(
            body, ex_start[session_of_key] + key_offset + 1, ex_start[session], count_columns
        )
        windows = np.concatenate([windows, counts], axis=1)
    return FramedWindows(np.ascontiguousarray(windows), targets, session, position)


def _counts_so_far(
    body: np.ndarray, mark_rows: np.ndarray, start_rows: np.ndarray, count_columns: int
) -> np.ndarray:
    """``(n_examples, count_columns)`` counts of each key at positions before each example.

    Example e at position p counts the keys at positions < p of its session: the key at p - 1 is
    marked in the row of example p (``mark_rows``), then running sums are taken within each session
    (``start_rows``: each example's session start; position 0 has no mark).
    """
    marks = np.zeros((len(start_rows), count_columns), dtype=np.int32)
    marks[mark_rows, body] = 1
    counts = np.cumsum(marks, axis=0, dtype=np.int32)
    counts -= counts[start_rows]
    return counts.astype(np.int64)
