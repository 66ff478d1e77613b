"""The plain-English sentences of a diagnosis (:mod:`workbench.workflow.diagnosis`).

Every function takes the data a diagnosis found (templates already looked up) and returns text;
none reads entries or workflows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workbench.workflow.automaton import short_label

__all__ = [
    "key_sentence",
    "parameter_sentence",
    "performance_sentence",
    "quote",
    "slow_clause",
]

Name = Callable[[int | None], str]  # key -> its template text


def fmt_seconds(x: float | None) -> str:
    """Seconds for a sentence: 48 s, 9.4 s, 0.61 s, 0.012 s.

    >>> [fmt_seconds(x) for x in (48.2, 9.41, 0.612, 0.0123, None)]
    ['48 s', '9.4 s', '0.61 s', '0.012 s', '?']
    """
    if x is None or not math.isfinite(x):
        return "?"
    ax = abs(x)
    if ax >= 20:
        return f"{x:.0f} s"
    if ax >= 1:
        return f"{x:.2g} s" if ax < 10 else f"{x:.0f} s"
    return f"{x:.2g} s"


def fmt_number(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "?"
    return f"{x:.3g}"


def value_range(lo: float | None, hi: float | None, unit: bool = True) -> str:
    if lo is None or hi is None:
        return "?"
    if unit:
        return f"{fmt_seconds(lo)[:-2]}-{fmt_seconds(hi)}"
    return f"{fmt_number(lo)}-{fmt_number(hi)}"


def quote(label: str) -> str:
    """A template in a sentence: quoted, without its instance tag, cut to 60 characters."""
    return f"'{short_label(label, 60)}'"


def key_sentence(
    *,
    name: Name,
    prev: int | None,
    where: str,
    position: str,
    template: str,
    workflow_expected: tuple[tuple[int, float], ...],
    has_workflow: bool,
    model_expected: tuple[tuple[int, float], ...],
) -> str:
    """The sentence of a key anomaly: what came where the workflow and the model expected what."""

    def listing(items: tuple[tuple[int, float], ...], n: int = 3) -> str:
        return " or ".join(f"{quote(name(k))} ({p:.2f})" for k, p in items[:n])

    head = f"After {quote(name(prev))}" if prev is not None else "At the start"
    parts = [f"{head} {where}{position}, {quote(template)} came"]
    if workflow_expected:
        parts.append(f"where the workflow expects {listing(workflow_expected)}")
    elif has_workflow:
        parts.append("where the workflow has ended")
    sentence = " ".join(parts)
    if model_expected:
        sentence += f"; the model expected {listing(model_expected)}"
    return sentence + "."


def slow_clause(
    name: Name,
    transition: tuple[int, int],
    elapsed: float | None,
    usual: Mapping[str, Any],
    settled_by: Sequence[tuple[int, float]],
    also: Sequence[tuple[int, int, float]],
) -> str:
    """ "transition 'A' -> 'B' took 48 s, usually 6-9 s (p95 9.4 s)", and what the concurrent
    branches into the same join say about it."""
    slow = (
        f"transition {quote(name(transition[0]))} -> {quote(name(transition[1]))} took "
        f"{fmt_seconds(elapsed)}, usually "
        f"{value_range(usual.get('p10'), usual.get('p90'))} (p95 {fmt_seconds(usual.get('p95'))})"
    )
    if settled_by:
        reports = " and ".join(f"{quote(name(a))} ({fmt_number(v)})" for a, v in settled_by)
        slow += (
            f"; the concurrent {reports} reported its own work done in the usual time, "
            f"so the wait was on this branch"
        )
    elif also:
        others = " and ".join(f"{quote(name(a))} ({fmt_seconds(x)})" for a, _, x in also)
        slow += (
            f"; {quote(name(transition[1]))} also waited that long after the concurrent "
            f"{others}, so the log cannot tell which branch was slow"
        )
    return slow


def performance_sentence(
    subject: str, task_part: str, template: str, slow: str, is_slow: bool
) -> str:
    """The sentence of a performance anomaly, from :func:`slow_clause` (empty: no transition)."""
    if slow and is_slow:
        return f"{subject} took too long{task_part}: {slow}."
    if slow:
        return (
            f"{subject} was flagged as slow{task_part} at {quote(template)}, but no "
            f"transition is far outside its usual time; the slowest relative to usual: {slow}."
        )
    return (
        f"{subject} was flagged as slow at {quote(template)}; no workflow holds this "
        f"step, so no transition can be named."
    )


def parameter_sentence(
    subject: str,
    task_part: str,
    template: str,
    value: float | None,
    dim: int,
    usual: Mapping[str, Any],
    slow: str,
    is_slow: bool,
) -> str:
    """The sentence of a parameter anomaly: the value against its usual range, and the timing."""
    sentence = (
        f"{subject}{task_part}: {quote(template)} carried {fmt_number(value)} in parameter {dim}"
    )
    rng = value_range(usual.get("p10"), usual.get("p90"), unit=False) if usual else "?"
    if rng != "?":  # the usual values are known only for keys inside a workflow
        p95 = fmt_number(usual.get("p95"))
        sentence += f", usually {rng}" + (f" (p95 {p95})" if p95 != "?" else "")
    if slow and is_slow:
        sentence += f"; the timing was off too: {slow}."
    else:
        sentence += "; the timestamps show no slow transition, so the value itself is odd."
    return sentence
