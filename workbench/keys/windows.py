"""Log-key sessions: reading preprocessed key-sequence files and framing sessions for next-key
models.

A *session* is a tuple of non-negative integer log-key ids (an HDFS block, a VM instance, ...).
Three file formats are read:

``keys``
    One session per line, keys separated by whitespace (the DeepLog HDFS files; lines may end with a
    trailing space, the last line may lack its newline). Blank lines are not sessions and are
    skipped.
``idkeys``
    One session per line as ``id,keys`` (e.g. ``blk_-653...,5 5 22 ...``).
``csv``
    A CSV file with a header holding the columns ``Sequence`` and ``label`` (0 normal, 1 abnormal).

Next-key models see a session *framed*: ``h`` PAD entries before it and an END marker after it, so
that a session of ``n`` keys yields ``n + 1`` (history window -> next key) examples. The first key
is predicted from a window of pure padding (the start of a session is visible to the model),
sessions shorter than ``h`` are scored like any other, and END is a key the model predicts, which
catches sessions that stop where normal sessions never stop.

>>> vocab = KeyVocabulary.from_sessions([(5, 22, 11), (5, 9)])
>>> vocab.keys
[5, 9, 11, 22]
>>> framed = frame_sessions([vocab.encode((5, 22))], window=3)
>>> framed.windows.tolist()
[[0, 0, 0], [0, 0, 3], [0, 3, 6]]
>>> vocab.decode(framed.targets).tolist()  # the END marker decodes to keyids.END
[5, 22, -2]
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from workbench import keyids

__all__ = [
    "END_INDEX",
    "FORMATS",
    "PAD_INDEX",
    "UNKNOWN_INDEX",
    "FramedWindows",
    "KeyVocabulary",
    "Session",
    "SessionFile",
    "count_keys",
    "frame_sessions",
    "guess_format",
    "read_sessions",
    "split_novel",
    "unique_rows",
    "unique_sessions",
]

logger = logging.getLogger(__name__)

Session = tuple[int, ...]
Format = Literal["keys", "idkeys", "csv"]
FORMATS: tuple[str, ...] = ("keys", "idkeys", "csv")

# Reserved internal indices of a KeyVocabulary.
PAD_INDEX = 0  # left padding before the first key of a session
UNKNOWN_INDEX = 1  # a key never seen in training
END_INDEX = 2  # the end-of-session marker, predicted after the last key
RESERVED_INDICES = 3

# How the reserved entries appear in external key space (external keys are >= 0).


# --------------------------------------------------------------------------------------------------
# Reading files


@dataclass(frozen=True)
class SessionFile:
    """The sessions of one file, in file order, with their ids or labels when the format has
    them."""

    path: Path
    sessions: list[Session]
    ids: list[str] | None = None  # idkeys format
    labels: np.ndarray | None = None  # csv format: (n_sessions,) int, 0 normal, 1 abnormal

    @property
    def n_keys(self) -> int:
        """Total number of log entries over all sessions."""
        return sum(len(s) for s in self.sessions)


def _parse_keys(text: str, path: Path, lineno: int, cache: dict[str, Session]) -> Session:
    """Parse whitespace-separated keys; identical lines share one tuple (sessions repeat a lot)."""
    text = text.strip()
    found = cache.get(text)
    if found is not None:
        return found
    tokens = text.split()
    bad = next((t for t in tokens if not (t.isascii() and t.isdigit())), None)
    if bad is not None:
        negative = bad[:1] == "-" and bad[1:].isascii() and bad[1:].isdigit()
        shown = bad if negative else repr(bad[:40])
        raise ValueError(f"{path}:{lineno}: bad log key {shown} (keys are non-negative integers)")
    session = tuple(map(int, tokens))
    cache[text] = session
    return session


def guess_format(path: str | Path) -> str:
    """``"csv"`` for a ``.csv`` name, ``"idkeys"`` if the first line holds a comma, else ``"keys"``.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s")
    >>> _ = open(p, "w").write("blk_1,5 22,")
    >>> guess_format(p)
    'idkeys'
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return "csv"
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    return "idkeys" if "," in first else "keys"


