"""The run directory: a saved workbench as plain files, nothing that runs on load.

Layout (``FORMAT_VERSION`` 3)::

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

This module reads and writes that layout as plain state (:class:`RunState`: dicts, arrays, one
table); turning models into states and back is the workbench's part
(:mod:`workbench.save_load`). :func:`write_run` writes a new generation beside the old one,
flushes it, then replaces ``run.json`` with one rename and only then removes the old generation:
a kill at any moment leaves the old or the new run loadable. :func:`read_run` is the strict
loader: every refusal is a :class:`~workbench.store.files.RunFormatError` naming the file and the
problem.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.store.files import (
    FORMAT_VERSION,
    RunFormatError,
    atomic_write_bytes,
    file_digest,
    fsync_dir,
    load_step,
    read_json,
    write_json,
)
from workbench.store.states import read_state, write_state
from workbench.version import __version__

__all__ = ["JOURNAL", "MANIFEST", "RunState", "check_target", "read_run", "write_run"]

MANIFEST = "run.json"
JOURNAL = "journal.sqlite"
REQUIRED = frozenset({"parser.json", "entries.parquet", "workflows.json"})
OPTIONAL = frozenset({"key_model.json", "key_model.pt", "param_model.json", "param_model.pt"})
#: Formats read: 2 (the end of a session was -1 in journaled examples) and this one.
READABLE = frozenset({2, FORMAT_VERSION})
ENTRY_COLUMNS = ("line", "raw", "key", "params", "parsed", "session")
_GEN = re.compile(r"gen-(\d{6,})")
_JOURNAL = re.compile(r"journal(?:-gen-\d{6,})?\.sqlite")
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RunState:
    """Everything a run directory holds besides the live journal, as plain data.

    ``parser``, ``key_model`` and ``param_model`` are the objects' ``to_state()`` (plain values,
    numpy arrays, tensors); ``workflows`` the automata as node-link dicts; the configs are their
    ``to_dict()``. ``journal`` names the journal file in the directory and ``journal_version``
    the model version the saved files hold; ``fit_report`` what the fit read and cost (a
    :class:`~workbench.fit_report.FitReport` as plain data, None when unknown). Read back, ``format_version`` is the format the run
    was written in (older formats are translated by whoever reads their ids) and ``generation``
    the folder the manifest names.
    """

    parser: dict[str, Any]
    entries: pd.DataFrame
    workflows: list[Any]
    key_model: dict[str, Any] | None = None
    param_model: dict[str, Any] | None = None
    seed: int = 0
    level: float = 0.99
    key_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    param_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    workflow_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    journal: str = JOURNAL
    journal_version: int | None = None
    fit_report: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION
    generation: str = ""


# ---------------------------------------------------------------------------------------- writing
def check_target(folder: Path, *, same: bool, overwrite: bool) -> None:
    """Refuse to save into ``folder`` when it is a file, or holds another run or other files
    (unless ``overwrite``); ``same``: it is the run's own directory."""
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


def write_run(
    folder: Path, run: RunState, *, journal_copy: Callable[[Path], None] | None = None
) -> str:
    """Write ``run`` to ``folder`` as a new generation and switch to it with one rename.

    ``journal_copy`` (saving into another directory) writes the live journal to the path it is
    given, under a name of its own when the directory already holds a journal, so journals never
    mix; without it the journal ``run.journal`` already lives in ``folder``. Returns the journal's
    file name. What the new manifest no longer names is removed after the switch.
    """
    folder.mkdir(parents=True, exist_ok=True)
    old = _existing_manifest(folder)
    gens = _generations(folder)
    gen = f"gen-{(gens[-1] + 1 if gens else 1):06d}"
    files = _write_generation(folder / gen, run)
    journal = run.journal
    if journal_copy is not None:
        journal = JOURNAL if not (folder / JOURNAL).exists() else f"journal-{gen}.sqlite"
        journal_copy(folder / journal)
    fsync_dir(folder)
    write_json(folder / MANIFEST, _manifest(run, gen, journal, folder / gen, files))  # the switch
    fsync_dir(folder)
    _prune(folder, gen, old, journal)
    return journal


