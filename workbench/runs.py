"""Saving and loading a workbench as a run directory: plain files, no whole-object pickles.

Layout (``FORMAT_VERSION`` 1)::

    run.json            manifest: format version, settings, and a SHA-256 checksum per file
    parser.json         the parser: line format, settings, drain3's own serialised tree, key table
    entries.parquet     the parsed training log (replay, workflows, retraining)
    key_model.json      key model: config, vocabulary, g and how it was chosen, history
    key_model.pt        key model: the network's state dict (tensors only)
    param_model.json    parameter models: config, per-key status, normalisation, thresholds
    param_model.pt      parameter models: state dicts (tensors only)
    workflows.json      the workflow automata as node-link JSON
    journal.sqlite      the feedback journal (verdicts and model versions)

Every file is written atomically and the manifest last, so an interrupted save leaves the previous
manifest pointing at complete files or fails the checksum with a message naming the file. The
journal is the live record of feedback: when it holds a newer model version than the saved files
(updates after the last save), loading takes the journal's weights.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench import __version__
from workbench.journal import FeedbackJournal
from workbench.keymodel import KeyModel, KeyModelConfig
from workbench.parammodel import ParamModel, ParamModelConfig
from workbench.parsing import LogParser
from workbench.persistence import (
    FORMAT_VERSION,
    RunFormatError,
    file_digest,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)
from workbench.workflow import WorkflowConfig, from_node_link, to_node_link

__all__ = ["load_workbench", "save_workbench", "state_from_bytes", "state_to_bytes"]

MANIFEST = "run.json"
JOURNAL = "journal.sqlite"


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


def save_workbench(wb: Any, folder: Path) -> Path:
    """Write ``wb`` to ``folder`` (created if needed); the journal moves there and stays live."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    write_json(folder / "parser.json", wb.parser.to_state())
    files.append("parser.json")
    entries = wb.entries.copy()
    entries["params"] = entries["params"].map(list)
    for col in entries.columns:
        if entries[col].dtype == object and col != "params":
            entries[col] = entries[col].map(lambda v: None if v is None else str(v))
    tmp = folder / ".entries.parquet.tmp"
    entries.to_parquet(tmp, index=False)
    tmp.replace(folder / "entries.parquet")
    files.append("entries.parquet")
    if wb.key_model is not None:
        files += _save_state(folder, "key_model", wb.key_model.state_dict())
    if wb.param_model is not None:
        files += _save_state(folder, "param_model", wb.param_model.state_dict())
    write_json(folder / "workflows.json", [to_node_link(g) for g in wb.workflows_])
    files.append("workflows.json")
    _move_journal(wb, folder)
    manifest = {
        "format": "deeplog-workbench run",
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": wb.seed,
        "level": wb.level,
        "key_config": wb.key_config.to_dict(),
        "param_config": wb.param_config.to_dict(),
        "workflow_config": wb.workflow_config.to_dict(),
        "journal_version": wb.journal.current_version(),
        "files": {name: file_digest(folder / name) for name in files},
    }
    write_json(folder / MANIFEST, manifest)
    return folder


def _move_journal(wb: Any, folder: Path) -> None:
    target = folder / JOURNAL
    if Path(wb.journal.path).resolve() == target.resolve():
        return
    dest = sqlite3.connect(target)
    try:
        with wb.journal._lock:
            wb.journal._db.backup(dest)
    finally:
        dest.close()
    wb.journal.close()
    wb.journal = FeedbackJournal(target)
    wb.run_dir = folder


def load_workbench(cls: type, folder: Path) -> Any:
    """Load a run directory; raises :class:`RunFormatError` naming the file and the problem."""
    if not folder.is_dir():
        raise RunFormatError(f"{folder}: not a directory")
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != "deeplog-workbench run":
        raise RunFormatError(f"{folder / MANIFEST}: not a DeepLog Workbench run manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RunFormatError(
            f"{folder / MANIFEST}: format version {version!r} is newer than this package reads "
            f"({FORMAT_VERSION}); upgrade deeplog-workbench"
        )
    for name, digest in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise RunFormatError(f"{path}: file is missing")
        if file_digest(path) != digest:
            raise RunFormatError(f"{path}: checksum mismatch (the file is corrupt or was edited)")
    files = manifest.get("files", {})
    try:
        parser = LogParser.from_state(read_json(folder / "parser.json"))
    except ValueError as exc:
        raise RunFormatError(f"{folder / 'parser.json'}: {exc}") from exc
    entries = pd.read_parquet(folder / "entries.parquet")
    entries["params"] = entries["params"].map(lambda p: tuple(float(v) for v in p))
    key_model = param_model = None
    if "key_model.json" in files:
        state = _load_state(folder, "key_model")
        missing = [k for k in state.get("vocab", {}).get("keys", []) if k not in parser.keys_]
        if missing:
            raise RunFormatError(
                f"{folder / 'key_model.json'}: the vocabulary names keys {missing[:5]} that the "
                "parser in parser.json does not know"
            )
        try:
            key_model = KeyModel.from_state(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise RunFormatError(
                f"{folder / 'key_model.pt'}: the weights do not fit key_model.json ({exc})"
            ) from exc
    if "param_model.json" in files:
        try:
            param_model = ParamModel.from_state(_load_state(folder, "param_model"))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise RunFormatError(
                f"{folder / 'param_model.pt'}: the weights do not fit param_model.json ({exc})"
            ) from exc
    try:
        workflows = [from_node_link(d) for d in read_json(folder / "workflows.json")]
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFormatError(f"{folder / 'workflows.json'}: {exc}") from exc
    try:
        key_config = KeyModelConfig.from_dict(manifest["key_config"])
        param_config = ParamModelConfig.from_dict(manifest["param_config"])
        workflow_config = WorkflowConfig.from_dict(manifest["workflow_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFormatError(f"{folder / MANIFEST}: bad settings ({exc})") from exc
    if not (folder / JOURNAL).is_file():
        raise RunFormatError(f"{folder / JOURNAL}: file is missing")
    journal = FeedbackJournal(folder / JOURNAL)
    if not journal.integrity_ok():
        journal.close()
        raise RunFormatError(f"{folder / JOURNAL}: the database failed its integrity check")
    journal.close()
    wb = cls(
        parser,
        entries,
        key_config=key_config,
        param_config=param_config,
        workflow_config=workflow_config,
        run_dir=folder,
        seed=int(manifest.get("seed", 0)),
    )
    wb.key_model, wb.param_model, wb.workflows_ = key_model, param_model, workflows
    wb.level = float(manifest.get("level", 0.99))
    current = wb.journal.current_version()
    if current is not None and current != manifest.get("journal_version"):
        wb._load_weights(wb.journal.weights(current))  # updates made after the last save
    if key_model is not None:
        _, groups = wb._sessions(entries)
        keys = entries["key"].to_numpy()
        from workbench.workbench import _sample

        wb._replay = _sample([tuple(int(k) for k in keys[g]) for g in groups], 400, wb.seed)
    return wb
