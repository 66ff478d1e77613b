"""Whole pipeline on raw loghub logs: format chosen automatically, train on the head, detect on the
tail, with the format's own session rule or a time window; every stage reports what it covered."""

from __future__ import annotations

import pytest

from workbench.detect.follow import OnlineDetector
from workbench.keys.model import KeyModelConfig
from workbench.params.config import ParamModelConfig
from workbench.workbench import Workbench

FAST_KEY = KeyModelConfig(top_g="auto", hidden_size=32, max_epochs=6, patience=2)
FAST_PARAM = ParamModelConfig(max_epochs=2, hidden_size=16)

# system -> (expected automatic format, session rule; None = the format's own)
SYSTEMS = {
    "HDFS": ("hdfs", None),
    "OpenStack": ("openstack", None),
    "BGL": ("bgl", None),
    "Thunderbird": ("thunderbird", None),
    "Zookeeper": ("zookeeper", "window:600"),
    "Spark": ("spark", "sliding:120,60"),
    "Linux": ("linux", "window:86400"),
    "Hadoop": ("hadoop", "window:60"),
}


@pytest.mark.slow
@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_raw_log_head_to_tail(system, shared_data, tmp_path):
    path = shared_data / "loghub_2k" / system / f"{system}_2k.log"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    head, tail = lines[:1500], lines[1500:]
    fmt, rule = SYSTEMS[system]
    wb = Workbench.from_logs(
        head, "auto", session=rule, key_config=FAST_KEY, param_config=FAST_PARAM, seed=0
    )
    assert wb.format_choice.format.name == fmt
    s = wb.summary()
    assert s.parsed > 0.9 * s.lines and s.sessions > 0 and s.keys > 0, s
    wb.fit(workflows=False)
    wb.save(tmp_path / "run")
    wb = Workbench.load(tmp_path / "run")
    report = wb.detect(tail)
    c = report.coverage
    assert c.lines == len(tail) and c.parsed > 0.9 * c.lines, c
    assert c.sessions > 0 and c.key_entries > 0, c
    assert c.checked > 0 and not report.verdict.startswith("nothing")
    live = OnlineDetector(wb, idle_lines=200)  # --follow on the same lines, a few at a time
    rows = [r for i in range(0, len(tail), 50) for r in live.feed(tail[i : i + 50])]
    rows += live.close()
    assert live.coverage.lines == len(tail) and live.anomalies == len(rows)
    if rule is None and not live.sessions_reopened:  # id sessions: the verdicts of one process
        assert sorted(int(r["line"]) for r in rows) == sorted(report.anomalies["line"].tolist())
    wb.close()