def read_sessions(path: str | Path, fmt: Format | Literal["auto"] = "keys") -> SessionFile:
    """Read a preprocessed key-sequence file.

    Parameters
    ----------
    path
        The file.
    fmt
        ``"keys"``, ``"idkeys"`` or ``"csv"`` (see the module docstring), or ``"auto"``
        (:func:`guess_format`).

    Returns
    -------
    SessionFile
        Sessions in file order, never de-duplicated.

    Raises
    ------
    ValueError
        On malformed content; the message names the file and the line.
    FileNotFoundError
        When the file does not exist.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "s")
    >>> _ = open(p, "w").write("5 5 22 \\n5 22")
    >>> read_sessions(p).sessions
    [(5, 5, 22), (5, 22)]
    """
    path = Path(path)
    if fmt == "auto":
        fmt = guess_format(path)  # type: ignore[assignment]
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    cache: dict[str, Session] = {}
    sessions: list[Session] = []
    with path.open(encoding="utf-8", newline="") as f:
        if fmt == "csv":
            return _read_csv(path, f, cache)
        ids: list[str] | None = [] if fmt == "idkeys" else None
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if ids is not None:
                head, sep, rest = line.partition(",")
                if not sep:
                    raise ValueError(f"{path}:{lineno}: expected 'id,keys' but found no comma")
                ids.append(head.strip())
                line = rest
            sessions.append(_parse_keys(line, path, lineno, cache))
    logger.debug("read %d sessions from %s", len(sessions), path)
    return SessionFile(path=path, sessions=sessions, ids=ids)


def _read_csv(path: Path, f: Iterable[str], cache: dict[str, Session]) -> SessionFile:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}:1: empty file; expected a header with 'Sequence,label'")
    names = [h.strip() for h in header]
    if "Sequence" not in names or "label" not in names:
        raise ValueError(f"{path}:1: header {header} lacks the columns 'Sequence' and 'label'")
    i_seq, i_label = names.index("Sequence"), names.index("label")
    sessions: list[Session] = []
    labels: list[int] = []
    for row in reader:
        lineno = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(names):
            raise ValueError(f"{path}:{lineno}: expected {len(names)} fields, found {len(row)}")
        label = row[i_label].strip()
        if label not in ("0", "1"):
            raise ValueError(f"{path}:{lineno}: bad label {label!r} (expected 0 or 1)")
        labels.append(int(label))
        sessions.append(_parse_keys(row[i_seq], path, lineno, cache))
    return SessionFile(path=path, sessions=sessions, labels=np.asarray(labels, dtype=np.int64))


# --------------------------------------------------------------------------------------------------
# Distinct sessions


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
class NovelSplit:
    """A validation split that holds out whole sequences (see :func:`split_novel`)."""

    fit: np.ndarray  # (n_fit,) indices of the sessions kept for training
    validation: np.ndarray  # (n_val,) indices of the held-out sessions (all copies of a sequence)
    novel_share: float  # Good-Turing estimate of the share of new sessions never seen before


