"""Reading preprocessed key-sequence files: one session of log-key ids per line.

Three file formats are read:

``keys``
    One session per line, keys separated by whitespace (the DeepLog HDFS files; lines may end with a
    trailing space, the last line may lack its newline). Blank lines are not sessions and are
    skipped.
``idkeys``
    One session per line as ``id,keys`` (e.g. ``blk_-653...,5 5 22 ...``).
``csv``
    A CSV file with a header holding the columns ``Sequence`` and ``label`` (0 normal, 1 abnormal).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from workbench.keys.vocabulary import Session

__all__ = ["FORMATS", "SessionFile", "guess_format", "read_sessions"]

logger = logging.getLogger(__name__)

Format = Literal["keys", "idkeys", "csv"]
FORMATS: tuple[str, ...] = ("keys", "idkeys", "csv")


@dataclass(frozen=True)
class SessionFile:
    """The sessions of one file, in file order, with their ids or labels when the format has
    them."""

    path: Path
    sessions: list[Session]
    ids: list[str] | None = None  # idkeys format
    labels: np.ndarray | None = None  # csv format: (n_sessions,) int, 0 normal, 1 abnormal


def _parse_keys(text: str, path: Path, lineno: int, cache: dict[str, Session]) -> Session:
    """Parse whitespace-separated keys; identical lines share one tuple (sessions repeat a lot)."""
    text = text.strip()
    found = cache.get(text)
    if found is not None:
        return found
    tokens = text.split()
    bad = next((t for t in tokens if not (t.isascii() and t.isdigit())), None)
    if bad is not None:
        negative = bad[:1] == "-" and bad[1:].isascii() and bad[1:].isdigit()
        shown = bad if negative else repr(bad[:40])
        raise ValueError(f"{path}:{lineno}: bad log key {shown} (keys are non-negative integers)")
    session = tuple(map(int, tokens))
    cache[text] = session
    return session


def guess_format(path: str | Path) -> str:
    """``"csv"`` for a ``.csv`` name, ``"idkeys"`` if the first line holds a comma, else ``"keys"``.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s")
    >>> _ = open(p, "w").write("blk_1,5 22,")
    >>> guess_format(p)
    'idkeys'
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return "csv"
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    return "idkeys" if "," in first else "keys"


def read_sessions(path: str | Path, fmt: Format | Literal["auto"] = "keys") -> SessionFile:
    """Read a preprocessed key-sequence file.

    Parameters
    ----------
    path
        The file.
    fmt
        ``"keys"``, ``"idkeys"`` or ``"csv"`` (see the module docstring), or ``"auto"``
        (:func:`guess_format`).

    Returns
    -------
    SessionFile
        Sessions in file order, never de-duplicated.

    Raises
    ------
    ValueError
        On malformed content; the message names the file and the line.
    FileNotFoundError
        When the file does not exist.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "s")
    >>> _ = open(p, "w").write("5 5 22 \\n5 22")
    >>> read_sessions(p).sessions
    [(5, 5, 22), (5, 22)]
    """
    path = Path(path)
    if fmt == "auto":
        fmt = guess_format(path)  # type: ignore[assignment]
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    cache: dict[str, Session] = {}
    sessions: list[Session] = []
    with path.open(encoding="utf-8", newline="") as f:
        if fmt == "csv":
            return _read_csv(path, f, cache)
        ids: list[str] | None = [] if fmt == "idkeys" else None
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if ids is not None:
                head, sep, rest = line.partition(",")
                if not sep:
                    raise ValueError(f"{path}:{lineno}: expected 'id,keys' but found no comma")
                ids.append(head.strip())
                line = rest
            sessions.append(_parse_keys(line, path, lineno, cache))
    logger.debug("read %d sessions from %s", len(sessions), path)
    return SessionFile(path=path, sessions=sessions, ids=ids)


def _read_csv(path: Path, f: Iterable[str], cache: dict[str, Session]) -> SessionFile:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}:1: empty file; expected a header with 'Sequence,label'")
    names = [h.strip() for h in header]
    if "Sequence" not in names or "label" not in names:
        raise ValueError(f"{path}:1: header {header} lacks the columns 'Sequence' and 'label'")
    i_seq, i_label = names.index("Sequence"), names.index("label")
    sessions: list[Session] = []
    labels: list[int] = []
    for row in reader:
        lineno = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(names):
            raise ValueError(f"{path}:{lineno}: expected {len(names)} fields, found {len(row)}")
        label = row[i_label].strip()
        if label not in ("0", "1"):
            raise ValueError(f"{path}:{lineno}: bad label {label!r} (expected 0 or 1)")
        labels.append(int(label))
        sessions.append(_parse_keys(row[i_seq], path, lineno, cache))
    return SessionFile(path=path, sessions=sessions, labels=np.asarray(labels, dtype=np.int64))


# --------------------------------------------------------------------------------------------------
