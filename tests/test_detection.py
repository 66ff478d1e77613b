"""Scores kept apart from the top-g decision; the rule at its boundary; g selection."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.keys.scores import score_sessions, session_max_rank
from workbench.keys.selection import GSelection, select_g, select_rule, synthetic_anomalies
from workbench.keys.topg import detect
from workbench.keys.vocabulary import END_INDEX, KeyVocabulary

VOCAB = KeyVocabulary([1, 2, 3, 4, 5])  # internal 3..7, END = 2


def fixed_ranking(windows):
    """Same distribution after every window: key 1 > 2 > 3 > 4 > 5 > END."""
    p = np.zeros((len(windows), VOCAB.size))
    p[:, 3:8] = [0.4, 0.25, 0.15, 0.1, 0.06]
    p[:, END_INDEX] = 0.04
    return p


@pytest.mark.parametrize("g", [1, 2, 3, 4])
def test_top_g_boundary(g):
    # Key k has rank k; the session (k,) ends with END at rank 6.
    scores = score_sessions([(g,), (g + 1,)], VOCAB, 3, fixed_ranking)
    entries = detect(scores, g).entries
    first_keys = entries[entries.position == 0]
    assert first_keys["rank"].tolist() == [g, g + 1]
    assert first_keys["anomalous"].tolist() == [False, True]  # rank g normal, g + 1 not


def test_end_marker_and_reasons():
    scores = score_sessions([(1,), (1, 7), (1, 2)], VOCAB, 3, fixed_ranking)
    d = detect(scores, 5)
    assert d.reason.tolist() == [
        "session ended unexpectedly",
        "unknown key",
        "session ended unexpectedly",
    ]
    assert d.first_position.tolist() == [1, 1, 2]
    assert detect(scores, 6).anomalous.tolist() == [False, True, False]


def test_probability_floor():
    scores = score_sessions([(1,), (5,)], VOCAB, 3, fixed_ranking)
    d = detect(scores, 6, min_probability=0.05)
    assert d.anomalous.tolist() == [True, True]  # END has p = 0.04 < 0.05
    assert d.reason.tolist() == ["session ended unexpectedly"] * 2
    d = detect(scores, 6, min_probability=0.07)  # key 5 has p = 0.06
    assert d.reason.tolist()[1] == "key below probability floor"
    assert d.first_position.tolist() == [1, 0]


def test_scores_map_back_with_multiplicity():
    sessions = [(1, 2)] * 3 + [(3,)]
    scores = score_sessions(sessions, VOCAB, 2, fixed_ranking)
    assert scores.n_sessions == 4 and len(scores.rank) == 3 * 3 + 2
    assert scores.session.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert session_max_rank(scores).tolist() == [6, 6, 6, 6]
    assert scores.candidates(0)[0] == (1, pytest.approx(0.4))
    frame = scores.to_frame()
    assert frame.loc[0, "candidates"][:3] == [1, 2, 3]


def test_zero_probability_is_never_normal():
    def only_one(windows):
        p = np.zeros((len(windows), VOCAB.size))
        p[:, 3] = 0.9
        p[:, END_INDEX] = 0.1
        return p

    scores = score_sessions([(1,), (2,)], VOCAB, 2, only_one)
    assert detect(scores, 6).anomalous.tolist() == [False, True]


def test_select_g_uses_the_documented_rule():
    # END ranks 1 and key k ranks k + 1: 97 sessions need g = 2, two g = 3, one g = 4.
    def end_first(windows):
        p = fixed_ranking(windows)
        p[:, END_INDEX] = 0.45
        return p

    sessions = [(1,)] * 97 + [(2,)] * 2 + [(3,)]
    scores = score_sessions(sessions, VOCAB, 2, end_first)
    sel = select_g(scores, target_fpr=0.01)
    assert sel.validation_fpr[2] == pytest.approx(0.03)
    assert sel.validation_fpr[3] == pytest.approx(0.01) and sel.validation_fpr[4] == 0.0
    assert sel.g == 3 and sel.method == "validation"
    assert select_g(scores, target_fpr=0.03).g == 2
    fixed = select_g(scores, fixed=5)
    assert fixed.g == 5 and fixed.method == "fixed"
    with pytest.raises(ValueError):
        detect(scores, 0)


def test_select_g_weighted_and_floor_within_one_budget():
    # The same sessions as above; weighting the one g = 4 session up moves g, and the floor may
    # only use what the g step left of the budget.
    def end_first(windows):
        p = fixed_ranking(windows)
        p[:, END_INDEX] = 0.45
        return p

    sessions = [(1,)] * 97 + [(2,)] * 2 + [(3,)]
    scores = score_sessions(sessions, VOCAB, 2, end_first)
    w = np.ones(len(sessions))
    w[-1] = 10.0  # the last session weighs 10 of 109
    sel = select_g(scores, target_fpr=0.05, weights=w)
    assert sel.validation_fpr[3] == pytest.approx(10 / 109) and sel.g == 4
    assert select_g(scores, target_fpr=0.01, weights=np.ones(len(sessions))).g == 3
    both = select_g(scores, target_fpr=0.01, floor=None)
    assert both.g == 3 and both.floor_fpr[both.min_probability] <= 0.01 + 1e-12
    with pytest.raises(ValueError):
        select_g(scores, weights=np.ones(3))


def test_end_limit_and_select_rule():
    # Ranks everywhere: key 1 first, key 2 second, END third, key 3 fourth.
    def p(windows):
        out = np.zeros((len(windows), VOCAB.size))
        out[:, 3:6] = [0.5, 0.2, 0.1]
        out[:, END_INDEX] = 0.2 - 1e-3
        return out

    normal = [(1,)] * 50 + [(1, 1)] * 50
    scores = score_sessions(normal, VOCAB, 2, p)
    assert detect(scores, 1, end_g=3).anomalous.sum() == 0  # END (rank 3) judged by its own limit
    assert detect(scores, 1).anomalous.all()
    cut = score_sessions([(1, 2)], VOCAB, 2, p)
    assert detect(cut, 2, end_g=2).reason.tolist() == ["session ended unexpectedly"]
    assert not detect(cut, 2, end_g=3).anomalous[0]
    anomalies = score_sessions([(2,), (3,), (1, 2)], VOCAB, 2, p)
    sel = select_rule(scores, anomalies, target_fpr=0.0)
    assert (sel.g, sel.end_g, sel.estimated_fpr, sel.synthetic_recall) == (1, 3, 0.0, 1.0)
    assert GSelection.from_dict(sel.to_dict()) == sel


def test_a_small_validation_set_can_still_choose_a_floor():
    # Ranks: key 1, key 2, END, key 4, key 3; key 3 is very unlikely wherever it comes.
    def p(windows):
        out = np.zeros((len(windows), VOCAB.size))
        out[:, 3:7] = [0.5, 0.29, 1e-5, 1e-2]
        out[:, END_INDEX] = 0.2
        return out

    normal = score_sessions([(1,)] * 19 + [(4, 3)], VOCAB, 2, p)  # one odd normal session
    anomalies = score_sessions([(3,), (1, 3), (3, 1)], VOCAB, 2, p)
    sel = select_rule(normal, anomalies, target_fpr=0.001)
    # A budget of 0.1 % is below one of 20 sessions: the floor may still flag one of them.
    assert sel.min_probability == 0.02 and sel.synthetic_recall == 1.0
    assert sel.estimated_fpr == pytest.approx(0.05) and sel.floor_fpr[0.0] == 0.0


def test_synthetic_anomalies_are_never_known_sessions():
    known = {(1, 2, 3, 4), (1, 2, 4)}
    planted = synthetic_anomalies([(1, 2, 3, 4)] * 20, known, seed=1)
    assert planted and not set(planted) & known
    assert all(len(s) <= 5 for s in planted)
    # Every kind of edit is there: cut short, a key dropped, a key moved, a key inserted.
    lengths = {len(s) for s in planted}
    assert lengths >= {3, 4, 5} and min(lengths) >= 1
    inserted = [s for s in planted if len(s) == 5]
    assert all(set(s) <= {1, 2, 3, 4} for s in inserted)
    moved = [s for s in planted if len(s) == 4]
    assert moved and all(sorted(s) == [1, 2, 3, 4] for s in moved)
