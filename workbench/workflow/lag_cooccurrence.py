"""Key co-occurrence by consistent time lags, for method 2 over time instead of positions.

Method 2 (:func:`workbench.workflow.cooccurrence.grow_tasks`) links two keys when one usually
comes within ``d`` *positions* of the other. In a log where many instances run at once, the positions between
two steps of one task fill with the lines of the others: a step that comes 13 s after its
parent has about a hundred unrelated lines in between on a busy node, so no small ``d`` reaches
it and a large ``d`` links everything to everything. Separation there needs the timestamps.

This module measures co-occurrence as a *consistent time lag*, the dependency test of mining
workflows from interleaved traces (Lou, Fu, Yang, Xu, Li: "Mining dependency in distributed
systems through unstructured logs analysis", SIGOPS OSR 2010; "Mining program workflow from
interleaved traces", KDD 2010): if ``k_j`` is caused by ``k_i`` it follows it after a lag drawn
from one distribution, so the lags from every ``k_i`` to the ``k_j`` after it, within a horizon
``window`` seconds, pile up in a few neighbouring lag bins above the flat background that
unrelated ``k_j`` give. For every ordered pair:

* lags are put in bins that grow geometrically (factor ``1.1``, after steps of the timestamps'
  resolution while those are wider; the first bin ``[0, 1 ms]``), so a lognormal delay of any
  median lands in a few bins;
* the *excess* at lag is, over the run of neighbouring bins (1 to 32 of them) where it is
  largest while the observed pairs are at least ``min_lift`` times the background, the observed
  pairs minus that background, capped by the number of ``k_i`` (and of ``k_j``) that have a
  partner in the run. The background is what a Poisson stream at the mean rate gives
  (``f(k_i) * rate(k_j) * width``), or, where higher, the pair's own density over the rest of
  the window times the width: a key that is merely more frequent near ``k_i`` (a busy stretch,
  another task that often comes within the window, such as a resume some seconds after a
  suspend) raises every lag alike, and only a peak above that is a consistent lag;
* ``after[i, j]`` is that excess over ``f(k_i)`` (the share of ``k_i`` followed by ``k_j`` at
  the usual lag), ``before[i, j]`` the same excess over ``f(k_j)``, ``lift[i, j]`` observed over
  background in the run, ``lag[i, j]`` its centre and ``low[i, j]``, ``high[i, j]`` its bounds.

These matrices replace the positional ones in method 2's task growing
(:func:`workbench.workflow.cooccurrence.grow_tasks_by_lag`: seeds, growth from owned keys only,
shared keys joining without growing from them, contained tasks dropped), with one distance:
``links = (after > tau) & (lift >= min_lift)``. ``window``, ``tau`` and ``min_lift`` are the
settings; ``bench/workflow.py`` chooses them on simulator seeds it does not report. Without
sessions at all, the automata of the separated tasks are read off the same matrices
(:mod:`workbench.workflow.lag_order`).

>>> rng = np.random.default_rng(0)
>>> t1, t2 = rng.uniform(0, 500, 100), rng.uniform(0, 500, 100)  # two unrelated streams
>>> ts = np.concatenate([t1, t1 + 0.5, t2, t2 + 2.0])
>>> ks = np.repeat([1, 2, 3, 4], 100)  # 2 follows 1 after 0.5 s, 4 follows 3 after 2 s
>>> lag = lag_cooccurrence(ks, ts, window=5.0)
>>> bool(lag.after[0, 1] > 0.9), bool(lag.after[0, 3] < 0.1), bool(lag.lag[2, 3] > 1)
(True, True, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["LagCooccurrence", "lag_cooccurrence"]

logger = logging.getLogger(__name__)

_FIRST_BIN = 0.001  # seconds: lines of one thread a few milliseconds apart share the first bin
_GROWTH = 1.1  # geometric growth of the lag bins
_RUNS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # lengths of the runs of neighbouring bins tried
_MAX_PAIRS = 20_000_000  # pairs within the window counted at most; beyond, the window shrinks


@dataclass(frozen=True)
class LagCooccurrence:
    """Consistent-lag co-occurrence of every pair of keys (see the module docstring)."""

    keys: np.ndarray  # the keys, increasing; rows and columns of the matrices
    counts: np.ndarray  # f(k_i)
    after: np.ndarray  # after[i, j]: share of k_i followed by k_j at the usual lag (excess)
    before: np.ndarray  # before[i, j]: share of k_j preceded by k_i at the usual lag (excess)
    lift: np.ndarray  # observed / background at that lag
    lag: np.ndarray  # the usual lag (geometric centre of the best run of bins), seconds
    window: float  # the horizon actually used, seconds
    low: np.ndarray  # where that run of bins starts, seconds (0 where no run qualifies)
    high: np.ndarray  # where it ends, seconds (0 where no run qualifies)
    resolution: float = 0.0  # the timestamps' step, seconds (the width of the first lag bins)

    def index(self, key: int) -> int:
        return int(np.searchsorted(self.keys, key))


def _bin_edges(window: float, resolution: float) -> np.ndarray:
    """Lag bin edges: steps of the timestamp resolution while they are wider than the geometric
    steps (factor ``_GROWTH``), then geometric up to ``window``."""
    switch = max(resolution / (_GROWTH - 1.0), resolution)
    lin = np.arange(0.0, min(switch, window), resolution)
    n = max(1, int(np.ceil(np.log(window / switch) / np.log(_GROWTH)))) if window > switch else 0
    geo = switch * _GROWTH ** np.arange(n + 1)
    return np.unique(np.concatenate([lin, geo, [window]])) if n else np.append(lin, window)


def lag_cooccurrence(
    keys: np.ndarray,
    seconds: np.ndarray,
    window: float,
    min_count: int = 3,
    min_lift: float = 3.0,
) -> LagCooccurrence:
    """Consistent-lag co-occurrence of the keys of one interleaved, time-ordered log.

    ``keys`` and ``seconds`` are parallel arrays (entries with a key ``> 0`` and a finite time);
    entries are taken in time order, ties in the given order. Keys seen fewer than ``min_count``
    times are left out.
    """
    if not window > 0:
        raise ValueError(f"window must be > 0 seconds, got {window!r}")
    keys = np.asarray(keys, dtype=np.int64)
    sec = np.asarray(seconds, dtype=np.float64)
    ok = (keys > 0) & np.isfinite(sec)
    keys, sec = keys[ok], sec[ok]
    order = np.argsort(sec, kind="stable")
    keys, sec = keys[order], sec[order]
    uniq, cnt = np.unique(keys, return_counts=True)
    kept = uniq[cnt >= min_count]
    m = len(kept)
    span = float(sec[-1] - sec[0]) if len(sec) > 1 else 0.0
    if m < 2 or span <= 0:
        z = np.zeros((m, m))
        return LagCooccurrence(kept, np.zeros(m), z, z, z, z, window, z, z)
    pos = np.searchsorted(kept, keys)
    known = (pos < m) & (kept[np.minimum(pos, m - 1)] == keys)
    idx = np.where(known, pos, -1)
    f = np.bincount(idx[known], minlength=m).astype(np.float64)
    first, second, window = _pairs_within(sec, window)
    a, b = idx[first], idx[second]
    good = (a >= 0) & (b >= 0) & (a != b)
    pairs = _Pairs(first[good], second[good], a[good], b[good])
    lags = sec[pairs.second] - sec[pairs.first]
    res = np.diff(np.unique(sec))
    resolution = float(res.min()) if len(res) else _FIRST_BIN
    edges = _bin_edges(window, max(resolution, 1e-6))
    nb = len(edges) - 1
    lbin = np.clip(np.searchsorted(edges, lags, side="right") - 1, 0, nb - 1)
    obs = np.bincount((pairs.a * m + pairs.b) * nb + lbin, minlength=m * m * nb).reshape(m, m, nb)
    best = _best_runs(obs.astype(np.float64), edges, f, f / span, min_lift, resolution)
    inside = (lbin >= best.lo[pairs.a, pairs.b]) & (lbin < best.hi[pairs.a, pairs.b])
    after, before = _capped_shares(best.excess, pairs, inside, idx, f)
    lift = np.where(np.isfinite(best.e), best.o / np.maximum(best.e, 1e-12), 0.0)
    for mat in (after, before, lift):
        np.fill_diagonal(mat, 0.0)
    low = np.where(best.hi > best.lo, edges[best.lo], 0.0)
    high = np.where(best.hi > best.lo, edges[np.minimum(best.hi, nb)], 0.0)
    return LagCooccurrence(kept, f, after, before, lift, best.lag, window, low, high, resolution)


def _pairs_within(sec: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Every (earlier, later) pair of positions within ``window`` seconds, earlier first, and the
    window used: halved while the pairs exceed ``_MAX_PAIRS``."""
    n = len(sec)
    while True:
        end = np.searchsorted(sec, sec + window, side="right")
        per = end - np.arange(n) - 1
        if per.sum() <= _MAX_PAIRS or window <= _FIRST_BIN * 10:
            break
        window /= 2
        logger.info("lag co-occurrence: too many pairs, window reduced to %.3g s", window)
    first = np.repeat(np.arange(n), per)
    offset = np.arange(len(first)) - np.repeat(np.cumsum(per) - per, per) + 1
    return first, first + offset, window


