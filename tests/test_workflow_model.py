"""Method 1: tasks from a next-key model's predictions (N-gram callable, KeyModel adapter)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.keys.examples import history_rows
from workbench.workflow.cooccurrence import build_workflows
from workbench.workflow.from_keymodel import (
    ModelWorkflowConfig,
    keymodel_distribution,
    model_tasks,
    ngram_distribution,
)
from workbench.workflow.scores import edge_scores, jaccard, match_tasks

# task -> stages (keys of a stage run concurrently, in random order; repeats > 1 makes a loop)
STRUCTURES = {
    "chains": {"a": [[1], [2], [3], [4]], "b": [[10], [11], [12]], "c": [[20], [21], [22]]},
    "concurrent": {"a": [[1], [2, 3], [4], [5]], "b": [[10], [11, 12, 13], [14]]},
    "three_tasks": {
        "a": [[1], [2, 3], [4]],
        "b": [[10], [11], [12], [13]],
        "c": [[20], [21], [22, 23], [24]],
    },
}


def sessions(structure, n=150, seed=0, loop=None):
    """Sessions that run every task once in a random order (optionally repeating one stage)."""
    rng = np.random.default_rng(seed)
    out = []
    names = sorted(structure)
    for _ in range(n):
        s: list[int] = []
        for name in rng.permutation(names):
            for i, keys in enumerate(structure[name]):
                times = int(rng.integers(1, 4)) if loop == (name, i) else 1
                for _ in range(times):
                    s.extend(int(k) for k in rng.permutation(keys))
        out.append(s)
    return out


def true_keys(structure):
    return {n: {k for st in stages for k in st} for n, stages in structure.items()}


@pytest.mark.parametrize("name", sorted(STRUCTURES))
@pytest.mark.parametrize("n", [3, 4])  # a bigram cannot see concurrency: 1 3 2 vs 1 2 3
def test_method1_with_an_ngram_model_separates_the_tasks(name, n, seed):
    structure = STRUCTURES[name]
    seqs = sessions(structure, seed=seed)
    res = model_tasks(ngram_distribution(seqs, n=n), seqs)
    m = match_tasks(res.tasks, true_keys(structure))
    assert np.mean([j for _, j in m.values()]) >= 0.9, (res.tasks, res.boundaries)
    assert res.boundaries and res.queries > 0


def test_concurrency_and_boundaries_are_reported(seed):
    seqs = sessions(STRUCTURES["concurrent"], seed=seed)
    res = model_tasks(ngram_distribution(seqs, n=3), seqs)
    assert (2, 3) in res.concurrent
    assert {(11, 12), (11, 13), (12, 13)} & set(res.concurrent)
    # the last key of one task leads to the first of the other across a boundary
    assert (5, 10) in res.boundaries or (14, 1) in res.boundaries


def test_loops_are_folded_into_cycles(seed):
    structure = {"a": [[1], [2], [3], [4]], "b": [[10], [11], [12]]}
    seqs = sessions(structure, seed=seed, loop=("a", 1))  # key 2 repeats: 1 2 2 2 3 4
    # a two-key loop: stage 1 becomes the chain 2 -> 5, repeated 1 to 3 times
    seqs = [[x for k in s for x in ([2, 5] if k == 2 else [k])] for s in seqs]
    res = model_tasks(ngram_distribution(seqs, n=3), seqs)
    task = next(t for t in res.tasks if 1 in t)
    assert {1, 2, 5, 3, 4} == set(task)
    df = pd.DataFrame(
        {
            "key": [k for s in seqs for k in s],
            "session": [f"s{i}" for i, s in enumerate(seqs) for _ in s],
        }
    )
    df["template"] = "t"
    g = next(g for g in build_workflows(df, tasks=res.tasks) if 1 in g)
    assert g.has_edge(2, 5) and g.has_edge(5, 2)  # the repeated chain is a cycle


def test_method1_edges_against_truth(seed):
    structure = STRUCTURES["three_tasks"]
    seqs = sessions(structure, seed=seed)
    res = model_tasks(ngram_distribution(seqs, n=3), seqs)
    df = pd.DataFrame(
        {
            "key": [k for s in seqs for k in s],
            "session": [f"s{i}" for i, s in enumerate(seqs) for _ in s],
            "template": "t",
        }
    )
    graphs = build_workflows(df, tasks=res.tasks)
    truth_edges = {(1, 2), (1, 3), (2, 3), (3, 2), (2, 4), (3, 4)}
    g = next(g for g in graphs if 1 in g)
    sc = edge_scores(g.edges, truth_edges)
    assert sc["precision"] >= 0.9 and sc["recall"] >= 0.9


def test_ngram_distribution_backs_off():
    f = ngram_distribution([[1, 2, 3], [1, 2, 4], [5, 2, 3]], n=3)
    assert f([1, 2]) == {3: 0.5, 4: 0.5}
    assert f([5, 2]) == {3: 1.0}
    assert f([9, 2]) == pytest.approx({3: 2 / 3, 4: 1 / 3})  # unseen context: back off to [2]
    assert set(f([])) == {1, 5}
    with pytest.raises(ValueError):
        ngram_distribution([], n=0)


def test_config_is_validated():
    with pytest.raises(ValueError):
        ModelWorkflowConfig(min_prob=1.0)
    with pytest.raises(ValueError):
        ModelWorkflowConfig(horizon=0)
    with pytest.raises(ValueError):
        ModelWorkflowConfig(slack=-1)
    with pytest.raises(ValueError, match="unknown"):
        ModelWorkflowConfig.from_dict({"min_probability": 0.3})
    cfg = ModelWorkflowConfig(min_prob=0.3, horizon=6)
    assert ModelWorkflowConfig.from_dict(cfg.to_dict()) == cfg


class _Vocab:
    """A stand-in for the key model's vocabulary: PAD 0, UNKNOWN 1, END 2, keys from 3."""

    def __init__(self, keys):
        self.keys = list(keys)

    def encode(self, keys):
        return [self.keys.index(k) + 3 if k in self.keys else 1 for k in keys]

    def decode(self, idx):
        return [self.keys[i - 3] if i >= 3 else -1 - i for i in idx]


