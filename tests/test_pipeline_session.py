"""The session rule and coverage are part of the model: a custom layout and rule on the simulator,
kept through save/load and applied by every later detect; sliding windows; reports that say what
they checked."""

from __future__ import annotations

import re

import numpy as np
import pytest

from workbench.keys.model import KeyModelConfig
from workbench.logs.parser import LogParser
from workbench.logs.sessions import SessionRule
from workbench.params.config import ParamModelConfig
from workbench.simulate.engine import simulate
from workbench.workbench import Workbench

FAST_KEY = KeyModelConfig(top_g="auto", hidden_size=32, max_epochs=12, patience=3)
FAST_PARAM = ParamModelConfig(max_epochs=3, hidden_size=16)

# a layout no built-in format knows, and an instance id written differently
HEADER = "<Date>T<Time> <Level> <Component> :: <Content>"
RULE = r"regex:\(vm ([0-9a-f-]{36})\)"
_OS = LogParser("openstack").format


def _custom(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        f = _OS.split(line)
        content = re.sub(r"\[instance: ([0-9a-f-]{36})\]", r"(vm \1)", f["Content"])
        out.append(f"{f['Date']}T{f['Time']} {f['Level']} {f['Component']} :: {content}")
    return out


@pytest.fixture(scope="module")
def sim():
    train = simulate(n_instances=150, anomalies={}, seed=21)
    test = simulate(n_instances=60, anomalies={"execution": 0.1}, seed=22)
    return _custom(train.lines), _custom(test.lines), test.labels


@pytest.fixture(scope="module")
def trained(sim, tmp_path_factory):
    train, _, _ = sim
    wb = Workbench.from_logs(
        train, HEADER, session=RULE, key_config=FAST_KEY, param_config=FAST_PARAM, seed=0
    )
    wb.fit(workflows=False)
    folder = tmp_path_factory.mktemp("run") / "custom"
    wb.save(folder)
    wb.close()
    return folder


def test_custom_rule_survives_save_load_and_finds_the_planted_anomaly(sim, trained):
    _, test, labels = sim
    bad = set(labels.loc[labels["anomaly"] == "execution", "instance"].dropna())
    assert bad
    wb = Workbench.load(trained)
    assert str(wb.session_rule) == RULE
    assert RULE in str(wb.summary())
    report = wb.detect(test)
    cov = report.coverage
    assert cov.sessions > 0 and cov.key_entries > 0 and not cov.warnings
    found = set(report.anomalies["session"].dropna()) & bad
    assert found, "an instance with an execution anomaly must be reported"
    # same rule, same verdicts after another save/load
    wb.save(trained)
    again = Workbench.load(trained)
    ids = again.detect(test).anomalies["id"].tolist()
    assert ids == report.anomalies["id"].tolist()
    # the bug this guards against: without the rule the new log has no session and the key
    # model never runs; the report must say so instead of looking clean
    again.parser.session_rule = None
    blind = again.detect(test)
    assert blind.coverage.sessions == 0
    assert not set(blind.anomalies["session"].dropna()) & bad
    assert any("no session was scored" in w for w in blind.coverage.warnings)
    again.close()
    wb.close()


def test_wrong_format_is_never_a_clean_report(trained):
    wb = Workbench.load(trained)
    hdfs = [f"081109 2036{i:02d} 148 INFO dfs.DataNode: Receiving blk_{i}" for i in range(200)]
    report = wb.detect(hdfs)
    assert report.coverage.parsed == 0
    assert report.verdict.startswith("nothing was checked")
    assert "only 0 of 200 lines fit the format" in report.coverage.warnings[0]
    wb.close()


def test_sliding_windows_everywhere(sim, tmp_path):
    train, test, _ = sim
    rule = "sliding:120,60"
    wb = Workbench.from_logs(
        train[:1500], HEADER, session=rule, key_config=FAST_KEY, param_config=FAST_PARAM
    )
    _, groups = wb._sessions(wb.entries)
    rows = np.concatenate(groups)
    assert len(rows) > len(np.unique(rows)), "sliding windows overlap"
    wb.fit(workflows=False)
    wb.save(tmp_path / "run")
    wb2 = Workbench.load(tmp_path / "run")
    assert str(wb2.session_rule) == rule
    report = wb2.detect(test[:800])
    assert report.coverage.sessions > 1 and report.coverage.key_entries > 0
    assert SessionRule.parse(rule).kind == "sliding"
    wb.close()
    wb2.close()


def test_window_rule_without_timestamps_says_so():
    p = LogParser("<Level> <Content>", session="window:60")
    df = p.parse(["INFO a", "INFO b"])
    assert df["session"].isna().all()
    assert "timestamps" in df.attrs["session_problem"]
    assert "window:60" in str(p.summary(df))


def test_syslog_year_and_unreadable_timestamps():
    line = "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown"
    assert LogParser("linux", year=2005).parse([line])["timestamp"].iloc[0].year == 2005
    df = LogParser("hdfs").parse(["081309 999999 1 INFO x: hello"])
    assert "could not be read as %y%m%d %H%M%S" in df.attrs["timestamp_problem"]
    assert "line 1" in df.attrs["timestamp_problem"]
