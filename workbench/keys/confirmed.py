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

A pair covers its own situation, and each step of a new operation comes in a window never seen
(it holds the steps before it). So where the situation is new only through what a person
confirmed (the window or the key holds a key learned online, the window a confirmed step the
normal sessions never held, or it is the window of a confirmed pair, where the person added a
successor that the top ``g`` may not hold beside the trained ones), the verdict also backs off to a shorter context, as an n-gram model
does for a context it never saw: the entry is accepted when its last ``backoff`` keys (default 1),
then its key, are those of a confirmed pair or a step of the normal sessions replayed beside the
updates (the training data, kept as ``steps``). The first step of anything the
person did not confirm (an unseen step after a new key, a known key out of its place) is still
judged by the network; a window with nothing confirmed in it is never backed off, nor is any with
``match="row"`` (the exact situation only).

With :func:`set_swap` (off by default) the back-off of one key also takes two confirmed steps in
a row in either order: a pair confirmed after ``a, x`` with key ``y`` adds the steps ``a > y`` and
``y > x``, as if ``x`` and ``y`` ran concurrently (a rebooted VM's "started" and "rebooted"
messages come in either order, each order a new step of its own). It accepts more of what a person
did not see: an adjacent swap of two confirmed steps, which can be an execution anomaly.

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
    "record_steps",
    "set_backoff",
    "set_match",
    "set_swap",
]

MATCHES = ("window", "row", "last:K")
DEFAULT_MATCH = "window"
DEFAULT_BACKOFF = 1  # keys of the shorter context in a window that holds a key learned online


def empty(match: str = DEFAULT_MATCH, backoff: int = DEFAULT_BACKOFF) -> dict[str, Any]:
    """No confirmed pair yet."""
    _columns(match, 1, 1)
    return {
        "windows": [], "targets": [], "match": match, "backoff": backoff, "steps": [], "swap": False,
    }  # fmt: skip


def set_backoff(model: KeyModel, keys: int) -> None:
    """Back off to the last ``keys`` keys in a window that holds a key learned online (0: never)."""
    if not 0 <= keys <= model.config.window:
        raise ValueError(f"backoff must be 0 to the window ({model.config.window}), got {keys}")
    _pairs(model)["backoff"] = int(keys)


def set_swap(model: KeyModel, on: bool = True) -> None:
    """Let the back-off of one key take two confirmed steps in a row in either order (see the
    module docstring); saved with the pairs."""
    _pairs(model)["swap"] = bool(on)


def record_steps(model: KeyModel, windows: np.ndarray, targets: np.ndarray) -> None:
    """Keep the (last ``backoff`` keys, key) steps of normal examples (the sessions replayed
    beside an update: the training data) for the back-off."""
    pairs = _pairs(model)
    k = pairs.get("backoff", 0)
    if not k or not len(targets):
        return
    h = model.config.window
    rows = np.concatenate([np.asarray(windows)[:, h - k : h], np.asarray(targets)[:, None]], 1)
    have = _steps(pairs, k)
    both = np.unique(np.concatenate([have, rows.astype(np.int64)]), axis=0)
    if len(both) != len(have):
        pairs["steps"] = both.tolist()


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
    windows, targets = np.asarray(windows, dtype=np.int64), np.asarray(targets, dtype=np.int64)
    ct = np.asarray(pairs["targets"], dtype=np.int64)
    cand = np.flatnonzero(np.isin(targets, ct))  # most entries have another key: no row compared
    if len(cand):
        cols = _columns(pairs["match"], model.config.window, windows.shape[1])
        known = np.concatenate(
            [np.asarray(pairs["windows"], dtype=np.int64)[:, cols], ct[:, None]], axis=1
        )
        out[cand] = _rows_in(np.concatenate([windows[cand, cols], targets[cand, None]], 1), known)
    k = pairs.get("backoff", 0)
    if k and pairs["match"] != "row":  # "row": the exact situation only
        out |= _backed_off(model, pairs, windows, targets, k)
    return out


def _steps(pairs: dict[str, Any], k: int) -> np.ndarray:
    """``(n, k + 1)`` the normal steps kept for a back-off of ``k`` keys (none kept for another
    ``k``: :func:`set_backoff` changed it since)."""
    steps = np.asarray(pairs.get("steps") or np.zeros((0, k + 1)), dtype=np.int64)
    return steps if steps.shape[1] == k + 1 else np.zeros((0, k + 1), dtype=np.int64)


