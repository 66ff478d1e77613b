"""The key networks run their LSTM once per distinct window prefix (a prefix tree) or once per
distinct window (fused ``nn.LSTM``): either way the same logits and gradients as running it on every
row."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from workbench.keys import networks
from workbench.keys.config import KeyModelConfig
from workbench.keys.networks import NextKeyLSTM, build_network, cross_entropy, distinct_rows


@pytest.fixture(params=["tree", "fused"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test below runs once with the prefix tree and once with the fused LSTM."""
    monkeypatch.setattr(networks, "PATH", request.param)
    return request.param


def every_row(net: NextKeyLSTM, x: torch.Tensor) -> torch.Tensor:
    """The logits as before distinct windows: the LSTM on every row."""
    x, counts = x[:, : -net.n_keys], x[:, -net.n_keys :]
    out, _ = net.lstm(F.one_hot(x, net.n_keys).float())
    return net.head(out[:, -1]) + net.counts(torch.log1p(counts.float()))


def rows_with_repeated_windows(n_keys: int, window: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    windows = torch.randint(0, n_keys, (6, window), generator=g)[torch.randint(0, 6, (40,))]
    counts = torch.randint(0, 4, (40, n_keys), generator=g)
    return torch.cat([windows, counts], dim=1)


def test_distinct_rows_rebuild_the_input_also_when_codes_would_overflow() -> None:
    g = torch.Generator().manual_seed(1)
    for n_values, width in ((7, 3), (1000, 10)):  # 1000^10 does not fit in an int64: rows compared
        x = torch.randint(0, n_values, (5, width), generator=g)[torch.tensor([0, 1, 0, 2, 1, 4])]
        distinct, index = distinct_rows(x, n_values)
        assert len(distinct) == 4
        assert torch.equal(distinct[index], x)


def test_logits_and_gradients_equal_the_lstm_on_every_row(path: str) -> None:
    torch.manual_seed(0)
    net = NextKeyLSTM(9, hidden_size=8, num_layers=2, session_counts=True)
    x = rows_with_repeated_windows(9, 5)
    y = torch.randint(0, 9, (40,), generator=torch.Generator().manual_seed(2))
    grads = []
    for forward in (net, lambda rows: every_row(net, rows)):
        net.zero_grad()
        logits = forward(x)
        cross_entropy(logits, y).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
        if forward is net:
            reference = every_row(net, x).detach()
            assert torch.allclose(logits, reference, atol=1e-6)
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_ensemble_members_share_the_distinct_windows(path: str) -> None:
    torch.manual_seed(0)
    config = KeyModelConfig(window=5, hidden_size=8, session_counts=True, ensemble=3)
    net = build_network(config, 9).train()
    x = rows_with_repeated_windows(9, 5)
    logits = net(x)
    for member, got in zip(net.members, logits, strict=True):
        assert torch.allclose(got, every_row(member, x), atol=1e-6)


def test_distinct_rows_of_long_windows_group_as_torch_unique_does():
    """Rows too long for one int64 code (a large vocabulary, as BGL's with spare keys) are grouped
    chunk by chunk: the same groups as ``torch.unique(dim=0)``, and each row rebuilt exactly."""

    gen = torch.Generator().manual_seed(3)
    for n, h, b in [(900, 10, 700), (70_000, 20, 300), (3, 45, 200)]:
        x = torch.randint(0, n, (b, h), generator=gen)
        x = torch.cat([x, x[: b // 3], x[:5]])
        u, i = distinct_rows(x, n)
        ref_u, ref_i = torch.unique(x, dim=0, return_inverse=True)
        assert torch.equal(u[i], x) and len(u) == len(ref_u)
        pairs = torch.unique(torch.stack([i, ref_i], dim=1), dim=0)
        assert len(pairs) == len(u)  # one of ours for each of theirs


def test_embedded_keys_and_one_layer_give_the_lstm_on_every_row(path: str) -> None:
    """The prefix tree's first layer reads a key's input projection from a table (its one-hot row
    or embedding times the input weights): the same as ``nn.LSTM`` on the embedded rows."""
    torch.manual_seed(0)
    for layers in (1, 3):
        net = NextKeyLSTM(9, hidden_size=8, num_layers=layers, embedding_dim=5)
        x = rows_with_repeated_windows(9, 4)[:, :4]
        out, _ = net.lstm(net.embed(x))
        assert torch.allclose(net(x), net.head(out[:, -1]), atol=1e-6)


def test_the_tree_runs_where_it_pays_and_the_fused_lstm_elsewhere(monkeypatch) -> None:
    """Training batches of an ensemble go through the prefix tree; an online update's few rows and
    small scoring chunks through one fused LSTM call per network."""
    trees = []
    real = networks.PrefixTree.of.__func__
    monkeypatch.setattr(
        networks.PrefixTree,
        "of",
        classmethod(lambda cls, x, n: trees.append(len(x)) or real(cls, x, n)),
    )
    ensemble = build_network(KeyModelConfig(window=5, hidden_size=8, ensemble=3), 9).train()
    single = build_network(KeyModelConfig(window=5, hidden_size=8), 9).train()
    x = torch.randint(0, 9, (256, 5), generator=torch.Generator().manual_seed(4))
    ensemble(x).sum().backward()  # 256 rows x 3 networks, gradients on: the tree
    single(x[:64]).sum().backward()  # an update's rows: fused
    with torch.no_grad():
        ensemble.eval()(x)  # a scoring chunk of 256 rows: fused
    assert trees == [256]
