"""``python -m workbench.cli.cluster RUN LOG... (--workers N | --scheduler ADDRESS) [--out DIR]``:
detect on a Dask cluster with a saved run, writing the per-entry verdicts as parquet parts.

``deeplog-workbench detect RUN LOG --workers N`` gives the same verdicts as a report; this command
reads several files as one log and keeps every entry's verdicts on disk
(:func:`workbench.detect.distributed.detect_dask` with ``out``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m workbench.cli.cluster",
        description="Detect anomalies in log files on a Dask cluster with a saved run.",
    )
    p.add_argument("run", type=Path, help="run directory written by Workbench.save")
    p.add_argument("logs", type=Path, nargs="+", help="log files, read as one log in this order")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--workers", type=int, metavar="N", help="start N local worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="use a running cluster")
    p.add_argument("--out", type=Path, help="folder for entries-*.parquet and anomalies.csv")
    p.add_argument("--blocksize", type=int, default=32, metavar="MB", help="MB per parse task")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Detect on a cluster with a saved run; prints the summary line, writes the verdicts to
    ``--out``. Bad input: one line on standard error, exit 2."""
    p = _arguments()
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    if args.blocksize < 1:
        p.error(f"--blocksize must be >= 1 (MB), got {args.blocksize}")
    for log in args.logs:
        if not log.is_file():
            what = "is a folder, not a log file" if log.is_dir() else "log file not found"
            print(f"error: {what}: {log}", file=sys.stderr)
            return 2
    from workbench.workbench import Workbench

    try:
        wb = Workbench.load(args.run)
    except Exception as exc:  # a missing or damaged run: one line, no traceback
        print(f"error: cannot load the run {args.run}: {' '.join(str(exc).split())}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        report = _detect(wb, args)
        from workbench.cli.detect import _refuse_nothing_checked, write_report

        if report is not None:  # an empty log, or none of its lines in the run's format
            _refuse_nothing_checked(report, " ".join(str(log) for log in args.logs))
        if report is not None and args.out is not None:  # the columns `detect --out` writes too
            write_report(wb, report, str(args.out / "anomalies.csv"), str(args.logs[0]))
    except (ValueError, OSError, RuntimeError) as exc:  # bad input or a failed cluster: one line
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    finally:
        wb.close()
    if report is None:
        return 2
    print(report.summary())
    for line in report.coverage.lines_summary():  # what was checked, as `detect` says it
        print(f"  {line}")
    for warning in report.coverage.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.out is not None:
        print(f"verdicts in {args.out}/entries-*.parquet, anomalies in {args.out}/anomalies.csv")
    return 0


def _detect(wb: Any, args: argparse.Namespace) -> Any:
    """The report of the detection on the cluster of ``args`` (a ValueError or RuntimeError says
    why there is none: a rule of the whole log, no scheduler there, a cluster that failed)."""
    from workbench.detect.distributed import detect_dask
    from workbench.detect.shuffle import check_rule, local_client, quiet_dask

    check_rule(wb.parser.effective_session_rule)  # before a cluster starts
    quiet_dask()
    models = wb.scorer(end_keys=True)
    blocksize = args.blocksize * 2**20
    if args.scheduler:
        from workbench.detect.shuffle import connect

        with connect(args.scheduler) as client:  # a ValueError: one line, exit 2
            return detect_dask(models, args.logs, client, blocksize=blocksize, out=args.out)
    with local_client(args.workers) as client:
        return detect_dask(models, args.logs, client, blocksize=blocksize, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
