"""The (history -> key) pairs a person confirmed normal, accepted by scoring (docs/METHOD.md
section 4).

An online update teaches the network a confirmed false positive (:mod:`workbench.keys.online`),
but the network alone cannot promise that the pair stays accepted: where more keys may follow a
history than the top ``g`` holds (right after a VM is created, any operation may come), teaching
one successor pushes another out, and a later update may move the pair back out of the top ``g``.
So the key model also keeps the pairs themselves (``confirmed_``, saved with it) and its verdict
accepts an entry whose (window, key) is one of them, whatever its rank or probability. Only pairs
a person confirmed are kept (a flag, "all like this", "and the steps after it"); undo goes back to
the model version before the flag, and with it to the pairs it held.

A pair is the network's input row (the key window, and with ``session_counts`` the session's key
counts so far) and the internal index of the key. ``match`` says what must be equal for an entry
to be accepted: ``"window"`` (default) the last ``h`` keys and the key, whatever the counts, as a
person reading the report sees the situation; ``"row"`` the whole input row, counts included
(the exact situation only); ``"last:K"`` the last K keys of the window and the key (a coarser
situation: what follows those K keys).

>>> from workbench.keys.model import KeyModel, KeyModelConfig
>>> m = KeyModel(KeyModelConfig(window=2, hidden_size=4, max_epochs=1))
>>> m = m.fit([(5, 6)] * 4, validation_fraction=0.0, device="cpu")
>>> confirm(m, m.input_rows([[5]]), np.array([4]))
>>> confirmed_mask(m, m.input_rows([[5], [6], [5]]), np.array([4, 4, 3])).tolist()
[True, False, False]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from workbench.keys.model import KeyModel

__all__ = [
    "MATCHES",
    "confirm",
    "confirmed_mask",
    "confirmed_state",
    "empty",
    "from_state",
    "set_match",
]

MATCHES = ("window", "row", "last:K")
DEFAULT_MATCH = "window"


def empty(match: str = DEFAULT_MATCH) -> dict[str, Any]:
    """No confirmed pair yet."""
    _columns(match, 1, 1)
    return {"windows": [], "targets": [], "match": match}


def set_match(model: KeyModel, match: str) -> None:
    """Say what an entry must share with a confirmed pair to be accepted (see the module
    docstring); it holds for the pairs kept so far and later ones, and is saved with them."""
    _columns(match, 1, 1)
    _pairs(model)["match"] = match


def _columns(match: str, window: int, width: int) -> slice:
    """The columns of an input row (``window`` keys, then counts: ``width`` in all) that a match
    compares."""
    if match == "window":
        return slice(0, window)
    if match == "row":
        return slice(0, width)
    k = match.removeprefix("last:")
    if match.startswith("last:") and k.isdigit() and int(k) >= 1:
        return slice(max(0, window - int(k)), window)
    raise ValueError(f"match must be 'window', 'row' or 'last:K' (K >= 1), got {match!r}")


def _pairs(model: KeyModel) -> dict[str, Any]:
    pairs = getattr(model, "confirmed_", None)
    if pairs is None:
        pairs = model.confirmed_ = empty()
    return pairs


def confirm(model: KeyModel, windows: np.ndarray, targets: np.ndarray) -> None:
    """Add the pairs (input rows ``(n, h [+ counts])``, internal key indices ``(n,)``) to the
    model's confirmed ones (each kept once)."""
    pairs = _pairs(model)
    seen = {(*w, t) for w, t in zip(pairs["windows"], pairs["targets"], strict=True)}
    for row, t in zip(np.asarray(windows).tolist(), np.asarray(targets).tolist(), strict=True):
        if (*row, t) not in seen:
            seen.add((*row, t))
            pairs["windows"].append([int(k) for k in row])
            pairs["targets"].append(int(t))


def confirmed_mask(model: KeyModel, windows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the entry (input row, internal key index) is a confirmed pair."""
    out = np.zeros(len(targets), dtype=bool)
    pairs = getattr(model, "confirmed_", None)
    if not pairs or not pairs["targets"] or not len(targets):
        return out
    ct = np.asarray(pairs["targets"], dtype=np.int64)
    cand = np.flatnonzero(np.isin(targets, ct))  # most entries have another key: no row compared
    if not len(cand):
        return out
    cols = _columns(pairs["match"], model.config.window, np.shape(windows)[1])
    known = np.concatenate(
        [np.asarray(pairs["windows"], dtype=np.int64)[:, cols], ct[:, None]], axis=1
    )
    rows = np.concatenate(
        [np.asarray(windows, dtype=np.int64)[cand, cols], np.asarray(targets)[cand, None]], axis=1
    )
    # One id per distinct row of both tables: an entry is confirmed when its id is a pair's.
    _, ids = np.unique(np.concatenate([known, rows]), axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    out[cand] = np.isin(ids[len(known) :], ids[: len(known)])
    return out


def confirmed_state(model: KeyModel) -> dict[str, Any]:
    """The confirmed pairs as plain values (lists of ints and the match rule)."""
    pairs = _pairs(model)
    return {
        "windows": [list(w) for w in pairs["windows"]],
        "targets": list(pairs["targets"]),
        "match": pairs["match"],
    }


def from_state(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """The confirmed pairs of a saved state (none in a model saved before they were kept)."""
    if not state:
        return empty()
    out = empty(str(state.get("match", DEFAULT_MATCH)))
    out["windows"] = [[int(k) for k in w] for w in state["windows"]]
    out["targets"] = [int(t) for t in state["targets"]]
    if len(out["windows"]) != len(out["targets"]):
        raise ValueError("confirmed pairs: as many windows as targets expected")
    return out
