"""Training on a long log reads bounded, seeded samples, says so, and leaves small fits as they were."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.logs.parser import LogParser
from workbench.params.config import ParamModelConfig
from workbench.params.model import ParamModel
from workbench.params.vectors import sample_positions, windows, windows_at
from workbench.simulate.engine import simulate
from workbench.workflow.cooccurrence import WorkflowConfig, build_workflows


def _series_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "line": np.arange(1, n + 1),
            "key": 1,
            "parsed": True,
            "session": None,
            "dt_session": np.nan,
            "dt_global": rng.normal(1.0, 0.1, n),
            "params": [(float(v),) for v in rng.normal(20.0, 0.5, n)],
        }
    )


def test_sample_positions_keeps_everything_under_the_caps_and_draws_within_a_part():
    rng = np.random.default_rng(1)
    at, cut = sample_positions(100, 75, 75, 25, rng)
    assert at.tolist() == list(range(100)) and cut == 75
    at, cut = sample_positions(1000, 750, 100, 50, np.random.default_rng(1))
    assert cut == 100 and len(at) == 150
    assert (np.diff(at) > 0).all() and at[:cut].max() < 750 <= at[cut:].min()
    again, _ = sample_positions(1000, 750, 100, 50, np.random.default_rng(1))
    assert (again == at).all()  # seeded


def test_windows_at_are_the_windows_of_those_entries():
    z = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    z[::7, 1] = np.nan
    at = np.array([0, 1, 4, 20, 49])
    assert np.array_equal(windows_at(z, 4, at), windows(z, 4)[at])


def test_param_model_under_the_caps_is_the_uncapped_model():
    df = _series_frame(400)
    cfg = ParamModelConfig(max_epochs=3)
    capped = ParamModel(cfg).fit(df, seed=0)
    free = ParamModel(cfg.replace(max_train_windows=None, max_validation_windows=None)).fit(
        df, seed=0
    )
    assert np.array_equal(capped.validation_mse_[1], free.validation_mse_[1])
    info = capped.keys_[1]
    assert (info["n_train_used"], info["n_validation_used"]) == (
        info["n_train"],
        info["n_validation"],
    )


def test_param_model_above_the_caps_trains_on_a_sample_and_says_so():
    df = _series_frame(3000)
    model = ParamModel(
        ParamModelConfig(max_epochs=3, max_train_windows=300, max_validation_windows=250)
    ).fit(df, seed=0)
    info = model.keys_[1]
    assert info["n_train"] > 2000 and info["n_train_used"] == 300
    assert info["n_validation_used"] == 250 == len(model.validation_mse_[1])
    assert model.data_used() == {
        "keys": 1, "n_train": info["n_train"], "n_train_used": 300,
        "n_validation": info["n_validation"], "n_validation_used": 250,
    }  # fmt: skip
    report = model.key_report()
    assert report.loc[0, "n_train_used"] == 300
    df.loc[len(df) - 1, "params"] = (60.0,)  # still a working model: a spike is caught
    assert bool(model.score(df)["anomalous_99"].iloc[-1])


@pytest.mark.parametrize("bad", [0, 1, -5, 2.5, "many"])
def test_caps_are_validated(bad):
    with pytest.raises(ValueError, match="max_train_windows"):
        ParamModelConfig(max_train_windows=bad)
    with pytest.raises(ValueError, match="max_sessions"):
        WorkflowConfig(max_sessions=bad)


def test_workflows_on_a_session_sample_find_the_same_tasks():
    entries = LogParser("openstack").parse(simulate(n_instances=400, anomalies={}, seed=5).lines)
    full = build_workflows(entries, WorkflowConfig(max_sessions=None))
    part = build_workflows(entries, WorkflowConfig(max_sessions=200), seed=1)
    tasks = {tuple(sorted(g.graph["keys"])) for g in full}
    assert {tuple(sorted(g.graph["keys"])) for g in part} == tasks  # the order may differ
    assert {(g.graph["sessions_used"], g.graph["sessions"]) for g in part} == {(200, 400)}
    assert {(g.graph["sessions_used"], g.graph["sessions"]) for g in full} == {(400, 400)}
    assert sum(g.graph["runs"] for g in part) < sum(g.graph["runs"] for g in full)


def test_workbench_fit_reports_each_stage_and_what_was_sampled():
    from workbench.keys.model import KeyModelConfig
    from workbench.workbench import Workbench

    wb = Workbench.from_simulation(
        n_instances=150,
        test_instances=20,
        seed=2,
        key_config=KeyModelConfig(top_g="auto", hidden_size=16, max_epochs=3, patience=2),
        param_config=ParamModelConfig(max_epochs=2, hidden_size=8, max_validation_windows=20),
        workflow_config=WorkflowConfig(max_sessions=100),
    )
    try:
        wb.fit()
        report = wb.fit_report_
        stages = report.to_dict()["stages"]
        assert list(stages) == ["key model", "parameter models", "workflows"]
        assert all(s["seconds"] >= 0 and s["cpu_seconds"] >= 0 for s in stages.values())
        assert stages["key model"]["sessions"] == 150
        assert stages["workflows"]["sessions_used"] == 100
        params = stages["parameter models"]
        assert params["keys"] == len(wb.param_keys())
        assert params["validation_vectors_used"] < params["validation_vectors"]
        assert params["training_vectors_used"] == params["training_vectors"]
        text = report.summary()
        assert text.startswith(f"{len(wb.entries):,} lines")
        assert "100 of 150 sessions (a seeded sample)" in text
        assert "validation vectors (a seeded sample)" in text
    finally:
        wb.close()
