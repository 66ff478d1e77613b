"""The investigator's commands: a raw log to a trained run, and a run to a report on another log.

::

    deeplog-workbench train LOG [--format auto] [--session RULE] [--year Y] --out RUN
    deeplog-workbench detect RUN LOG [--out REPORT.{csv,json,html}] [--follow] [--strict]
    deeplog-workbench diagnose RUN ANOMALY_ID
    deeplog-workbench flag RUN ANOMALY_ID [--all-like-this] [--and-following]
    deeplog-workbench undo RUN
    deeplog-workbench show RUN

``LOG`` is a file (plain or gzip) or ``-`` for standard input. ``detect`` keeps its last report in
the run directory (``last_report/``), so ``diagnose``, ``flag`` and ``undo`` name anomalies by the
ids it printed. Exit codes: 0 done, 1 anomalies (or a coverage warning) with ``--strict``, 2 bad
input, with one line on standard error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from workbench.cli.common import closing

__all__ = ["add_pipeline_commands"]


def add_pipeline_commands(subparsers: Any) -> None:
    """Register train, detect, diagnose, flag, undo and show."""
    _add_train(subparsers)
    _add_detect(subparsers)
    _add_review(subparsers)


def _command(module: str, name: str) -> Callable[[Any], int]:
    """The command ``name`` of ``workbench.cli.<module>``, imported when it runs (the command
    line stays light), releasing every run it loaded when it ends."""

    def run(args: Any) -> int:
        return getattr(importlib.import_module(f"workbench.cli.{module}"), name)(args)

    return closing(run)


def _add_train(subparsers: Any) -> None:
    """train: a raw log to a run."""
    log_help = "log file (plain or .gz), or - for standard input"
    t = subparsers.add_parser(
        "train",
        help="train a run on a raw log",
        description="Parse LOG, train the key model, the parameter models and the workflows, "
        "and save everything to the run directory RUN. Progress goes to standard error.",
    )
    t.add_argument("log", help=log_help)
    t.add_argument(
        "--format",
        default="auto",
        help="auto (default: chosen on the first lines), a built-in name, a loghub-style header "
        "with <Content>, or a regex with (?P<Content>...)",
    )
    t.add_argument(
        "--session",
        default=None,
        help="session rule: regex:PATTERN, field:NAME, window:SECONDS or sliding:SECONDS,STEP "
        "(default: the format's own rule); kept with the run and used by every detect",
    )
    t.add_argument("--year", type=int, default=None, help="year of timestamps that carry none")
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument(
        "--preset",
        choices=("recommended", "paper"),
        default="recommended",
        help="key model: recommended (default: h=5, session counts, ensemble of 3, g on 2 "
        "cross-fitted folds) or paper (h=10, g=9, one network)",
    )
    t.add_argument(
        "--epochs", type=int, default=None, help="at most this many epochs (both models)"
    )
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--force", action="store_true", help="replace an existing run")
    t.set_defaults(func=_command("train", "run_train"))


def _add_detect(subparsers: Any) -> None:
    """detect: a run on another log."""
    log_help = "log file (plain or .gz), or - for standard input"
    d = subparsers.add_parser(
        "detect",
        help="detect anomalies in a log with a trained run",
        description="Score LOG with the run's parser, session rule and models; print one line "
        "per anomaly and what was checked; keep the report in RUN for diagnose/flag/undo.",
    )
    d.add_argument("run", help="run directory written by train")
    d.add_argument("log", help=log_help)
    d.add_argument("--out", default=None, help="write the report: .csv, .json or .html")
    d.add_argument("--strict", action="store_true", help="exit 1 on anomalies or warnings")
    d.add_argument("--year", type=int, default=None, help="year of timestamps that carry none")
    d.add_argument("--level", type=float, default=None, help="parameter threshold level")
    d.add_argument("--follow", action="store_true", help="tail a growing file or stdin")
    d.add_argument(
        "--idle-lines",
        type=int,
        default=2000,
        help="--follow: a session closes after this many lines without an entry of it",
    )
    d.add_argument("--poll", type=float, default=0.5, help="--follow: seconds between reads")
    d.add_argument(
        "--stop-after-idle",
        type=float,
        default=None,
        help="--follow: stop when nothing new arrived for this many seconds (default: never)",
    )
    where = d.add_mutually_exclusive_group()
    where.add_argument(
        "--stream",
        action="store_true",
        help="read the log in chunks, scoring sessions as they close (memory bounded by the open "
        "sessions; the default for a file too large to parse whole: over 256 MB, or a fifteenth of "
        "a third of the free memory if more); the report is not kept for diagnose/flag",
    )
    where.add_argument(
        "--in-memory",
        action="store_true",
        help="read the log whole, whatever its size (keeps the report for diagnose/flag)",
    )
    d.add_argument(
        "--chunk-lines", type=int, default=100_000, help="--stream: lines read at a time"
    )
    where.add_argument(
        "--workers", type=int, metavar="N", help="detect on N local Dask worker processes"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="detect on a running Dask cluster (tcp://HOST:PORT)"
    )
    d.set_defaults(func=_command("detect", "run_detect"))


def _add_review(subparsers: Any) -> None:
    """diagnose, flag, undo and show: the last report and the run."""
    g = subparsers.add_parser("diagnose", help="explain one anomaly of the last detect")
    g.add_argument("run")
    g.add_argument("anomaly_id", help="an id printed by detect")
    g.set_defaults(func=_command("review", "run_diagnose"))

    f = subparsers.add_parser("flag", help="flag an anomaly as a false positive (online update)")
    f.add_argument("run")
    f.add_argument("anomaly_id", help="an id printed by detect")
    f.add_argument(
        "--all-like-this", action="store_true", help="also every open anomaly like this one"
    )
    f.add_argument(
        "--and-following",
        action="store_true",
        help="also confirm the steps after each flagged entry in its session that recur in other "
        "sessions (a new operation's later steps)",
    )
    f.set_defaults(func=_command("review", "run_flag"))

    u = subparsers.add_parser("undo", help="restore the model version before the last flag")
    u.add_argument("run")
    u.set_defaults(func=_command("review", "run_undo"))

    s = subparsers.add_parser("show", help="what a run holds")
    s.add_argument("run")
    s.add_argument("--keys", type=int, default=20, help="templates to list (default: 20)")
    s.set_defaults(func=_command("review", "run_show"))
