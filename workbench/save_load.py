"""A workbench to and from its run directory: the models as plain state and back.

:mod:`workbench.store.rundir` reads and writes a run directory as plain state
(:class:`~workbench.store.rundir.RunState`). Here the workbench's objects become that state (the
parser's and the models' states, the workflows as node-link dicts, the configs as dicts) and come
back from it, and the run's journal is checked before anything uses it. The workbench
(:meth:`Workbench.save <workbench.workbench.Workbench.save>` and ``load``) takes what this module
returns into its own attributes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from workbench.feedback.journal import FeedbackJournal
from workbench.feedback.journal_db import FeedbackEntry
from workbench.fit_report import FitReport
from workbench.flagging import replay_sample
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.logs.parser import LogParser
from workbench.params.config import ParamModelConfig
from workbench.params.model import UPDATED_PARTS, ParamModel
from workbench.store.files import FORMAT_VERSION, RunFormatError, RunLock, load_step
from workbench.store.rundir import MANIFEST, RunState, check_target, read_run, write_run
from workbench.store.states import state_from_bytes, state_to_bytes
from workbench.workflow.cooccurrence import WorkflowConfig
from workbench.workflow.export import from_node_link, to_node_link

__all__ = [
    "MovedRun",
    "Stored",
    "StoredRun",
    "check_vocabulary",
    "read_stored",
    "run_state",
    "save_run",
    "withdraw_interrupted",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- saving
@dataclass(frozen=True)
class MovedRun:
    """A save into another directory: the journal's copy there and the lock now held on it."""

    journal: Path
    lock: RunLock


def run_state(wb: Any) -> RunState:
    """The plain state of a workbench, as a run directory holds it."""
    return RunState(
        parser=wb.parser.to_state(),
        entries=wb.entries,
        workflows=[to_node_link(g) for g in wb.workflows_],
        key_model=None if wb.key_model is None else wb.key_model.to_state(),
        param_model=None if wb.param_model is None else wb.param_model.to_state(),
        seed=int(wb.seed),
        level=float(wb.level),
        key_config=wb.key_config.to_dict(),
        param_config=wb.param_config.to_dict(),
        workflow_config=wb.workflow_config.to_dict(),
        journal=Path(wb.journal.path).name,
        journal_version=wb.journal.current_version(),
        fit_report=None if wb.fit_report_ is None else wb.fit_report_.to_dict(),
    )


def save_run(wb: Any, folder: Path, *, overwrite: bool = False) -> MovedRun | None:
    """Write ``wb`` to ``folder`` (see :func:`~workbench.store.rundir.write_run`).

    Saving into the workbench's own directory returns None. Saving elsewhere is refused when the
    directory holds another run or other files (unless ``overwrite``), locks it, copies the
    journal there and returns the copy and the lock: the workbench then runs there.
    """
    folder = Path(folder)
    same = Path(wb.run_dir).resolve() == folder.resolve() if folder.exists() else False
    if same and wb.read_only:
        raise RunFormatError(f"{folder}: the run directory was loaded read-only; save elsewhere")
    check_target(folder, same=same, overwrite=overwrite)
    lock = None if same else RunLock(folder)
    try:
        journal = write_run(
            folder, run_state(wb), journal_copy=None if same else wb.journal.backup_to
        )
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return None if lock is None else MovedRun(folder / journal, lock)


# --------------------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class StoredRun:
    """A run directory read back: its plain state and the objects rebuilt from it."""

    folder: Path
    read_only: bool
    state: RunState
    parser: LogParser
    key_model: KeyModel | None
    param_model: ParamModel | None
    workflows: list[nx.DiGraph]
    key_config: KeyModelConfig
    param_config: ParamModelConfig
    workflow_config: WorkflowConfig

    @property
    def journal(self) -> Path:
        """The journal file of the run."""
        return self.folder / self.state.journal


