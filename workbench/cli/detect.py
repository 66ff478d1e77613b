"""``deeplog-workbench detect RUN LOG``: a trained run on another log, as printed lines and a
CSV, JSON or self-contained HTML report; in chunks with bounded memory for a large log (or with
``--stream``); on a Dask cluster with ``--workers``/``--scheduler``; as lines arrive with
``--follow``."""

from __future__ import annotations

import json
import os
import select
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.cli.common import (
    err,
    forget_last_report,
    held_warnings,
    load_run,
    read_source,
    save_last_report,
)
from workbench.detect.follow import OnlineDetector
from workbench.detect.report import why
from workbench.detect.rules import report_rules, rule_of_row
from workbench.detect.streaming import detect_streaming, too_large_for_memory

__all__ = ["anomaly_line", "run_detect", "write_report"]


def anomaly_line(row: pd.Series) -> str:
    """One line per anomaly: id, line, session, the rule that flagged it, template, why."""
    sess = row["session"] if row["session"] is not None and not pd.isna(row["session"]) else "-"
    return (
        f"#{row['id']} line {row['line']} session {sess} [{rule_of_row(row)}] "
        f"{row['template']} -- {why(row)}"
    )


def _print_report(report: Any, *, header: bool = True) -> None:
    for _, row in report.anomalies.iterrows():
        print(anomaly_line(row))
    cov = report.coverage
    print(f"{report.verdict}")
    for line in cov.lines_summary():
        print(f"  {line}")
    for w in cov.warnings:
        err(f"warning: {w}")


def write_report(wb: Any, report: Any, out: str, source: str) -> Path:
    """Write the report as CSV, JSON (records with the report's columns) or self-contained HTML."""
    path = Path(out)
    suffix = path.suffix.lower()
    table = report.anomalies.copy()
    table.insert(len(table.columns), "rule", report_rules(report))
    table.insert(len(table.columns), "why", [why(r) for _, r in table.iterrows()])
    for col in ("id", "line", "key", "position", "rank", "g"):  # 27, not 27.0, beside blanks
        if col not in table:
            continue
        column = table[col]
        if column.dtype == object:  # numbers and blanks mixed (a report gathered from a cluster)
            numbers = pd.to_numeric(column, errors="coerce")
            column = numbers if numbers.notna().sum() == column.notna().sum() else column
        if pd.api.types.is_float_dtype(column):
            values = column.dropna()
            if (values == values.round()).all():
                table[col] = column.astype("Int64")
    if suffix == ".csv":
        table.to_csv(path, index=False)
    elif suffix == ".json":
        records = json.loads(table.to_json(orient="records", date_format="iso"))
        payload = {
            "source": source,
            "verdict": report.verdict,
            "coverage": report.coverage.to_dict(),
            "anomalies": records,
        }
        path.write_text(json.dumps(payload, indent=1))
    elif suffix in (".html", ".htm"):
        from workbench.detect.html import render_report

        path.write_text(render_report(wb, report, source=source), encoding="utf-8")
    else:
        raise ValueError(f"--out must end in .csv, .json or .html, got {path.name!r}")
    return path


def run_detect(args: Any) -> int:
    _check_options(args)
    wb = load_run(args.run)
    if args.year is not None:
        wb.parser.year = int(args.year)
    if args.follow:
        return _follow(wb, args)
    with held_warnings():  # a log with nothing to check is one error line, not warnings too
        if args.workers is not None or args.scheduler is not None:
            report = _detect_on_cluster(wb, args)
            forget_last_report(wb, args.log, "on a Dask cluster")
        elif _streamed(wb, args):
            report = _detect_streamed(wb, args)
            forget_last_report(wb, args.log, "in chunks")
        else:
            report = wb.detect(read_source(args.log), level=args.level, stream=False)
            _refuse_nothing_checked(report, args.log)
            save_last_report(wb, args.log)
        _refuse_nothing_checked(report, args.log)
    _print_report(report)
    if args.out:
        path = write_report(wb, report, args.out, args.log)
        err(f"report written to {path} ({path.stat().st_size:,} bytes)")
    wb.close()
    if args.strict and (len(report.anomalies) or report.coverage.warnings):
        return 1
    return 0


def _check_options(args: Any) -> None:
    """Options that cannot work, refused before the log is read rather than after."""
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in (".csv", ".json", ".html", ".htm"):
            raise ValueError(f"--out must end in .csv, .json or .html, got {out.name!r}")
        if not out.parent.is_dir():
            raise ValueError(f"--out: no folder {out.parent} to write {out.name} in")
        if out.is_dir():
            raise ValueError(f"--out: {out} is a folder, not a report file")
    if args.level is not None and not 0.0 < args.level < 1.0:
        raise ValueError(f"--level must be in (0, 1), e.g. 0.99 for 99 %, got {args.level:g}")
    if args.year is not None and not 1 <= args.year <= 9999:
        raise ValueError(f"--year must be between 1 and 9999, got {args.year}")
    if args.follow and (args.workers is not None or args.scheduler is not None):
        raise ValueError(
            "--follow reads lines as they arrive, in this process; --workers/--scheduler detect "
            "in a log file on a cluster: give one or the other"
        )
    if args.chunk_lines < 1:
        raise ValueError(f"--chunk-lines must be at least 1, got {args.chunk_lines}")