def _write_generation(tmp: Path, run: RunState) -> list[str]:
    """Every file of one generation, flushed; returns their names."""
    tmp.mkdir()
    write_json(tmp / "parser.json", run.parser)
    atomic_write_bytes(tmp / "entries.parquet", _entries_bytes(run.entries))
    files = ["parser.json", "entries.parquet"]
    if run.key_model is not None:
        files += write_state(tmp, "key_model", run.key_model)
    if run.param_model is not None:
        files += write_state(tmp, "param_model", run.param_model)
    write_json(tmp / "workflows.json", list(run.workflows))
    files.append("workflows.json")
    fsync_dir(tmp)
    return files


def _entries_bytes(entries: pd.DataFrame) -> bytes:
    """The entries table as parquet (parameters as lists, other objects as strings)."""
    entries = entries.copy()
    entries["params"] = entries["params"].map(list)
    for col in entries.columns:
        if entries[col].dtype == object and col != "params":
            entries[col] = entries[col].map(lambda v: None if v is None else str(v))
    buf = io.BytesIO()
    entries.to_parquet(buf, index=False)
    return buf.getvalue()


def _manifest(run: RunState, gen: str, journal: str, tmp: Path, files: list[str]) -> dict:
    return {
        "format": "deeplog-workbench run",
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "generation": gen,
        "journal": journal,
        "seed": int(run.seed),
        "level": float(run.level),
        "key_config": run.key_config,
        "param_config": run.param_config,
        "workflow_config": run.workflow_config,
        "journal_version": run.journal_version,
        "fit_report": run.fit_report,
        "files": {name: file_digest(tmp / name) for name in files},
    }


def _prune(folder: Path, gen: str, old: dict[str, Any] | None, journal: str) -> None:
    """Remove the generations and the journal the new manifest no longer names (a kill here
    leaves only unused files)."""
    for g in _generations(folder):
        name = f"gen-{g:06d}"
        if name != gen:
            shutil.rmtree(folder / name, ignore_errors=True)
    was = None if old is None else old.get("journal")
    if was not in (None, journal) and _JOURNAL.fullmatch(str(was)):
        for suffix in ("", "-wal", "-shm"):
            (folder / f"{was}{suffix}").unlink(missing_ok=True)


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


