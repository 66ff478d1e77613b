"""Tests of the Gaussian confidence-interval threshold (score first, decide second)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.params.conformal import ConformalThreshold, pooled_tail
from workbench.params.gaussian import GaussianThreshold
from workbench.params.levels import DEFAULT_LEVELS, level_name, z_value
from workbench.params.thresholds import threshold_from_state


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
    from workbench.params.levels import instance_confidence, sidak_level

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
    from workbench.params.levels import instance_confidence

    conf = instance_confidence(t.confidence(groups.ravel()).reshape(groups.shape).max(1), 25)
    any_entry = t.decide(groups, 0.99).any(1).mean()
    assert any_entry > 0.08  # uncorrected: about 1 - 0.995 ** 25 = 12 % of normal groups
    assert (conf > 0.99).mean() < 0.01  # corrected: at most the 0.5 % upper tail, plus noise


def test_conformal_rule_keeps_its_false_alarm_rate_with_few_validation_values():
    """Many keys of 30 heavy-tailed validation MSEs each: on fresh normal MSEs of the same keys the
    per-entry false-alarm rate stays within 1.5 x (1 - level) at every level, where the Gaussian
    on so few values does not."""
    rng = np.random.default_rng(0)
    keys = [(rng.normal(0, 2), rng.uniform(0.3, 1.5)) for _ in range(60)]
    val = [np.exp(rng.standard_t(3, 30) * s + m) for m, s in keys]
    test = [np.exp(rng.standard_t(3, 2000) * s + m) for m, s in keys]
    pool = pooled_tail(val)
    for level in DEFAULT_LEVELS:
        rates = []
        for rule in ("conformal", "gaussian"):
            flags = 0
            for v, t in zip(val, test, strict=True):
                th = (
                    ConformalThreshold(pool=pool).fit(v)
                    if rule == "conformal"
                    else GaussianThreshold(scale="log").fit(v)
                )
                flags += int(th.decide(t, level).sum())
            rates.append(flags / sum(len(t) for t in test))
        assert rates[0] <= 1.5 * (1 - level), (level, rates)
    assert rates[1] > 1.5 * (1 - level)  # the Gaussian under-covers at 99.9 %


def test_conformal_confidence_is_the_inverse_of_the_threshold():
    rng = np.random.default_rng(1)
    pool = pooled_tail([rng.lognormal(size=40) for _ in range(10)])
    for guard in (True, False):
        t = ConformalThreshold(pool=pool, gaussian_guard=guard).fit(rng.lognormal(size=50))
        x = np.sort(rng.lognormal(sigma=2.0, size=400))
        conf = t.confidence(x)
        assert np.all(np.diff(conf) >= -1e-12)  # monotone in the score
        for level in DEFAULT_LEVELS:
            assert np.array_equal(t.decide(x, level), conf > level)
        u = threshold_from_state(t.to_state())
        assert isinstance(u, ConformalThreshold)
        assert u.thresholds() == pytest.approx(t.thresholds())
    assert isinstance(threshold_from_state(GaussianThreshold().fit([1.0, 2.0]).to_state()),
                      GaussianThreshold)  # fmt: skip


def test_conformal_threshold_uses_its_own_quantile_when_it_has_enough_values():
    t = ConformalThreshold(gaussian_guard=False).fit(np.arange(1.0, 1000.0))
    # (n + 1) * (1 - 0.01 / 2) = 995 -> the 995th smallest value
    assert t.threshold(0.99) == 995.0
    # too few values for 99.9 % two-sided: beyond the largest value
    assert t.threshold(0.999) > 999.0