def split_novel(
    sessions: Sequence[Session], fraction: float, seed: int = 0, *, max_count: int = 1
) -> NovelSplit:
    """Hold out a share of the distinct sequences that occur at most ``max_count`` times.

    Every copy of a held-out sequence goes to validation and none stays in training, so the
    held-out sessions are *new* to a model trained on the rest, like the normal sessions of a test
    set that were never seen in training. Rare sequences are the ones held out: by the Good-Turing
    argument a sequence seen once stands for the never-seen ones, and its share of the sessions
    (``novel_share`` = sequences seen once / sessions) estimates how many new sessions are of a
    never-seen sequence. Holding out a frequent sequence instead would remove a large part of
    normal behaviour from training and say little about new sessions.

    >>> s = [(1, 2)] * 6 + [(1, 3)] + [(1, 4)] + [(1, 5)] + [(2, 2)]
    >>> split = split_novel(s, 0.5, seed=0)
    >>> sorted(set(split.validation) | set(split.fit)) == list(range(10)), split.novel_share
    (True, 0.4)
    >>> len(split.validation), {s[i] for i in split.validation} <= {(1, 3), (1, 4), (1, 5), (2, 2)}
    (2, True)
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    distinct, inverse, counts = unique_sessions(sessions)
    n = len(inverse)
    novel_share = float((counts == 1).sum() / n) if n else 0.0
    pool = np.flatnonzero(counts <= max_count)
    n_out = min(round(fraction * len(pool)), len(distinct) - 1)
    if n_out <= 0:
        return NovelSplit(np.arange(n), np.zeros(0, dtype=np.int64), novel_share)
    held = np.random.default_rng(seed).permutation(pool)[:n_out]
    out = np.isin(inverse, held)
    return NovelSplit(np.flatnonzero(~out), np.flatnonzero(out), novel_share)


def split_novel_folds(
    sessions: Sequence[Session], n_folds: int, seed: int = 0, *, max_count: int = 1
) -> list[NovelSplit]:
    """``n_folds`` splits like :func:`split_novel` whose held-out sequences are disjoint and
    together cover every sequence occurring at most ``max_count`` times (cross-fitting: each rare
    sequence is judged once by a model that never saw it, so the choice of g rests on all of them).

    >>> s = [(1, 2)] * 6 + [(1, 3)] + [(1, 4)] + [(1, 5)] + [(2, 2)]
    >>> folds = split_novel_folds(s, 2, seed=0)
    >>> sorted(int(i) for f in folds for i in f.validation), [len(f.fit) for f in folds]
    ([6, 7, 8, 9], [8, 8])
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    distinct, inverse, counts = unique_sessions(sessions)
    n = len(inverse)
    novel_share = float((counts == 1).sum() / n) if n else 0.0
    pool = np.random.default_rng(seed).permutation(np.flatnonzero(counts <= max_count))
    if len(pool) < n_folds or len(pool) == len(distinct):
        return []  # too few rare sequences, or nothing would be left to train on
    out = []
    for i in range(n_folds):
        held = np.isin(inverse, pool[i::n_folds])
        out.append(NovelSplit(np.flatnonzero(~held), np.flatnonzero(held), novel_share))
    return out


def count_keys(sessions: Iterable[Session]) -> dict[int, int]:
    """How often each key occurs over all sessions.

    >>> count_keys([(5, 5, 22), (5,)])
    {5: 3, 22: 1}
    """
    counts: dict[int, int] = {}
    for s in sessions:
        for k in s:
            counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------------------------------
# Vocabulary


