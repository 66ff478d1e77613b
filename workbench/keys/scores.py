"""Per-entry scores of log-key sessions under a next-key model, and the one rank rule.

A next-key model (the DeepLog LSTM or the N-gram baseline) gives, for every entry of a framed
session, the probability of every candidate next key. :func:`score_sessions` turns that into
per-entry *scores* (:class:`KeyScores`): the rank of the actual key (1 = the most likely candidate)
and the top candidates with their probabilities. The decision on them is :mod:`workbench.keys.topg`.

:func:`rank_of_actual` is the one rank computation of the package (sessions here, the key stream of
:mod:`workbench.feedback.stream`, ...). The top-g rule of the paper (docs/METHOD.md section 2) says
a key is normal when it is among the g most probable keys; two cases the paper leaves open are
settled here:

- ties count in the key's favour: the rank is ``1 +`` the number of candidates *strictly* more
  probable than the actual key;
- a key the model gives probability 0 (a free vocabulary slot, a key never seen, or a probability
  that underflowed) is no candidate at all: it ranks after every candidate (``n_candidates + 1``), so
  it is anomalous for every g, however few keys have a positive probability.

Every function works on distinct sessions and distinct windows internally and maps results back to
every input session, so repeated sessions are scored once but counted with multiplicity.

>>> from workbench.keys.vocabulary import KeyVocabulary
>>> vocab = KeyVocabulary([1, 2])
>>> def always_1_then_end(windows):  # candidates: END, key 1, key 2 (internal 2, 3, 4)
...     p = np.zeros((len(windows), vocab.size)); p[:, 3] = 0.7; p[:, 2] = 0.2; p[:, 4] = 0.1
...     return p
>>> scores = score_sessions([(1,), (1, 2), (1, 9)], vocab, 2, always_1_then_end)
>>> scores.rank.tolist()
[1, 2, 1, 3, 2, 1, 4, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.keys.vocabulary import UNKNOWN_INDEX, KeyVocabulary, Session
from workbench.keys.windows import frame_sessions, unique_rows, unique_sessions

__all__ = [
    "KeyScores",
    "ProbabilityFn",
    "concat_scores",
    "rank_of_actual",
    "score_sessions",
    "segment_starts",
    "session_max_rank",
    "session_min_probability",
]

ProbabilityFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class KeyScores:
    """Per-entry scores of a list of sessions (every session, with multiplicity).

    Entries are ordered by session, then position; each session has ``len(session) + 1`` entries,
    the last one predicting END. Candidate lists are stored once per distinct history window.
    """

    n_sessions: int
    session_length: np.ndarray  # (n_sessions,) number of keys of each session
    session: np.ndarray  # (n_entries,) index of the session in the input
    position: np.ndarray  # (n_entries,) position in the session; == length for the END entry
    key: np.ndarray  # (n_entries,) external key id; :data:`workbench.keyids.END` for the END entry
    rank: np.ndarray  # (n_entries,) 1-based rank of the actual key; n_candidates + 1 if impossible
    probability: np.ndarray  # (n_entries,) model probability of the actual key
    unknown: np.ndarray  # (n_entries,) bool, key not in the training vocabulary
    window: np.ndarray  # (n_entries,) row of the entry's history window in the candidate tables
    top_keys: np.ndarray  # (n_windows, k) external ids of the k most likely next keys
    top_probs: np.ndarray  # (n_windows, k) their probabilities
    n_candidates: int  # number of keys that can be predicted (known keys + END)
    confirmed: np.ndarray | None = None  # (n_entries,) bool, a pair a person confirmed normal

    @property
    def is_end(self) -> np.ndarray:
        """(n_entries,) bool: the entry predicts the end of its session."""
        return self.position == self.session_length[self.session]

    def candidates(self, entry: int) -> list[tuple[int, float]]:
        """The top candidates ``(key, probability)`` of one entry, most likely first."""
        w = self.window[entry]
        return [
            (int(k), float(p)) for k, p in zip(self.top_keys[w], self.top_probs[w], strict=True)
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per entry, with the candidate lists (meant for small inputs and the UI)."""
        frame = pd.DataFrame(
            {
                "session": self.session,
                "position": self.position,
                "key": self.key,
                "rank": self.rank,
                "probability": self.probability,
                "unknown": self.unknown,
            }
        )
        frame["candidates"] = [self.top_keys[w].tolist() for w in self.window]
        frame["candidate_probs"] = [np.round(self.top_probs[w], 6).tolist() for w in self.window]
        return frame