def read_stored(folder: Path, *, read_only: bool | None = None) -> StoredRun:
    """Read and check a run directory and rebuild its objects; raises :class:`RunFormatError`
    naming the file and the problem. ``read_only`` defaults to whether the directory is not
    writable."""
    folder = Path(folder)
    state = read_run(folder)
    if read_only is None:
        read_only = not os.access(folder, os.W_OK)
    check_journal(folder / state.journal, read_only=read_only)
    gen = folder / state.generation
    parser = load_step(gen / "parser.json", lambda: LogParser.from_state(state.parser))
    key_model = None
    if state.key_model is not None:
        key_model = load_step(
            gen / "key_model.json",
            lambda: KeyModel.from_state(state.key_model),
            "with key_model.pt",
        )
        check_vocabulary(key_model, parser, f"{gen / 'key_model.json'}: the vocabulary")
    param_model = None
    if state.param_model is not None:
        param_model = load_step(
            gen / "param_model.json",
            lambda: ParamModel.from_state(state.param_model),
            "with param_model.pt",
        )
    workflows = load_step(
        gen / "workflows.json", lambda: [from_node_link(d) for d in state.workflows]
    )
    configs = load_step(folder / MANIFEST, lambda: _configs(state))
    return StoredRun(folder, read_only, state, parser, key_model, param_model, workflows, *configs)


def _configs(state: RunState) -> tuple[KeyModelConfig, ParamModelConfig, WorkflowConfig]:
    return (
        KeyModelConfig.from_dict(state.key_config),
        ParamModelConfig.from_dict(state.param_config),
        WorkflowConfig.from_dict(state.workflow_config),
    )


def check_journal(path: Path, *, read_only: bool) -> None:
    """The journal opens as it is (nothing created) and holds what a run's journal must."""
    try:
        probe = FeedbackJournal(path, read_only=read_only, create=False)
    except ValueError as exc:
        raise RunFormatError(str(exc)) from exc
    try:
        problem = probe.check()
    finally:
        probe.close()
    if problem is not None:
        raise RunFormatError(f"{path}: {problem}")


def check_vocabulary(key_model: KeyModel | None, parser: LogParser, what: str) -> None:
    """Refuse a key model whose vocabulary names keys the parser does not know (``what`` names
    the model and its file in the message)."""
    if key_model is None:
        return
    unknown = [k for k in key_model.vocab_.keys if k not in parser.keys_]
    if unknown:
        raise RunFormatError(f"{what} names keys {unknown[:5]} that the parser does not know")


def withdraw_interrupted(journal: FeedbackJournal) -> list[FeedbackEntry]:
    """Withdraw the verdicts whose update a crash cut short and say so (a warning naming the
    anomalies: they were never learned, give them again). Call it when the run was opened by
    the only workbench of this process that has it."""
    pending = journal.withdraw_pending()
    if pending:
        names = ", ".join(e.anomaly for e in pending[:5]) + ("..." if len(pending) > 5 else "")
        logger.warning(
            "%s: %d false-positive verdict(s) (anomaly %s) were being learned when the last "
            "session stopped; they were not learned and are withdrawn: flag them again",
            journal.path,
            len(pending),
            names,
        )
    return pending