class _FakeKeyModel:
    """Deterministic 'model': next key = last key + 1 with 0.8, END with 0.2."""

    def __init__(self):
        self.config = type("C", (), {"window": 3})()
        self.vocab_ = _Vocab([1, 2, 3, 4])
        self.calls = []

    def input_rows(self, histories):
        return history_rows(histories, self.vocab_, self.config.window)

    def predict_proba(self, windows):
        self.calls.append(windows.copy())
        out = np.zeros((len(windows), 7), dtype=np.float32)
        for r, w in enumerate(windows):
            last = self.vocab_.decode([w[-1]])[0] if w[-1] >= 3 else 0
            nxt = last + 1 if last + 1 in self.vocab_.keys else None
            if nxt is not None:
                out[r, self.vocab_.encode([nxt])[0]] = 0.8
            out[r, 2] = 0.2 if nxt is not None else 1.0
        return out


def test_keymodel_adapter_pads_encodes_and_decodes():
    model = _FakeKeyModel()
    f = keymodel_distribution(model)
    got = f([1, 2])
    assert got[3] == pytest.approx(0.8) and all(k <= 0 for k in got if k != 3)
    assert model.calls[-1].shape == (1, 3) and model.calls[-1][0, 0] == 0  # left padding
    assert f([1, 2, 3, 4, 1, 2])[3] == pytest.approx(0.8)  # only the last window keys are used
    res = model_tasks(f, [[1, 2, 3, 4]] * 5)
    assert res.tasks == ((1, 2, 3, 4),)


def test_jaccard_of_identical_sets():
    assert jaccard({1, 2}, [2, 1]) == 1.0