class KeyVocabulary:
    """Maps external key ids to internal indices, with reserved PAD, UNKNOWN and END entries.

    Internal indices: ``PAD = 0``, ``UNKNOWN = 1``, ``END = 2``, then the known keys in ascending
    order.
    ``spare`` extra slots are reserved so that an online update can learn a key first seen after
    training without resizing the model (:meth:`add`). Keys outside the vocabulary encode as
    UNKNOWN.

    >>> v = KeyVocabulary([22, 5], spare=1)
    >>> v.encode((5, 7, 22)).tolist(), v.size, v.n_candidates
    ([3, 1, 4], 6, 3)
    >>> v.add(7), v.encode((7,)).tolist()
    (True, [5])
    >>> KeyVocabulary.from_dict(v.to_dict()).keys
    [5, 22, 7]
    """

    def __init__(self, keys: Iterable[int], *, spare: int = 0) -> None:
        keys = sorted({int(k) for k in keys})
        if any(k < 0 for k in keys):
            raise ValueError("log keys must be non-negative integers")
        if spare < 0:
            raise ValueError(f"spare must be >= 0, got {spare}")
        self.keys: list[int] = list(keys)
        self.size = RESERVED_INDICES + len(self.keys) + spare
        self._rebuild()

    @classmethod
    def from_sessions(cls, sessions: Iterable[Session], *, spare: int = 0) -> KeyVocabulary:
        """The vocabulary of every key that occurs in ``sessions``."""
        return cls({k for s in sessions for k in s}, spare=spare)

    def _rebuild(self) -> None:
        top = max(self.keys, default=0)
        self._lookup = np.full(top + 1, UNKNOWN_INDEX, dtype=np.int64)
        self._lookup[self.keys] = np.arange(RESERVED_INDICES, RESERVED_INDICES + len(self.keys))
        self._external = np.array(
            [keyids.PAD, keyids.OUT_OF_VOCABULARY, keyids.END, *self.keys], dtype=np.int64
        )

    @property
    def n_candidates(self) -> int:
        """Number of keys a model may predict: the known keys and END."""
        return len(self.keys) + 1

    @property
    def spare(self) -> int:
        """Free slots left for keys learned online."""
        return self.size - RESERVED_INDICES - len(self.keys)

    def candidate_mask(self) -> np.ndarray:
        """``(size,)`` bool: the internal indices that are possible next keys (END, known keys)."""
        mask = np.zeros(self.size, dtype=bool)
        mask[END_INDEX] = True
        mask[RESERVED_INDICES : RESERVED_INDICES + len(self.keys)] = True
        return mask

    def __contains__(self, key: object) -> bool:
        return (
            isinstance(key, int | np.integer)
            and 0 <= key < len(self._lookup)
            and (self._lookup[key] != UNKNOWN_INDEX)
        )

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: int) -> bool:
        """Give ``key`` a spare slot; False when it is known already or no slot is left."""
        key = int(key)
        if key < 0:
            raise ValueError(f"log keys must be non-negative integers, got {key}")
        if key in self or self.spare == 0:
            return False
        self.keys.append(key)  # appended, not sorted: existing indices must not move
        self._rebuild()
        return True

    def encode(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        """External ids -> internal indices (unknown keys -> UNKNOWN)."""
        arr = np.asarray(keys, dtype=np.int64)
        out = np.full(arr.shape, UNKNOWN_INDEX, dtype=np.int64)
        inside = (arr >= 0) & (arr < len(self._lookup))
        out[inside] = self._lookup[arr[inside]]
        return out

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """Internal indices -> external ids (END -> ``keyids.END``, UNKNOWN -> ``keyids.OUT_OF_VOCABULARY``)."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.full(indices.shape, keyids.OUT_OF_VOCABULARY, dtype=np.int64)
        inside = indices < len(self._external)
        out[inside] = self._external[indices[inside]]
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (keys in internal-index order and the total size)."""
        return {"keys": list(self.keys), "size": self.size}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeyVocabulary:
        """Inverse of :meth:`to_dict`; keeps the stored index order."""
        unknown = set(d) - {"keys", "size"}
        if unknown:
            raise ValueError(f"unknown vocabulary fields: {sorted(unknown)}")
        vocab = cls([], spare=0)
        vocab.keys = [int(k) for k in d["keys"]]
        vocab.size = int(d["size"])
        if vocab.size < RESERVED_INDICES + len(vocab.keys) or len(set(vocab.keys)) != len(
            vocab.keys
        ):
            raise ValueError("inconsistent vocabulary: size too small or repeated keys")
        vocab._rebuild()
        return vocab

    def __repr__(self) -> str:
        return f"KeyVocabulary({len(self.keys)} keys, {self.spare} spare)"


# --------------------------------------------------------------------------------------------------
# Framing


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
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if count_columns < 0:
        raise ValueError(f"count_columns must be >= 0, got {count_columns}")
    lengths = np.fromiter((len(s) for s in encoded), dtype=np.int64, count=len(encoded))
    n_sessions = len(lengths)
    if n_sessions == 0:
        empty = np.zeros(0, dtype=np.int64)
        return FramedWindows(
            np.zeros((0, window + count_columns), dtype=np.int64), empty, empty, empty
        )
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
        # Example e at position p counts the keys at positions < p of its session: mark the key at
        # p - 1 in the row of example p, then take running sums within each session.
        ex_start = np.concatenate([[0], np.cumsum(n_examples)[:-1]])
        marks = np.zeros((len(targets), count_columns), dtype=np.int32)
        marks[ex_start[session_of_key] + key_offset + 1, body] = 1
        counts = np.cumsum(marks, axis=0, dtype=np.int32)
        counts -= counts[ex_start[session]]  # position 0 has no mark, so this is the session start
        windows = np.concatenate([windows, counts.astype(np.int64)], axis=1)
    return FramedWindows(np.ascontiguousarray(windows), targets, session, position)
