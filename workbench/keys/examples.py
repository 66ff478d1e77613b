"""Training examples and input rows of the log-key model, from sessions of external key ids.

:func:`distinct_examples` gives each distinct (window -> next key) example of framed sessions once,
with how often it occurs (training uses it once, weighted); :func:`history_rows` gives the input row
of an entry known by its whole history (scoring one entry, the online update).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from workbench.keys.vocabulary import PAD_INDEX, KeyVocabulary, Session
from workbench.keys.windows import frame_sessions, unique_rows, unique_sessions

__all__ = ["check_sessions", "distinct_examples", "history_rows"]


def check_sessions(sessions: Iterable[Sequence[int]]) -> list[Session]:
    """Sessions as tuples of non-negative ints. Readers share one tuple between repeated sessions,
    so each distinct object is converted and checked once (``done`` keeps it alive: ids stay
    unique)."""
    out: list[Session] = []
    done: dict[int, tuple[object, Session]] = {}
    for i, s in enumerate(sessions):
        found = done.get(id(s))
        if found is not None and found[0] is s:
            out.append(found[1])
            continue
        session = tuple(int(k) for k in s)
        if session and min(session) < 0:
            raise ValueError(f"session {i}: log keys must be non-negative integers")
        if isinstance(s, tuple):
            done[id(s)] = (s, session)
        out.append(session)
    return out


def distinct_examples(
    sessions: Sequence[Session], vocab: KeyVocabulary, window: int, *, count_columns: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (window -> next key) examples of framed sessions and how often each occurs.

    Returns ``windows (n, h)`` (``(n, h + count_columns)`` with the session's key counts so far,
    see :func:`workbench.keys.windows.frame_sessions`), ``targets (n,)`` (internal indices) and
    ``counts (n,)``.

    >>> w, t, c = distinct_examples([(1, 2)] * 3 + [(1,)], KeyVocabulary([1, 2]), 2)
    >>> w.tolist(), t.tolist(), c.tolist()
    ([[0, 0], [0, 3], [0, 3], [3, 4]], [3, 2, 4, 2], [4.0, 1.0, 3.0, 3.0])
    """
    distinct, _, counts = unique_sessions(sessions)
    framed = frame_sessions(
        [vocab.encode(s) for s in distinct], window, count_columns=count_columns
    )
    if len(framed) == 0:
        return framed.windows, framed.targets, np.zeros(0)
    pairs = np.concatenate([framed.windows, framed.targets[:, None]], axis=1)  # (n, h + 1)
    uniq, inverse = unique_rows(pairs)
    weight = np.bincount(inverse, weights=counts[framed.session], minlength=len(uniq))
    return uniq[:, :-1], uniq[:, -1], weight


def history_rows(
    histories: Sequence[Sequence[int]], vocab: KeyVocabulary, window: int, count_columns: int = 0
) -> np.ndarray:
    """Input rows (as in :func:`workbench.keys.windows.frame_sessions`) of entries given by their
    whole history: the last ``window`` keys, left-padded, then ``count_columns`` key counts.

    >>> history_rows([[], [5], [5, 6, 6]], KeyVocabulary([5, 6]), 2, count_columns=5).tolist()
    [[0, 0, 0, 0, 0, 0, 0], [0, 3, 0, 0, 0, 1, 0], [4, 4, 0, 0, 0, 1, 2]]
    """
    rows = np.full((len(histories), window + count_columns), PAD_INDEX, dtype=np.int64)
    for i, hist in enumerate(histories):
        enc = (
            np.asarray(vocab.encode(list(hist)), dtype=np.int64)
            if len(hist)
            else np.zeros(0, np.int64)
        )
        tail = enc[-window:]
        rows[i, window - len(tail) : window] = tail
        if count_columns:
            rows[i, window:] = np.bincount(enc, minlength=count_columns)[:count_columns]
    return rows
