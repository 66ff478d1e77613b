"""Training the cross-fitted folds of the key model side by side, in forked worker processes.

The folds are independent until the rule is chosen (:func:`workbench.keys.fitting.train_folds`):
each trains its own network from its own seed on one CPU thread. :class:`FoldWorkers` starts a
forked process for every fold but the first, which this process trains meanwhile; each worker sends
its training events and, at the end, its weights and :class:`~workbench.train.TrainResult` through
a pipe. A fold's network is the same, bit for bit, whether it trained here or in a worker (same
seed, same single thread, same operations), so the fitted model does not depend on it; only the wall
time does (the CPU time does not drop).

The callbacks see the events in the order of a sequential fit: the first fold's as they happen,
then each worker's, replayed up to where it is and live from there. A callback that raises
``KeyboardInterrupt`` (the workbench's stop, Ctrl-C) stops the worker too, which keeps its best
weights so far, as a sequential fit would. Workers are joined (terminated if they do not end) before
the fit returns or raises, so none is left behind.

Used only where it pays (:func:`use_workers`): on the CPU (a CUDA context does not survive a fork),
where ``fork`` exists (Linux), with at least as many CPUs as folds and a free one by the load
average, and when a fold is long enough (``MIN_WORK`` examples times epochs) for the start of a
process to be small beside it. Otherwise the folds train one after the other, to the same model.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import torch

from workbench.train import Callback, History, TrainEvent, TrainResult

__all__ = ["MIN_WORK", "FoldWorkers", "free_cpus", "use_workers"]

logger = logging.getLogger(__name__)

MIN_WORK = 20_000
"""Distinct examples times epochs of one fold below which the folds train one after the other
(a worker's start, a few hundredths of a second, would not pay)."""

#: A fold's training: (callbacks, history) -> (network, training result).
FoldJob = Callable[[list[Callback], History], tuple[torch.nn.Module, TrainResult]]


def use_workers(n_folds: int, n_examples: int, max_epochs: int, device: torch.device) -> bool:
    """Whether :class:`FoldWorkers` should train ``n_folds`` folds of about ``n_examples``
    distinct examples (see the module's docstring)."""
    if n_folds < 2 or device.type != "cpu" or n_examples * max_epochs < MIN_WORK:
        return False
    if not sys.platform.startswith("linux") or "fork" not in mp.get_all_start_methods():
        return False
    if mp.current_process().daemon:  # e.g. a Dask or pool worker: it may not start processes
        return False
    cpus = len(os.sched_getaffinity(0))
    return cpus >= n_folds and free_cpus() >= n_folds - 1.5


def free_cpus() -> float:
    """CPUs this process may use less the 1-minute load average (which counts this process): a
    worker only pays where a CPU is free; on a busy machine it would only add CPU time."""
    return len(os.sched_getaffinity(0)) - os.getloadavg()[0]


@dataclass
class _Worker:
    process: Any
    conn: Connection
    stop: Any  # multiprocessing.Event
    events: list[TrainEvent] = field(default_factory=list)  # received, not yet delivered
    done: tuple | None = None  # ("done", weights, result) or ("error", text)


class FoldWorkers:
    """Worker processes training folds ``1..k-1`` (0-based) while this process trains fold 0.

    ``jobs[i]`` trains fold ``i + 1``; ``workers`` is empty when none could be started (the caller
    then trains the folds itself). Use as a context manager: leaving it stops and joins every
    worker. :meth:`drain` (a callback) keeps the pipes flowing during the first fold;
    :meth:`collect` delivers a worker's events to the callbacks and returns its network."""

    def __init__(self, jobs: list[FoldJob]) -> None:
        ctx = mp.get_context("fork")
        if jobs:  # what every fold's optimiser imports (about 1 s of CPU): here, not in each worker
            import torch._dynamo  # noqa: F401

        self.workers: list[_Worker] = []
        try:
            for job in jobs:
                here, there = ctx.Pipe(duplex=False)
                stop = ctx.Event()
                process = ctx.Process(target=_run, args=(job, there, stop), daemon=True)
                process.start()
                there.close()  # the worker's end: only the worker holds it now
                self.workers.append(_Worker(process, here, stop))
        except (OSError, AssertionError, ValueError) as e:  # no process could be started
            logger.warning("fold workers not started (%s): the folds train in sequence", e)
            self.close()
            self.workers = []

    def __enter__(self) -> FoldWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drain(self, event: TrainEvent | None = None) -> None:
        """Read whatever the workers sent so far (a callback of the first fold's training)."""
        for w in self.workers:
            self._read(w, block=False)

    def _read(self, w: _Worker, *, block: bool) -> None:
        while w.done is None and (block or w.conn.poll()):
            try:
                message = w.conn.recv()
            except EOFError:
                w.done = ("error", f"fold worker {w.process.pid} ended without a result")
                break
            if message[0] == "event":
                w.events.append(message[1])
            else:
                w.done = message
            block = False

    def collect(
        self, i: int, model: torch.nn.Module, callbacks: list[Callback], history: History
    ) -> TrainResult:
        """Worker ``i``'s fold: its events to ``callbacks`` (in order), its epoch records to
        ``history``, its weights into ``model``; its training result."""
        w = self.workers[i]
        stopped = False
        while True:
            self._read(w, block=not w.events)
            while w.events:
                event = w.events.pop(0)
                if event.kind == "epoch_end" and event.record is not None:
                    history.append(event.record)
                if not stopped:
                    try:
                        for cb in callbacks:
                            cb(event)
                    except KeyboardInterrupt:  # a stop asked for: the worker keeps its best
                        stopped = True
                        w.stop.set()
            if w.done is not None and not w.events:
                break
        if w.done[0] == "error":
            raise RuntimeError(f"training a fold in a worker process failed:\n{w.done[1]}")
        _, weights, result = w.done
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        model.eval()
        result.history = history
        return result

    def close(self) -> None:
        """Stop every worker still training, and join them all."""
        for w in self.workers:
            if w.process.is_alive():
                w.stop.set()
        deadline = time.monotonic() + 30
        for w in self.workers:
            while w.process.is_alive() and time.monotonic() < deadline:
                self._read(w, block=False)  # keep its pipe flowing, so that it can end
                w.process.join(timeout=0.05)
            if w.process.is_alive():
                logger.warning("fold worker %d did not stop: terminating it", w.process.pid)
                w.process.terminate()
                w.process.join()
            w.conn.close()


def _run(job: FoldJob, conn: Connection, stop: Any) -> None:
    """A worker: train the fold, sending each event, then the weights and result."""

    def send(event: TrainEvent) -> None:
        conn.send(("event", event))
        if stop.is_set() and event.kind not in ("train_begin", "train_end"):
            raise KeyboardInterrupt  # caught by the training loop: the best weights are kept

    try:
        module, result = job([send], History())
        weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        result.history = History()  # the records went with the events
        conn.send(("done", weights, result))
    except BaseException:  # reported to the parent, which raises
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
