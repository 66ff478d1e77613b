"""What the stacked LSTMs read: one key's normalised windows, and padded batches of several keys.

Keys have different numbers of dimensions; the stacked module reads one shared width, that of the
widest key (``n_dims``). A key's windows are re-laid into that width (:func:`to_global`: values,
then observed flags) and the keys' windows are padded to one ``[K, N, ...]`` batch with masks of the
observed target values (:func:`stack`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.params.scaling import normalise
from workbench.params.vectors import windows, windows_at

__all__ = ["KeyData", "key_data", "stack", "tail", "to_global"]


@dataclass
class KeyData:
    """One key's normalised arrays, ready for training or scoring."""

    key: int
    rows: np.ndarray  # positional rows of the series entries
    raw: np.ndarray  # [n, d] original units, NaN = missing
    z: np.ndarray  # [n, d] normalised
    x: np.ndarray  # [n, T, 2d] windows
    cut: int  # first validation index


def key_data(
    key: int,
    info: dict[str, Any],
    rows: np.ndarray,
    raw: np.ndarray,
    cut: int,
    history: int,
    at: tuple[np.ndarray, int] | None = None,
) -> KeyData:
    """Normalise a key's series (``info`` from :func:`~workbench.params.scaling.describe_key`) and
    cut it into windows of ``history`` steps. ``at``: only these positions of the series, and where
    their validation part starts (:func:`~workbench.params.vectors.sample_positions`); their
    windows still look back into the whole series."""
    z = normalise(info, raw).astype(np.float32)
    if at is None:
        return KeyData(key, rows, raw, z, windows(z, history), cut)
    pos, cut = at
    return KeyData(key, rows[pos], raw[pos], z[pos], windows_at(z, history, pos), cut)


def tail(d: KeyData) -> KeyData:
    """The validation part of a key's data (its windows keep their look-back)."""
    c = d.cut
    return KeyData(d.key, d.rows[c:], d.raw[c:], d.z[c:], d.x[c:], 0)


def to_global(w: np.ndarray, d_key: int, d_all: int) -> np.ndarray:
    """Re-lay a key's windows ``[n, T, 2*d_key]`` into the shared layout ``[n, T, 2*d_all]``."""
    if d_key == d_all:
        return w
    out = np.zeros((*w.shape[:-1], 2 * d_all), dtype=w.dtype)
    out[..., :d_key] = w[..., :d_key]
    out[..., d_all : d_all + d_key] = w[..., d_key:]
    return out


def stack(
    parts: list[tuple[np.ndarray, np.ndarray]], n_dims: int, history: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad per-key (windows, targets) to one ``[K, N, ...]`` batch with target masks."""
    D, T = n_dims, history
    n = max(1, max(len(y) for _, y in parts))
    X = np.zeros((len(parts), n, T, 2 * D), dtype=np.float32)
    Y = np.zeros((len(parts), n, D), dtype=np.float32)
    O = np.zeros((len(parts), n, D), dtype=np.float32)
    for i, (x, y) in enumerate(parts):
        m, d = y.shape
        X[i, :m] = to_global(x, d, D)
        Y[i, :m, :d] = np.nan_to_num(y, nan=0.0)
        O[i, :m, :d] = np.isfinite(y)
    return (
        torch.from_numpy(X).to(device),
        torch.from_numpy(Y).to(device),
        torch.from_numpy(O).to(device),
    )
