"""The parameter model's online update: learn one confirmed-normal example of one key.

A user who reports a false positive confirms that value normal after that history. The key's own
LSTM takes a few Adam steps on a batch of the example plus windows replayed from the key's original
training windows (so it does not forget them); the example weighs as much as the replayed windows
together (as in the key model's update). The hyper-parameters are the config's ``update_*``
fields.

With a confidence ``level``, the steps go on after ``update_steps``, up to ``update_max_steps``,
until the example's MSE is within that level's threshold, and they keep the replayed training
windows the threshold accepted before: a step that pushes one of them out is taken back and the
steps stop (the key's model sees only the key's own values, so a new situation's timing can fight
an old one's); an example more than :data:`FAR` times the threshold away takes no step at all.
Whatever the steps reach, the example's vector is kept as a value confirmed normal
for the key (:mod:`workbench.params.confirmed`): scoring expects it beside the prediction, so the
same value on the next session is normal too, whatever history comes before it there. Only the
key's own LSTM and record change; its threshold stays as validation fitted it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from workbench.params.batches import stack
from workbench.params.confirmed import remember
from workbench.params.network import masked_mse
from workbench.params.scaling import TRAINED, normalise
from workbench.params.vectors import windows
from workbench.train import torch_threads

if TYPE_CHECKING:
    from workbench.params.model import ParamModel

__all__ = ["FAR", "learn_example"]

logger = logging.getLogger(__name__)

#: With a level, an example whose MSE before the steps is above FAR times the key's threshold
#: takes no step: it is kept as confirmed, and steps towards a value that far drag the key's other
#: predictions with it (in bench/bgl_online.py's drift scenario a batch of a new operation's
#: starts, 25 standard deviations off, moved the normal VMs' starts over the threshold).
FAR = 4.0


def learn_example(
    model: ParamModel,
    key: int,
    history_vectors: Iterable[Iterable[float]],
    next_vector: Iterable[float],
    *,
    seed: int | None = 0,
    level: float | None = None,
) -> dict[str, Any]:
    """:meth:`ParamModel.partial_fit <workbench.params.model.ParamModel.partial_fit>` (see there);
    returns what it stores in ``last_update_``."""
    info = model.keys_.get(int(key))
    if info is None or info["status"] != TRAINED:
        raise ValueError(f"key {key} has no parameter model to update")
    assert model.module_ is not None
    vector = np.asarray(list(next_vector), dtype=float).ravel()
    X, Y, O = _example_batch(model, int(key), history_vectors, vector, seed)
    th = model.thresholds_[int(key)]
    limit = np.inf if level is None else float(th.threshold(level))
    slot = torch.as_tensor([info["slot"]], device=model.device_)
    model.module_.train()
    with torch_threads(model.config.cpu_threads):
        taken, mse, first = _steps(model, (X, Y, O), slot, limit, guard=level is not None)
    model.module_.eval()
    info["updates"] = info.get("updates", 0) + 1
    kept = remember(info, vector)
    logger.info("key %d: partial_fit done in %d steps, example MSE %.4f", key, taken, mse)
    return {
        "steps": taken,
        "mse": mse,
        "mse_before": first,
        "within": bool(mse <= limit),
        "confirmed": len(info["confirmed"]),
        "confirmed_new": kept,
    }


def _example_batch(
    model: ParamModel,
    key: int,
    history_vectors: Iterable[Iterable[float]],
    next_vector: Iterable[float],
    seed: int | None,
) -> tuple[torch.Tensor, ...]:
    """One key's batch: the example's window first, then the replayed training windows."""
    info, cfg = model.keys_[key], model.config
    d, T = len(info["names"]), cfg.history
    hist = np.asarray(list(history_vectors), dtype=float).reshape(-1, d)[-T:]
    nxt = np.asarray(list(next_vector), dtype=float).reshape(d)
    if not np.isfinite(nxt).any():
        raise ValueError("next_vector has no observed value to learn from")
    z = normalise(info, np.vstack([hist, nxt[None]])).astype(np.float32)
    x_new = windows(z, T)[-1:]  # [1, T, 2d]
    y_new = z[-1:]
    rx, ry = model.replay_.get(key, (x_new[:0], y_new[:0]))
    rng = np.random.default_rng(seed)
    torch.manual_seed(int(rng.integers(2**31)))
    pick = rng.choice(len(rx), min(cfg.update_replay, len(rx)), replace=False) if len(rx) else []
    part = (np.concatenate([x_new, rx[pick]]), np.concatenate([y_new, ry[pick]]))
    return stack([part], model.n_dims_, T, model.device_)


def _steps(
    model: ParamModel,
    batch: tuple[torch.Tensor, ...],
    slot: torch.Tensor,
    limit: float,
    *,
    guard: bool,
) -> tuple[int, float, float]:
    """Adam steps on ``batch``; returns (steps taken, the example's MSE, its MSE before)."""
    cfg, module = model.config, model.module_
    assert module is not None
    X, Y, O = batch
    opt = torch.optim.Adam(module.parameters(), lr=cfg.update_rate)
    taken, kept, previous, first = 0, None, None, np.inf
    steps, max_steps = cfg.update_steps, cfg.update_max_steps
    while True:
        per_window = masked_mse(module(X, slot), Y, O)  # [1, N]
        mse = float(per_window[0, 0].detach())  # the taught example comes first
        within = per_window[0, 1:].detach() <= limit
        if kept is None:
            kept = within  # the replayed windows the rule accepts before the update
            first = mse
            if guard and mse > FAR * limit:  # far from what the key's model predicts: the
                break  # value is kept as confirmed, and steps towards it would drag the others
        elif bool((kept & ~within).any()):
            # The step pushed a training window out of the threshold: the key's model cannot hold
            # both (it sees only the key's own values, not their situation), so the weights
            # before the step stay and the threshold takes the value.
            assert previous is not None
            module.load_state_dict(previous)
            mse = float(masked_mse(module(X, slot), Y, O)[0, 0].detach())
            break
        if taken >= max(1, steps) and (mse <= limit or taken >= max(steps, max_steps)):
            break
        if guard:
            previous = {n: t.detach().clone() for n, t in module.state_dict().items()}
        replayed = per_window[0, 1:]
        loss = per_window[0, 0] if not len(replayed) else (per_window[0, 0] + replayed.mean()) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        taken += 1
    return taken, mse, first
