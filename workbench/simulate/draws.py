"""The random draws the simulator shares: request and instance ids, lognormal delays."""

from __future__ import annotations

import numpy as np

__all__ = ["lognormal", "uuids"]


def uuids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random version-4 UUIDs drawn from ``rng`` (one ``rng.bytes`` call).

    >>> uuids(np.random.default_rng(0), 1)[0][14]
    '4'
    """
    h = rng.bytes(16 * n).hex()
    return [
        f"{h[k : k + 8]}-{h[k + 8 : k + 12]}-4{h[k + 13 : k + 16]}-"
        f"{'89ab'[int(h[k + 16], 16) & 3]}{h[k + 17 : k + 20]}-{h[k + 20 : k + 32]}"
        for k in range(0, 32 * n, 32)
    ]


def lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    """``size`` delays around ``median`` with lognormal shape ``sigma`` (0 gives the median)."""
    return median * np.exp(sigma * rng.standard_normal(size))
