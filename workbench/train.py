"""The one training loop of the workbench's LSTMs (key model and parameter models), kept outside
the ``nn.Module``.

:func:`run_training` is the loop: epochs of optimiser steps, progress reported to callbacks (any
callable taking a :class:`TrainEvent`), a :class:`History` of per-epoch records for plots, and a
``KeyboardInterrupt`` (Ctrl-C, "interrupt kernel" in a notebook, or a callback raising it) that ends
training early with the best weights so far, so the model stays usable. What a step, the validation
and early stopping do is a :class:`TrainingTask`'s. :func:`train_module` is the common task: any
module on in-memory tensors with a per-example loss, optional per-example weights (the key model
trains on *distinct* examples weighted by how often they occur) and early stopping on a validation
set; deterministic for a given seed, on CUDA when present.

>>> import torch
>>> x = torch.linspace(-1, 1, 64).reshape(-1, 1); y = 3 * x
>>> net = torch.nn.Linear(1, 1)
>>> mse = lambda out, target: ((out - target) ** 2).mean(dim=1)
>>> result = train_module(net, x, y, mse, config=TrainConfig(max_epochs=200, learning_rate=0.05),
...                       seed=0, device="cpu")
>>> result.stopped, round(net.weight.detach().item(), 1)
('max_epochs', 3.0)
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from workbench.config import Config, require

__all__ = [
    "Callback",
    "EventRecorder",
    "History",
    "TqdmProgress",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "TrainingTask",
    "pick_device",
    "run_training",
    "seed_everything",
    "torch_threads",
    "train_module",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig(Config):
    """Optimisation settings of :func:`train_module` (Adam, mini-batches, early stopping)."""

    max_epochs: int = 100  # upper bound on passes over the training examples
    batch_size: int = 512  # examples per gradient step
    learning_rate: float = 3e-3  # Adam step size
    weight_decay: float = 0.0  # Adam L2 penalty
    patience: int = 5  # epochs without validation improvement before stopping; 0 never stops
    min_delta: float = 1e-4  # smallest decrease of the validation loss that counts as improvement
    grad_clip: float | None = 1.0  # max gradient norm, None for no clipping
    min_batches: int = 8  # gradient steps per epoch at least (tiny data sets pass over it again)

    def validate(self) -> None:
        require(self.max_epochs >= 0, f"max_epochs must be >= 0, got {self.max_epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        require(self.patience >= 0, f"patience must be >= 0, got {self.patience}")


@dataclass(frozen=True)
class TrainEvent:
    """What a callback receives.

    ``kind`` is ``"train_begin"``, ``"batch_end"``, ``"epoch_end"`` or ``"train_end"``. Losses are
    weighted means over the examples seen; ``val_loss`` is None without a validation set.
    ``record`` (``epoch_end`` only) is the epoch's :class:`History` record, with what the model
    adds of its own (the parameter model: how many keys improved, how many still train).
    """

    kind: str
    phase: str  # caller-given label, e.g. "split" or "refit"
    epoch: int  # 1-based; 0 before the first epoch
    max_epochs: int
    batch: int = 0
    n_batches: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    seconds: float = 0.0  # since train_begin
    stopped: str | None = None  # train_end only: why training stopped
    record: dict[str, Any] | None = field(default=None, hash=False)  # epoch_end: History record


Callback = Callable[[TrainEvent], None]


class History(list):
    """Per-epoch records (dicts with ``epoch``, ``phase``, ``train_loss``, ``val_loss``,
    ``seconds``)."""

    def to_frame(self) -> Any:
        """The records as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame(list(self))

    def best_epoch(self, phase: str | None = None) -> int | None:
        """Epoch with the lowest validation loss (of ``phase`` when given), or None."""
        rows = [r for r in self if r.get("val_loss") is not None and phase in (None, r["phase"])]
        return min(rows, key=lambda r: r["val_loss"])["epoch"] if rows else None


