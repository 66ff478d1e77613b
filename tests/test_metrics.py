"""Confusion counts and rates."""

from __future__ import annotations

import pytest

from workbench.eval.metrics import Confusion, confusion, from_labels, scale_normal


def test_counts_with_multiplicity():
    # The same session twice counts twice.
    c = confusion([True, True, False], [True, False, False, False])
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 2, 3, 1)


def test_rates():
    c = Confusion(tp=15746, fp=9, fn=1092, tn=6991)
    assert c.recall == pytest.approx(15746 / 16838)
    assert c.fpr == pytest.approx(9 / 7000)
    assert c.precision == pytest.approx(15746 / 15755)
    assert c.f1 == pytest.approx(2 * c.precision * c.recall / (c.precision + c.recall))


def test_empty_and_degenerate():
    c = Confusion(0, 0, 0, 0)
    assert (c.precision, c.recall, c.f1, c.fpr) == (0.0, 0.0, 0.0, 0.0)


def test_from_labels_and_scaling():
    c = from_labels([1, 1, 0, 0, 0], [1, 0, 1, 0, 0])
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 2)
    est = scale_normal(c, 300)
    assert (est.fp, est.tn, est.tp) == (100, 200, 1)
    with pytest.raises(ValueError, match="shape"):
        from_labels([1], [1, 0])
