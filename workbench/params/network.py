"""The network of the parameter model: every key's LSTM regressor, stacked into one module.

All keys are trained at once: the per-key LSTMs are stacked into one module (:class:`ParamLSTM`)
whose weights carry a leading "model" axis, so every optimisation step updates every key's own LSTM
with batched matrix products. The models never share a weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from workbench.config import require

__all__ = ["ROWS_PER_PASS", "ParamLSTM", "masked_mse"]

ROWS_PER_PASS = 1024
"""Windows (over all models) one forward pass reads without gradients; larger batches are cut."""


class ParamLSTM(nn.Module):
    """``n_models`` independent LSTM regressors run side by side (one per log key).

    Each weight has a leading model axis, so one call runs every key's LSTM with batched matrix
    products. Inputs are windows of ``history`` steps with ``2 * n_dims`` features (normalised values,
    then observed flags); the output is the predicted next vector (``n_dims`` normalised values).

    >>> m = ParamLSTM(n_models=3, n_dims=2, hidden_size=8, num_layers=2)
    >>> m(torch.zeros(3, 4, 5, 4)).shape
    torch.Size([3, 4, 2])
    >>> m(torch.zeros(1, 4, 5, 4), models=torch.tensor([2])).shape
    torch.Size([1, 4, 2])
    """

    def __init__(
        self,
        n_models: int,
        n_dims: int,
        hidden_size: int = 32,
        num_layers: int = 2,
        seeds: Sequence[int] | None = None,
    ):
        super().__init__()
        require(n_models >= 1 and n_dims >= 1, "need at least one model and one dimension")
        self.n_models, self.n_dims = n_models, n_dims
        self.hidden_size, self.num_layers = hidden_size, num_layers
        h4 = 4 * hidden_size

        def empty(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(n_models, *shape))

        n_in = [2 * n_dims] + [hidden_size] * (num_layers - 1)
        self.w_ih = nn.ParameterList([empty(n_in[i], h4) for i in range(num_layers)])
        self.w_hh = nn.ParameterList([empty(hidden_size, h4) for _ in range(num_layers)])
        self.bias = nn.ParameterList([empty(1, h4) for _ in range(num_layers)])
        self.w_out = empty(hidden_size, n_dims)
        self.b_out = empty(1, n_dims)
        self.reset_parameters(seeds)

    def reset_parameters(self, seeds: Sequence[int] | None = None) -> None:
        """Initialise every model; with ``seeds`` (one per model) each model's draw is its own,
        so a key's initial weights do not depend on which other keys are trained beside it."""
        require(seeds is None or len(seeds) == self.n_models, "need one seed per model")
        H = self.hidden_size
        bound = 1.0 / math.sqrt(H)
        with torch.no_grad():
            for i in range(self.n_models):
                gen = None if seeds is None else torch.Generator().manual_seed(int(seeds[i]))
                for p in [*self.w_ih, *self.w_hh, *self.bias, self.w_out]:
                    p[i].copy_(torch.empty(p.shape[1:]).uniform_(-bound, bound, generator=gen))
                for b in self.bias:  # forget gates start open
                    b[i, :, H : 2 * H] = 1.0
                self.b_out[i].zero_()

    def forward(self, x: torch.Tensor, models: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the next vector. ``x``: ``[M, B, T, 2*n_dims]``; ``models``: ``[M]`` model ids.

        Without gradients (validation, scoring) on the CPU a large batch runs in pieces of about
        :data:`ROWS_PER_PASS` windows: the same numbers, with the step tensors kept in the CPU's
        cache (twice as fast as one pass over tens of thousands of windows).
        """
        M, B = x.shape[:2]
        per = max(1, ROWS_PER_PASS // M)
        if per < B and not torch.is_grad_enabled() and x.device.type == "cpu":
            return torch.cat(
                [self._forward(x[:, i : i + per], models) for i in range(0, B, per)], 1
            )
        return self._forward(x, models)

    def _forward(self, x: torch.Tensor, models: torch.Tensor | None) -> torch.Tensor:
        M, B, T, F = x.shape
        require(2 * self.n_dims == F, f"expected {2 * self.n_dims} features per step, got {F}")
        if models is None:
            require(self.n_models == M, f"expected {self.n_models} model groups, got {M}")

        def pick(p: torch.Tensor) -> torch.Tensor:
            return p if models is None else p[models]

        H = self.hidden_size
        seq = x  # [M, B, T, F]
        for layer in range(self.num_layers):
            w_ih, w_hh, b = pick(self.w_ih[layer]), pick(self.w_hh[layer]), pick(self.bias[layer])
            pre = torch.bmm(seq.reshape(M, B * T, -1), w_ih).reshape(M, B, T, 4 * H) + b[:, :, None]
            h = x.new_zeros(M, B, H)  # [M, B, H]
            c = x.new_zeros(M, B, H)
            outs = []
            for t in range(T):
                gates = pre[:, :, t] + torch.bmm(h, w_hh)  # [M, B, 4H]
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            seq = torch.stack(outs, dim=2)  # [M, B, T, H]
        return torch.baddbmm(pick(self.b_out), h, pick(self.w_out))  # [M, B, n_dims]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Per-window MSE over observed dimensions; ``[..., D]`` -> ``[...]`` (0 where none observed)."""
    sq = (pred - target) ** 2 * observed
    return sq.sum(-1) / observed.sum(-1).clamp(min=1.0)