def _refuse_nothing_checked(report: Any, source: str) -> None:
    """A log of which no entry could be checked (empty, binary, no line in the run's format) is
    bad input: a ValueError that says why, never a verdict over nothing."""
    cov = report.coverage
    if cov is None or cov.checked:
        return
    name = "standard input" if source == "-" else source
    if cov.lines == 0:
        raise ValueError(f"nothing was checked: {name} is empty")
    reasons = ", ".join(f"{n} {r}" for r, n in cov.unparsed_reasons.items()) or "none"
    cause = next(iter(cov.warnings), "")
    raise ValueError(
        f"nothing was checked in {name}: {cov.parsed} of {cov.lines} lines parsed "
        f"(unparsed: {reasons}); {cause}"
    )


def _streamed(wb: Any, args: Any) -> bool:
    """Whether to read the log in chunks: asked for, or a file too large for one frame (and a
    session rule that chunked detection takes)."""
    if args.stream or args.log == "-":
        return bool(args.stream)
    if args.in_memory:
        return False
    from workbench.logs.reading import log_path

    path, rule = log_path(args.log), wb.parser.session_rule
    if too_large_for_memory(path, rule):
        return True
    if too_large_for_memory(path):
        err(f"warning: {path.name} is large but the session rule {rule} needs the whole log's "
            "time range: detecting in memory")  # fmt: skip
    return False


def _detect_streamed(wb: Any, args: Any) -> Any:
    """``detect`` in chunks (:func:`workbench.detect.streaming.detect_streaming`): memory follows
    the open sessions, progress goes to standard error."""
    if args.log == "-":
        raise ValueError("--stream reads a log file; use --follow for standard input")
    rule = wb.parser.effective_session_rule
    if rule is not None and rule.kind in ("window", "sliding"):
        raise ValueError(
            f"--stream: the run's session rule {rule} needs the whole log's time range; detect "
            "without --stream (or with --in-memory) to read the log whole"
        )
    err(f"reading {args.log} in chunks of {args.chunk_lines:,} lines (sessions are scored as they "
        "close; --in-memory reads it whole)")  # fmt: skip
    last = [time.monotonic()]

    def progress(p: dict[str, Any]) -> None:
        if time.monotonic() - last[0] >= 5.0:
            last[0] = time.monotonic()
            err(f"  {p['lines']:,} lines read, {p['open_sessions']:,} sessions open, "
                f"{p['anomalies']:,} anomalies so far")  # fmt: skip

    report = detect_streaming(
        wb.scorer(end_keys=True), read_source(args.log), chunk_lines=args.chunk_lines,
        level=args.level, progress=progress,
    )  # fmt: skip
    return report  # sessions that came back after they were closed: the library's warning


def _detect_on_cluster(wb: Any, args: Any) -> Any:
    """``detect --workers N`` or ``--scheduler ADDRESS``: the same verdicts, on a Dask cluster
    (the report keeps the verdict columns only, so it is not kept in RUN for ``flag``)."""
    from workbench.detect.shuffle import check_rule, local_client, quiet_dask

    if args.follow or args.log == "-":
        raise ValueError("a cluster reads log files: --workers/--scheduler need a file, not stdin")
    if Path(args.log).is_dir():
        raise ValueError(f"{args.log} is a folder, not a log file")
    if not Path(args.log).is_file():
        raise ValueError(f"log file not found: {args.log}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    check_rule(wb.parser.effective_session_rule)
    if not getattr(args, "verbose", False):
        quiet_dask()
    if args.workers is not None:
        with local_client(args.workers) as client:
            report = wb.detect(args.log, level=args.level, client=client)
    else:
        from workbench.detect.shuffle import connect

        with connect(args.scheduler) as client:
            report = wb.detect(args.log, level=args.level, client=client)
    return report


def _chunks(fd: int, follow_file: bool, poll: float, stop_after: float | None):
    """Yield lists of complete lines from a file descriptor as they arrive."""
    buf = b""
    idle_since = time.monotonic()
    while True:
        if not follow_file:
            ready, _, _ = select.select([fd], [], [], poll)
            data = os.read(fd, 1 << 16) if ready else None
            if data == b"":  # end of standard input
                break
        else:
            data = os.read(fd, 1 << 16) or None
        if data:
            idle_since = time.monotonic()
            buf += data
            *full, buf = buf.split(b"\n")
            if full:
                yield [line.decode("utf-8", "replace") for line in full]
            continue
        if stop_after is not None and time.monotonic() - idle_since >= stop_after:
            break
        if follow_file:
            time.sleep(poll)
    if buf:
        yield [buf.decode("utf-8", "replace")]


def _follow(wb: Any, args: Any) -> int:
    if args.out:
        raise ValueError("--follow prints anomalies as they come; --out is not available with it")
    det = OnlineDetector(wb.scorer(end_keys=True), idle_lines=args.idle_lines)
    if args.log == "-":
        fd, follow_file = sys.stdin.fileno(), False
    else:
        path = read_source(args.log)
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                raise ValueError(f"cannot follow a compressed file: {path}")
        fd, follow_file = os.open(path, os.O_RDONLY), True
    err(f"following {args.log} (Ctrl-C to stop)")
    try:
        for lines in _chunks(fd, follow_file, args.poll, args.stop_after_idle):
            for row in det.feed(lines):
                print(anomaly_line(row), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if follow_file:
            os.close(fd)
    for row in det.close():
        print(anomaly_line(row), flush=True)
    cov = det.coverage
    print(cov.verdict(det.anomalies))
    for line in cov.lines_summary():
        print(f"  {line}")
    print(f"  at most {det.peak_rows} entries held in memory at once")
    for w in cov.warnings:
        err(f"warning: {w}")
    wb.close()
    return 1 if args.strict and (det.anomalies or cov.warnings) else 0
