"""Stream detection's parser-backed resolver: learns a confirmed message and re-keys later lines."""

from __future__ import annotations

import numpy as np

from workbench.online import learn_unknown_with
from workbench.parsing import UNKNOWN_KEY, LogParser


def test_learn_unknown_with_learns_and_rekeys_later_entries():
    parser = LogParser("<Level> <Content>").fit(["INFO job started", "INFO job finished"])
    raw = ["INFO job started", "INFO cache warmed up", "INFO job finished", "INFO cache warmed up"]
    keys = parser.transform(raw, sessions=False)["key"].to_numpy().copy()
    assert keys[1] == keys[3] == UNKNOWN_KEY
    resolve = learn_unknown_with(parser, raw)
    new = resolve(1, keys)
    assert new is not None and new > 0
    assert keys[3] == new  # the later occurrence is matched to the learned template
    assert keys[0] != UNKNOWN_KEY and keys[2] != UNKNOWN_KEY
    assert np.count_nonzero(keys == UNKNOWN_KEY) == 1  # entry 1 itself is re-keyed by the caller