@dataclass
class TrainResult:
    """Outcome of :func:`train_module`; the module holds the returned weights."""

    history: History
    best_epoch: int  # epoch whose weights the module holds (last epoch without validation)
    stopped: str  # "max_epochs", "early_stopping" or "interrupted"
    seconds: float
    best_val_loss: float | None = None


class TqdmProgress:
    """A terminal progress bar over epochs (callback for :func:`train_module`)."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self.tqdm_kwargs = tqdm_kwargs
        self._bar: Any = None

    def __call__(self, event: TrainEvent) -> None:
        if event.kind == "train_begin":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=event.max_epochs, desc=event.phase or "train", **self.tqdm_kwargs
            )
        elif event.kind == "epoch_end" and self._bar is not None:
            post = {"loss": f"{event.train_loss:.4f}"}
            if event.val_loss is not None:
                post["val"] = f"{event.val_loss:.4f}"
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)
        elif event.kind == "train_end" and self._bar is not None:
            self._bar.close()
            self._bar = None


class EventRecorder:
    """Keeps every event it receives (``kinds`` filters); handy for widgets and tests."""

    def __init__(self, kinds: Iterable[str] | None = None) -> None:
        self.kinds = None if kinds is None else set(kinds)
        self.events: list[TrainEvent] = []

    def __call__(self, event: TrainEvent) -> None:
        if self.kinds is None or event.kind in self.kinds:
            self.events.append(event)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


CPU_THREADS = 1
"""Intra-op threads for the small LSTMs on the CPU. One thread is within a few per cent of two for
these sizes on an idle machine and many times faster when another process holds a core (the worker
threads then spin waiting for each other)."""


@contextlib.contextmanager
def torch_threads(n: int | None = CPU_THREADS) -> Iterator[None]:
    """Temporarily set ``torch.set_num_threads(n)`` (None leaves it as it is)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (CPU and CUDA) for weight initialisation; return a generator for shuffling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _as_tuple(x: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return (x,) if isinstance(x, torch.Tensor) else tuple(x)


def _weighted_loss(
    module: nn.Module,
    loss_fn: LossFn,
    inputs: tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    per_example = loss_fn(module(*inputs), targets)  # (B,)
    assert per_example.dim() == 1, "loss_fn must return one loss per example (reduction='none')"
    if weights is None:
        return per_example.sum(), torch.tensor(float(len(per_example)), device=per_example.device)
    return (per_example * weights).sum(), weights.sum()


def _evaluate(
    module: nn.Module,
    loss_fn: LossFn,
    data: tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor | None],
    batch_size: int,
) -> float:
    inputs, targets, weights = data
    total, weight = 0.0, 0.0
    module.eval()
    with torch.inference_mode():
        for start in range(0, len(targets), batch_size * 8):
            sl = slice(start, start + batch_size * 8)
            w = None if weights is None else weights[sl]
            loss, n = _weighted_loss(module, loss_fn, tuple(x[sl] for x in inputs), targets[sl], w)
            total, weight = total + float(loss), weight + float(n)
    return total / max(weight, 1e-12)


class TrainingTask(Protocol):
    """The model-specific steps :func:`run_training` drives (the loop owns epochs, events,
    history, threads and interrupts; the task the optimiser, batch order, validation and best
    weights). :func:`train_module` has one; the parameter model's is in
    :mod:`workbench.params.training`."""

    def begin_epoch(self, epoch: int) -> None: ...  # batch order, training mode

    def train_batch(self, epoch: int, batch: int) -> tuple[float, float]:
        """One optimiser step: (summed loss, weight) of the batch, for the epoch's mean."""

    def evaluate(self, epoch: int) -> float | None: ...  # validation loss (None: no validation)

    def record(self, epoch: int, train_loss: float, val_loss: float | None, seconds: float) -> dict:
        """The epoch's :class:`History` record (also sent with the ``epoch_end`` event)."""

    def should_stop(self, epoch: int, val_loss: float | None) -> bool:
        """After ``epoch_end``: keep the best weights; True to stop early."""

    def finish(self, stopped: str, epoch: int) -> tuple[int, float | None]:
        """Restore the best weights; (best epoch, best validation loss or None)."""


def run_training(
    task: TrainingTask,
    *,
    max_epochs: int,
    n_batches: int,
    callbacks: Iterable[Callback] = (),
    phase: str = "train",
    history: list | None = None,
    num_threads: int | None = None,
) -> TrainResult:
    """Run ``task`` for up to ``max_epochs`` epochs of ``n_batches`` steps, reporting
    :class:`TrainEvent` objects to ``callbacks`` and appending one record per epoch to
    ``history``. A ``KeyboardInterrupt`` (raised by the user or by a callback) ends training with
    the task's best weights so far; ``num_threads`` sets the CPU threads meanwhile (None: as is)."""
    callbacks = list(callbacks)
    history = History() if history is None else history

    def emit(**kw: Any) -> None:
        event = TrainEvent(phase=phase, max_epochs=max_epochs, n_batches=n_batches, **kw)
        for cb in callbacks:
            cb(event)

    t0 = time.perf_counter()
    stopped, epoch = "max_epochs", 0
    emit(kind="train_begin", epoch=0)
    try:
        with torch_threads(num_threads):
            for epoch in range(1, max_epochs + 1):
                task.begin_epoch(epoch)
                total, weight = 0.0, 0.0
                for b in range(n_batches):
                    loss, w = task.train_batch(epoch, b)
                    total, weight = total + loss, weight + w
                    emit(kind="batch_end", epoch=epoch, batch=b + 1,
                         train_loss=total / max(weight, 1e-12),
                         seconds=time.perf_counter() - t0)  # fmt: skip
                train_loss = total / max(weight, 1e-12)
                val_loss = task.evaluate(epoch)
                seconds = time.perf_counter() - t0
                record = task.record(epoch, train_loss, val_loss, seconds)
                history.append(record)
                emit(kind="epoch_end", epoch=epoch, train_loss=train_loss, val_loss=val_loss,
                     seconds=seconds, record=record)  # fmt: skip
                if task.should_stop(epoch, val_loss):
                    stopped = "early_stopping"
                    break
    except KeyboardInterrupt:
        stopped = "interrupted"
        logger.warning("training interrupted at epoch %d; keeping the best weights so far", epoch)
    best_epoch, best_loss = task.finish(stopped, epoch)
    seconds = time.perf_counter() - t0
    emit(kind="train_end", epoch=epoch, seconds=seconds, stopped=stopped)
    logger.info(
        "%s: %s after %d epochs (best %d) in %.1f s", phase, stopped, epoch, best_epoch, seconds
    )
    result_history = history if isinstance(history, History) else History(history)
    return TrainResult(result_history, best_epoch, stopped, seconds, best_loss)


class _ModuleTask:
    """:func:`train_module`'s task: one module, Adam, shuffled mini-batches, early stopping."""

    def __init__(self, module, loss_fn, data, val, config, seed, phase) -> None:
        self.module, self.loss_fn, self.config, self.phase = module, loss_fn, config, phase
        self.x, self.y, self.w = data
        self.val = val
        n = len(self.y)
        self.batch_size = max(1, min(config.batch_size, n))
        self.n_batches = max(-(-n // self.batch_size), config.min_batches)
        self.n_passes = -(-(self.n_batches * self.batch_size) // max(n, 1))
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = torch.optim.Adam(
            module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.best_loss, self.best_epoch, self.best_state, self.waited = np.inf, 0, None, 0
        self.order = torch.empty(0, dtype=torch.long)

    def begin_epoch(self, epoch: int) -> None:
        self.module.train()
        n = len(self.y)
        perms = [torch.randperm(n, generator=self.generator) for _ in range(self.n_passes)]
        self.order = torch.cat(perms).to(self.y.device)

    def train_batch(self, epoch: int, batch: int) -> tuple[float, float]:
        idx = self.order[batch * self.batch_size : (batch + 1) * self.batch_size]
        w = None if self.w is None else self.w[idx]
        inputs = tuple(t[idx] for t in self.x)
        loss_sum, wsum = _weighted_loss(self.module, self.loss_fn, inputs, self.y[idx], w)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_sum / wsum.clamp_min(1e-12)).backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return loss_sum.detach().item(), wsum.detach().item()

    def evaluate(self, epoch: int) -> float | None:
        if self.val is None:
            return None
        return _evaluate(self.module, self.loss_fn, self.val, self.config.batch_size)

    def record(self, epoch: int, train_loss: float, val_loss: float | None, seconds: float) -> dict:
        return {
            "epoch": epoch,
            "phase": self.phase,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "seconds": seconds,
        }

    def should_stop(self, epoch: int, val_loss: float | None) -> bool:
        if val_loss is None:
            self.best_epoch = epoch
            return False
        if val_loss < self.best_loss - self.config.min_delta:
            self.best_loss, self.best_epoch, self.waited = val_loss, epoch, 0
            self.best_state = copy.deepcopy(self.module.state_dict())
            return False
        self.waited += 1
        return bool(self.config.patience and self.waited >= self.config.patience)

    def finish(self, stopped: str, epoch: int) -> tuple[int, float | None]:
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        elif self.val is None and stopped == "interrupted":
            self.best_epoch = max(epoch - 1, 0)  # the last completed epoch
        self.module.eval()
        return self.best_epoch, None if self.best_state is None else float(self.best_loss)


def train_module(
    module: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    targets: torch.Tensor,
    loss_fn: LossFn,
    *,
    weights: torch.Tensor | None = None,
    validation: tuple[Any, torch.Tensor, torch.Tensor | None] | None = None,
    config: TrainConfig = TrainConfig(),
    callbacks: Iterable[Callback] = (),
    seed: int = 0,
    device: str | torch.device | None = None,
    phase: str = "train",
    history: History | None = None,
    num_threads: int | None = CPU_THREADS,
) -> TrainResult:
    """Train ``module`` in place with Adam on mini-batches (through :func:`run_training`).

    ``module(*inputs_batch)`` must return what ``loss_fn`` takes; ``loss_fn(outputs, targets)``
    returns ``(B,)`` per-example losses. ``inputs`` (one tensor or a sequence) and ``targets`` have
    one example per row; ``weights`` are optional ``(n,)`` per-example weights (e.g. how often a
    distinct example occurs). ``validation=(inputs, targets, weights)`` enables early stopping, and
    the weights of the epoch with the lowest validation loss are restored at the end. ``callbacks``
    receive :class:`TrainEvent` objects; ``seed`` seeds the shuffling (initialise the weights after
    :func:`seed_everything`); ``device`` defaults to CUDA when available (the module stays there);
    ``phase`` labels events and history records; ``history`` is a :class:`History` to append the
    epoch records to (several phases in one); ``num_threads`` sets the CPU threads meanwhile (see
    :data:`CPU_THREADS`; None keeps torch's setting).
    """
    dev = pick_device(device)
    module.to(dev)

    def on_device(x: Any, y: torch.Tensor, w: torch.Tensor | None) -> tuple[Any, ...]:
        w = None if w is None else w.to(dev, dtype=torch.float32)
        return tuple(t.to(dev) for t in _as_tuple(x)), y.to(dev), w

    val = on_device(*validation) if validation is not None and len(validation[1]) else None
    data = on_device(inputs, targets, weights)
    task = _ModuleTask(module, loss_fn, data, val, config, seed, phase)
    return run_training(
        task,
        max_epochs=config.max_epochs,
        n_batches=task.n_batches,
        callbacks=callbacks,
        phase=phase,
        history=History() if history is None else history,
        num_threads=num_threads if dev.type == "cpu" else None,
    )
