"""Scores of recovered workflows against known ones: task key sets and automaton edges."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["edge_scores", "jaccard", "match_tasks"]


def jaccard(a: Iterable[Any], b: Iterable[Any]) -> float:
    """``|A & B| / |A | B|`` (1.0 for two empty sets).

    >>> jaccard({1, 2, 3}, {2, 3, 4})
    0.5
    """
    sa, sb = set(a), set(b)
    return 1.0 if not sa | sb else len(sa & sb) / len(sa | sb)


def match_tasks(
    recovered: Sequence[Iterable[int]], truth: Mapping[str, Iterable[int]]
) -> dict[str, tuple[int | None, float]]:
    """For every true task, the recovered task with the highest key-set Jaccard: name ->
    ``(index into recovered or None, jaccard)``.

    >>> match_tasks([{1, 2}, {3, 4, 5}], {"a": {3, 4}, "b": {9}})
    {'a': (1, 0.6667), 'b': (None, 0.0)}
    """
    rec = [set(r) for r in recovered]
    out: dict[str, tuple[int | None, float]] = {}
    for name, keys in truth.items():
        best, score = None, 0.0
        for i, r in enumerate(rec):
            s = jaccard(r, keys)
            if s > score:
                best, score = i, s
        out[name] = (best, round(score, 4))
    return out


def edge_scores(
    recovered: Iterable[tuple[Any, Any]], truth: Iterable[tuple[Any, Any]]
) -> dict[str, float]:
    """Precision and recall of recovered workflow edges (self-loops ignored on both sides).

    >>> edge_scores([(1, 2), (2, 3), (3, 3)], [(1, 2), (2, 4)])
    {'precision': 0.5, 'recall': 0.5}
    """
    r = {e for e in recovered if e[0] != e[1]}
    t = {e for e in truth if e[0] != e[1]}
    tp = len(r & t)
    return {
        "precision": round(tp / len(r), 4) if r else (1.0 if not t else 0.0),
        "recall": round(tp / len(t), 4) if t else 1.0,
    }
