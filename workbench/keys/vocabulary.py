"""The key vocabulary of a next-key model: external log-key ids to internal indices.

A *session* is a tuple of non-negative integer log-key ids (an HDFS block, a VM instance, ...).
A model sees keys as internal indices: ``PAD_INDEX = 0`` (left padding before a session's first
key), ``UNKNOWN_INDEX = 1`` (a key never seen in training), ``END_INDEX = 2`` (the end-of-session
marker, predicted after the last key), then the known keys in ascending order, then free slots for
keys learned online. The external ids of the reserved entries are in :mod:`workbench.keyids`.

>>> vocab = KeyVocabulary.from_sessions([(5, 22, 11), (5, 9)])
>>> vocab.keys, vocab.encode((5, 22, 7)).tolist()
([5, 9, 11, 22], [3, 6, 1])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench import keyids

__all__ = [
    "END_INDEX",
    "PAD_INDEX",
    "RESERVED_INDICES",
    "UNKNOWN_INDEX",
    "KeyVocabulary",
    "Session",
]

Session = tuple[int, ...]

# Reserved internal indices of a KeyVocabulary.
PAD_INDEX = 0  # left padding before the first key of a session
UNKNOWN_INDEX = 1  # a key never seen in training
END_INDEX = 2  # the end-of-session marker, predicted after the last key
RESERVED_INDICES = 3


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
    >>> KeyVocabulary.from_state(v.to_state()).keys
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

    def to_state(self) -> dict[str, Any]:
        """A JSON-able description (keys in internal-index order and the total size)."""
        return {"keys": list(self.keys), "size": self.size}

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> KeyVocabulary:
        """Inverse of :meth:`to_state`; keeps the stored index order."""
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
