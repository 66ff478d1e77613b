"""Saving and loading a workbench as a run directory: plain files, nothing that runs on load.

Layout (``FORMAT_VERSION`` 2)::

    run.json              manifest, written last: format version, the current generation, the
                          journal's name, settings, and a SHA-256 checksum per file
    gen-NNNNNN/           one complete, immutable generation of the saved state:
        parser.json       the parser as plain JSON (see LogParser.to_state: no class names)
        entries.parquet   the parsed training log (replay, workflows, retraining)
        key_model.json    key model: config, vocabulary, g and how it was chosen, history
        key_model.pt      key model: tensors only (loaded weights_only)
        param_model.json  parameter models: config, per-key status, normalisation, thresholds
        param_model.pt    parameter models: tensors only
        workflows.json    the workflow automata as node-link JSON
    journal.sqlite        the live feedback journal (verdicts and model versions)
    .lock                 held (flock) by the one process that has the run open

A save writes a new generation beside the old one, flushes it, then replaces ``run.json`` with
one rename and only then removes the old generation: a kill at any moment leaves the old or the
new run loadable. The journal is the live record of feedback: when it holds a newer model version
than the saved files (updates, or undo, after the last save), loading takes the journal's weights
and parser (so message kinds learned from feedback are known without a save).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench.feedback.journal import FeedbackJournal
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.logs.parser import LogParser
from workbench.params.model import ParamModel, ParamModelConfig
from workbench.store.files import (
    FORMAT_VERSION,
    RunFormatError,
    RunLock,
    atomic_write_bytes,
    file_digest,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)
from workbench.version import __version__
from workbench.workflow.cooccurrence import WorkflowConfig, from_node_link, to_node_link

__all__ = ["load_workbench", "save_workbench", "state_from_bytes", "state_to_bytes"]

MANIFEST = "run.json"
JOURNAL = "journal.sqlite"
REQUIRED = frozenset({"parser.json", "entries.parquet", "workflows.json"})
OPTIONAL = frozenset({"key_model.json", "key_model.pt", "param_model.json", "param_model.pt"})
_GEN = re.compile(r"gen-(\d{6,})")
_JOURNAL = re.compile(r"journal(?:-gen-\d{6,})?\.sqlite")
_SHA = re.compile(r"[0-9a-f]{64}")


def _split(state: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested state by a reference, collecting the tensors."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().cpu()
        return {"__tensor__": prefix}
    if isinstance(state, dict):
        return {str(k): _split(v, f"{prefix}/{k}", tensors) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(state)]
    if hasattr(state, "item") and hasattr(state, "dtype"):  # numpy scalars
        return state.item()
    if hasattr(state, "tolist"):  # numpy arrays
        return state.tolist()
    return state


def _join(state: Any, tensors: dict[str, torch.Tensor], name: str) -> Any:
    if isinstance(state, dict):
        if set(state) == {"__tensor__"}:
            ref = state["__tensor__"]
            if ref not in tensors:
                raise RunFormatError(f"{name}: tensor {ref!r} is missing from the weights file")
            return tensors[ref]
        return {k: _join(v, tensors, name) for k, v in state.items()}
    if isinstance(state, list):
        return [_join(v, tensors, name) for v in state]
    return state


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """Serialise a nested state (plain values and tensors) without pickling any object."""
    tensors: dict[str, torch.Tensor] = {}
    plain = _split(state, "s", tensors)
    buf = io.BytesIO()
    torch.save({"plain": json.dumps(plain), "tensors": tensors}, buf)
    return buf.getvalue()


def state_from_bytes(blob: bytes, name: str = "model version") -> dict[str, Any]:
    """Inverse of :func:`state_to_bytes` (``weights_only`` loading: no code is unpickled)."""
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        return _join(json.loads(obj["plain"]), obj["tensors"], name)
    except RunFormatError:
        raise
    except Exception as exc:
        raise RunFormatError(f"{name}: cannot be read ({exc})") from exc


def _save_state(folder: Path, stem: str, state: dict[str, Any]) -> list[str]:
    tensors: dict[str, torch.Tensor] = {}
    plain = _split(state, stem, tensors)
    write_json(folder / f"{stem}.json", plain)
    save_tensors(folder / f"{stem}.pt", tensors)
    return [f"{stem}.json", f"{stem}.pt"]


def _load_state(folder: Path, stem: str) -> dict[str, Any]:
    plain = read_json(folder / f"{stem}.json")
    tensors = load_tensors(folder / f"{stem}.pt")
    return _join(plain, tensors, f"{folder / stem}.pt")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _generations(folder: Path) -> list[int]:
    out = []
    for p in folder.glob("gen-*"):
        m = _GEN.fullmatch(p.name)
        if m and p.is_dir():
            out.append(int(m.group(1)))
    return sorted(out)


def _existing_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        m = read_json(folder / MANIFEST)
    except RunFormatError:
        return None
    return m if isinstance(m, dict) else None


def save_workbench(wb: Any, folder: Path, *, overwrite: bool = False) -> Path:
    """Write ``wb`` to ``folder`` as a new generation and switch to it with one rename.

    Everything of the new generation is written and flushed beside the old one first; the
    manifest ``run.json``, which names the generation, is replaced last and atomically, so a kill
    at any moment leaves either the old run or the new one loadable. Saving over a directory that
    holds another run (or anything else) is refused unless ``overwrite``; the other run's journal
    is never written into (ours gets a name of its own there). The journal moves to ``folder``
    and stays live; the directory is locked for this process.
    """
    folder = Path(folder)
    same = Path(wb.run_dir).resolve() == folder.resolve() if folder.exists() else False
    if same and getattr(wb, "read_only", False):
        raise RunFormatError(f"{folder}: the run directory was loaded read-only; save elsewhere")
    if folder.exists() and not folder.is_dir():
        raise RunFormatError(f"{folder}: exists and is not a directory")
    if folder.exists() and not same:
        other = [p.name for p in folder.iterdir() if p.name != ".lock"]
        if other and not overwrite:
            what = "another run" if (folder / MANIFEST).exists() else "other files"
            raise RunFormatError(
                f"{folder}: holds {what} ({', '.join(sorted(other)[:3])}...); refusing to save "
                "over it (save(path, overwrite=True) replaces it)"
            )
    lock = None if same else RunLock(folder)
    try:
        return _save(wb, folder, same, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _save(wb: Any, folder: Path, same: bool, lock: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    old = _existing_manifest(folder)
    gens = _generations(folder)
    gen = f"gen-{(gens[-1] + 1 if gens else 1):06d}"
    tmp = folder / gen
    tmp.mkdir()
    files: list[str] = []
    write_json(tmp / "parser.json", wb.parser.to_state())
    files.append("parser.json")
    entries = wb.entries.copy()
    entries["params"] = entries["params"].map(list)
    for col in entries.columns:
        if entries[col].dtype == object and col != "params":
            entries[col] = entries[col].map(lambda v: None if v is None else str(v))
    buf = io.BytesIO()
    entries.to_parquet(buf, index=False)
    atomic_write_bytes(tmp / "entries.parquet", buf.getvalue())
    files.append("entries.parquet")
    if wb.key_model is not None:
        files += _save_state(tmp, "key_model", wb.key_model.to_state())
    if wb.param_model is not None:
        files += _save_state(tmp, "param_model", wb.param_model.state_dict())
    write_json(tmp / "workflows.json", [to_node_link(g) for g in wb.workflows_])
    files.append("workflows.json")
    _fsync_dir(tmp)
    if same:
        journal = Path(wb.journal.path).name
    else:
        journal = JOURNAL if not (folder / JOURNAL).exists() else f"journal-{gen}.sqlite"
        part = folder / f".{journal}.tmp"
        part.unlink(missing_ok=True)
        dest = sqlite3.connect(part)
        try:
            with wb.journal._lock:
                wb.journal._db.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(part, folder / journal)
    _fsync_dir(folder)
    manifest = {
        "format": "deeplog-workbench run",
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "generation": gen,
        "journal": journal,
        "seed": int(wb.seed),
        "level": float(wb.level),
        "key_config": wb.key_config.to_dict(),
        "param_config": wb.param_config.to_dict(),
        "workflow_config": wb.workflow_config.to_dict(),
        "journal_version": wb.journal.current_version(),
        "files": {name: file_digest(tmp / name) for name in files},
    }
    write_json(folder / MANIFEST, manifest)  # the switch: one rename
    _fsync_dir(folder)
    if not same:
        old_lock = getattr(wb, "_run_lock", None)
        wb.journal.close()
        wb.journal = FeedbackJournal(folder / journal)
        wb.run_dir = folder
        wb._run_lock = lock
        if old_lock is not None:
            old_lock.release()
    # what the new manifest no longer names goes (a kill here leaves only unused files)
    for g in _generations(folder):
        name = f"gen-{g:06d}"
        if name != gen:
            shutil.rmtree(folder / name, ignore_errors=True)
    if (
        old is not None
        and old.get("journal") not in (None, journal)
        and _JOURNAL.fullmatch(str(old.get("journal")))
    ):
        for suffix in ("", "-wal", "-shm"):
            (folder / f"{old['journal']}{suffix}").unlink(missing_ok=True)
    return folder


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != "deeplog-workbench run":
        raise RunFormatError(f"{path}: not a DeepLog Workbench run manifest")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise RunFormatError(f"{path}: format version {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise RunFormatError(
            f"{path}: format version {version} is newer than this package reads "
            f"({FORMAT_VERSION}); upgrade deeplog-workbench"
        )
    if version == 1:
        raise RunFormatError(
            f"{path}: format version 1 keeps the parser as a pickled object, which is never "
            "loaded; train the run again with this version"
        )
    if version != FORMAT_VERSION:
        raise RunFormatError(
            f"{path}: unknown format version {version} (this package reads {FORMAT_VERSION})"
        )
    gen = manifest.get("generation")
    if not isinstance(gen, str) or not _GEN.fullmatch(gen):
        raise RunFormatError(f"{path}: 'generation' must name a gen-NNNNNN folder, got {gen!r}")
    journal = manifest.get("journal")
    if not isinstance(journal, str) or not _JOURNAL.fullmatch(journal):
        raise RunFormatError(f"{path}: 'journal' must name the journal file, got {journal!r}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise RunFormatError(f"{path}: 'files' must list the files with their checksums")
    missing = sorted(REQUIRED - set(files))
    if missing:
        raise RunFormatError(f"{path}: required files are not listed: {', '.join(missing)}")
    unknown = sorted(set(files) - REQUIRED - OPTIONAL)
    if unknown:
        raise RunFormatError(f"{path}: unknown files listed: {', '.join(map(repr, unknown))}")
    for a, b in (("key_model.json", "key_model.pt"), ("param_model.json", "param_model.pt")):
        if (a in files) != (b in files):
            raise RunFormatError(f"{path}: {a} and {b} must be listed together")
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA.fullmatch(digest):
            raise RunFormatError(f"{path}: the checksum of {name} is not a SHA-256 hex digest")
    jv = manifest.get("journal_version")
    if isinstance(jv, bool) or not isinstance(jv, int):
        raise RunFormatError(f"{path}: 'journal_version' must be an integer, got {jv!r}")
    seed = manifest.get("seed")
    level = manifest.get("level")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RunFormatError(f"{path}: 'seed' must be an integer, got {seed!r}")
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise RunFormatError(f"{path}: 'level' must be a number in (0, 1), got {level!r}")
    return manifest


def _step(path: Path, what: Callable[[], Any], also: str = "") -> Any:
    """Run one loading step; any failure becomes a RunFormatError naming ``path``."""
    try:
        return what()
    except RunFormatError:
        raise
    except Exception as exc:
        where = f"{path} ({also})" if also else str(path)
        raise RunFormatError(f"{where}: {exc.__class__.__name__}: {exc}") from exc


def load_workbench(cls: type, folder: Path, *, read_only: bool | None = None) -> Any:
    """Load a run directory; raises :class:`RunFormatError` naming the file and the problem.

    Nothing of a loaded file is executed: JSON is read as data and checked field by field, and
    tensors are loaded ``weights_only``. ``read_only`` (default: when the directory is not
    writable) opens the journal read-only and takes no lock; feedback is then refused.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFormatError(f"{folder}: not a directory")
    if read_only is None:
        read_only = not os.access(folder, os.W_OK)
    manifest = _manifest(folder)
    files = manifest["files"]
    gen = folder / manifest["generation"]
    for name, digest in files.items():
        path = gen / name
        if not path.is_file():
            raise RunFormatError(f"{path}: file is missing")
        if file_digest(path) != digest:
            raise RunFormatError(f"{path}: checksum mismatch (the file is corrupt or was edited)")
    jpath = folder / manifest["journal"]
    if not jpath.is_file():
        raise RunFormatError(f"{jpath}: file is missing")
    if jpath.stat().st_size == 0:
        raise RunFormatError(f"{jpath}: the journal is empty (0 bytes)")
    try:
        probe = FeedbackJournal(jpath, read_only=read_only, create=False)
    except ValueError as exc:
        raise RunFormatError(str(exc)) from exc
    try:
        problem = probe.check()
    finally:
        probe.close()
    if problem is not None:
        raise RunFormatError(f"{jpath}: {problem}")
    state = read_json(gen / "parser.json")
    if not isinstance(state, dict):
        raise RunFormatError(f"{gen / 'parser.json'}: not a parser state")
    parser = _step(gen / "parser.json", lambda: LogParser.from_state(state))
    entries = _step(gen / "entries.parquet", lambda: _entries(gen / "entries.parquet"))
    key_model = param_model = None
    if "key_model.json" in files:
        kstate = _load_state(gen, "key_model")
        vocab = kstate.get("vocab") if isinstance(kstate, dict) else None
        keys = vocab.get("keys", []) if isinstance(vocab, dict) else []
        missing = [k for k in keys if k not in parser.keys_] if isinstance(keys, list) else []
        if missing:
            raise RunFormatError(
                f"{gen / 'key_model.json'}: the vocabulary names keys {missing[:5]} that the "
                "parser in parser.json does not know"
            )
        key_model = _step(
            gen / "key_model.json", lambda: KeyModel.from_state(kstate), "with key_model.pt"
        )
    if "param_model.json" in files:
        pstate = _load_state(gen, "param_model")
        param_model = _step(
            gen / "param_model.json", lambda: ParamModel.from_state(pstate), "with param_model.pt"
        )
    wf = read_json(gen / "workflows.json")
    if not isinstance(wf, list):
        raise RunFormatError(f"{gen / 'workflows.json'}: expected a list of workflows")
    workflows = _step(gen / "workflows.json", lambda: [from_node_link(d) for d in wf])
    key_config, param_config, workflow_config = _step(
        folder / MANIFEST,
        lambda: (
            KeyModelConfig.from_dict(manifest["key_config"]),
            ParamModelConfig.from_dict(manifest["param_config"]),
            WorkflowConfig.from_dict(manifest["workflow_config"]),
        ),
    )
    wb = cls(
        parser,
        entries,
        key_config=key_config,
        param_config=param_config,
        workflow_config=workflow_config,
        run_dir=folder,
        seed=manifest["seed"],
        journal=manifest["journal"],
        read_only=read_only,
    )
    try:
        wb.key_model, wb.param_model, wb.workflows_ = key_model, param_model, workflows
        wb.level = float(manifest["level"])
        current = wb.journal.current_version()
        if current != manifest["journal_version"]:  # feedback (or undo) after the last save
            try:
                wb._load_weights(wb.journal.weights(current))
            except Exception as exc:
                raise RunFormatError(
                    f"{jpath}: model version {current} cannot be loaded ({exc})"
                ) from exc
        else:
            wb._reserve_keys()
        if wb.key_model is not None:
            unknown = [k for k in wb.key_model.vocab_.keys if k not in wb.parser.keys_]
            if unknown:
                raise RunFormatError(
                    f"{jpath}: model version {current} names keys {unknown[:5]} that its parser "
                    "does not know"
                )
        if key_model is not None:
            from workbench.workbench import _sample

            _, groups = wb._sessions(entries)
            keys_arr = entries["key"].to_numpy()
            wb._replay = _sample([tuple(int(k) for k in keys_arr[g]) for g in groups], 400, wb.seed)
    except BaseException:
        wb.close()
        raise
    return wb


_ENTRY_COLUMNS = ("line", "raw", "key", "params", "parsed", "session")


def _entries(path: Path) -> pd.DataFrame:
    entries = pd.read_parquet(path)
    missing = [c for c in _ENTRY_COLUMNS if c not in entries.columns]
    if missing:
        raise RunFormatError(f"{path}: columns {missing} are missing")
    entries["params"] = entries["params"].map(lambda p: tuple(float(v) for v in p))
    return entries
