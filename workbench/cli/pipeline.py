"""The investigator's commands: a raw log to a trained run, and a run to a report on another log.

::

    deeplog-workbench train LOG [--format auto] [--session RULE] [--year Y] --out RUN
    deeplog-workbench detect RUN LOG [--out REPORT.{csv,json,html}] [--follow] [--strict]
    deeplog-workbench diagnose RUN ANOMALY_ID
    deeplog-workbench flag RUN ANOMALY_ID [--all-like-this]
    deeplog-workbench undo RUN
    deeplog-workbench show RUN

``LOG`` is a file (plain or gzip) or ``-`` for standard input. ``detect`` keeps its last report in
the run directory (``last_report/``), so ``diagnose``, ``flag`` and ``undo`` name anomalies by the
ids it printed. Exit codes: 0 done, 1 anomalies (or a coverage warning) with ``--strict``, 2 bad
input, with one line on standard error.
"""

from __future__ import annotations

import functools
import json
import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["add_pipeline_commands", "anomaly_line", "read_source"]

REPORT_DIR = "last_report"


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def read_source(log: str) -> Any:
    """A path for ``read_lines`` (plain or gzip), or the bytes of standard input for ``-``."""
    if log == "-":
        return sys.stdin.buffer.read()
    path = Path(log)
    if not path.exists():
        raise FileNotFoundError(f"log file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a log file, got a directory: {path}")
    return path


# ---------------------------------------------------------------------- train
def _run_train(args: Any) -> int:
    from workbench.keys.model import KeyModelConfig
    from workbench.params.model import ParamModelConfig
    from workbench.workbench import Workbench

    changes: dict[str, Any] = {"spare_keys": 64}
    param_config = None
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        changes["max_epochs"] = args.epochs
        param_config = ParamModelConfig(max_epochs=args.epochs)
    key_config = KeyModelConfig.preset(args.preset, **changes)
    run = Path(args.out)
    if (run / "run.json").exists() and not args.force:
        raise ValueError(f"{run} already holds a run; pass --force to replace it")
    source = read_source(args.log)
    t0 = time.perf_counter()
    wb = Workbench.from_logs(
        source,
        args.format,
        session=args.session,
        year=args.year,
        key_config=key_config,
        param_config=param_config,
        seed=args.seed,
    )
    if wb.format_choice is not None:
        _err(f"chose {wb.format_choice}")
    summary = wb.summary()
    _err(f"parsed {args.log}: {summary}")
    if summary.parsed == 0:
        raise ValueError(
            f"no line of {args.log} fits the format {wb.parser.format.name}: nothing to train on"
        )
    if summary.sessions == 0:
        rule = wb.session_rule
        why = (
            "the format has no session rule; give one with --session (window:SECONDS, "
            "regex:PATTERN, field:NAME, sliding:SECONDS,STEP)"
            if rule is None
            else f"the session rule {rule} grouped no entry"
            + "".join(f" ({p})" for p in summary.problems)
        )
        raise ValueError(f"the training log has no sessions: {why}")

    def progress(ev: dict[str, Any]) -> None:
        if ev.get("event") == "epoch" and ev.get("epoch") is not None:
            loss = ev.get("val_loss")
            loss = "" if loss is None else f", validation loss {float(loss):.4f}"
            total = ev.get("epochs") or ""
            total = f"/{total}" if total else ""
            _err(f"  {ev['stage']} model: epoch {ev['epoch']}{total}{loss}")

    wb.fit(callbacks=[progress])
    wb.save(run)
    km = wb.key_model
    n_param = len(wb.param_keys())
    print(
        f"trained on {summary.lines} lines ({summary.parsed} parsed, {summary.sessions} sessions, "
        f"{summary.keys} keys) in {time.perf_counter() - t0:.1f} s: g = {km.g_}, "
        f"{n_param} parameter models, {len(wb.workflows_)} workflows; saved to {run}"
    )
    wb.close()
    return 0


# ---------------------------------------------------------------------- reports kept in RUN
_OPENED: list[Any] = []  # workbenches a command loaded: closed when it ends, whatever happens


def _load(run: str) -> Any:
    from workbench.workbench import Workbench

    path = Path(run)
    if not (path / "run.json").is_file():
        raise FileNotFoundError(f"not a run directory (no run.json): {path}")
    wb = Workbench.load(path)
    _OPENED.append(wb)
    return wb


