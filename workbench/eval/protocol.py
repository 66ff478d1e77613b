"""Honest evaluation of a log-key detector (the command is in :mod:`workbench.eval.command`).

The detector is trained on normal training sessions only; every knob it chooses (g, the probability
floor, early stopping) is chosen on a share of those training sessions. The test sessions are only
scored, and counted with multiplicity.

>>> train = [(1, 2, 3, 4)] * 40 + [(1, 3, 2, 4)] * 10
>>> result = evaluate(train, [(1, 2, 3, 4)] * 5, [(1, 2), (1, 9, 4)], model="ngram", top_g=2)
>>> result["tp"], result["fp"], result["fn"], result["tn"], result["model"]
(2, 0, 0, 5, 'ngram')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from workbench.eval.metrics import confusion
from workbench.keys.keyfiles import read_sessions
from workbench.keys.topg import REASONS, RULE_OF_REASON
from workbench.keys.vocabulary import Session
from workbench.train import Callback

__all__ = [
    "MODELS",
    "build_detector",
    "counts_by_reason",
    "dense_keys",
    "evaluate",
    "read_role",
]

logger = logging.getLogger(__name__)

MODELS: tuple[str, ...] = ("deeplog", "ngram", "pca", "im", "simple")


def build_detector(
    model: str,
    *,
    window: int | None = None,
    top_g: int | str = "auto",
    session_counts: bool | None = None,
    ensemble: int | None = None,
    validation_folds: int | None = None,
    preset: str = "recommended",
) -> Any:
    """A fresh, unfitted detector by name.

    ``deeplog``: :class:`workbench.keys.model.KeyModel` in the named ``preset`` of
    :meth:`~workbench.keys.model.KeyModelConfig.preset` (``"recommended"``: h = 5, session counts,
    3 networks, g and the probability floor chosen on 2 cross-fitted folds; ``"paper"``: h = 10,
    one network), with ``window``, ``session_counts``, ``ensemble`` and ``validation_folds``
    overriding it where given; with a number for ``top_g`` the paper's pure top-g rule is used.
    ``ngram``: :class:`workbench.keys.ngram.NGramModel` with ``n = window + 1`` (window default 2).
    ``pca`` and ``im``: the count-vector baselines (window and g do not apply).
    ``simple``: :class:`workbench.keys.baselines.SimpleDetector`, a new key, an unseen session length or
    an unseen count vector (Landauer et al., FSE 2024; nothing to tune).
    """
    if model == "deeplog":
        from workbench.keys.model import KeyModel, KeyModelConfig

        auto = top_g == "auto"
        changes: dict[str, Any] = {
            "top_g": "auto" if auto else int(top_g),
            "min_probability": "auto" if auto else 0.0,
        }
        given = {
            "window": window,
            "session_counts": session_counts,
            "ensemble": ensemble,
            "validation_folds": validation_folds,
        }
        changes.update({k: v for k, v in given.items() if v is not None})
        return KeyModel(KeyModelConfig.preset(preset, **changes))
    if session_counts or (ensemble or 1) != 1 or (validation_folds or 1) != 1:
        raise ValueError(
            "session_counts, ensemble and validation_folds apply to the deeplog model only"
        )
    from workbench.keys import baselines, ngram

    if model == "ngram":
        return ngram.NGramModel(n=(2 if window is None else window) + 1, top_g=top_g)
    if model == "pca":
        return baselines.PCADetector()
    if model == "im":
        return baselines.InvariantMiningDetector()
    if model == "simple":
        return baselines.SimpleDetector()
    raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")


def read_role(paths: Iterable[str | Path], fmt: str, label: int) -> tuple[list[Session], int]:
    """Sessions of one role (0 normal, 1 abnormal) from files, and how many CSV rows were dropped.

    In ``csv`` files the label column is honoured: rows whose label is not ``label`` are dropped
    (and counted); the other formats carry no labels, so every session is taken.
    """
    sessions: list[Session] = []
    dropped = 0
    for path in paths:
        f = read_sessions(path, fmt)  # type: ignore[arg-type]
        if f.labels is None:
            sessions.extend(f.sessions)
            continue
        keep = f.labels == label
        sessions.extend(s for s, k in zip(f.sessions, keep, strict=True) if k)
        dropped += int((~keep).sum())
    return sessions, dropped


def evaluate(
    train: Sequence[Session],
    test_normal: Sequence[Session],
    test_abnormal: Sequence[Session],
    *,
    model: str = "deeplog",
    window: int | None = None,
    top_g: int | str = "auto",
    seed: int = 0,
    callbacks: Iterable[Callback] = (),
    session_counts: bool | None = None,
    ensemble: int | None = None,
    validation_folds: int | None = None,
    preset: str = "recommended",
) -> dict[str, Any]:
    """Train on normal sessions, detect on both test sets, and report the figures.

    Returns
    -------
    dict
        ``tp fp fn tn precision recall f1 fpr`` (sessions with multiplicity), ``g`` and how it was
        chosen (``g_selection``; None for PCA and IM), ``window``, ``model``, ``by_rule`` (for the
        ``normal`` and the ``abnormal`` test sessions, the anomalous ones by the rule that fired
        first: :func:`counts_by_reason`), ``train_seconds``, ``detect_seconds`` and
        ``keys_per_second`` (test keys over detection time).
    """
    detector = build_detector(
        model,
        window=window,
        top_g=top_g,
        session_counts=session_counts,
        ensemble=ensemble,
        validation_folds=validation_folds,
        preset=preset,
    )
    train_seconds, detect_seconds, normal, abnormal = _fit_and_detect(
        detector, model, train, (test_normal, test_abnormal), seed, callbacks
    )
    n_keys = sum(len(s) for s in test_normal) + sum(len(s) for s in test_abnormal)
    result: dict[str, Any] = confusion(normal.anomalous, abnormal.anomalous).to_dict()
    result.update(_describe(detector, model))
    result.update(
        by_rule={"normal": counts_by_reason(normal), "abnormal": counts_by_reason(abnormal)},
        train_seconds=train_seconds,
        detect_seconds=detect_seconds,
        keys_per_second=n_keys / detect_seconds if detect_seconds > 0 else None,
        n_train=len(train),
        n_test_normal=len(test_normal),
        n_test_abnormal=len(test_abnormal),
        test_keys=n_keys,
        seed=seed,
    )
    if model == "deeplog":
        result["fit_info"] = detector.fit_info_
        result["config"] = detector.config.to_dict()
    return result


def _fit_and_detect(
    detector: Any,
    model: str,
    train: Sequence[Session],
    tests: tuple[Sequence[Session], Sequence[Session]],
    seed: int,
    callbacks: Iterable[Callback],
) -> tuple[float, float, Any, Any]:
    """Fit on ``train``, detect on the normal and the abnormal test sessions; the seconds each
    took and the two detections."""
    t0 = time.perf_counter()
    if model == "deeplog":
        detector.fit(train, seed=seed, callbacks=callbacks)
    else:
        detector.fit(train, seed=seed)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    normal, abnormal = (detector.detect(sessions) for sessions in tests)
    return train_seconds, time.perf_counter() - t1, normal, abnormal


def _describe(detector: Any, model: str) -> dict[str, Any]:
    """The fitted detector's window, g, and how g and the probability floor were chosen."""
    selection = getattr(detector, "g_selection_", None)
    return {
        "model": model,
        "window": getattr(detector, "window", None)
        if model != "deeplog"
        else detector.config.window,
        "g": getattr(detector, "g_", None),
        "min_probability": None if selection is None else selection.min_probability,
        "end_g": None if selection is None else selection.end_g,
        "g_selection": None if selection is None else selection.to_dict(),
    }


