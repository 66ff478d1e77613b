"""The networks of the log-key model: a stacked LSTM over a window of keys, and an ensemble of them.

:class:`NextKeyLSTM` is DeepLog's network (docs/METHOD.md section 2): L stacked LSTM layers of alpha
units over the last h keys, then a linear layer giving logits over the next key. The training loop
is outside (:func:`workbench.train.train_module`), with :func:`cross_entropy` as its loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from workbench.keys.config import KeyModelConfig

__all__ = [
    "KeyEnsemble",
    "NextKeyLSTM",
    "PrefixTree",
    "build_network",
    "cross_entropy",
    "distinct_rows",
    "last_states",
    "lstm_over_prefixes",
    "mixture",
]


class NextKeyLSTM(nn.Module):
    """Stacked LSTM over a window of key indices -> logits over the next key.

    With ``session_counts`` each input row ends with ``n_keys`` more columns, the session's count
    of every key so far; a small network of ``log(1 + count)`` adds its logits to the LSTM's, so the
    prediction knows what the session has done before the window (how many replicas were written,
    whether a re-replication happened), whatever the interleaving of its parallel threads.

    >>> net = NextKeyLSTM(n_keys=7, hidden_size=8, num_layers=2)
    >>> net(torch.zeros(4, 10, dtype=torch.long)).shape
    torch.Size([4, 7])
    >>> NextKeyLSTM(7, hidden_size=8, num_layers=1, session_counts=True)(
    ...     torch.zeros(4, 10 + 7, dtype=torch.long)
    ... ).shape
    torch.Size([4, 7])
    """

    def __init__(
        self,
        n_keys: int,
        *,
        hidden_size: int,
        num_layers: int,
        embedding_dim: int | None = None,
        session_counts: bool = False,
    ) -> None:
        super().__init__()
        self.n_keys = n_keys
        self.embed = None if embedding_dim is None else nn.Embedding(n_keys, embedding_dim)
        in_dim = n_keys if embedding_dim is None else embedding_dim
        self.lstm = nn.LSTM(in_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, n_keys)
        self.counts = (
            nn.Sequential(nn.Linear(n_keys, hidden_size), nn.Tanh(), nn.Linear(hidden_size, n_keys))
            if session_counts
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 2, f"expected (batch, window) key indices, got shape {tuple(x.shape)}"
        windows, counts = self.split(x)
        last, rows = last_states([self], windows)
        return self.logits(last[0], rows, counts)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Input rows -> (their windows ``(B, h)``, counts ``(B, V)`` or None)."""
        if self.counts is None:
            return x, None
        return x[:, : -self.n_keys], x[:, -self.n_keys :]

    def last_state(self, windows: torch.Tensor) -> torch.Tensor:
        """The last layer's state ``(U, H)`` after each of ``(U, h)`` windows, by ``nn.LSTM``."""
        if self.embed is None:  # noqa: SIM108 (one shape comment per branch)
            e = F.one_hot(windows, self.n_keys).float()  # (U, h, V)
        else:
            e = self.embed(windows)  # (U, h, E)
        return self.lstm(e)[0][:, -1]  # (U, H)

    def input_table(self) -> torch.Tensor:
        """``(V, 4H)``: the first LSTM layer's input projection of every key, biases included
        (a key's one-hot row or embedding times the input weights)."""
        lstm = self.lstm
        w = lstm.weight_ih_l0.t()  # (in, 4H)
        table = w if self.embed is None else self.embed.weight @ w
        return table + lstm.bias_ih_l0 + lstm.bias_hh_l0

    def logits(
        self, last: torch.Tensor, rows: torch.Tensor, counts: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits ``(B, V)`` from the LSTM's last states ``(N, H)`` of the distinct windows and
        each row's window ``(B,)``: the output layer runs per row (a hook on it sees one row per
        example)."""
        logits = self.head(last[rows])  # (B, V) logits over the next key
        if self.counts is not None:
            assert counts is not None
            logits = logits + self.counts(torch.log1p(counts.float()))
        return logits


@dataclass(frozen=True)
class PrefixTree:
    """The distinct prefixes of a batch of windows, level by level: ``levels[t]`` holds, for each
    distinct prefix of length ``t + 1``, the index of its parent prefix (of length ``t``; the one
    empty prefix for ``t = 0``) and its last key; ``rows`` maps each input row to its window (a
    prefix of full length)."""

    levels: list[tuple[torch.Tensor, torch.Tensor]]
    rows: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, n_keys: int) -> PrefixTree:
        """The tree of ``(B, h)`` windows of key indices below ``n_keys``: one sort of ``B``
        numbers per column (a prefix's id and its next key coded as one int64).

        >>> tree = PrefixTree.of(torch.tensor([[0, 1], [0, 2], [0, 1]]), 3)
        >>> [(p.tolist(), k.tolist()) for p, k in tree.levels], tree.rows.tolist()
        ([([0], [0]), ([0, 0], [1, 2])], [0, 1, 0])
        """
        ids = torch.zeros(len(x), dtype=torch.long, device=x.device)
        levels = []
        for t in range(x.shape[1]):
            nodes, ids = torch.unique(ids * n_keys + x[:, t].long(), return_inverse=True)
            levels.append((nodes // n_keys, nodes % n_keys))
        return cls(levels, ids)


#: Which way :func:`last_states` runs the LSTMs: ``"auto"``, ``"tree"`` or ``"fused"``.
PATH = "auto"


def last_states(
    members: Sequence[NextKeyLSTM], windows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's state ``(M, N, H)`` of each of the ``M`` networks (of one shape) after each
    distinct window of ``(B, h)`` windows, and each row's window ``(B,)``.

    Two ways, the same maths: over the prefix tree of the windows (:func:`lstm_over_prefixes`, a
    prefix shared by many windows computed once, the networks batched together) or one fused
    ``nn.LSTM`` call per network over the distinct windows. The tree pays on training batches (many
    windows sharing their first keys, gradients); small batches (scoring chunks, online updates)
    run faster fused, as ten small steps of a tree cost more than they save there."""
    n_keys = members[0].n_keys
    if PATH == "tree" or (PATH == "auto" and _tree_pays(windows, len(members))):
        tree = PrefixTree.of(windows, n_keys)
        return lstm_over_prefixes(members, tree), tree.rows
    distinct, rows = distinct_rows(windows, n_keys)
    return torch.stack([m.last_state(distinct) for m in members]), rows


def _tree_pays(windows: torch.Tensor, n_members: int) -> bool:
    """Measured on HDFS training batches (256 rows, three networks: the tree 20 % faster on one
    thread) and on BGL's online updates and scoring chunks (under 256 rows, one network: fused
    about twice as fast); without gradients the tree pays on larger batches only."""
    work = len(windows) * n_members
    return work >= (TREE_MIN_WORK if torch.is_grad_enabled() else 4 * TREE_MIN_WORK)


#: Rows times networks from which :func:`last_states` runs a tree when gradients are on.
TREE_MIN_WORK = 512


def lstm_over_prefixes(members: Sequence[NextKeyLSTM], tree: PrefixTree) -> torch.Tensor:
    """The last layer's state ``(M, N, H)`` after each distinct window of ``tree``, for each of
    the ``M`` networks (of one shape): the networks' stacked LSTMs run together (batched matrix
    products), one step per prefix length over the distinct prefixes of that length, each prefix's
    state carried on from its parent's. The same maths as ``nn.LSTM`` over every window from a
    zero state, with less work: a prefix shared by many windows is computed once."""
    lstm = members[0].lstm
    n_layers, hidden = lstm.num_layers, lstm.hidden_size

    def stacked(name: str) -> torch.Tensor:
        return torch.stack([getattr(m.lstm, name) for m in members])

    table = torch.stack([m.input_table() for m in members])  # (M, V, 4H)
    w_ih = [stacked(f"weight_ih_l{i}").transpose(1, 2) for i in range(1, n_layers)]  # (M, H, 4H)
    w_hh = [stacked(f"weight_hh_l{i}").transpose(1, 2) for i in range(n_layers)]  # (M, H, 4H)
    bias = [
        (stacked(f"bias_ih_l{i}") + stacked(f"bias_hh_l{i}"))[:, None] for i in range(1, n_layers)
    ]
    zeros = table.new_zeros(len(members), 1, hidden)
    h, c = [zeros] * n_layers, [zeros] * n_layers  # the empty prefix's state
    out = zeros
    for parent, key in tree.levels:
        for i in range(n_layers):
            recurrent = h[i][:, parent]  # (M, N, H)
            if i == 0:
                gates = torch.baddbmm(table[:, key], recurrent, w_hh[0])  # (M, N, 4H)
            else:
                gates = torch.baddbmm(bias[i - 1], out, w_ih[i - 1])
                gates = torch.baddbmm(gates, recurrent, w_hh[i])
            in_gate, forget, cell, out_gate = gates.chunk(4, dim=-1)  # nn.LSTM's order
            c[i] = forget.sigmoid() * c[i][:, parent] + in_gate.sigmoid() * cell.tanh()
            h[i] = out = out_gate.sigmoid() * c[i].tanh()
    return out


def distinct_rows(x: torch.Tensor, n_values: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, h)`` rows of values in ``[0, n_values)`` -> (distinct rows ``(U, h)``, index of each
    row's ``(B,)``), so that ``distinct[index]`` is ``x``. Rows are coded as one int64 when they fit
    (a sort of B numbers), else compared whole.

    >>> u, i = distinct_rows(torch.tensor([[1, 2], [0, 1], [1, 2]]), 3)
    >>> u.tolist(), i.tolist()
    ([[0, 1], [1, 2]], [1, 0, 1])
    """
    if len(x) < 2 or x.shape[1] == 0:
        return x, torch.arange(len(x), device=x.device)
    bits = math.log2(max(n_values, 2))
    if x.shape[1] * bits >= 62:  # too long for one code: refine a row id chunk by chunk
        return _distinct_by_chunks(x, n_values, bits)
    base = n_values ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device)  # (h,)
    codes, index = torch.unique((x.long() * base).sum(dim=1), return_inverse=True)  # sorted
    return (codes[:, None] // base % n_values).to(x.dtype), index


def _distinct_by_chunks(
    x: torch.Tensor, n_values: int, bits: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`distinct_rows` for rows too long to code as one int64: the id of each row's prefix
    (below ``len(x)``) is refined by the code of the next columns, as many as still fit beside it,
    with one sort of ``len(x)`` numbers per chunk (``torch.unique(dim=0)`` is far slower on CPU).
    The distinct rows come in the order of their codes, not sorted row-wise.

    >>> x = torch.tensor([[7, 1, 9, 9], [7, 1, 9, 8], [7, 1, 9, 9]])
    >>> u, i = _distinct_by_chunks(x, 10, 62 / 2.5)
    >>> bool((u[i] == x).all()), len(u)
    (True, 2)
    """
    index = torch.zeros(len(x), dtype=torch.long, device=x.device)
    id_bits = math.log2(len(x) + 1)
    col = 0
    while col < x.shape[1]:
        width = max(1, int((62 - (id_bits if col else 0)) // bits))
        part = x[:, col : col + width].long()
        base = n_values ** torch.arange(part.shape[1] - 1, -1, -1, device=x.device)
        code = (part * base).sum(dim=1)
        if col:
            code = index * n_values ** part.shape[1] + code
        _, index = torch.unique(code, return_inverse=True)
        col += width
    first = torch.full((int(index.max()) + 1,), len(x), dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, index, torch.arange(len(x), device=x.device), reduce="amin")
    return x[first], index


class KeyEnsemble(nn.Module):
    """Several :class:`NextKeyLSTM` members whose next-key probabilities are averaged.

    Members differ in their initial weights only and are trained side by side on the same batches,
    each on its own cross-entropy (in training mode ``forward`` returns every member's logits,
    ``(M, B, V)``); in evaluation mode it returns the log of the members' mean probability, so a
    softmax over it is the averaged distribution. Averaging tempers one member's overconfidence about
    an ordering it never saw, which is where false positives of new normal sessions come from.

    >>> net = KeyEnsemble([NextKeyLSTM(5, hidden_size=4, num_layers=1) for _ in range(3)])
    >>> net.train()(torch.zeros(2, 3, dtype=torch.long)).shape
    torch.Size([3, 2, 5])
    >>> p = net.eval()(torch.zeros(2, 3, dtype=torch.long)).softmax(-1)
    >>> p.shape, bool(torch.allclose(p.sum(-1), torch.ones(2)))
    (torch.Size([2, 5]), True)
    """

    def __init__(self, members: Sequence[NextKeyLSTM]) -> None:
        super().__init__()
        assert len(members) >= 2, "an ensemble needs at least two members"
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows, counts = self.members[0].split(x)  # the members share the input
        last, rows = last_states(self.members, windows)  # (M, N, H)
        logits = torch.stack(
            [m.logits(last[i], rows, counts) for i, m in enumerate(self.members)]
        )  # (M, B, V)
        return logits if self.training else mixture(logits)


def mixture(logits: torch.Tensor) -> torch.Tensor:
    """``(M, B, V)`` member logits -> ``(B, V)`` log of the members' mean probability."""
    return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=0) - math.log(logits.shape[0])


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy ``(B,)``; an ensemble's ``(M, B, V)`` logits give the mean of
    its members' losses."""
    if logits.dim() == 3:  # an ensemble in training: the mean of its members' losses
        m, b, v = logits.shape
        losses = F.cross_entropy(logits.reshape(m * b, v), targets.repeat(m), reduction="none")
        return losses.reshape(m, b).mean(dim=0)  # (B,)
    return F.cross_entropy(logits, targets, reduction="none")  # (B,)


def build_network(config: KeyModelConfig, n_keys: int) -> NextKeyLSTM | KeyEnsemble:
    """The network ``config`` describes, over a vocabulary of ``n_keys`` internal indices: one
    :class:`NextKeyLSTM`, or a :class:`KeyEnsemble` of ``config.ensemble`` of them."""
    c = config
    members = [
        NextKeyLSTM(
            n_keys,
            hidden_size=c.hidden_size,
            num_layers=c.num_layers,
            embedding_dim=c.embedding_dim if c.encoding == "embedding" else None,
            session_counts=c.session_counts,
        )
        for _ in range(c.ensemble)
    ]
    return members[0] if c.ensemble == 1 else KeyEnsemble(members)
