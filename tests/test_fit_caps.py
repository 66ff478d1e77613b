"""The key model fits a long log on a sample of its sessions bounded by distinct sequences, says
so, and fits a log under the cap exactly as without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.keys.config import KeyModelConfig
from workbench.keys.model import KeyModel
from workbench.keys.splits import sample_sessions
from workbench.logs.parser import LogParser
from workbench.simulate.engine import simulate

SMALL = {"hidden_size": 8, "max_epochs": 3, "patience": 2}


def _sessions(n_instances: int, seed: int = 3) -> list[tuple[int, ...]]:
    entries = LogParser("openstack").parse(
        simulate(n_instances=n_instances, anomalies={}, seed=seed).lines
    )
    entries = entries[entries["session"].notna()]
    return [tuple(g["key"].tolist()) for _, g in entries.groupby("session", sort=True)]


def _many(n_distinct: int, copies: int) -> list[tuple[int, ...]]:
    """``copies`` of 3 frequent sequences and ``n_distinct`` sequences seen once, shuffled."""
    rare = [(1, 2, 3 + i % 7, 4 + i % 11, 2 + i % 5) for i in range(n_distinct)]
    common = [(1, 2, 3, 4), (1, 3, 2, 4), (1, 2, 4)] * copies
    order = np.random.default_rng(0).permutation(len(rare) + len(common))
    both = rare + common
    return [both[i] for i in order]


def test_sample_is_none_under_the_cap_and_a_seeded_uniform_sample_above():
    s = _many(300, 200)
    distinct = len(set(s))
    assert sample_sessions(s, None) is None and sample_sessions(s, distinct) is None
    kept = sample_sessions(s, 50, seed=1)
    assert len({s[i] for i in kept}) == 50
    assert (np.diff(kept) > 0).all()  # in log order, no repeats
    assert np.array_equal(kept, sample_sessions(s, 50, seed=1))  # seeded
    assert not np.array_equal(kept, sample_sessions(s, 50, seed=2))
    # a uniform sample: the frequent sequences keep their share
    share = np.mean([s[i] == (1, 2, 3, 4) for i in kept])
    assert abs(share - 200 / len(s)) < 0.08


def test_key_model_under_the_cap_is_the_uncapped_model():
    sessions = _sessions(60)
    config = KeyModelConfig.preset("recommended", **SMALL)
    assert len(set(sessions)) <= config.max_distinct_sessions
    capped = KeyModel(config).fit(sessions, seed=0, device="cpu")
    free = KeyModel(config.replace(max_distinct_sessions=None)).fit(sessions, seed=0, device="cpu")
    a, b = capped.to_state(), free.to_state()
    assert all(torch.equal(a["module"][k], b["module"][k]) for k in a["module"])
    assert a["g_selection"] == b["g_selection"]
    assert capped.fit_info_["n_sessions_used"] == capped.fit_info_["n_sessions"] == len(sessions)
    assert capped.fit_info_["n_distinct_sessions_used"] == len(set(sessions))
    probe = [*sessions[:5], sessions[0][:3]]
    d1, d2 = capped.detect(probe), free.detect(probe)
    assert np.array_equal(d1.anomalous, d2.anomalous) and np.array_equal(d1.reason, d2.reason)
    assert np.array_equal(capped.score(probe).rank, free.score(probe).rank)


def test_key_model_above_the_cap_fits_a_sample_and_says_so():
    sessions = _many(400, 100)
    config = KeyModelConfig.preset("recommended", max_distinct_sessions=60, **SMALL)
    model = KeyModel(config).fit(sessions, seed=0, device="cpu")
    info = model.fit_info_
    assert (
        info["n_sessions"] == len(sessions)
        and info["n_distinct_sessions"] == len(set(sessions)) > 300
    )
    assert info["n_distinct_sessions_used"] == 60
    assert 60 < info["n_sessions_used"] < len(sessions)
    again = KeyModel(config).fit(sessions, seed=0, device="cpu")
    assert again.fit_info_["n_sessions_used"] == info["n_sessions_used"]
    verdict = model.detect([(1, 2, 3, 4), (4, 3, 2, 1, 1, 1), (1, 2, 3, 99)])
    assert verdict.reason[2] == "unknown key" and len(verdict.anomalous) == 3


@pytest.mark.parametrize("bad", [0, 1, 2.5, "many", True])
def test_cap_is_validated(bad):
    with pytest.raises(ValueError, match="max_distinct_sessions"):
        KeyModelConfig(max_distinct_sessions=bad)


def test_workbench_fit_report_says_the_key_model_sample():
    from workbench.workbench import Workbench

    wb = Workbench.from_simulation(
        n_instances=120,
        test_instances=10,
        seed=4,
        key_config=KeyModelConfig(top_g="auto", max_distinct_sessions=20, **SMALL),
    )
    try:
        wb.fit(param_config={"max_epochs": 1, "hidden_size": 4}, workflows=False)
        rec = wb.fit_report_.to_dict()["stages"]["key model"]
        assert rec["sessions"] == 120 and rec["distinct_sessions_used"] == 20
        assert rec["distinct_sessions"] > 20 and rec["sessions_used"] < 120
        assert "of 120 sessions (a seeded sample)" in wb.fit_report_.summary()
        assert f"20 of {rec['distinct_sessions']} distinct sessions" in wb.fit_report_.summary()
    finally:
        wb.close()


@pytest.mark.data
def test_hdfs_training_file_is_under_the_default_cap(shared_data):
    """The README's HDFS figures are fitted on every session: the cap never samples them."""
    from workbench.eval.protocol import read_role

    sessions, _ = read_role([shared_data / "deeplog_hdfs" / "hdfs_train"], "keys", 0)
    sessions = [tuple(s) for s in sessions]
    cap = KeyModelConfig.preset("recommended").max_distinct_sessions
    assert len(set(sessions)) < cap and sample_sessions(sessions, cap) is None