def counts_by_reason(detection: Any) -> dict[str, int]:
    """Anomalous sessions (with multiplicity) by the rule of their first anomalous entry.

    The key model's reasons are named by their rule, as reports and the review name them
    (:data:`workbench.keys.topg.RULE_OF_REASON`: top-g, probability floor, session end, unknown
    key), every one listed, a rule that never fired as 0; a baseline's own reasons (a count vector,
    an unseen length) follow as they occur.

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> d = SimpleNamespace(reason=np.array(["", "unknown key", "key not in top-g", "unknown key"]))
    >>> counts_by_reason(d)["unknown key"], counts_by_reason(d)["top-g"]
    (2, 1)
    >>> counts_by_reason(d)["probability floor"]
    0
    """
    counts = {RULE_OF_REASON[r]: 0 for r in REASONS if r}
    for reason in detection.reason:
        if reason is not None and str(reason) not in ("", "nan"):
            rule = RULE_OF_REASON.get(str(reason), str(reason))
            counts[rule] = counts.get(rule, 0) + 1
    return counts


def dense_keys(*roles: Sequence[Session]) -> tuple[list[Session], ...]:
    """The same sessions with key ids renumbered 1..n in the order of their values.

    Keys are categories: only which keys are equal and their order matter, so the figures do not
    change, while the memory of every model no longer depends on how large an id is (one id of
    10**8 or 2**64 in a file costs nothing).

    >>> dense_keys([(5, 10**12)], [(7,)])
    ([(1, 3)], [(2,)])
    """
    distinct = sorted({k for sessions in roles for s in sessions for k in s})
    index = {k: i for i, k in enumerate(distinct, start=1)}
    return tuple([tuple(index[k] for k in s) for s in sessions] for sessions in roles)
