"""Counts of detections by rule: every rule is named, sessions and entries are counted apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.detect.rules import (
    RULES,
    counts_by_rule,
    entry_counts_by_rule,
    report_counts_by_rule,
    rule_of,
)
from workbench.keys.scores import score_sessions
from workbench.keys.topg import detect as apply_rule
from workbench.keys.vocabulary import KeyVocabulary


def test_rule_names_cover_every_reason() -> None:
    assert rule_of("key not in top-g") == "top-g"
    assert rule_of("key below probability floor") == "probability floor"
    assert rule_of("session ended unexpectedly") == "session end"
    assert rule_of("session end") == "session end"
    assert rule_of("parameter") == "parameter threshold"
    assert rule_of("") == "" and rule_of(None) == "" and rule_of(float("nan")) == ""
    assert rule_of("count vector outside the normal subspace") == "count vector"


def test_sessions_and_entries_by_rule() -> None:
    vocab = KeyVocabulary([1, 2])

    def probs(windows):  # candidates: END, key 1, key 2 (internal 2, 3, 4)
        p = np.zeros((len(windows), vocab.size))
        p[:, 3], p[:, 2], p[:, 4] = 0.7, 0.2, 0.1
        return p

    scores = score_sessions([(1,), (1, 2), (1, 9), (1, 9)], vocab, 2, probs)
    d = apply_rule(scores, g=2)
    by_session = counts_by_rule(d)
    assert list(by_session.index) == list(RULES)
    assert by_session.to_dict() == {
        "top-g": 1, "probability floor": 0, "session end": 0, "unknown key": 2,
        "parameter threshold": 0,
    }  # fmt: skip
    assert entry_counts_by_rule(d).sum() >= by_session.sum()


def test_report_rows_take_their_rule_from_the_key_reason() -> None:
    class Report:
        anomalies = pd.DataFrame(
            {"kind": ["key", "key", "unknown key", "session end", "parameter"],
             "line": [1, 2, 3, 4, 5]}
        )  # fmt: skip
        entries = pd.DataFrame(
            {"line": [1, 2, 3, 4, 5],
             "key_reason": ["key not in top-g", "key below probability floor", "unknown key", "", ""]}
        )  # fmt: skip

    assert report_counts_by_rule(Report()).tolist() == [1, 1, 1, 1, 1]


def test_a_detection_without_entries_cannot_be_counted_by_entry() -> None:
    class Sessions:
        entries = None

    with pytest.raises(ValueError, match="no per-entry verdicts"):
        entry_counts_by_rule(Sessions())
