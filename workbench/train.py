"""A small, generic training loop for the workbench's LSTMs, kept outside the ``nn.Module``.

:func:`train_module` fits any module on in-memory tensors with a per-example loss (cross-entropy for
the key model, mean squared error for parameter-value models), optional per-example weights (the key
model trains on *distinct* examples weighted by how often they occur), early stopping on a
validation set, and reports progress through callbacks: any callable taking a :class:`TrainEvent`. A
:class:`History` of per-epoch dicts is kept for plots. The loop is deterministic for a given seed,
uses CUDA when present, and a ``KeyboardInterrupt`` (Ctrl-C, or "interrupt kernel" in a notebook)
ends training early with the best weights so far restored, so the model stays usable.

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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Callback",
    "EventRecorder",
    "History",
    "TqdmProgress",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "pick_device",
    "seed_everything",
    "torch_threads",
    "train_module",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of :func:`train_module` (Adam, mini-batches, early stopping)."""

    max_epochs: int = 100  # upper bound on passes over the training examples
    batch_size: int = 512  # examples per gradient step
    learning_rate: float = 3e-3  # Adam step size
    weight_decay: float = 0.0  # Adam L2 penalty
    patience: int = 5  # epochs without validation improvement before stopping; 0 never stops
    min_delta: float = 1e-4  # smallest decrease of the validation loss that counts as improvement
    grad_clip: float | None = 1.0  # max gradient norm, None for no clipping
    min_batches: int = 8  # gradient steps per epoch at least (tiny data sets pass over it again)

    def __post_init__(self) -> None:
        assert self.max_epochs >= 0, f"max_epochs must be >= 0, got {self.max_epochs}"
        assert self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"
        assert self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"
        assert self.patience >= 0, f"patience must be >= 0, got {self.patience}"


@dataclass(frozen=True)
class TrainEvent:
    """What a callback receives.

    ``kind`` is ``"train_begin"``, ``"batch_end"``, ``"epoch_end"`` or ``"train_end"``. Losses are
    weighted means over the examples seen; ``val_loss`` is None without a validation set.
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
    """Train ``module`` in place with Adam on mini-batches.

    Parameters
    ----------
    module
        Any module; ``module(*inputs_batch)`` must return what ``loss_fn`` takes.
    inputs, targets
        Training examples (one tensor or a sequence of tensors for ``inputs``); first dimension =
        examples.
    loss_fn
        ``(outputs, targets) -> (B,)`` per-example losses.
    weights
        Optional ``(n,)`` per-example weights (e.g. how often a distinct example occurs).
    validation
        Optional ``(inputs, targets, weights)``; enables early stopping, and the weights of the
        epoch with the lowest validation loss are restored at the end.
    config
        Optimisation settings.
    callbacks
        Callables receiving :class:`TrainEvent` objects.
    seed
        Seeds shuffling (weights should be initialised by the caller after :func:`seed_everything`).
    device
        Where to train; default CUDA when available, else the CPU. The module stays there.
    phase
        A label copied into events and history records.
    history
        Append the epoch records to this History (e.g. to keep several phases in one).
    num_threads
        CPU threads while training (see :data:`CPU_THREADS`); None keeps torch's setting.
    """
    dev = pick_device(device)
    callbacks = list(callbacks)
    history = History() if history is None else history
    module.to(dev)
    x = tuple(t.to(dev) for t in _as_tuple(inputs))
    y = targets.to(dev)
    w = None if weights is None else weights.to(dev, dtype=torch.float32)
    val = None
    if validation is not None and len(validation[1]):
        vx, vy, vw = validation
        val = (
            tuple(t.to(dev) for t in _as_tuple(vx)),
            vy.to(dev),
            None if vw is None else vw.to(dev, dtype=torch.float32),
        )
    n = len(y)
    batch_size = max(1, min(config.batch_size, n))
    n_batches = max(-(-n // batch_size), config.min_batches)
    n_passes = -(-(n_batches * batch_size) // max(n, 1))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )

    def emit(**kw: Any) -> None:
        event = TrainEvent(phase=phase, max_epochs=config.max_epochs, **kw)
        for cb in callbacks:
            cb(event)

    t0 = time.perf_counter()
    best_loss, best_epoch, best_state, waited = np.inf, 0, None, 0
    stopped, epoch = "max_epochs", 0
    emit(kind="train_begin", epoch=0, n_batches=n_batches)
    threads = contextlib.ExitStack()
    threads.enter_context(torch_threads(num_threads if dev.type == "cpu" else None))
    try:
        for epoch in range(1, config.max_epochs + 1):
            module.train()
            order = torch.cat([torch.randperm(n, generator=generator) for _ in range(n_passes)])
            order = order.to(dev)
            total, weight = 0.0, 0.0
            for b in range(n_batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                loss_sum, wsum = _weighted_loss(
                    module, loss_fn, tuple(t[idx] for t in x), y[idx], None if w is None else w[idx]
                )
                optimizer.zero_grad(set_to_none=True)
                (loss_sum / wsum.clamp_min(1e-12)).backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
                optimizer.step()
                total, weight = total + loss_sum.detach().item(), weight + wsum.detach().item()
                emit(
                    kind="batch_end",
                    epoch=epoch,
                    batch=b + 1,
                    n_batches=n_batches,
                    train_loss=total / max(weight, 1e-12),
                    seconds=time.perf_counter() - t0,
                )
            train_loss = total / max(weight, 1e-12)
            val_loss = None if val is None else _evaluate(module, loss_fn, val, config.batch_size)
            seconds = time.perf_counter() - t0
            history.append(
                {
                    "epoch": epoch,
                    "phase": phase,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "seconds": seconds,
                }
            )
            emit(
                kind="epoch_end",
                epoch=epoch,
                n_batches=n_batches,
                train_loss=train_loss,
                val_loss=val_loss,
                seconds=seconds,
            )
            if val_loss is None:
                best_epoch = epoch
                continue
            if val_loss < best_loss - config.min_delta:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                waited += 1
                if config.patience and waited >= config.patience:
                    stopped = "early_stopping"
                    break
    except KeyboardInterrupt:
        stopped = "interrupted"
        logger.warning("training interrupted at epoch %d; keeping the best weights so far", epoch)
    finally:
        threads.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    elif val is None and stopped == "interrupted":
        best_epoch = max(epoch - 1, 0)  # the last completed epoch
    module.eval()
    seconds = time.perf_counter() - t0
    emit(kind="train_end", epoch=epoch, n_batches=n_batches, seconds=seconds, stopped=stopped)
    logger.info(
        "%s: %s after %d epochs (best %d) in %.1f s", phase, stopped, epoch, best_epoch, seconds
    )
    return TrainResult(
        history, best_epoch, stopped, seconds, None if best_state is None else float(best_loss)
    )


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """``TrainConfig`` as a plain dict."""
    return asdict(config)