# ---------------------------------------------------------------------------------------- reading
def read_run(folder: Path) -> RunState:
    """Read a run directory; raises :class:`RunFormatError` naming the file and the problem.

    Nothing of a loaded file is executed: JSON is read as data and checked field by field, and
    tensors are loaded ``weights_only``. The journal is checked to be there and non-empty; what
    is in it is the journal's to check.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFormatError(f"{folder}: not a directory")
    manifest = read_manifest(folder / MANIFEST)
    gen = folder / manifest["generation"]
    _verify(gen, manifest["files"])
    jpath = folder / manifest["journal"]
    if not jpath.is_file():
        raise RunFormatError(f"{jpath}: file is missing")
    if jpath.stat().st_size == 0:
        raise RunFormatError(f"{jpath}: the journal is empty (0 bytes)")
    parser = read_json(gen / "parser.json")
    if not isinstance(parser, dict):
        raise RunFormatError(f"{gen / 'parser.json'}: not a parser state")
    entries = load_step(gen / "entries.parquet", lambda: read_entries(gen / "entries.parquet"))
    workflows = read_json(gen / "workflows.json")
    if not isinstance(workflows, list):
        raise RunFormatError(f"{gen / 'workflows.json'}: expected a list of workflows")
    files = manifest["files"]
    return RunState(
        parser=parser,
        entries=entries,
        workflows=workflows,
        key_model=read_state(gen, "key_model") if "key_model.json" in files else None,
        param_model=read_state(gen, "param_model") if "param_model.json" in files else None,
        seed=manifest["seed"],
        level=float(manifest["level"]),
        key_config=manifest.get("key_config"),  # type: ignore[arg-type]
        param_config=manifest.get("param_config"),  # type: ignore[arg-type]
        workflow_config=manifest.get("workflow_config"),  # type: ignore[arg-type]
        journal=manifest["journal"],
        journal_version=manifest["journal_version"],
        fit_report=manifest.get("fit_report"),
        format_version=manifest["format_version"],
        generation=manifest["generation"],
    )


def read_manifest(path: Path) -> dict[str, Any]:
    """The checked manifest ``run.json``: known format, names, files and settings."""
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != "deeplog-workbench run":
        raise RunFormatError(f"{path}: not a DeepLog Workbench run manifest")
    _check_version(path, manifest.get("format_version"))
    _check_names(path, manifest)
    _check_files(path, manifest.get("files"))
    _check_settings(path, manifest)
    return manifest


def _check_version(path: Path, version: Any) -> None:
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
    if version not in READABLE:
        raise RunFormatError(
            f"{path}: unknown format version {version} (this package reads {FORMAT_VERSION})"
        )


def _check_names(path: Path, manifest: dict[str, Any]) -> None:
    gen = manifest.get("generation")
    if not isinstance(gen, str) or not _GEN.fullmatch(gen):
        raise RunFormatError(f"{path}: 'generation' must name a gen-NNNNNN folder, got {gen!r}")
    journal = manifest.get("journal")
    if not isinstance(journal, str) or not _JOURNAL.fullmatch(journal):
        raise RunFormatError(f"{path}: 'journal' must name the journal file, got {journal!r}")


def _check_files(path: Path, files: Any) -> None:
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


def _check_settings(path: Path, manifest: dict[str, Any]) -> None:
    jv = manifest.get("journal_version")
    if isinstance(jv, bool) or not isinstance(jv, int):
        raise RunFormatError(f"{path}: 'journal_version' must be an integer, got {jv!r}")
    seed = manifest.get("seed")
    level = manifest.get("level")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RunFormatError(f"{path}: 'seed' must be an integer, got {seed!r}")
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise RunFormatError(f"{path}: 'level' must be a number in (0, 1), got {level!r}")
    if not _plain_fit_report(manifest.get("fit_report")):
        raise RunFormatError(
            f"{path}: 'fit_report' must be null or {{'lines': N, 'stages': {{name: {{...}}}}}} "
            "of plain numbers and strings"
        )


def _plain_fit_report(report: Any) -> bool:
    """None, or ``{"lines": int, "stages": {name: {field: number or string}}}``."""
    if report is None:
        return True
    if not isinstance(report, dict) or set(report) != {"lines", "stages"}:
        return False
    lines, stages = report["lines"], report["stages"]
    if isinstance(lines, bool) or not isinstance(lines, int) or not isinstance(stages, dict):
        return False
    return all(
        isinstance(rec, dict)
        and all(v is None or isinstance(v, int | float | str) for v in rec.values())
        for rec in stages.values()
    )


def _verify(gen: Path, files: dict[str, str]) -> None:
    """Every listed file of the generation is there with its checksum."""
    for name, digest in files.items():
        path = gen / name
        if not path.is_file():
            raise RunFormatError(f"{path}: file is missing")
        if file_digest(path) != digest:
            raise RunFormatError(f"{path}: checksum mismatch (the file is corrupt or was edited)")


def read_entries(path: Path) -> pd.DataFrame:
    """The entries table written by :func:`write_run` (parameters back as tuples of floats)."""
    entries = pd.read_parquet(path)
    missing = [c for c in ENTRY_COLUMNS if c not in entries.columns]
    if missing:
        raise RunFormatError(f"{path}: columns {missing} are missing")
    entries["params"] = entries["params"].map(lambda p: tuple(float(v) for v in p))
    return entries