@dataclass(frozen=True)
class _Pairs:
    """Pairs of positions of two different kept keys: positions and key indices."""

    first: np.ndarray
    second: np.ndarray
    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class _BestRuns:
    """Per key pair, the run of lag bins with the largest excess over the background."""

    excess: np.ndarray  # observed minus background in that run (0 where no run qualifies)
    o: np.ndarray  # observed pairs in it
    e: np.ndarray  # background pairs in it (inf where no run qualifies)
    lag: np.ndarray  # its geometric centre, seconds
    lo: np.ndarray  # its first bin
    hi: np.ndarray  # one past its last bin


def _best_runs(
    obs: np.ndarray,
    edges: np.ndarray,
    f: np.ndarray,
    rate: np.ndarray,
    min_lift: float,
    resolution: float,
) -> _BestRuns:
    """Over runs of 1 to 32 neighbouring bins, the one with the largest excess among those
    where the observed pairs are at least ``min_lift`` times the background (the Poisson one at
    the mean rate, or the pair's density over the rest of the window where that is higher)."""
    m, nb = obs.shape[0], obs.shape[2]
    c_obs = np.concatenate([np.zeros((m, m, 1)), np.cumsum(obs, axis=2)], axis=2)
    best_ex = np.zeros((m, m))
    best_o = np.zeros((m, m))
    best_e = np.full((m, m), np.inf)
    best_lag = np.zeros((m, m))
    best_lo = np.zeros((m, m), dtype=np.int64)
    best_hi = np.zeros((m, m), dtype=np.int64)
    for run in _RUNS:
        if run > nb:
            break
        o = c_obs[:, :, run:] - c_obs[:, :, :-run]  # pairs in bins [s, s + run)
        w = edges[run:] - edges[:-run]  # width of each run of bins
        e = f[:, None, None] * rate[None, :, None] * w[None, None, :]
        # ... or the pair's own density over the rest of the window, where that is higher
        rest = np.maximum(edges[-1] - w, 1e-9)
        e = np.maximum(e, (c_obs[:, :, -1:] - o) * (w / rest)[None, None, :])
        ex = np.where(o >= min_lift * e, o - e, -np.inf)
        at = ex.argmax(axis=2)
        top = np.take_along_axis(ex, at[:, :, None], axis=2)[:, :, 0]
        better = top > best_ex
        best_ex = np.where(better, top, best_ex)
        best_o = np.where(better, np.take_along_axis(o, at[:, :, None], axis=2)[:, :, 0], best_o)
        best_e = np.where(better, np.take_along_axis(e, at[:, :, None], axis=2)[:, :, 0], best_e)
        centre = np.sqrt(np.maximum(edges[at], resolution / 2) * edges[at + run])
        best_lag = np.where(better, centre, best_lag)
        best_lo = np.where(better, at, best_lo)
        best_hi = np.where(better, at + run, best_hi)
    return _BestRuns(best_ex, best_o, best_e, best_lag, best_lo, best_hi)


def _capped_shares(
    best_ex: np.ndarray, pairs: _Pairs, inside: np.ndarray, idx: np.ndarray, f: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(after, before)``: the excess as a share of ``f(k_i)`` and of ``f(k_j)``, capped.

    An occurrence is followed (preceded) at the usual lag or not, however many lines of the other
    key fall in that interval: the excess never counts more than the occurrences that are (a busy
    stretch brings more k_j than the mean rate says; without this cap such pairs would link a
    task to the next request of the same instance)."""
    m = len(f)
    u = np.unique(pairs.first[inside] * m + pairs.b[inside])
    n_after = np.bincount(idx[u // m] * m + u % m, minlength=m * m).reshape(m, m)
    u = np.unique(pairs.second[inside] * m + pairs.a[inside])
    n_before = np.bincount((u % m) * m + idx[u // m], minlength=m * m).reshape(m, m)
    excess = np.minimum(best_ex, np.minimum(n_after, n_before))
    after = np.minimum(excess / np.maximum(f, 1.0)[:, None], 1.0)
    before = np.minimum(excess / np.maximum(f, 1.0)[None, :], 1.0)
    return after, before
