"""Ties in the top-g rule and the determinism of online updates.

A key tied with the g-th candidate is accepted, whatever the order of the columns, and the online
update's acceptance check (on logits) counts ties as scoring (on probabilities) does: otherwise an
update could stop at a verdict that scoring then reverses. A stream replayed with feedback twice
from the same state gives the same verdicts (benchmark figures depend on it).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from workbench.keys.online import accepted
from workbench.keys.scores import rank_of_actual


def test_a_key_tied_with_the_gth_candidate_is_accepted_in_any_column_order():
    mask = np.array([False, False, True, True, True, True, True])
    probs = np.array([[0.0, 0.0, 0.4, 0.2, 0.2, 0.1, 0.1]])
    actual = np.array([3, 4, 5, 6, 2])
    rank, _ = rank_of_actual(probs, np.zeros(5, dtype=np.int64), actual, mask)
    assert rank.tolist() == [2, 2, 4, 4, 1]  # 1 + the candidates strictly more probable
    rng = np.random.default_rng(0)
    for _ in range(20):  # the same ranks whatever the order of the keys' columns
        perm = np.concatenate([[0, 1], 2 + rng.permutation(5)])
        inverse = np.argsort(perm)
        r, _ = rank_of_actual(probs[:, perm], np.zeros(5, dtype=np.int64), inverse[actual], mask)
        assert r.tolist() == rank.tolist()


def test_the_update_check_counts_ties_as_scoring_does():
    logits = torch.tensor([[0.0, 0.0, 2.0, 1.0, 1.0, 1.0, -3.0]])
    mask = torch.tensor([False, False, True, True, True, True, True])
    probs = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1).numpy()
    model = SimpleNamespace(min_probability_=0.0)
    for target in range(2, 7):
        rank, _ = rank_of_actual(probs, np.array([0]), np.array([target]), mask.numpy())
        for g in range(1, 6):
            ok = accepted(model, logits, torch.tensor([target]), torch.tensor([g]), mask)
            assert bool(ok[0]) == bool(rank[0] <= g), (target, g)


def test_a_stream_with_feedback_gives_the_same_verdicts_twice():
    from workbench.feedback.stream import stream_detect
    from workbench.keys.model import KeyModel, KeyModelConfig

    torch.manual_seed(0)
    train = [1, 2, 3, 4] * 30 + [1, 3, 2, 4] * 5
    cfg = KeyModelConfig(window=3, hidden_size=8, max_epochs=20, top_g=1, spare_keys=2)
    state = KeyModel(cfg).fit([train], seed=0, device="cpu", validation_fraction=0.0).to_state()
    stream = np.array([1, 2, 3, 4, 1, 3, 2, 4, 1, 2, 4, 3] * 4)
    runs = []
    for _ in range(2):
        model = KeyModel.from_state(state, device="cpu")
        result = stream_detect(model, stream, context=train, oracle=lambda i: False)
        weights = torch.cat([p.detach().flatten() for p in model.module_.parameters()])
        runs.append((result.flagged.tolist(), result.updated.tolist(), weights))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert any(runs[0][1])  # feedback was given and learned
    assert torch.equal(runs[0][2], runs[1][2])
