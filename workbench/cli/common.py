"""What the investigator's commands share: a log argument, a run loaded for one command and
released when it ends, and the last report kept in the run directory (``last_report/``) so that
``diagnose``, ``flag`` and ``undo`` name anomalies by the ids ``detect`` printed."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["REPORT_DIR", "closing", "err", "forget_last_report", "has_kept_report", "held_warnings",
           "load_last_report", "load_run", "read_source",
           "rule_sentence", "save_last_report"]  # fmt: skip

REPORT_DIR = "last_report"
_OPENED: list[Any] = []  # workbenches a command loaded: closed when it ends, whatever happens


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def read_source(log: str) -> Any:
    """A path for ``read_lines`` (plain or gzip), or the bytes of standard input for ``-``
    (decompressed when they are gzip, as a ``.gz`` file is)."""
    if log == "-":
        data = sys.stdin.buffer.read()
        if data[:2] != b"\x1f\x8b":
            return data
        import gzip
        import zlib

        try:
            return gzip.decompress(data)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(f"standard input: truncated or corrupt gzip data ({exc})") from None
    from workbench.logs.reading import log_path

    return log_path(log)


class _Held(logging.Handler):
    """Keeps the warnings (and worse) the package logs; lets the rest through at once."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.records.append(record)
        else:
            _to_root(record)


def _to_root(record: logging.LogRecord) -> None:
    for handler in logging.getLogger().handlers:
        if record.levelno >= handler.level:
            handler.handle(record)


@contextlib.contextmanager
def held_warnings() -> Any:
    """The package's logged warnings are held while the block runs and shown when it ends well:
    a command that stops on bad input says so in its one error line, without the warnings that
    led there before it."""
    package = logging.getLogger("workbench")
    held, propagate = _Held(), package.propagate
    package.addHandler(held)
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(held)
        package.propagate = propagate
    for record in held.records:  # reached only when the block ended well
        _to_root(record)


def load_run(run: str) -> Any:
    from workbench.workbench import Workbench

    path = Path(run)
    if not (path / "run.json").is_file():
        raise FileNotFoundError(f"not a run directory (no run.json): {path}")
    wb = Workbench.load(path)
    _OPENED.append(wb)
    return wb


def closing(run: Callable[[Any], int]) -> Callable[[Any], int]:
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
        "attrs": {k: str(v) for k, v in report.entries.attrs.items()},
    }
    from workbench.store.files import write_json

    write_json(folder / "report.json", meta)


def forget_last_report(wb: Any, source: str, how: str) -> None:
    """The last detect read ``source`` ``how`` (streamed, on a cluster) and kept no entries: an
    earlier report must not stand in for it, so ``diagnose`` and ``flag`` say so instead."""
    from workbench.store.files import write_json

    folder = Path(wb.run_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "report.json", {"source": source, "kept": False, "how": how})
    (folder / "entries.parquet").unlink(missing_ok=True)


def _kept_meta(folder: Path) -> dict[str, Any] | None:
    """The last report's ``report.json`` (None when there is none); a file edited or cut by hand
    is a ValueError that names it."""
    from workbench.store.files import read_json

    path = folder / "report.json"
    if not path.is_file():
        return None
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a kept report; run 'deeplog-workbench detect' again")
    return meta


def has_kept_report(wb: Any) -> bool:
    """Whether the last detect kept its report in the run (see :func:`forget_last_report`)."""
    meta = _kept_meta(Path(wb.run_dir) / REPORT_DIR)
    return meta is not None and meta.get("kept", True) is not False


def load_last_report(wb: Any) -> Any:
    """Rebuild the last detect's report (scored again with the current weights)."""
    folder = Path(wb.run_dir) / REPORT_DIR
    meta = _kept_meta(folder)
    if meta is None:
        raise ValueError(f"{wb.run_dir}: no report yet; run 'deeplog-workbench detect' first")
    if meta.get("kept", True) is False:
        raise ValueError(
            f"the last detect read {meta.get('source')} {meta.get('how', 'streamed')} and kept "
            "no entries to review; run 'deeplog-workbench detect RUN LOG --in-memory' on the part "
            "of the log to review"
        )
    try:
        entries = pd.read_parquet(folder / "entries.parquet")
        entries["params"] = entries["params"].map(lambda p: tuple(float(v) for v in p))
        entries.attrs.update({str(k): v for k, v in dict(meta.get("attrs", {})).items()})
        wb.report = wb._score(entries, g=int(meta["g"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ValueError(
            f"{folder}: the kept report cannot be read ({type(exc).__name__}: {text}); run "
            "'deeplog-workbench detect RUN LOG' again"
        ) from None
    wb.report_source = meta.get("source")
    return wb.report


def rule_sentence(key_model: Any) -> str | None:
    """Why the key model's rule is what it is, on one line (the Train view's sentence); None when
    the rule was not chosen on validation data."""
    from workbench.detect.rules import rule_choice

    selection = getattr(key_model, "g_selection_", None)
    if selection is None:
        return None
    return " ".join(rule_choice(selection)["sentence"].split())