class Stored:
    """The :class:`~workbench.workbench.Workbench` methods that save it, load it, and swap model
    versions in and out of its journal (a mixin: every attribute is the workbench's own)."""

    # ------------------------------------------------------------------ model versions
    def _weights(
        self, key_model: Any = None, param_model: Any = None, *, parent: int | None = None
    ) -> bytes:
        """One model version: both models' state and the parser's (learned message kinds too).

        With ``parent`` (the version an online update started from), only what the update changed
        and a reference to that version: the parser, the key model when ``key_model`` is not the
        current one, the parts a parameter update changes (:data:`UPDATED_PARTS`) when
        ``param_model`` is not the current one. :meth:`_load_weights` reads the rest from the
        parent; versions stored whole (older journals, training) load as they are."""
        key_model = self.key_model if key_model is None else key_model
        param_model = self.param_model if param_model is None else param_model
        state: dict[str, Any] = {"parser": self.parser.to_state()}
        if parent is not None:
            state["parent_version"] = int(parent)
            if key_model is not self.key_model:
                state["key"] = key_model.to_state()
            if param_model is not None and param_model is not self.param_model:
                state["param_update"] = param_model.to_state(UPDATED_PARTS)
            return state_to_bytes(state)
        if key_model is not None:
            state["key"] = key_model.to_state()
        if param_model is not None:
            state["param"] = param_model.to_state()
        return state_to_bytes(state)

    def _version_state(self, blob: bytes) -> dict[str, Any]:
        """A stored version's whole state: one stored as a change is applied on its parents'."""
        chain = [state_from_bytes(blob)]
        while "parent_version" in chain[-1]:
            parent = int(chain[-1]["parent_version"])
            if len(chain) > len(self.journal.versions()):
                raise RunFormatError(
                    f"{self.journal.path}: model version {parent} refers in a loop"
                )
            chain.append(state_from_bytes(self.journal.weights(parent)))
        state = chain.pop()
        for change in reversed(chain):
            for part in ("parser", "key"):
                if part in change:
                    state[part] = change[part]
            if "param_update" in change:
                state["param"] = {**state["param"], **change["param_update"]}
        return state

    def _load_weights(self, blob: bytes) -> None:
        state = self._version_state(blob)
        key_model = KeyModel.from_state(state["key"]) if "key" in state else None
        param_model = ParamModel.from_state(state["param"]) if "param" in state else None
        parser = LogParser.from_state(state["parser"]) if "parser" in state else None
        with self._lock:
            if parser is not None:
                ever = max(self.parser.keys_, default=0)
                self.parser = parser
                self._reserve_keys(ever)
            if key_model is not None:
                self.key_model = key_model
            if param_model is not None:
                self.param_model = param_model

    def _reserve_keys(self, at_least: int = 0) -> None:
        """Key ids ever given stay given: ids of undone (or lost) message kinds are kept as
        retired entries that match nothing, so the next new kind never gets an old id."""
        top = max(at_least, int(self.journal.get_meta("max_key") or 0))
        for k in range(1, top + 1):
            if k not in self.parser.keys_:
                self.parser.keys_[k] = (-1, ())

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the run directory (default: the one this workbench runs in; see
        :mod:`workbench.store.rundir`). A kill at any moment leaves the old or the new run loadable;
        saving over another run or other files is refused unless ``overwrite``. Saved elsewhere,
        the workbench runs there from then on: its journal is copied there and stays live."""
        with self._update_lock:
            folder = Path(self.run_dir if path is None else path)
            moved = save_run(self, folder, overwrite=overwrite)
            if moved is not None:
                self.journal.close()
                self.journal = FeedbackJournal(moved.journal)
                self.run_dir = folder
                old, self._run_lock = self._run_lock, moved.lock
                if old is not None:
                    old.release()
            return folder

    @classmethod
    def load(cls, path: str | Path, *, read_only: bool | None = None) -> Any:
        """Load a run directory written by :meth:`save`; nothing is half-loaded on error and
        nothing in the files is executed. The directory is locked for this process (another
        process gets a clear error); ``read_only`` (default: when the directory is not writable)
        loads without the lock and refuses feedback. Feedback an interrupted update never learned
        is withdrawn with a warning (:attr:`interrupted_feedback`)."""
        stored = read_stored(Path(path), read_only=read_only)
        wb = cls(
            stored.parser,
            stored.state.entries,
            key_config=stored.key_config,
            param_config=stored.param_config,
            workflow_config=stored.workflow_config,
            run_dir=stored.folder,
            seed=stored.state.seed,
            journal=stored.state.journal,
            read_only=stored.read_only,
        )
        try:
            wb._restore(stored)
        except BaseException:
            wb.close()
            raise
        return wb

    def _restore(self, stored: StoredRun) -> None:
        """Take a loaded run's models, then what its journal holds beyond the saved files: old
        runs' ids translated, interrupted feedback withdrawn, a newer model version (feedback or
        undo after the last save) or else the key ids ever given."""
        self.key_model, self.param_model = stored.key_model, stored.param_model
        self.workflows_, self.level = stored.workflows, stored.state.level
        if stored.state.fit_report is not None:
            self.fit_report_ = FitReport.from_dict(stored.state.fit_report)
        if stored.state.format_version < FORMAT_VERSION:
            self.journal.translate_legacy_end()
        if self._run_lock is not None and self._run_lock.first:
            self.interrupted_feedback = withdraw_interrupted(self.journal)
        current = self.journal.current_version()
        if current != stored.state.journal_version:
            try:
                self._load_weights(self.journal.weights(current))
            except Exception as exc:
                raise RunFormatError(
                    f"{stored.journal}: model version {current} cannot be loaded ({exc})"
                ) from exc
        else:
            self._reserve_keys()
        check_vocabulary(self.key_model, self.parser, f"{stored.journal}: model version {current}")
        if stored.key_model is not None:
            _, groups = self._sessions(self.entries)
            keys = self.entries["key"].to_numpy()
            self._replay = replay_sample(
                [tuple(int(k) for k in keys[g]) for g in groups], 400, self.seed
            )

    def close(self) -> None:
        """Finish queued updates, close the journal and release the run directory."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._update_lock:
            try:
                self.journal.checkpoint()
            except Exception:  # closing must not fail on a journal that is already closed
                logger.debug("checkpoint on close failed", exc_info=True)
            self.journal.close()
            if self._run_lock is not None:
                self._run_lock.release()
                self._run_lock = None
