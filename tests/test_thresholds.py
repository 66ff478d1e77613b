"""Tests of the Gaussian confidence-interval threshold (score first, decide second)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.thresholds import DEFAULT_LEVELS, GaussianThreshold, level_name, z_value


def test_two_sided_upper_bounds_match_the_normal_quantiles():
    t = GaussianThreshold().fit([0.0, 2.0])  # mean 1, std 1
    got = [round(t.threshold(lv), 3) for lv in DEFAULT_LEVELS]
    assert got == [3.326, 3.576, 4.291]


def test_one_sided_is_lower_than_two_sided():
    v = np.random.default_rng(0).gamma(2.0, size=200)
    two = GaussianThreshold().fit(v)
    one = GaussianThreshold(two_sided=False).fit(v)
    assert one.threshold(0.99) < two.threshold(0.99)
    assert round(z_value(0.99, two_sided=False), 3) == 2.326


def test_decide_uses_the_level_and_treats_nan_as_not_anomalous():
    t = GaussianThreshold().fit([1.0, 1.2, 0.8, 1.1, 0.9])
    mse = np.array([1.0, 1.35, 5.0, np.nan])
    assert t.decide(mse, 0.98).tolist() == [False, True, True, False]
    assert t.decide(mse, 0.999).tolist() == [False, False, True, False]


def test_floor_and_degenerate_validation():
    t = GaussianThreshold(floor=0.5).fit([0.1, 0.1, 0.1])
    assert t.threshold(0.99) == 0.5
    assert not t.decide(0.4, 0.99)
    assert t.confidence([0.4]).tolist() == [0.0]


def test_errors_are_explained():
    with pytest.raises(RuntimeError, match="not fitted"):
        GaussianThreshold().threshold(0.99)
    with pytest.raises(ValueError, match="no finite"):
        GaussianThreshold().fit([np.nan])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        GaussianThreshold().fit([1.0, 2.0]).threshold(99)
    with pytest.raises(ValueError, match="malformed"):
        GaussianThreshold.from_state({"mean": 1.0})


def test_state_round_trip():
    t = GaussianThreshold(two_sided=False, floor=0.1).fit([1.0, 3.0, 2.0])
    u = GaussianThreshold.from_state(t.to_state())
    assert u.threshold(0.99) == t.threshold(0.99)
    assert "mean=2" in repr(u)
    assert level_name(0.999) == "99.9"


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1e3), min_size=1, max_size=50),
    st.lists(st.floats(0, 1e6), min_size=0, max_size=50),
)
def test_deciding_never_moves_the_fit(validation, test_scores):
    t = GaussianThreshold().fit(validation)
    before = t.thresholds()
    t.decide(test_scores, 0.99)
    t.confidence(test_scores)
    assert t.thresholds() == before
    # and the thresholds are ordered by level
    ordered = [before[lv] for lv in DEFAULT_LEVELS]
    assert ordered == sorted(ordered)


def test_sidak_level_makes_the_level_hold_for_a_group():
    from workbench.thresholds import instance_confidence, sidak_level

    assert sidak_level(0.99, 1) == pytest.approx(0.99)
    per = sidak_level(0.99, np.array([1, 10, 40]))
    assert np.all(np.diff(per) > 0) and np.all(per < 1)
    assert np.allclose(per ** np.array([1, 10, 40]), 0.99)
    # a group is anomalous at L exactly when its worst entry lies outside the Sidak interval
    worst = np.array([0.999, 0.9995, 0.9999])
    assert ((instance_confidence(worst, 20) > 0.99) == (worst > sidak_level(0.99, 20))).all()
    with pytest.raises(ValueError):
        sidak_level(0.99, 0)
    with pytest.raises(ValueError):
        sidak_level(1.0, 3)


def test_sidak_holds_the_instance_false_alarm_rate_on_gaussian_scores():
    rng = np.random.default_rng(0)
    t = GaussianThreshold(scale="log").fit(np.exp(rng.normal(size=20_000)))
    groups = np.exp(rng.normal(size=(5_000, 25)))  # 5000 normal "instances" of 25 entries
    from workbench.thresholds import instance_confidence

    conf = instance_confidence(t.confidence(groups.ravel()).reshape(groups.shape).max(1), 25)
    any_entry = t.decide(groups, 0.99).any(1).mean()
    assert any_entry > 0.08  # uncorrected: about 1 - 0.995 ** 25 = 12 % of normal groups
    assert (conf > 0.99).mean() < 0.01  # corrected: at most the 0.5 % upper tail, plus noise
