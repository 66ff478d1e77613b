"""Honest evaluation of a log-key detector, and the ``deeplog-workbench evaluate`` command.

The detector is trained on normal training sessions only; every knob it chooses (g, the probability
floor, early stopping) is chosen on a share of those training sessions. The test sessions are only
scored, and counted with multiplicity.

>>> train = [(1, 2, 3, 4)] * 40 + [(1, 3, 2, 4)] * 10
>>> result = evaluate(train, [(1, 2, 3, 4)] * 5, [(1, 2), (1, 9, 4)], model="ngram", top_g=2)
>>> result["tp"], result["fp"], result["fn"], result["tn"], result["model"]
(2, 0, 0, 5, 'ngram')
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from workbench.eval.metrics import confusion
from workbench.keys.keyfiles import FORMATS, read_sessions
from workbench.keys.vocabulary import Session
from workbench.train import Callback

__all__ = [
    "MODELS",
    "add_evaluate_command",
    "build_detector",
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
        chosen (``g_selection``; None for PCA and IM), ``window``, ``model``, ``train_seconds``,
        ``detect_seconds`` and ``keys_per_second`` (test keys over detection time).
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
    t0 = time.perf_counter()
    if model == "deeplog":
        detector.fit(train, seed=seed, callbacks=callbacks)
    else:
        detector.fit(train, seed=seed)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    normal = detector.detect(test_normal)
    abnormal = detector.detect(test_abnormal)
    detect_seconds = time.perf_counter() - t1
    n_keys = sum(len(s) for s in test_normal) + sum(len(s) for s in test_abnormal)
    result: dict[str, Any] = confusion(normal.anomalous, abnormal.anomalous).to_dict()
    selection = getattr(detector, "g_selection_", None)
    result.update(
        model=model,
        window=getattr(detector, "window", None) if model != "deeplog" else detector.config.window,
        g=getattr(detector, "g_", None),
        min_probability=None if selection is None else selection.min_probability,
        end_g=None if selection is None else selection.end_g,
        g_selection=None if selection is None else selection.to_dict(),
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


def _top_g(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a positive integer, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"g must be >= 1, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    if args.verbose and not args.json:
        from workbench.train import TqdmProgress

        callbacks: list[Callback] = [TqdmProgress()]
    else:
        callbacks = []
    train, dropped_train = read_role([args.train], args.format, 0)
    t0 = time.perf_counter()
    normal, dropped_normal = read_role(args.test_normal, args.format, 0)
    abnormal, dropped_abnormal = read_role(args.test_abnormal, args.format, 1)
    for role, got, paths in (
        ("training", train, [args.train]),
        ("normal test", normal, args.test_normal),
        ("abnormal test", abnormal, args.test_abnormal),
    ):
        if not any(len(s) for s in got):
            names = ", ".join(str(p) for p in paths)
            raise ValueError(f"{names}: no {role} sessions (empty, blank, or all rows dropped)")
    train, normal, abnormal = dense_keys(train, normal, abnormal)
    read_seconds = time.perf_counter() - t0
    result = evaluate(
        train,
        normal,
        abnormal,
        model=args.model,
        window=args.window,
        top_g=args.top_g,
        seed=args.seed,
        callbacks=callbacks,
        session_counts=args.session_counts,
        ensemble=args.ensemble,
        validation_folds=args.validation_folds,
        preset=args.preset,
    )
    # Throughput counts reading the test files too.
    result["read_seconds"] = read_seconds
    result["detect_seconds"] += read_seconds
    result["keys_per_second"] = result["test_keys"] / result["detect_seconds"]
    result["dropped_rows"] = {
        "train": dropped_train,
        "test_normal": dropped_normal,
        "test_abnormal": dropped_abnormal,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key in ("model", "window", "g", "tp", "fp", "fn", "tn"):
            print(f"{key:>16} {result[key]}")
        for key in ("precision", "recall", "f1", "fpr", "train_seconds", "keys_per_second"):
            print(f"{key:>16} {result[key]:.4f}")
    return 0


def add_evaluate_command(subparsers: Any) -> None:
    """Register ``deeplog-workbench evaluate`` on an argparse sub-parser collection."""
    p = subparsers.add_parser(
        "evaluate",
        help="train on normal sessions and measure detection on labelled test sessions",
        description="Train a log-key detector on normal sessions (every knob chosen on a share of "
        "them), detect on normal and abnormal test sessions, and report the figures.",
    )
    p.add_argument("--train", required=True, help="normal training sessions")
    p.add_argument(
        "--test-normal", required=True, nargs="+", help="normal test sessions (one or more files)"
    )
    p.add_argument(
        "--test-abnormal",
        required=True,
        nargs="+",
        help="abnormal test sessions (one or more files)",
    )
    p.add_argument(
        "--format",
        choices=(*FORMATS, "auto"),
        default="auto",
        help="file format (default: auto, per file: .csv -> csv, a comma -> idkeys, else keys); "
        "in csv files only the rows labelled for the role are used",
    )
    p.add_argument("--model", choices=MODELS, default="deeplog", help="detector (default: deeplog)")
    p.add_argument("--window", type=int, default=None, help="history length h (N-gram: N - 1)")
    p.add_argument(
        "--top-g", type=_top_g, default="auto", help="g, or 'auto' to choose it on validation"
    )
    p.add_argument(
        "--preset",
        choices=("recommended", "paper"),
        default="recommended",
        help="deeplog: the recommended configuration (h = 5, session counts, 3 networks, g on 2 "
        "cross-fitted folds; the default) or the paper's (h = 10, one network); the options "
        "below override it",
    )
    p.add_argument(
        "--session-counts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deeplog: the model also sees how often each key occurred so far in the session",
    )
    p.add_argument(
        "--ensemble",
        type=_positive,
        default=None,
        help="deeplog: average the probabilities of this many networks",
    )
    p.add_argument(
        "--validation-folds",
        type=_positive,
        default=None,
        help="deeplog: choose g on this many cross-fitted folds of the rare training sequences",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
