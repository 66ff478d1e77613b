"""The feedback journal's SQLite file: its schema, how it is opened and checked, and the reading
of examples journaled by older runs.

Tables
------
``feedback``  one row per verdict: id, time, anomaly id, verdict ('false_positive' | 'confirmed'),
              state ('pending' | 'applied' | 'recorded' | 'undone'), the example as JSON, version made.
``versions``  one row per model version: number, parent, time, reason, the weights (bytes).
``meta``      the current version and other small named values.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import keyids

__all__ = ["LEGACY_END", "FeedbackEntry", "connect", "rewrite_end", "schema_problem"]

#: The end of a session in the examples of journals written before run format 3 (now
#: :data:`workbench.keyids.END`; -1 is :data:`~workbench.keyids.UNPARSED` today).
LEGACY_END = -1

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    version   INTEGER PRIMARY KEY,
    parent    INTEGER,
    created   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    feedback  INTEGER,
    weights   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id         INTEGER PRIMARY KEY,
    created    TEXT NOT NULL,
    anomaly    TEXT NOT NULL,
    verdict    TEXT NOT NULL CHECK (verdict IN ('false_positive', 'confirmed')),
    state      TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'recorded', 'undone')),
    example    TEXT NOT NULL,
    version    INTEGER
);
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"""

COLUMNS = {
    "versions": {"version", "parent", "created", "reason", "feedback", "weights"},
    "feedback": {"id", "created", "anomaly", "verdict", "state", "example", "version"},
    "meta": {"name", "value"},
}


@dataclass(frozen=True)
class FeedbackEntry:
    """One journaled verdict."""

    id: int
    created: str
    anomaly: str
    verdict: str
    state: str
    example: dict[str, Any]
    version: int | None


def now() -> str:
    """The time of a row: UTC, ISO 8601, milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def not_usable(path: str, exc: Exception, read_only: bool) -> ValueError:
    """The error for a file that is not a usable journal, naming it."""
    hint = ""
    if read_only and "readonly" in str(exc):
        hint = "; it holds changes not yet moved into the file: open it writable once"
    return ValueError(f"{path}: not a usable feedback journal ({exc}){hint}")


def connect(path: str, *, read_only: bool, create: bool) -> sqlite3.Connection:
    """Open the journal's database: read-only (no write of any kind), or in WAL mode with full
    sync, creating the tables when ``create``; ValueError naming the file when it is unusable."""
    try:
        if read_only:
            uri = Path(path).resolve().as_uri() + "?mode=ro"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout=10000")
        if path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        if create:
            db.executescript(SCHEMA)
        return db
    except sqlite3.DatabaseError as exc:
        raise not_usable(path, exc, read_only) from exc


def schema_problem(db: sqlite3.Connection) -> str | None:
    """What is wrong with the database's integrity or tables (None when nothing is)."""
    if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        return "the database failed its integrity check"
    for table, cols in COLUMNS.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if not have:
            return f"table {table!r} is missing"
        if not cols <= have:
            return f"table {table!r} lacks the columns {sorted(cols - have)}"
    return None


def translate_end(example: dict[str, Any]) -> bool:
    """Read one example's legacy end of a session as :data:`workbench.keyids.END` (in place);
    True when it changed. Only a key example's next key can be the end of a session."""
    if example.get("kind") != "parameter" and example.get("next") == LEGACY_END:
        example["next"] = keyids.END
        return True
    return False


def rewrite_end(db: sqlite3.Connection) -> int:
    """Rewrite every example with a legacy end of a session (inside the caller's transaction);
    returns how many changed."""
    n = 0
    for fid, text in db.execute("SELECT id, example FROM feedback").fetchall():
        example = json.loads(text)
        if translate_end(example):
            db.execute("UPDATE feedback SET example = ? WHERE id = ?", (json.dumps(example), fid))
            n += 1
    return n
