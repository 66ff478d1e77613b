"""The feedback journal: every verdict and every model update, durably, in SQLite.

When an investigator flags a reported anomaly as a false positive, DeepLog learns from it at once. The
journal makes that safe: the verdict is committed *before* the model changes, and the new weights are
committed as a new *model version* in one transaction after the update; only then is the flag
acknowledged. A crash in between leaves the model at the last committed version and the verdict
``pending``: :meth:`FeedbackJournal.withdraw_pending` (called when a run is opened) marks it
``undone`` and returns it, so the workbench can say it was not learned and must be given again.
``undo`` moves back to the previous version.

The database file itself (schema, opening, checks) is :mod:`workbench.feedback.journal_db`.

>>> j = FeedbackJournal(":memory:")
>>> v0 = j.commit_version(b"weights-0", reason="trained")
>>> fid = j.record("a1", "false_positive", {"history": [1, 2], "key": 3})
>>> v1 = j.commit_version(b"weights-1", reason="false positive a1", feedback_id=fid)
>>> j.current_version(), j.undo(), j.current_version()
(2, 1, 1)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.feedback.journal_db import (
    FeedbackEntry,
    connect,
    not_usable,
    now,
    rewrite_end,
    schema_problem,
    translate_end,
)
from workbench.store.files import fsync_file

__all__ = ["FeedbackJournal", "StaleVersionError", "log_fingerprint"]

_ANY = object()


def log_fingerprint(raw: pd.Series) -> str:
    """The fingerprint of a log, from its raw lines: verdicts are journaled per log and anomaly id.

    >>> log_fingerprint(pd.Series(["a", "b"])) == log_fingerprint(pd.Series(["a", "b"]))
    True
    """
    h = hashlib.sha256(str(len(raw)).encode())
    h.update(pd.util.hash_pandas_object(raw.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:32]


class StaleVersionError(RuntimeError):
    """An update was computed from a model version that is no longer the current one."""


class FeedbackJournal:
    """SQLite-backed journal of verdicts and model versions (one file, WAL mode, thread-safe).

    Parameters
    ----------
    path
        The database file (created when missing), or ``":memory:"``.
    read_only
        Open without writing anything (a read-only run directory); every write is refused.
    create
        Create the tables when missing (False: to check a journal as it is, see :meth:`check`).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = True) -> None:
        self.path = str(path)
        self.read_only = read_only
        if self.path != ":memory:" and not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        #: The version this connection last saw as current (at opening, its commits and undos):
        #: when the file's current version differs, another writer moved the run on.
        self.local_version: int | None = None
        self._legacy_end = False  # read-only journal of an old run: translate END as it is read
        self._db = connect(self.path, read_only=read_only, create=create)
        if read_only or create:
            try:
                self.local_version = self._current()
            except sqlite3.DatabaseError as exc:
                if not read_only:
                    raise not_usable(self.path, exc, read_only) from exc

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writes (each one transaction)
    def _writable(self) -> None:
        if self.read_only:
            raise PermissionError(
                f"{self.path}: the run directory is read-only; feedback cannot be saved"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): committed at the end, rolled back on error."""
        self._writable()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _tx(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._transaction() as db:
            return db.execute(sql, args)

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
            (now(), str(anomaly), verdict, state, json.dumps(example)),
        )
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def commit_version(
        self,
        weights: bytes,
        *,
        reason: str,
        feedback_id: int | None = None,
        feedback_ids: Sequence[int] = (),
        parent: int | object | None = _ANY,
    ) -> int:
        """Store new weights as the current version (and mark the feedback applied), atomically.

        ``feedback_ids`` are all the verdicts the update learned (one batch); ``feedback_id`` is the
        one the version row names (the last of the batch when not given). With ``parent``, the
        commit is refused (:class:`StaleVersionError`) unless that version is still the current
        one: an update computed from weights another writer has since replaced is never committed.
        """
        ids = [int(f) for f in feedback_ids]
        if feedback_id is not None and feedback_id not in ids:
            ids.append(int(feedback_id))
        named = feedback_id if feedback_id is not None else (ids[-1] if ids else None)
        with self._transaction() as db:
            current = self._current()
            if parent is not _ANY and current != parent:
                raise StaleVersionError(
                    f"{self.path}: the model moved to version {current} while this update was "
                    f"computed from version {parent}; it was not committed, give the feedback again"
                )
            cur = db.execute(
                "INSERT INTO versions (parent, created, reason, feedback, weights) "
                "VALUES (?, ?, ?, ?, ?)",
                (current, now(), reason, named, sqlite3.Binary(weights)),
            )
            version = int(cur.lastrowid)  # type: ignore[arg-type]
            self._set_current(version)
            self.local_version = version
            for f in ids:
                db.execute(
                    "UPDATE feedback SET state = 'applied', version = ? WHERE id = ?", (version, f)
                )
        return version

    def amend(self, feedback_id: int, example: dict[str, Any]) -> None:
        """Replace the example of a verdict still ``pending`` (what its update found it implies,
        recorded before the update is committed); a verdict applied or undone is never changed."""
        cur = self._tx(
            "UPDATE feedback SET example = ? WHERE id = ? AND state = 'pending'",
            (json.dumps(example), int(feedback_id)),
        )
        if cur.rowcount != 1:
            raise ValueError(f"feedback {feedback_id} is not pending: its example stays as it is")

    def discard(self, feedback_ids: Sequence[int]) -> None:
        """Mark verdicts whose update was not committed as ``undone`` (one transaction)."""
        ids = [int(f) for f in feedback_ids]
        if ids:
            marks = ", ".join("?" * len(ids))
            self._tx(f"UPDATE feedback SET state = 'undone' WHERE id IN ({marks})", tuple(ids))

    def undo(self) -> int | None:
        """Undo the last thing the user did; returns the version now current.

        When the last verdict is a confirmation given after the current version was made, that
        confirmation is marked ``undone`` (the weights stay). Otherwise the current version goes
        back to its parent and *every* verdict the undone version learned (a whole "all like
        this" batch) is marked ``undone``. Returns None (and changes nothing)
        when there is nothing to undo.
        """
        with self._transaction() as db:
            cur = self._current()
            made = db.execute(
                "SELECT coalesce(max(id), 0) FROM feedback WHERE version = ?", (cur,)
            ).fetchone()[0]
            conf = db.execute(
                "SELECT max(id) FROM feedback WHERE verdict = 'confirmed' "
                "AND state = 'recorded' AND id > ?",
                (made,),
            ).fetchone()[0]
            if conf is not None:
                db.execute("UPDATE feedback SET state = 'undone' WHERE id = ?", (conf,))
                return cur
            row = db.execute("SELECT parent FROM versions WHERE version = ?", (cur,)).fetchone()
            if row is None or row[0] is None:
                return None
            parent = int(row[0])
            self._set_current(parent)
            self.local_version = parent
            db.execute(
                "UPDATE feedback SET state = 'undone' WHERE version = ? AND state = 'applied'",
                (cur,),
            )
            return parent

    # ------------------------------------------------------------------ small named values
    def get_meta(self, name: str) -> str | None:
        """A value of the ``meta`` table (None when unset)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        """Set a value of the ``meta`` table (one transaction)."""
        self._tx(
            "INSERT INTO meta (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, str(value)),
        )

    def verdicts(self, log: str) -> dict[str, str]:
        """Verdicts in force on the log with fingerprint ``log``: anomaly id -> verdict."""
        out: dict[str, str] = {}
        for e in self.entries():
            if e.state != "undone" and e.example.get("log") == log:
                out[e.anomaly] = e.verdict
        return out

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
        out = [FeedbackEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]
        if self._legacy_end:
            for e in out:
                translate_end(e.example)
        return out

    def versions(self) -> list[dict[str, Any]]:
        """Metadata of every version (no weights)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT version, parent, created, reason, feedback FROM versions ORDER BY version"
            ).fetchall()
        keys = ("version", "parent", "created", "reason", "feedback")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def check(self) -> str | None:
        """What is wrong with this journal as the record of a run (None when nothing is)."""
        with self._lock:
            try:
                problem = schema_problem(self._db)
                if problem is not None:
                    return problem
                if self._current() is None:
                    return "it holds no model version"
                ok = self._db.execute(
                    "SELECT count(*) FROM versions WHERE version = ?", (self._current(),)
                ).fetchone()[0]
                if not ok:
                    return f"the current version {self._current()} is not in it"
            except (sqlite3.DatabaseError, ValueError) as exc:
                return f"it cannot be read ({exc})"
        return None

    # ------------------------------------------------------------------ opening a run
    def translate_legacy_end(self) -> int:
        """Read the examples of a run written before format 3 with today's key ids: a key
        example's next key :data:`~workbench.feedback.journal_db.LEGACY_END` (-1, the end of a session then) becomes
        :data:`workbench.keyids.END`. A writable journal is rewritten in one transaction (doing
        it twice changes nothing: -1 is never a next key today); a read-only one translates what
        it reads, and so do its copies (:meth:`backup_to`). Returns the examples rewritten."""
        if self.read_only:
            self._legacy_end = True
            return 0
        with self._transaction() as db:
            return rewrite_end(db)

    def withdraw_pending(self) -> list[FeedbackEntry]:
        """Mark the verdicts still ``pending`` as ``undone`` and return them (one transaction).

        A verdict is pending between its record and the commit of the update that learns it; one
        found when a run is opened by its only user is an update a crash (or a kill) cut short: the
        model never learned it and the flag was never acknowledged. Call it only when nothing else
        of this process can be in the middle of an update of this journal."""
        if self.read_only:
            return []
        with self._lock:
            pending = self.entries("pending")
            self.discard([e.id for e in pending])
        return pending

    def backup_to(self, path: str | Path) -> None:
        """Write a consistent copy of the journal to ``path``: built under a temporary name,
        flushed, then renamed into place (an interrupted copy never takes the name)."""
        path = Path(path)
        part = path.with_name(f".{path.name}.tmp")
        part.unlink(missing_ok=True)
        dest = sqlite3.connect(part, isolation_level=None)
        try:
            with self._lock:
                self._db.backup(dest)
            if self._legacy_end:
                rewrite_end(dest)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
        fsync_file(part)
        os.replace(part, path)

    def checkpoint(self) -> None:
        """Move everything in the write-ahead log into the database file."""
        if not self.read_only and self.path != ":memory:":
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check."""
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
