"""Atomic file writes, checked reads and the directory lock of run directories.

A run directory holds plain files: JSON for configuration and vocabularies, torch state dicts for
weights (loaded ``weights_only``), and the SQLite feedback journal. Every file is written to a
temporary name in the same folder, flushed and renamed into place, so a crash leaves either the
old file or the new one, never half of one; :mod:`workbench.store.rundir` writes each save as a new
generation and switches to it by replacing the manifest last. :class:`RunLock` keeps a second
process from writing the same run.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "a.json", {"x": 1})
>>> read_json(d / "a.json")
{'x': 1}
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "FORMAT_VERSION",
    "RunFormatError",
    "RunLock",
    "RunLockedError",
    "atomic_write_bytes",
    "check_output_file",
    "file_digest",
    "fsync_dir",
    "fsync_file",
    "load_step",
    "load_tensors",
    "read_json",
    "save_tensors",
    "write_json",
]

#: Version of the run-directory layout written by this package (3: reserved key ids of
#: :mod:`workbench.keyids`, the end of a session is -2; 2: generations and a plain-JSON parser, the
#: end of a session was -1, read and translated; 1 held a jsonpickle blob and is refused).
FORMAT_VERSION = 3


class RunFormatError(ValueError):
    """A run directory (or one of its files) cannot be loaded; the message names the file."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_file(path: str | Path) -> None:
    """Flush a file's bytes to the disk."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (new names, renames) to the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_step(path: str | Path, what: Callable[[], Any], also: str = "") -> Any:
    """Run one loading step; any failure becomes a :class:`RunFormatError` naming ``path``
    (and ``also``, another file the step read)."""
    try:
        return what()
    except RunFormatError:
        raise
    except Exception as exc:
        where = f"{path} ({also})" if also else str(path)
        raise RunFormatError(f"{where}: {exc.__class__.__name__}: {exc}") from exc


def check_output_file(path: str | Path) -> Path:
    """``path`` if it is a regular file or does not exist yet; ValueError otherwise (a device,
    a directory, a pipe: writing "over" them would replace or block them)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{path}: is a dangling symbolic link; refusing to write through it")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path}: exists and is not a regular file; refusing to write over it")
    return path


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`RunFormatError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise RunFormatError(f"{path}: file is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFormatError(f"{path}: not valid JSON ({exc})") from exc


def save_tensors(path: str | Path, state: dict[str, Any]) -> None:
    """Save a (nested) dict of tensors and plain values with ``torch.save``, atomically."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_tensors(path: str | Path) -> dict[str, Any]:
    """Load a file written by :func:`save_tensors` (``weights_only``: no code is unpickled)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunFormatError(f"{path}: file is missing")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict):
            raise ValueError(f"expected a dict of tensors, found {type(obj).__name__}")
        return obj
    except Exception as exc:
        raise RunFormatError(f"{path}: cannot be read as a weights file ({exc})") from exc


def file_digest(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RunLockedError(RunFormatError):
    """Another process holds the run directory."""


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``DIR/.lock`` while a workbench
    has the directory open.

    The lock is per process (a process may open one directory from several objects; they share
    the lock and the journal serialises their commits); another process gets
    :class:`RunLockedError` naming the directory and the holder's process id. The operating
    system drops the lock when the holder dies, so a killed session never leaves a stale lock.
    """

    _held: ClassVar[dict[str, list[Any]]] = {}  # real path -> [file object, count]
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, folder: str | Path) -> None:
        import fcntl

        self.folder = Path(folder)
        self.key = os.path.realpath(self.folder)
        self._released = False
        #: True when this object took the file lock (no other object of this process holds the
        #: directory, so nothing else can be in the middle of writing to it).
        self.first = False
        with RunLock._guard:
            held = RunLock._held.get(self.key)
            if held is not None:
                held[1] += 1
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            fh = open(self.folder / ".lock", "a+")  # noqa: SIM115 (held while the run is open)
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                fh.close()
                raise RunLockedError(
                    f"{self.folder}: the run directory is in use by another process (pid "
                    f"{holder}); close it there first, or load a copy"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            RunLock._held[self.key] = [fh, 1]
            self.first = True

    def release(self) -> None:
        """Give the lock back (the last holder in this process unlocks the file)."""
        if self._released:
            return
        self._released = True
        with RunLock._guard:
            held = RunLock._held.get(self.key)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del RunLock._held[self.key]
                held[0].close()
