"""Training of the parameter model: every key's LSTM at once, each with its own early stopping.

The stacked module (:class:`~workbench.params.network.ParamLSTM`) trains through the workbench's
one training loop (:func:`workbench.train.run_training`, the same loop and :class:`TrainEvent`
reports as the key model); what is particular to the parameter model is this module's
:class:`TrainingTask`: each step takes a batch of every key still training, the loss is the sum of
the keys' own mean losses (so no key's gradient depends on another's), each key is validated on
its own chronological validation windows, keeps the weights of its own best epoch, and stops after
``patience`` epochs without improvement; training ends when every key has stopped.

Each key draws its batch order from its own random stream (seeded by ``(seed, key)``), so a key's
model depends on its own entries and the seed, not on which other keys are trained beside it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import torch

from workbench.params.batches import KeyData, stack
from workbench.params.config import ParamModelConfig
from workbench.params.network import ParamLSTM, masked_mse
from workbench.train import Callback, History, TrainResult, run_training

__all__ = ["train_keys"]

_MAX_STOP_WINDOWS = 1024  # validation windows per key used for early stopping (all set thresholds)
_MIN_IMPROVEMENT = 1e-6  # smallest decrease of a key's validation loss that counts


class _PerKeyTask:
    """The parameter model's :class:`~workbench.train.TrainingTask` (see the module docstring)."""

    def __init__(
        self,
        module: ParamLSTM,
        data: list[KeyData],
        rngs: list[np.random.Generator],
        cfg: ParamModelConfig,
        device: torch.device,
    ) -> None:
        self.module, self.data, self.rngs, self.cfg, self.device = module, data, rngs, cfg, device
        K = len(data)
        self.train_idx = [np.flatnonzero(np.isfinite(d.raw[: d.cut]).any(axis=1)) for d in data]
        val_idx = [d.cut + np.flatnonzero(np.isfinite(d.raw[d.cut :]).any(axis=1)) for d in data]
        val_idx = [
            np.sort(r.permutation(v)[:_MAX_STOP_WINDOWS])
            for r, v in zip(rngs, val_idx, strict=True)
        ]
        self.val = self._stack([(d.x[v], d.z[v]) for d, v in zip(data, val_idx, strict=True)])
        self.vcount = self.val[2].amax(-1).sum(-1).clamp(min=1.0)  # [K] validation windows per key
        self.opt = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate)
        self.best_loss = np.full(K, np.inf)
        self.best_epoch = np.zeros(K, dtype=np.int64)
        self.best_state = {n: p.detach().clone() for n, p in module.named_parameters()}
        self.stale = np.zeros(K, dtype=np.int64)
        # each step takes a batch of every key
        self.n_batches = min(cfg.steps_per_epoch, max(len(t) for t in self.train_idx))
        self.improved = np.zeros(K, dtype=bool)
        self.vloss = np.full(K, np.inf)

    def _stack(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, ...]:
        return stack(parts, self.module.n_dims, self.cfg.history, self.device)

    def begin_epoch(self, epoch: int) -> None:
        self.t0 = time.perf_counter()
        self.active = np.flatnonzero(self.stale <= self.cfg.patience)
        # every key still training: the stacked weights as they are, no gathered copy
        everyone = len(self.active) == len(self.data)
        self.models = None if everyone else torch.as_tensor(self.active, device=self.device)
        self.rows = slice(None) if everyone else self.models
        cap = self.cfg.steps_per_epoch * self.cfg.batch_size
        self.perms = [self.rngs[k].permutation(self.train_idx[k])[:cap] for k in self.active]
        self.module.train()

    def train_batch(self, epoch: int, batch: int) -> tuple[float, float]:
        steps, parts = self.n_batches, []
        for j, k in enumerate(self.active):
            p = self.perms[j]
            chunk = p[batch * len(p) // steps : (batch + 1) * len(p) // steps]
            parts.append((self.data[k].x[chunk], self.data[k].z[chunk]))
        X, Y, O = self._stack(parts)
        per = masked_mse(self.module(X, self.models), Y, O)  # [A, B]
        has = O.amax(-1)  # [A, B] 1 where the window has a target
        loss_k = (per * has).sum(-1) / has.sum(-1).clamp(min=1.0)  # [A]
        self.opt.zero_grad(set_to_none=True)
        loss_k.sum().backward()
        self.opt.step()
        return float(loss_k.detach().mean()), 1.0

    def evaluate(self, epoch: int) -> float:
        """Validate the active keys and keep the weights of each key that improved."""
        active, models, rows = self.active, self.models, self.rows
        self.module.eval()
        with torch.no_grad():
            xa, ya, oa = (t[rows] for t in self.val)
            per = masked_mse(self.module(xa, models), ya, oa) * oa.amax(-1)  # [A, N]
            self.vloss = np.full(len(self.data), np.inf)
            self.vloss[active] = (per.sum(-1) / self.vcount[rows]).cpu().numpy()
        improved = np.zeros(len(self.data), dtype=bool)
        improved[active] = self.vloss[active] < self.best_loss[active] - _MIN_IMPROVEMENT
        self.best_loss[improved] = self.vloss[improved]
        self.best_epoch[improved] = epoch
        self.stale[improved] = 0
        self.stale[active[~improved[active]]] += 1
        sel = torch.as_tensor(np.flatnonzero(improved), device=self.device)
        with torch.no_grad():
            for n, p in self.module.named_parameters():
                self.best_state[n][sel] = p.detach()[sel]
        self.improved = improved
        return float(np.mean(self.vloss[active]))  # this epoch, active keys

    def record(self, epoch: int, train_loss: float, val_loss: float | None, seconds: float) -> dict:
        return {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "best_val_loss": float(np.mean(self.best_loss[np.isfinite(self.best_loss)])),
            "keys_improved": int(self.improved.sum()),
            "keys_active": len(self.active),
            "seconds": time.perf_counter() - self.t0,  # this epoch's
        }

    def should_stop(self, epoch: int, val_loss: float | None) -> bool:
        return not (self.stale <= self.cfg.patience).any()

    def finish(self, stopped: str, epoch: int) -> tuple[int, float | None]:
        with torch.no_grad():
            for n, p in self.module.named_parameters():
                p.copy_(self.best_state[n])
        self.module.eval()
        finite = self.best_loss[np.isfinite(self.best_loss)]
        return int(self.best_epoch.max()), float(finite.mean()) if len(finite) else None


def train_keys(
    module: ParamLSTM,
    data: list[KeyData],
    rngs: list[np.random.Generator],
    cfg: ParamModelConfig,
    device: torch.device,
    *,
    callbacks: Iterable[Callback] = (),
    history: History | None = None,
) -> tuple[TrainResult, np.ndarray]:
    """Train every key's LSTM in ``module`` (slot ``i`` = ``data[i]``, drawing from ``rngs[i]``)
    with per-key early stopping; returns the loop's result and each key's best epoch."""
    task = _PerKeyTask(module, data, rngs, cfg, device)
    result = run_training(
        task,
        max_epochs=cfg.max_epochs,
        n_batches=task.n_batches,
        callbacks=callbacks,
        history=history,
    )
    return result, task.best_epoch.copy()
