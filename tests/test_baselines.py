"""Baselines share the detection interface and catch what they are built to catch."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.keys.baselines import (
    InvariantMiningDetector,
    PCADetector,
    SimpleDetector,
    UnseenKeyDetector,
)
from workbench.keys.ngram import NGramModel

TRAIN = [(1, 2, 3, 3, 4)] * 40 + [(1, 3, 2, 3, 4)] * 20 + [(1, 2, 3, 3, 3, 3, 4)] * 10


@pytest.mark.parametrize(
    "detector",
    [
        UnseenKeyDetector(),
        NGramModel(n=3, top_g=2),
        PCADetector(),
        InvariantMiningDetector(),
        SimpleDetector(),
    ],
    ids=["unseen", "ngram", "pca", "im", "simple"],
)
def test_interface_and_unknown_keys(detector):
    detector.fit(TRAIN)
    d = detector.detect([(1, 2, 3, 3, 4), (1, 2, 9, 3, 4), (1, 2, 3, 3, 4)])
    assert d.anomalous.tolist() == [False, True, False]
    assert d.reason[1] == "unknown key" and d.first_position[1] == 2
    assert len(d.score) == 3 and d.sessions_frame().shape[0] == 3


def test_ngram_catches_order_and_early_end():
    model = NGramModel(n=2, top_g="auto").fit(TRAIN, seed=0)
    d = model.detect([(1, 2, 3, 3, 4), (1, 4), (1, 2, 3)])
    assert d.anomalous.tolist() == [False, True, True]
    assert d.reason[2] == "session ended unexpectedly"
    assert model.g_selection_.method == "validation"


def test_invariants_found_and_broken():
    im = InvariantMiningDetector().fit(TRAIN)
    described = [im.describe(inv) for inv in im.invariants_]
    assert "1*c[1] - 1*c[2] = 0" in described  # as many 1 as 2
    d = im.detect([(1, 1, 2, 3, 3, 4)])
    assert d.anomalous[0] and d.reason[0].startswith("invariant broken")


def test_pca_flags_unusual_counts():
    rng = np.random.default_rng(0)
    train = [(1,) * int(n) + (2,) * int(n) for n in rng.integers(1, 6, 200)]
    pca = PCADetector().fit(train)
    d = pca.detect([(1, 1, 2, 2), (1, 1, 1, 1, 2)])
    assert d.anomalous.tolist() == [False, True]
    assert d.score[1] > pca.threshold_ >= d.score[0]


def test_simple_detector_flags_unseen_lengths_and_count_vectors_only():
    d = SimpleDetector().fit(TRAIN)
    out = d.detect([(4, 3, 3, 2, 1), (1, 2, 3, 4), (1, 2, 2, 3, 4), (1, 3, 3, 3, 3, 2, 4)])
    assert out.anomalous.tolist() == [False, True, True, False]  # order is not looked at
    assert out.reason.tolist() == ["", "unseen length", "unseen count vector", ""]