def _rows_in(rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: each row of ``rows`` is a row of ``table``."""
    if not len(rows) or not len(table):
        return np.zeros(len(rows), dtype=bool)
    # One id per distinct row of both tables: a row is in the table when its id is one of its.
    _, ids = np.unique(np.concatenate([table, rows]), axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    return np.isin(ids[len(table) :], ids[: len(table)])


def _backed_off(
    model: KeyModel, pairs: dict[str, Any], windows: np.ndarray, targets: np.ndarray, k: int
) -> np.ndarray:
    """``(n,)`` bool: the entry's situation is new only through what a person confirmed (its
    window or key holds a key learned online, its window a step of a confirmed pair never seen in
    the normal sessions, or it is a confirmed pair's window) and its last ``k`` keys, then its
    key, are a confirmed pair's or a step of the normal sessions (:func:`record_steps`)."""
    h = model.config.window
    cw = np.asarray(pairs["windows"], dtype=np.int64).reshape(len(pairs["targets"]), -1)
    ct = np.asarray(pairs["targets"], dtype=np.int64)
    steps = _steps(pairs, k)
    confirmed_steps = np.stack([cw[:, h - 1], ct], axis=1)
    novel = confirmed_steps[~_rows_in(confirmed_steps, steps[:, -2:])]
    first = model.vocab_.size - model.config.spare_keys  # the first slot of a key learned online
    new = (windows[:, :h] >= first).any(axis=1) | (targets >= first)
    if len(novel):  # a confirmed step the network had not seen, inside the window
        size = model.vocab_.size  # a step (a, b) as one number a * size + b
        inside = windows[:, : h - 1] * size + windows[:, 1:h]  # (n, h - 1)
        new |= np.isin(inside, novel[:, 0] * size + novel[:, 1]).any(axis=1)
    # the window of a confirmed pair: a person added a successor there that the top g may not hold
    # beside the ones seen in training
    same = np.flatnonzero(~new & np.isin(windows[:, h - 1], cw[:, h - 1]))
    new[same] = _rows_in(windows[same, :h], cw[:, :h])
    cand = np.flatnonzero(new)
    out = np.zeros(len(targets), dtype=bool)
    if not len(cand):
        return out
    table = np.concatenate([np.concatenate([cw[:, h - k : h], ct[:, None]], axis=1), steps])
    if pairs.get("swap") and k == 1 and h >= 2:  # a > x > y confirmed: a > y and y > x too
        swapped = [np.stack([cw[:, h - 2], ct], 1), np.stack([ct, cw[:, h - 1]], 1)]
        table = np.concatenate([table, *swapped])
    rows = np.concatenate([windows[cand, h - k : h], targets[cand, None]], axis=1)
    out[cand] = _rows_in(rows, table)
    return out


def confirmed_state(model: KeyModel) -> dict[str, Any]:
    """The confirmed pairs as plain values (lists of ints and the match rule)."""
    pairs = _pairs(model)
    return {
        "windows": [list(w) for w in pairs["windows"]],
        "targets": list(pairs["targets"]),
        "match": pairs["match"],
        "backoff": pairs.get("backoff", 0),
        "steps": [list(r) for r in pairs.get("steps", [])],
        "swap": bool(pairs.get("swap", False)),
    }


def from_state(state: Mapping[str, Any] | None, window: int | None = None) -> dict[str, Any]:
    """The confirmed pairs of a saved state (none in a model saved before they were kept); a
    back-off longer than the model's ``window`` is refused."""
    if not state:
        return empty()
    # a model saved before the back-off was kept never backs off
    out = empty(str(state.get("match", DEFAULT_MATCH)), int(state.get("backoff", 0)))
    out["steps"] = [[int(k) for k in r] for r in state.get("steps", [])]
    out["swap"] = bool(state.get("swap", False))
    out["windows"] = [[int(k) for k in w] for w in state["windows"]]
    out["targets"] = [int(t) for t in state["targets"]]
    if len(out["windows"]) != len(out["targets"]):
        raise ValueError("confirmed pairs: as many windows as targets expected")
    if window is not None and out["backoff"] > window:
        raise ValueError(
            f"confirmed pairs: a back-off of {out['backoff']} keys in windows of {window}"
        )
    if out["backoff"] < 0 or any(len(r) != out["backoff"] + 1 for r in out["steps"]):
        raise ValueError(
            "confirmed pairs: a back-off of 0 keys or more, and steps of that many keys"
        )
    return out
