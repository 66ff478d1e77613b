"""The ``deeplog-workbench evaluate`` command: read labelled session files, evaluate, report."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from workbench.eval.protocol import MODELS, dense_keys, evaluate, read_role
from workbench.keys.keyfiles import FORMATS
from workbench.train import Callback

__all__ = ["add_evaluate_command"]


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


def _read(args: argparse.Namespace) -> tuple[list, list, list, dict[str, int], float]:
    """The three roles' sessions (keys renumbered densely), the CSV rows dropped per role, and the
    seconds spent reading the test files; a role without a session is a ``ValueError``."""
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
    dropped = {
        "train": dropped_train,
        "test_normal": dropped_normal,
        "test_abnormal": dropped_abnormal,
    }
    return train, normal, abnormal, dropped, read_seconds


def _run(args: argparse.Namespace) -> int:
    if args.verbose and not args.json:
        from workbench.train import TqdmProgress

        callbacks: list[Callback] = [TqdmProgress()]
    else:
        callbacks = []
    train, normal, abnormal, dropped, read_seconds = _read(args)
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
    result["dropped_rows"] = dropped
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


def _print(result: dict[str, Any]) -> None:
    """The figures as aligned text, then the anomalous test sessions by the rule that fired."""
    for key in ("model", "window", "g", "tp", "fp", "fn", "tn"):
        print(f"{key:>16} {result[key]}")
    for key in ("precision", "recall", "f1", "fpr", "train_seconds", "keys_per_second"):
        print(f"{key:>16} {result[key]:.4f}")
    print("anomalous test sessions by rule (normal = false positives, abnormal = true positives):")
    for reason in result["by_rule"]["normal"] | result["by_rule"]["abnormal"]:
        fp = result["by_rule"]["normal"].get(reason, 0)
        tp = result["by_rule"]["abnormal"].get(reason, 0)
        print(f"{reason:>40}  normal {fp:>8}  abnormal {tp:>8}")


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
