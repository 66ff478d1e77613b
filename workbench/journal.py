"""The feedback journal: every verdict and every model update, durably, in SQLite.

When an investigator flags a reported anomaly as a false positive, DeepLog learns from it at once. The
journal makes that safe: the verdict is committed *before* the model changes, and the new weights are
committed as a new *model version* in one transaction after the update. A crash in between loses
nothing that was acknowledged: on reload the model is the last committed version and the verdict is
there (marked ``pending``) to be applied again. ``undo`` moves back to the previous version; ``replay``
lists every learned verdict in order, to apply onto a freshly trained model.

Tables
------
``feedback``  one row per verdict: id, time, anomaly id, verdict ('false_positive' | 'confirmed'),
              state ('pending' | 'applied' | 'recorded' | 'undone'), the example as JSON, version made.
``versions``  one row per model version: number, parent, time, reason, the weights (bytes).
``meta``      the current version.

>>> j = FeedbackJournal(":memory:")
>>> v0 = j.commit_version(b"weights-0", reason="trained")
>>> fid = j.record("a1", "false_positive", {"history": [1, 2], "key": 3})
>>> v1 = j.commit_version(b"weights-1", reason="false positive a1", feedback_id=fid)
>>> j.current_version(), j.undo(), j.current_version()
(2, 1, 1)
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FeedbackEntry", "FeedbackJournal"]

_SCHEMA = """
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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class FeedbackJournal:
    """SQLite-backed journal of verdicts and model versions (one file, WAL mode, thread-safe).

    Parameters
    ----------
    path
        The database file (created when missing), or ``":memory:"``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a usable feedback journal ({exc})") from exc

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> FeedbackJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes (each one transaction)
    def _tx(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(sql, args)
                self._db.execute("COMMIT")
                return cur
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record(self, anomaly: str, verdict: str, example: dict[str, Any]) -> int:
        """Commit a verdict before anything acts on it; returns its id.

        A false positive starts ``pending`` until :meth:`commit_version` applies it; a confirmation is
        ``recorded`` at once (it changes no weights).
        """
        if verdict not in ("false_positive", "confirmed"):
            raise ValueError(f"verdict must be 'false_positive' or 'confirmed', got {verdict!r}")
        state = "pending" if verdict == "false_positive" else "recorded"
        cur = self._tx(
            "INSERT INTO feedback (created, anomaly, verdict, state, example) VALUES (?, ?, ?, ?, ?)",
            (_now(), str(anomaly), verdict, state, json.dumps(example)),
        )
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def commit_version(self, weights: bytes, *, reason: str, feedback_id: int | None = None) -> int:
        """Store new weights as the current version (and mark the feedback applied), atomically."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                parent = self._current()
                cur = self._db.execute(
                    "INSERT INTO versions (parent, created, reason, feedback, weights) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (parent, _now(), reason, feedback_id, sqlite3.Binary(weights)),
                )
                version = int(cur.lastrowid)  # type: ignore[arg-type]
                self._set_current(version)
                if feedback_id is not None:
                    self._db.execute(
                        "UPDATE feedback SET state = 'applied', version = ? WHERE id = ?",
                        (version, feedback_id),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return version

    def mark_applied(self, feedback_id: int, version: int) -> None:
        """Mark a verdict applied by ``version`` (when one update learned several verdicts)."""
        self._tx(
            "UPDATE feedback SET state = 'applied', version = ? WHERE id = ?",
            (version, feedback_id),
        )

    def undo(self) -> int | None:
        """Go back to the parent of the current version; returns the new current version.

        The feedback that made the undone version is marked ``undone`` so replay skips it. Returns
        None (and changes nothing) when there is no earlier version.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._current()
                row = self._db.execute(
                    "SELECT parent, feedback FROM versions WHERE version = ?", (cur,)
                ).fetchone()
                if row is None or row[0] is None:
                    self._db.execute("ROLLBACK")
                    return None
                parent, fid = row
                self._set_current(parent)
                if fid is not None:
                    self._db.execute("UPDATE feedback SET state = 'undone' WHERE id = ?", (fid,))
                self._db.execute("COMMIT")
                return int(parent)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _current(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'current_version'").fetchone()
        return None if row is None else int(row[0])

    def _set_current(self, version: int) -> None:
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES ('current_version', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (str(version),),
        )

    # ------------------------------------------------------------------ reads
    def current_version(self) -> int | None:
        """The current model version (None before the first commit)."""
        with self._lock:
            return self._current()

    def weights(self, version: int | None = None) -> bytes:
        """The weights of ``version`` (default: the current one)."""
        with self._lock:
            v = self._current() if version is None else version
            row = self._db.execute(
                "SELECT weights FROM versions WHERE version = ?", (v,)
            ).fetchone()
        if row is None:
            raise KeyError(f"no model version {v} in the journal {self.path}")
        return bytes(row[0])

    def entries(self, state: str | None = None) -> list[FeedbackEntry]:
        """All verdicts in order (optionally only those in ``state``)."""
        sql = "SELECT id, created, anomaly, verdict, state, example, version FROM feedback"
        args: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            args = (state,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [FeedbackEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def replay_entries(self) -> list[FeedbackEntry]:
        """The false positives to learn again onto a fresh model, in order (undone ones skipped)."""
        return [
            e
            for e in self.entries()
            if e.verdict == "false_positive" and e.state in ("applied", "pending")
        ]

    def versions(self) -> list[dict[str, Any]]:
        """Metadata of every version (no weights)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT version, parent, created, reason, feedback FROM versions ORDER BY version"
            ).fetchall()
        keys = ("version", "parent", "created", "reason", "feedback")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check."""
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
