"""The ``deeplog-workbench`` command line.

Each sub-command lives beside the code it drives and registers itself here through an
``add_*_command(subparsers)`` function, so this module only assembles them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level argument parser with every sub-command attached."""
    parser = argparse.ArgumentParser(
        prog="deeplog-workbench",
        description="DeepLog log anomaly detection and diagnosis.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    from workbench.cli import commands as cli_commands

    for add in cli_commands.COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as other tools do
        _silence_stdout()
        return 0
    except (ValueError, FileNotFoundError, OSError, KeyError, RuntimeError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        text = " ".join(str(text).split())  # one line, whatever the message
        print(f"deeplog-workbench {args.command}: error: {text}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point standard output at the null device, so the interpreter's final flush does not fail
    again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real descriptor (a test's captured stream)
        pass
