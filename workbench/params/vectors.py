"""Per-key parameter-vector series from a parsed frame, and the windows a parameter model reads.

DeepLog gives every entry a parameter value vector ``[elapsed time, p_1, p_2, ...]``; for one log key
the vectors of its entries, in log order, form a multivariate time series (section 3 of the method).
This module builds those series from the rows of :mod:`workbench.logs.parser`:

* **Elapsed time** is ``dt_session`` (seconds since the previous entry of the same session, the OpenStack
  instance) by default, or ``dt_global`` (since the previous entry of the whole log). In session mode an
  entry that belongs to no session takes ``dt_global``: the whole log is its session. The first entry of
  a session has no elapsed time; it stays NaN ("missing") and is neither fed to the model nor scored.
* **Parameter count**: a key's vectors have the key's *modal* number of numeric parameters (ties go to the
  smaller count); entries with another count are left out of the series and listed in
  :attr:`KeySeries.mismatched`. At most ``max_params`` parameters are kept.
* **Chronological split**: the first ``1 - validation_fraction`` of each key's series trains, the rest
  validates (see :func:`split_point`); the validation windows still look back into the training part.
* **Windows**: entry ``i`` is predicted from entries ``i-h .. i-1`` of its key; the series is left-padded
  so that every entry has a window. A window step holds the normalised values (0 where missing) and one
  "observed" flag per dimension, so padding and missing values are visible to the model.

>>> df = pd.DataFrame({"key": [1, 1, 2, 1], "params": [(3.0,), (4.0,), (), (5.0, 6.0)],
...                    "parsed": True, "session": ["a", "a", "a", "b"],
...                    "dt_session": [float("nan"), 1.0, 2.0, float("nan")],
...                    "dt_global": [float("nan"), 1.0, 2.0, 0.5]})
>>> s = build_series(df)[1]
>>> s.names, s.rows.tolist(), s.values.tolist(), s.mismatched.tolist()
(('elapsed', 'param1'), [0, 1], [[nan, 3.0], [1.0, 4.0]], [3])
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "ELAPSED_MODES",
    "KeySeries",
    "build_series",
    "elapsed_times",
    "sample_positions",
    "split_point",
    "windows",
    "windows_at",
]

logger = logging.getLogger(__name__)

ELAPSED_MODES = ("session", "global")  #: how the elapsed-time dimension is measured


@dataclass(frozen=True)
class KeySeries:
    """The parameter-vector series of one log key, in log order.

    Attributes
    ----------
    key
        The log key id.
    rows
        Positional row indices (into the parsed frame) of the entries in the series.
    values
        ``[n, 1 + n_params]`` float array in original units; NaN where a value is missing.
    names
        Dimension names: ``'elapsed'`` then ``'param1'``, ``'param2'``, ...
    mismatched
        Positional rows of the key's entries whose parameter count differs from the modal one.
    """

    key: int
    rows: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]
    mismatched: np.ndarray

    @property
    def n_params(self) -> int:
        """How many numeric parameters follow the elapsed time."""
        return len(self.names) - 1


def elapsed_times(entries: pd.DataFrame, elapsed: str = "session") -> np.ndarray:
    """Elapsed-time value of every row (seconds, NaN when unknown), per the module's rule.

    >>> df = pd.DataFrame({"session": ["a", None], "dt_session": [float("nan"), float("nan")],
    ...                    "dt_global": [4.0, 2.0]})
    >>> elapsed_times(df).tolist(), elapsed_times(df, "global").tolist()
    ([nan, 2.0], [4.0, 2.0])
    """
    if elapsed not in ELAPSED_MODES:
        raise ValueError(f"elapsed must be one of {ELAPSED_MODES}, got {elapsed!r}")
    dt_global = entries["dt_global"].to_numpy(dtype=float)
    if elapsed == "global":
        return dt_global.copy()
    dt_session = entries["dt_session"].to_numpy(dtype=float)
    no_session = entries["session"].isna().to_numpy()
    return np.where(no_session, dt_global, dt_session)


def build_series(
    entries: pd.DataFrame,
    *,
    elapsed: str = "session",
    keys: set[int] | None = None,
    n_params: dict[int, int] | None = None,
    max_params: int = 16,
) -> dict[int, KeySeries]:
    """Series of every known key (id > 0) among the parsed rows of ``entries``.

    Parameters
    ----------
    entries
        Parsed rows (the schema of :mod:`workbench.logs.parser`); their order is the log order.
    elapsed
        ``'session'`` or ``'global'``; see :func:`elapsed_times`.
    keys
        Only build these keys (default: all).
    n_params
        The parameter count to use per key (a fitted model's); default: each key's modal count.
    max_params
        Keep at most this many parameters per key (the first ones).
    """
    if max_params < 0:
        raise ValueError(f"max_params must be >= 0, got {max_params}")
    dt = elapsed_times(entries, elapsed)
    key_arr = entries["key"].to_numpy()
    ok = entries["parsed"].to_numpy(dtype=bool) & (key_arr > 0)
    params = entries["params"].to_numpy(dtype=object)
    out: dict[int, KeySeries] = {}
    for k, rows in _rows_by_key(key_arr, ok, keys).items():
        lengths = np.fromiter(map(len, params[rows]), dtype=np.int64, count=len(rows))
        if n_params is not None and k in n_params:
            m = n_params[k]
        else:
            counts = Counter(lengths.tolist())
            m = min(c for c, n in counts.items() if n == max(counts.values()))
        keep, bad = rows[lengths == m], rows[lengths != m]
        d = min(m, max_params)
        vals = np.full((len(keep), 1 + d), np.nan)
        vals[:, 0] = dt[keep]
        if d:
            got = params[keep].tolist() if d == m else [params[i][:d] for i in keep]
            vals[:, 1:] = np.asarray(got, dtype=float).reshape(-1, d)
        names = ("elapsed", *(f"param{j + 1}" for j in range(d)))
        out[k] = KeySeries(k, keep, vals, names, bad)
        if len(bad):
            logger.debug("key %d: %d entries with a parameter count other than %d", k, len(bad), m)
    return out


def _rows_by_key(
    key_arr: np.ndarray, ok: np.ndarray, keys: set[int] | None
) -> dict[int, np.ndarray]:
    """The rows (in order) of every key among the ``ok`` rows (only ``keys`` when given), the
    keys in order of their first row.

    >>> got = _rows_by_key(np.array([3, 1, 3, 2, 1]), np.array([1, 1, 1, 1, 0], bool), {1, 3})
    >>> {k: v.tolist() for k, v in got.items()}
    {3: [0, 2], 1: [1]}
    """
    rows = np.flatnonzero(ok)
    if keys is not None:
        rows = rows[np.isin(key_arr[rows], np.fromiter(keys, dtype=np.int64, count=len(keys)))]
    if not len(rows):
        return {}
    k = key_arr[rows].astype(np.int64)
    order = np.argsort(k, kind="stable")
    sk = k[order]
    cuts = np.flatnonzero(sk[1:] != sk[:-1]) + 1
    groups = np.split(rows[order], cuts)
    firsts = [int(g[0]) for g in groups]
    heads = sk[np.concatenate([[0], cuts])].tolist()
    return {int(heads[i]): groups[i] for i in sorted(range(len(groups)), key=firsts.__getitem__)}


def split_point(n: int, validation_fraction: float) -> int:
    """Index where the validation part of a series of length ``n`` starts (chronological split).

    At least one entry trains and, when ``n >= 2``, at least one validates.

    >>> split_point(100, 0.25), split_point(2, 0.25), split_point(1, 0.25)
    (75, 1, 1)
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    if n <= 1:
        return n
    return int(min(max(round(n * (1.0 - validation_fraction)), 1), n - 1))


def sample_positions(
    n: int,
    cut: int,
    max_train: int | None,
    max_validation: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Which entries of a series of length ``n`` split at ``cut`` a model trains and validates on:
    all of them when each part is within its cap (None: no cap), else a uniform sample of the
    part, drawn from ``rng`` without replacement, in log order. Returns the positions and where
    the validation part starts among them. The windows of the sampled entries still read the
    whole series (:func:`windows_at`).

    >>> rng = np.random.default_rng(0)
    >>> at, c = sample_positions(10, 7, 3, None, rng)
    >>> len(at), c, at[c:].tolist(), bool((np.diff(at) > 0).all())
    (6, 3, [7, 8, 9], True)
    >>> sample_positions(10, 7, 7, 3, rng)[0].tolist() == list(range(10))
    True
    """

    def part(lo: int, hi: int, cap: int | None) -> np.ndarray:
        if cap is None or hi - lo <= cap:
            return np.arange(lo, hi)
        return lo + np.sort(rng.choice(hi - lo, cap, replace=False))

    train = part(0, cut, max_train)
    return np.concatenate([train, part(cut, n, max_validation)]), len(train)


def windows(z: np.ndarray, history: int) -> np.ndarray:
    """Model inputs for every entry of a normalised series ``z`` (``[n, d]``, NaN = missing).

    Returns ``[n, history, 2 * d]``: for entry ``i`` the steps ``i-history .. i-1`` (zeros before the
    start of the series), each with the values (NaN -> 0) then the observed flags.

    >>> w = windows(np.array([[1.0], [np.nan], [3.0]]), 2)
    >>> w.shape, w[2].tolist()
    ((3, 2, 2), [[1.0, 1.0], [0.0, 0.0]])
    """
    return windows_at(z, history, np.arange(len(z)))


def windows_at(z: np.ndarray, history: int, at: np.ndarray) -> np.ndarray:
    """The windows of :func:`windows` for the entries ``at`` only (positions in ``z``):
    ``windows(z, history)[at]`` without building the others.

    >>> z = np.array([[1.0], [np.nan], [3.0]])
    >>> bool((windows_at(z, 2, np.array([2])) == windows(z, 2)[[2]]).all())
    True
    """
    if history < 1:
        raise ValueError(f"history must be >= 1, got {history}")
    d = z.shape[1]
    feats = np.concatenate([np.nan_to_num(z, nan=0.0), np.isfinite(z).astype(z.dtype)], axis=1)
    padded = np.concatenate([np.zeros((history, 2 * d), dtype=z.dtype), feats], axis=0)
    idx = np.asarray(at, dtype=np.int64)[:, None] + np.arange(history)[None, :]  # [m, history]
    return padded[idx]
