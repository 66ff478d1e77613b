"""The ``deeplog-workbench parse`` command: a raw log to a table of entries and one of templates."""

from __future__ import annotations

import gzip
import itertools
import sys
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.logs.formats import unmatched_hint
from workbench.logs.parser import LogParser
from workbench.logs.reading import read_lines

__all__ = ["add_parse_command"]


def add_parse_command(subparsers: Any) -> None:
    """Register ``deeplog-workbench parse``."""
    p = subparsers.add_parser(
        "parse",
        help="parse a raw log into log keys and parameter values",
        description="Parse LOG, write the parsed entries and the templates to DIR, print a summary.",
    )
    p.add_argument("log", help="log file (plain or .gz)")
    p.add_argument(
        "--format",
        default="auto",
        help="auto (default: chosen on the first lines), a built-in format name, a loghub-style "
        "header, or a regex with (?P<Content>...)",
    )
    p.add_argument(
        "--session",
        default=None,
        help="session rule: 'regex:PATTERN', 'field:NAME', 'window:SECONDS' or "
        "'sliding:SECONDS,STEP' (default: the format's own rule)",
    )
    p.add_argument("--year", type=int, default=None, help="year of timestamps that carry none")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--csv", action="store_true", help="write CSV instead of parquet")
    p.set_defaults(func=_run_parse)


def _run_parse(args: Any) -> int:
    from workbench.store.files import check_output_file

    log = Path(args.log)
    if not log.exists():
        raise ValueError(f"log file not found: {log}")
    if not log.is_file():
        raise ValueError(f"{log}: not a regular file")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    targets = [out / ("entries.csv" if args.csv else "entries.parquet"), out / "templates.csv"]
    for t in targets:
        check_output_file(t)
    # a higher layer may parse with a trained run's parser (``--run``, on a cluster or not)
    hook = getattr(args, "parse_with_run", None)
    got = hook(log, args) if hook is not None else None
    parser, df = got if got is not None else _parse(log, args)
    summary = parser.summary(df)
    if summary.lines and not summary.parsed:
        why = ", ".join(f"{n} {r}" for r, n in summary.unparsed_reasons.items())
        raise ValueError(
            f"{log}: none of the {summary.lines} lines was parsed ({why}) with the format "
            f"{parser.format.name!r}; check --format (the Content group must match every line)"
            + unmatched_hint(parser.format)
        )
    out.mkdir(parents=True, exist_ok=True)
    _write_entries(df, targets[0], csv=args.csv)
    parser.templates_.to_csv(targets[1], index=False)
    print(f"{args.log}: {summary}")
    if summary.lines == 0:
        print("warning: the input is empty")
    return 0


def _parse(log: Path, args: Any) -> tuple[LogParser, pd.DataFrame]:
    """The parser (its format chosen on the first lines under ``--format auto``) and the entries;
    a corrupt or undecodable file is a ValueError."""
    fmt: Any = args.format
    try:
        if fmt.strip().lower() == "auto":
            from workbench.logs.autoformat import choose_format

            choice = choose_format(x.text for x in itertools.islice(read_lines(log), 1200))
            fmt = choice.format
            print(f"chose {choice}", file=sys.stderr)
        parser = LogParser(fmt, session=args.session, year=args.year)
        return parser, parser.parse(log)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{log}: truncated or corrupt gzip file ({exc})") from None
    except UnicodeError as exc:
        raise ValueError(f"{log}: cannot be decoded ({exc})") from None


def _write_entries(df: pd.DataFrame, target: Path, csv: bool) -> None:
    """The entries as CSV or parquet, parameter tuples as space-separated numbers."""
    table = df.copy()
    table["params"] = table["params"].map(lambda p: " ".join(repr(v) for v in p))
    if csv:
        table.to_csv(target, index=False)
        return
    for col in table.columns:  # mixed header fields are written as text
        if table[col].dtype == object and col != "params":
            table[col] = table[col].map(lambda v: None if v is None else str(v))
    table.to_parquet(target, index=False)
