"""Session rules: id regex, field, fixed and sliding windows; elapsed times; the one grouping of
entries into sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.logs.parser import LogParser
from workbench.logs.sessions import (
    SessionRule,
    add_elapsed_times,
    apply_session_rule,
    session_groups,
)

LINES = [
    "081109 203615 148 INFO dfs.DataNode: Receiving block blk_1 src: /10.0.0.1:5",
    "081109 203616 148 INFO dfs.DataNode: Receiving block blk_2 src: /10.0.0.1:5",
    "081109 203620 148 INFO dfs.DataNode: PacketResponder 1 for block blk_1 terminating",
    "not an hdfs line",
    "081109 203700 148 INFO dfs.DataNode: PacketResponder 1 for block blk_-2 terminating",
]


@pytest.fixture
def hdfs() -> pd.DataFrame:
    return LogParser("hdfs").parse(LINES)


def test_default_hdfs_sessions_by_block(hdfs):
    assert hdfs["session"].tolist() == ["blk_1", "blk_2", "blk_1", None, "blk_-2"]
    names, rows = session_groups(hdfs)
    assert names == ["blk_1", "blk_2", "blk_-2"]
    assert [r.tolist() for r in rows] == [[0, 2], [1], [4]]
    np.testing.assert_allclose(hdfs["dt_session"].to_numpy(), [np.nan, np.nan, 5.0, np.nan, np.nan])
    np.testing.assert_allclose(hdfs["dt_global"].to_numpy(), [np.nan, 1.0, 4.0, np.nan, 40.0])


def test_fixed_windows(hdfs):
    apply_session_rule(hdfs, SessionRule.parse("window:30"))
    assert hdfs["session"].tolist() == ["w0", "w0", "w0", None, "w1"]


def test_sliding_windows_overlap(hdfs):
    names, rows = session_groups(hdfs, SessionRule.parse("sliding:10,5"))
    by = {n: r.tolist() for n, r in zip(names, rows, strict=True)}
    assert by["s0"] == [0, 1, 2]
    assert by["s1"] == [2]  # entry at 5 s falls in [5, 15)
    assert 4 in by[max(by, key=lambda s: int(s[1:]))]
    assert names[:2] == ["s0", "s1"]  # in order of their first entry
    assert sum(len(r) for r in rows) == 3 + 2 + 1  # the entry at 45 s is in two windows
    # without the rule, the groups are those of the 'session' column
    assert session_groups(hdfs).names == ["blk_1", "blk_2", "blk_-2"]


def test_one_grouping_names_its_filter(hdfs):
    hdfs.loc[2, "key"] = 0  # an unknown template: parsed, but not a known key
    assert [r.tolist() for r in session_groups(hdfs, keep="parsed").rows] == [[0, 2], [1], [4]]
    assert [r.tolist() for r in session_groups(hdfs, keep="known").rows] == [[0], [1], [4]]
    known_only = hdfs[["session", "key"]]  # "known" needs no 'parsed' column
    assert session_groups(known_only, keep="known").names == ["blk_1", "blk_2", "blk_-2"]
    with pytest.raises(ValueError, match="keep"):
        session_groups(hdfs, keep="all")  # type: ignore[arg-type]


def test_field_rule_and_errors(hdfs):
    apply_session_rule(hdfs, SessionRule("field", field="Component"))
    assert hdfs["session"].iloc[0] == "dfs.DataNode"
    assert hdfs["session"].iloc[3] is None
    with pytest.raises(ValueError, match="no field"):
        apply_session_rule(hdfs, SessionRule("field", field="Nope"))
    with pytest.raises(ValueError, match="KIND:VALUE"):
        SessionRule.parse("blk")
    with pytest.raises(ValueError, match="positive window"):
        SessionRule.parse("window:0")
    with pytest.raises(ValueError, match="step"):
        SessionRule.parse("sliding:10,20")
    with pytest.raises(ValueError, match="invalid session regex"):
        SessionRule.parse("regex:(")


def test_windows_need_timestamps():
    df = LogParser("<Level> <Content>").parse(["INFO a", "INFO b"])
    with pytest.raises(ValueError, match="timestamps"):
        apply_session_rule(df, SessionRule.parse("window:10"))


def test_elapsed_times_ignore_unparsed_rows(hdfs):
    hdfs["dt_global"] = 0.0
    add_elapsed_times(hdfs)
    assert np.isnan(hdfs["dt_global"].iloc[3])
