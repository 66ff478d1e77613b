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
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.logs.parser import LogParser
from workbench.params.config import ParamModelConfig
from workbench.params.model import ParamModel
from workbench.store.files import RunFormatError, RunLock, load_step
from workbench.store.rundir import MANIFEST, RunState, check_target, read_run, write_run
from workbench.workflow.cooccurrence import WorkflowConfig
from workbench.workflow.export import from_node_link, to_node_link

__all__ = [
    "MovedRun",
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
        key_model=None if wb.key_model is None else wb.key_model.state_dict(),
        param_model=None if wb.param_model is None else wb.param_model.to_state(),
        seed=int(wb.seed),
        level=float(wb.level),
        key_config=wb.key_config.to_dict(),
        param_config=wb.param_config.to_dict(),
        workflow_config=wb.workflow_config.to_dict(),
        journal=Path(wb.journal.path).name,
        journal_version=wb.journal.current_version(),
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