def _closing(run: Callable[[Any], int]) -> Callable[[Any], int]:
    """A command that releases every run directory it loaded, also when it fails: a command
    that stops on a bad id must not keep the run locked against the next one."""

    @functools.wraps(run)
    def wrapper(args: Any) -> int:
        try:
            return run(args)
        finally:
            while _OPENED:
                _OPENED.pop().close()

    return wrapper


def save_last_report(wb: Any, source: str) -> None:
    """Keep the report of the last detect in the run directory (parsed entries + review state)."""
    report = wb.report
    folder = Path(wb.run_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    entries = report.entries[list(wb.entries.columns)].copy()
    entries["params"] = entries["params"].map(list)
    for col in entries.columns:
        if entries[col].dtype == object and col != "params":
            entries[col] = entries[col].map(lambda v: None if v is None else str(v))
    tmp = folder / ".entries.parquet.tmp"
    entries.to_parquet(tmp, index=False)
    tmp.replace(folder / "entries.parquet")
    meta = {
        "source": source,
        "g": int(report.g),
        "level": float(report.level),
        "status": {str(k): v for k, v in wb._status.items()},
        "attrs": {k: str(v) for k, v in report.entries.attrs.items()},
    }
    from workbench.store.files import write_json

    write_json(folder / "report.json", meta)


def load_last_report(wb: Any) -> Any:
    """Rebuild the last detect's report (scored again with the current weights)."""
    from workbench.store.files import read_json

    folder = Path(wb.run_dir) / REPORT_DIR
    if not (folder / "report.json").is_file():
        raise ValueError(f"{wb.run_dir}: no report yet; run 'deeplog-workbench detect' first")
    meta = read_json(folder / "report.json")
    entries = pd.read_parquet(folder / "entries.parquet")
    entries["params"] = entries["params"].map(lambda p: tuple(float(v) for v in p))
    entries.attrs.update(meta.get("attrs", {}))
    wb._status = {int(k): v for k, v in meta.get("status", {}).items()}
    wb._source = meta.get("source")
    wb.report = wb._score(entries, g=int(meta["g"]))
    wb.report_source = meta.get("source")
    return wb.report


# ---------------------------------------------------------------------- detect
def _fmt(x: Any, spec: str = ".3g") -> str:
    try:
        return format(float(x), spec)
    except (TypeError, ValueError):
        return "?"


def why(row: pd.Series) -> str:
    """Why an anomaly was reported, in a few words."""
    kind = row["kind"]
    if kind == "unknown key":
        return "a message never seen in training"
    if kind == "parameter":
        dim = row["dimension"] if row["dimension"] not in (None, "") else "value"
        return (
            f"{dim} {_fmt(row['observed'])} (predicted {_fmt(row['predicted'])}): MSE "
            f"{_fmt(row['mse'])} over the {_fmt(row['level'], '.1%')} threshold "
            f"{_fmt(row['threshold'])}"
        )
    cands = row["candidates"] or []
    expected = f"; expected {cands[0][1]!r}" if len(cands) else ""
    if kind == "session end":
        return f"the session ended here, which normal sessions never do (rank {_rank(row)})"
    return f"rank {_rank(row)} of the next-key prediction, beyond g = {row['g']}{expected}"


def anomaly_line(row: pd.Series) -> str:
    """One line per anomaly: id, line, session, kind, template, why."""
    sess = row["session"] if row["session"] is not None and not pd.isna(row["session"]) else "-"
    return (
        f"#{row['id']} line {row['line']} session {sess} [{row['kind']}] "
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
        _err(f"warning: {w}")


def write_report(wb: Any, report: Any, out: str, source: str) -> Path:
    """Write the report as CSV, JSON (records with the report's columns) or self-contained HTML."""
    path = Path(out)
    suffix = path.suffix.lower()
    table = report.anomalies.copy()
    table.insert(len(table.columns), "why", [why(r) for _, r in table.iterrows()])
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


def _run_detect(args: Any) -> int:
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json", ".html", ".htm"):
        raise ValueError(f"--out must end in .csv, .json or .html, got {Path(args.out).name!r}")
    wb = _load(args.run)
    if args.year is not None:
        wb.parser.year = int(args.year)
    if args.follow:
        return _follow(wb, args)
    if args.workers is not None or args.scheduler is not None:
        report = _detect_on_cluster(wb, args)
    else:
        report = wb.detect(read_source(args.log), level=args.level)
        save_last_report(wb, args.log)
    _print_report(report)
    if args.out:
        path = write_report(wb, report, args.out, args.log)
        _err(f"report written to {path} ({path.stat().st_size:,} bytes)")
    wb.close()
    if args.strict and (len(report.anomalies) or report.coverage.warnings):
        return 1
    return 0


def _detect_on_cluster(wb: Any, args: Any) -> Any:
    """``detect --workers N`` or ``--scheduler ADDRESS``: the same verdicts, on a Dask cluster
    (the report keeps the verdict columns only, so it is not kept in RUN for ``flag``)."""
    from workbench.detect.shuffle import local_client

    if args.follow or args.log == "-":
        raise ValueError("a cluster reads log files: --workers/--scheduler need a file, not stdin")
    if not Path(args.log).is_file():
        raise ValueError(f"log file not found: {args.log}")
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        with local_client(args.workers) as client:
            report = wb.detect(args.log, level=args.level, client=client)
    else:
        from dask.distributed import Client

        try:
            client = Client(args.scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise ValueError(
                f"cannot reach the Dask scheduler at {args.scheduler}: {exc}"
            ) from None
        with client:
            report = wb.detect(args.log, level=args.level, client=client)
    return report


# ---------------------------------------------------------------------- follow
class OnlineDetector:
    """Detection as lines arrive, with bounded memory (the paper's online setting).

    Lines are parsed read-only in batches. An entry outside every session is scored at once; a
    session is scored when it closes: ``idle_lines`` lines without a new entry of it (or when more
    than ``max_open`` sessions are open, the oldest), and every open session at :meth:`close`.
    Only the rows of open sessions are kept.
    """

    def __init__(self, wb: Any, *, idle_lines: int = 2000, max_open: int = 5000) -> None:
        from workbench.detect.coverage import Coverage

        self.wb = wb
        self.idle_lines = idle_lines
        self.max_open = max_open
        self.next_line = 1
        self.origin: Any = None
        self.pending: pd.DataFrame | None = None
        self.last_seen: dict[str, int] = {}
        self.coverage = Coverage(
            format=wb.parser.format.name,
            session_rule=None if wb.session_rule is None else str(wb.session_rule),
        )
        self.anomalies = 0
        self.peak_rows = 0

    def feed(self, lines: list[str]) -> list[pd.Series]:
        """Parse ``lines`` (the next ones of the stream); the anomalies found in what closed."""
        from workbench.logs.sessions import assign_sessions

        if not lines:
            return []
        p = self.wb.parser
        df = p.transform(lines, first_line=self.next_line, sessions=False)
        self.next_line += len(lines)
        if self.origin is None and df["timestamp"].notna().any():
            self.origin = df["timestamp"].dropna().iloc[0]
        try:
            assign_sessions(df, p.format, p.session_rule, origin=self.origin)
        except ValueError as exc:
            note = f"session rule {p.effective_session_rule}: {exc}"
            if note not in self.coverage.problems:
                self.coverage.problems.append(note)
        sess = df["session"].to_numpy(dtype=object)
        for name, line in zip(sess, df["line"].to_numpy(), strict=True):
            if name is not None:
                self.last_seen[name] = int(line)
        self.pending = df if self.pending is None else pd.concat([self.pending, df])
        self.peak_rows = max(self.peak_rows, len(self.pending))
        now = self.next_line - 1
        closed = {s for s, last in self.last_seen.items() if now - last >= self.idle_lines}
        if len(self.last_seen) - len(closed) > self.max_open:
            by_age = sorted(self.last_seen, key=self.last_seen.__getitem__)
            closed |= set(by_age[: len(self.last_seen) - len(closed) - self.max_open])
        return self._score(closed)

    def close(self) -> list[pd.Series]:
        """Score everything still open."""
        return self._score(set(self.last_seen), everything=True)

    def _score(self, closed: set[str], everything: bool = False) -> list[pd.Series]:
        from workbench.logs.sessions import add_elapsed_times

        if self.pending is None or not len(self.pending):
            return []
        sess = self.pending["session"].to_numpy(dtype=object)
        done = pd.isna(sess) | np.isin(sess.astype(str), list(closed)) if closed else pd.isna(sess)
        if everything:
            done = np.ones(len(sess), dtype=bool)
        if not done.any():
            return []
        batch = self.pending[done].reset_index(drop=True)
        self.pending = self.pending[~done].reset_index(drop=True)
        for s in closed:
            self.last_seen.pop(s, None)
        add_elapsed_times(batch)
        report = self.wb._score(batch)
        self._add(report.coverage)
        self.anomalies += len(report.anomalies)
        return [row for _, row in report.anomalies.iterrows()]

    def _add(self, c: Any) -> None:
        t = self.coverage
        for name in [
            "lines",
            "parsed",
            "sessions",
            "key_entries",
            "param_entries",
            "loose_entries",
            "unknown_rule_entries",
            "unknown_keys",
            "timestamps",
        ]:
            setattr(t, name, getattr(t, name) + getattr(c, name))
        for r, n in c.unparsed_reasons.items():
            t.unparsed_reasons[r] = t.unparsed_reasons.get(r, 0) + n
        t.rule_needs_timestamps |= c.rule_needs_timestamps
        t.params_need_timestamps |= c.params_need_timestamps
        for p in c.problems:
            if p not in t.problems:
                t.problems.append(p)


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
    det = OnlineDetector(wb, idle_lines=args.idle_lines)
    if args.log == "-":
        fd, follow_file = sys.stdin.fileno(), False
    else:
        path = read_source(args.log)
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                raise ValueError(f"cannot follow a compressed file: {path}")
        fd, follow_file = os.open(path, os.O_RDONLY), True
    _err(f"following {args.log} (Ctrl-C to stop)")
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
        _err(f"warning: {w}")
    wb.close()
    return 1 if args.strict and (det.anomalies or cov.warnings) else 0


# ---------------------------------------------------------------------- review
def _anomaly_id(text: str) -> int:
    try:
        return int(str(text).lstrip("#"))
    except ValueError:
        raise ValueError(f"an anomaly id is a number as printed by detect, got {text!r}") from None


def _run_diagnose(args: Any) -> int:
    wb = _load(args.run)
    report = load_last_report(wb)
    aid = _anomaly_id(args.anomaly_id)
    _check_id(report, aid)
    row = report.anomaly(aid)
    d = wb.diagnose(aid)
    print(anomaly_line(row))
    print(d.sentence)
    if d.path:
        path = " -> ".join(wb.parser.template_of(k) for k in d.path[-6:])
        print(f"path in its workflow: {path}")
    print("context:")
    for line, raw in _context(report.entries, int(row["line"])):
        mark = ">" if line == int(row["line"]) else " "
        print(f" {mark}{line:>8} {raw}")
    wb.close()
    return 0


def _context(entries: pd.DataFrame, line: int, k: int = 3) -> list[tuple[int, str]]:
    lines = entries["line"].to_numpy()
    i = int(np.searchsorted(lines, line))
    lo, hi = max(0, i - k), min(len(lines), i + k + 1)
    return [(int(lines[j]), str(entries["raw"].iloc[j])) for j in range(lo, hi)]


def _check_id(report: Any, aid: int) -> None:
    if not (report.anomalies["id"] == aid).any():
        ids = report.anomalies["id"].tolist()
        shown = ", ".join(map(str, ids[:8])) + (" ..." if len(ids) > 8 else "")
        raise ValueError(f"no anomaly {aid} in the last report (ids: {shown or 'none'})")


def _run_flag(args: Any) -> int:
    wb = _load(args.run)
    report = load_last_report(wb)
    aid = _anomaly_id(args.anomaly_id)
    _check_id(report, aid)
    ids = wb.similar(aid) if args.all_like_this else [aid]
    result = wb.flag_false_positive(ids)
    wb.save(wb.run_dir)
    save_last_report(wb, getattr(wb, "report_source", "") or "")
    loss = ""
    if result.loss_before is not None and result.loss_after is not None:
        loss = f"; validation loss {result.loss_before:.4f} -> {result.loss_after:.4f}"
    print(
        f"flagged {len(ids)} as normal ({', '.join(map(str, ids[:10]))}"
        f"{' ...' if len(ids) > 10 else ''}): model version {result.version} in "
        f"{result.seconds * 1000:.0f} ms{loss}"
    )
    still = result.report.anomalies
    open_ = still[still["status"] == "open"]
    print(f"{len(open_)} anomalies still open; verdict changed for {len(result.changed)} others")
    wb.close()
    return 0


def _run_undo(args: Any) -> int:
    wb = _load(args.run)
    has_report = (Path(wb.run_dir) / REPORT_DIR / "report.json").is_file()
    if has_report:
        load_last_report(wb)
    before = wb.journal.current_version()
    version = wb.undo()
    if version is None or version == before:
        raise ValueError("nothing to undo: the model is at its trained version")
    wb.save(wb.run_dir)
    if has_report:
        save_last_report(wb, getattr(wb, "report_source", "") or "")
    print(f"undone: model version {before} -> {version}")
    if wb.report is not None:
        print(f"{len(wb.report.anomalies)} anomalies in the last report now")
    wb.close()
    return 0


def _run_show(args: Any) -> int:
    from workbench.version import __version__

    wb = _load(args.run)
    p, km = wb.parser, wb.key_model
    fmt = p.format
    print(f"run {wb.run_dir} (package {__version__})")
    print(f"format: {fmt.name}" + (f" {fmt.header!r}" if fmt.header else f" {fmt.pattern!r}"))
    rule = wb.session_rule
    print(f"session rule: {rule if rule is not None else 'none'}")
    s = wb.summary()
    print(f"training log: {s}")
    print(f"keys: {p.n_keys}")
    for _, t in p.templates_.head(args.keys).iterrows():
        print(f"  {t['key']:>4} {t['count']:>7}  {t['template']}")
    if p.n_keys > args.keys:
        print(f"  ... {p.n_keys - args.keys} more")
    if km is not None:
        c = wb.key_config
        print(
            f"key model: window {c.window}, g = {km.g_} (top_g {c.top_g}), probability floor "
            f"{float(km.min_probability_):.3g}, session counts {c.session_counts}, ensemble "
            f"{c.ensemble}, validation folds {c.validation_folds}"
        )
    keys = wb.param_keys()
    print(f"parameter models: {len(keys)} keys, verdict level {wb.level:.1%}")
    pm = wb.param_model
    for k in keys[: args.keys]:
        gt = pm.thresholds_.get(k)
        thr = "?"
        if gt is not None and gt.fitted:
            levels = wb.param_config.levels
            thr = ", ".join(f"{lv:.1%} {gt.threshold(lv):.3g}" for lv in levels)
        names = ",".join(pm.keys_[k].get("names", []))
        print(f"  key {k} [{names}]: MSE thresholds {thr}  {p.template_of(k)}")
    versions = wb.journal.versions()
    current = wb.journal.current_version()
    print(f"model versions: {len(versions)}, current {current}")
    for v in versions[-5:]:
        print(f"  v{v.get('version')} {v.get('created', '')} {v.get('reason', '')}")
    wb.close()
    return 0


# ---------------------------------------------------------------------- registration
def add_pipeline_commands(subparsers: Any) -> None:
    """Register train, detect, diagnose, flag, undo and show."""
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
    t.set_defaults(func=_closing(_run_train))

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
        "--workers", type=int, metavar="N", help="detect on N local Dask worker processes"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="detect on a running Dask cluster (tcp://HOST:PORT)"
    )
    d.set_defaults(func=_closing(_run_detect))

    g = subparsers.add_parser("diagnose", help="explain one anomaly of the last detect")
    g.add_argument("run")
    g.add_argument("anomaly_id", help="an id printed by detect")
    g.set_defaults(func=_closing(_run_diagnose))

    f = subparsers.add_parser("flag", help="flag an anomaly as a false positive (online update)")
    f.add_argument("run")
    f.add_argument("anomaly_id", help="an id printed by detect")
    f.add_argument(
        "--all-like-this", action="store_true", help="also every open anomaly like this one"
    )
    f.set_defaults(func=_closing(_run_flag))

    u = subparsers.add_parser("undo", help="restore the model version before the last flag")
    u.add_argument("run")
    u.set_defaults(func=_closing(_run_undo))

    s = subparsers.add_parser("show", help="what a run holds")
    s.add_argument("run")
    s.add_argument("--keys", type=int, default=20, help="templates to list (default: 20)")
    s.set_defaults(func=_closing(_run_show))


def _rank(row: pd.Series) -> str:
    r = row["rank"]
    return "?" if r is None or pd.isna(r) else str(int(r))
