"""``deeplog-workbench parse LOG --run RUN [--workers N | --scheduler ADDRESS]``: parse with the
templates of a trained run, read-only, in this process or on a Dask cluster.

Plain ``parse`` mines its templates on the whole log in one process. With ``--run`` the run's
fitted parser matches the log without learning (its format and session rule, as ``detect`` reads
the log), so byte ranges can be matched apart: ``--workers N`` starts a local cluster of N worker
processes, ``--scheduler ADDRESS`` uses a running one; the entries are those of one process, row
for row (:func:`workbench.detect.distributed.parse_dask`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["add_parse_cluster_options"]


def add_parse_cluster_options(subparsers: Any) -> None:
    """Add ``--run``, ``--workers`` and ``--scheduler`` to the ``parse`` command."""
    p = subparsers.choices["parse"]
    p.add_argument(
        "--run",
        default=None,
        help="parse read-only with the templates, format and session rule of this trained run "
        "(needed by --workers and --scheduler)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="parse on N local Dask workers")
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="parse on a running Dask cluster (tcp://HOST:PORT)"
    )
    from workbench.cli.common import closing

    # the run loaded by --run is released when the command ends, also when it fails
    p.set_defaults(parse_with_run=parse_with_run, func=closing(p.get_default("func")))


def parse_with_run(log: Path, args: Any) -> tuple[Any, pd.DataFrame] | None:
    """The run's parser and the entries of ``log`` (None without ``--run``: plain ``parse``);
    a ValueError, said on one line, for options that do not go together."""
    cluster = args.workers is not None or args.scheduler is not None
    if args.run is None:
        if cluster:
            raise ValueError(
                "--workers/--scheduler parse with the templates of a trained run: add --run RUN "
                "(plain parse mines its templates on the whole log in one process)"
            )
        return None
    given = [f"--{n}" for n in ("session", "year") if getattr(args, n) is not None]
    given += ["--format"] if str(args.format).strip().lower() != "auto" else []
    if given:
        raise ValueError(
            f"{', '.join(given)}: with --run the run's own format and session rule are used"
        )
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    from workbench.cli.common import load_run

    parser = load_run(args.run).parser
    if not cluster:
        return parser, parser.transform(log)
    from workbench.detect.distributed import parse_dask
    from workbench.detect.shuffle import connect, local_client, quiet_dask

    rule = parser.effective_session_rule
    if rule is not None and rule.kind not in ("regex", "field"):
        raise ValueError(
            f"--workers/--scheduler: the run's session rule {rule} needs the whole log's time "
            "range, which a cluster's byte ranges do not see; parse without them"
        )
    if not getattr(args, "verbose", False):
        quiet_dask()
    if args.workers is not None:
        with local_client(args.workers) as client:
            return parser, parse_dask(parser, [log], client, session=rule)
    with connect(args.scheduler) as client:
        return parser, parse_dask(parser, [log], client, session=rule)