def rank_of_actual(
    probs: np.ndarray,
    rows: np.ndarray,
    actual: np.ndarray,
    mask: np.ndarray,
    *,
    chunk: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """The rank of each entry's actual key among the candidates, and its probability.

    ``probs`` ``(n_windows, V)`` holds next-key probabilities (columns outside ``mask`` are
    ignored), ``rows`` ``(n,)`` the row of each entry in it, ``actual`` ``(n,)`` the internal index
    of each entry's actual key and ``mask`` ``(V,)`` the candidates
    (:meth:`~workbench.keys.vocabulary.KeyVocabulary.candidate_mask`). Returns ``rank`` ``(n,)``
    (1-based) and ``p_actual`` ``(n,)`` (0 for a key that is no candidate).

    The rank is ``1 +`` the number of candidates strictly more probable than the actual key (ties
    count in its favour); a key that is no candidate or has probability 0 gets ``n_candidates + 1``
    (anomalous for every g). ``chunk`` entries at a time bound the memory on big inputs.

    >>> p = np.array([[0.0, 0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.9, 0.1, 0.0]])
    >>> mask = np.array([False, False, True, True, True])
    >>> rank, p_actual = rank_of_actual(p, np.array([0, 0, 1, 1]), np.array([2, 4, 3, 1]), mask)
    >>> rank.tolist(), p_actual.tolist()
    ([1, 4, 2, 4], [0.5, 0.0, 0.1, 0.0])
    """
    n_candidates = int(mask.sum())
    is_candidate = mask[actual]
    p_actual = np.where(is_candidate, probs[rows, np.where(is_candidate, actual, 0)], 0.0)
    masked = np.where(mask[None, :], probs, -1.0)  # non-candidates rank after everything
    rank = np.ones(len(actual), dtype=np.int64)
    for start in range(0, len(actual), chunk):
        sl = slice(start, start + chunk)
        rank[sl] += (masked[rows[sl]] > p_actual[sl, None]).sum(axis=1)
    rank = np.where(~is_candidate | (p_actual <= 0.0), n_candidates + 1, rank)
    return rank, p_actual


def score_sessions(
    sessions: Sequence[Session],
    vocab: KeyVocabulary,
    window: int,
    predict_proba: ProbabilityFn,
    *,
    top_k: int = 10,
    count_columns: int = 0,
    accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> KeyScores:
    """Score every entry of ``sessions`` with a next-key probability function (the rank is
    :func:`rank_of_actual`'s; each distinct session and each distinct window is evaluated once).

    Parameters
    ----------
    sessions
        Sessions of external key ids.
    vocab
        The model's vocabulary; keys outside it are unknown.
    window
        History length ``h``.
    predict_proba
        ``(n, h) int64 internal windows -> (n, vocab.size) probabilities``; non-candidate columns
        (PAD, UNKNOWN, free slots) are ignored.
    top_k
        How many candidates to keep per window.
    count_columns
        With ``c > 0`` every row handed to ``predict_proba`` also carries the session's key counts
        so far (``(n, h + c)``, see :func:`workbench.keys.windows.frame_sessions`).
    accept
        ``(input rows, internal keys) -> (n,) bool``: entries a person confirmed normal (None: none).
    """
    distinct, inverse, _ = unique_sessions(sessions)
    encoded = [vocab.encode(s) for s in distinct]
    framed = frame_sessions(encoded, window, count_columns=count_columns)
    mask = vocab.candidate_mask()
    n_candidates = int(mask.sum())
    win_index, probs = _window_probabilities(framed.windows, vocab, predict_proba)
    rank_d, p_actual = rank_of_actual(probs, win_index, framed.targets, mask)
    order, top_probs = _top_candidates(probs, mask, max(1, min(top_k, n_candidates)))
    unknown_d = framed.targets == UNKNOWN_INDEX
    keys_d = _entry_keys(distinct, framed, vocab, unknown_d)
    session, position, gather = _every_session(distinct, inverse)
    confirmed = None if accept is None else accept(framed.windows, framed.targets)[gather]
    return KeyScores(
        n_sessions=len(sessions),
        session_length=np.fromiter(map(len, distinct), np.int64, len(distinct))[inverse],
        session=session,
        position=position,
        key=keys_d[gather],
        rank=rank_d[gather],
        probability=np.maximum(p_actual, 0.0).astype(np.float32)[gather],
        unknown=unknown_d[gather],
        window=win_index[gather],
        top_keys=vocab.decode(order),
        top_probs=top_probs,
        n_candidates=n_candidates,
        confirmed=confirmed,
    )


def _top_candidates(probs: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most probable candidates of each window (internal indices) and their
    probabilities; non-candidates come after every candidate."""
    probs = np.where(mask[None, :], probs, -1.0)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order, np.maximum(np.take_along_axis(probs, order, axis=1).astype(np.float32), 0.0)


def _window_probabilities(
    windows: np.ndarray, vocab: KeyVocabulary, predict_proba: ProbabilityFn
) -> tuple[np.ndarray, np.ndarray]:
    """Each entry's row among the distinct windows, and the probabilities of those (scored once)."""
    if len(windows):
        uniq_windows, win_index = unique_rows(windows)
    else:
        uniq_windows, win_index = windows, np.zeros(0, dtype=np.int64)
    probs = (
        np.asarray(predict_proba(uniq_windows), dtype=np.float64)
        if len(uniq_windows)
        else (np.zeros((0, vocab.size)))
    )
    assert probs.shape == (len(uniq_windows), vocab.size), f"bad probability shape {probs.shape}"
    return win_index, probs


def _entry_keys(
    distinct: list[Session], framed, vocab: KeyVocabulary, unknown: np.ndarray
) -> np.ndarray:
    """The external key of every framed entry (END's id for the END entries), unknown keys too."""
    keys = np.where(unknown, 0, vocab.decode(framed.targets))
    if unknown.any():  # recover the external id of unknown keys
        lengths = np.fromiter(map(len, distinct), np.int64, len(distinct))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        flat_keys = np.concatenate([np.asarray(s, dtype=np.int64) for s in distinct])
        keys[unknown] = flat_keys[framed.position[unknown] + offsets[framed.session[unknown]]]
    return keys


def _every_session(
    distinct: list[Session], inverse: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map the entries of the distinct sessions back to every input session: each entry's
    session and position, and its index among the distinct sessions' entries."""
    lengths_d = np.fromiter(map(len, distinct), np.int64, len(distinct))
    n_entries_d = lengths_d + 1
    offsets_d = np.concatenate([[0], np.cumsum(n_entries_d)])
    n_entries = n_entries_d[inverse]
    total = int(n_entries.sum())
    session = np.repeat(np.arange(len(inverse)), n_entries)
    position = np.arange(total) - np.repeat(np.cumsum(n_entries) - n_entries, n_entries)
    return session, position, offsets_d[inverse][session] + position


def concat_scores(parts: Sequence[KeyScores]) -> KeyScores:
    """One :class:`KeyScores` of the sessions of several (in order), e.g. of validation sessions
    scored by different cross-fitted models. ``n_candidates`` is the largest of the parts.

    >>> from workbench.keys.vocabulary import KeyVocabulary
    >>> vocab = KeyVocabulary([1, 2])
    >>> p = lambda w: np.full((len(w), vocab.size), 0.25)
    >>> a, b = (score_sessions(s, vocab, 2, p) for s in ([(1,)], [(2, 1), (9,)]))
    >>> both = concat_scores([a, b])
    >>> both.n_sessions, both.session.tolist(), both.unknown.tolist()
    (3, [0, 0, 1, 1, 1, 2, 2], [False, False, False, False, False, True, False])
    """
    if not parts:
        raise ValueError("nothing to concatenate")
    session_offsets = np.cumsum([0] + [p.n_sessions for p in parts[:-1]])
    window_offsets = np.cumsum([0] + [len(p.top_keys) for p in parts[:-1]])
    k = min(p.top_keys.shape[1] for p in parts)
    return KeyScores(
        n_sessions=sum(p.n_sessions for p in parts),
        session_length=np.concatenate([p.session_length for p in parts]),
        session=np.concatenate(
            [p.session + o for p, o in zip(parts, session_offsets, strict=True)]
        ),
        position=np.concatenate([p.position for p in parts]),
        key=np.concatenate([p.key for p in parts]),
        rank=np.concatenate([p.rank for p in parts]),
        probability=np.concatenate([p.probability for p in parts]),
        unknown=np.concatenate([p.unknown for p in parts]),
        window=np.concatenate([p.window + o for p, o in zip(parts, window_offsets, strict=True)]),
        top_keys=np.concatenate([p.top_keys[:, :k] for p in parts]),
        top_probs=np.concatenate([p.top_probs[:, :k] for p in parts]),
        n_candidates=max(p.n_candidates for p in parts),
        confirmed=None
        if any(p.confirmed is None for p in parts)
        else np.concatenate([p.confirmed for p in parts]),
    )


def segment_starts(scores: KeyScores) -> np.ndarray:
    n_entries = scores.session_length + 1
    return np.concatenate([[0], np.cumsum(n_entries)[:-1]])


def session_max_rank(scores: KeyScores) -> np.ndarray:
    """(n_sessions,) the worst rank in each session; unknown keys count as ``n_candidates + 1``.

    A session is normal under the top-g rule exactly when its max rank is at most g.
    """
    if scores.n_sessions == 0:
        return np.zeros(0, dtype=np.int64)
    rank = np.where(scores.unknown, scores.n_candidates + 1, scores.rank)
    return np.maximum.reduceat(rank, segment_starts(scores))


def session_min_probability(scores: KeyScores) -> np.ndarray:
    """(n_sessions,) the lowest probability of an actual key in each session (0 if unknown)."""
    if scores.n_sessions == 0:
        return np.zeros(0, dtype=np.float64)
    p = np.where(scores.unknown, 0.0, scores.probability.astype(np.float64))
    return np.minimum.reduceat(p, segment_starts(scores))
