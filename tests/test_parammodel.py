"""Tests of the per-key parameter-value model: shapes, statuses, thresholds, updates, persistence."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.logs.parser import LogParser
from workbench.params import update
from workbench.params.config import ParamModelConfig
from workbench.params.confirmed import nearest
from workbench.params.conformal import ConformalThreshold
from workbench.params.gaussian import GaussianThreshold
from workbench.params.model import ParamModel
from workbench.params.network import ParamLSTM, masked_mse
from workbench.params.scaling import denormalise, normalise
from workbench.params.scoring import predict
from workbench.params.vectors import build_series, split_point, windows
from workbench.params.verdicts import instance_verdicts
from workbench.train import EventRecorder

FAST = ParamModelConfig(max_epochs=6, hidden_size=16, num_layers=1, min_entries=40)


def synthetic_log(n_sessions: int = 160, seed: int = 0, slow: dict[int, float] | None = None):
    """Sessions of 3 entries: start (key 1), work (key 2, elapsed ~3 s, reports its duration),
    end (key 3, constant parameter). Key 4 is rare (too few entries); key 5 never varies."""
    rng = np.random.default_rng(seed)
    slow = slow or {}
    rows, t = [], 0.0
    for s in range(n_sessions):
        sid = f"vm{s}"
        t += rng.exponential(2.0)
        rows.append((t, sid, 1, ()))
        took = rng.normal(3.0, 0.2) * slow.get(s, 1.0)
        t += took
        rows.append((t, sid, 2, (round(took, 3),)))
        t += rng.uniform(0.4, 0.6)
        rows.append((t, sid, 3, (512.0,)))
        if s % 20 == 0:
            rows.append((t, None, 4, ()))
        rows.append((t + 1.0, None, 5, (7.0,)))
        t += 1.0
    df = pd.DataFrame(rows, columns=["t", "session", "key", "params"])
    df["line"] = np.arange(1, len(df) + 1)
    df["parsed"] = True
    df["dt_global"] = df["t"].diff()
    df["dt_session"] = df.groupby("session", sort=False)["t"].diff()
    df.loc[df["key"] == 5, "dt_global"] = 1.0  # exactly periodic background line
    return df.drop(columns="t")


@pytest.fixture(scope="module")
def train_df():
    return synthetic_log(seed=0)


@pytest.fixture(scope="module")
def model(train_df):
    return ParamModel(FAST).fit(train_df, seed=0)


# ---------------------------------------------------------------------- config and module
def test_config_is_validated_and_rejects_unknown_keys():
    with pytest.raises(ValueError, match="history"):
        ParamModelConfig(history=0)
    with pytest.raises(ValueError, match="elapsed"):
        ParamModelConfig(elapsed="wall")
    with pytest.raises(ValueError, match="levels"):
        ParamModelConfig(levels=(0.99, 1.5))
    with pytest.raises(ValueError, match="value_scale"):
        ParamModelConfig(value_scale="log")
    with pytest.raises(ValueError, match="unknown ParamModelConfig fields"):
        ParamModelConfig.from_dict({"histroy": 3})
    cfg = ParamModelConfig(levels=(0.95, 0.99))
    assert ParamModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_stacked_lstms_are_independent():
    torch.manual_seed(0)
    m = ParamLSTM(n_models=3, n_dims=2, hidden_size=8, num_layers=2)
    x = torch.randn(3, 4, 5, 4)
    out = m(x)  # [3, 4, 2]
    assert out.shape == (3, 4, 2)
    out[1].sum().backward()
    for p in m.parameters():
        assert p.grad[0].abs().sum() == 0 and p.grad[2].abs().sum() == 0
    # selecting one model gives that model's output
    torch.testing.assert_close(m(x[2:3], models=torch.tensor([2])), m(x)[2:3])


def test_masked_mse_ignores_unobserved_dimensions():
    pred = torch.tensor([[1.0, 5.0]])
    target = torch.tensor([[0.0, 0.0]])
    assert masked_mse(pred, target, torch.tensor([[1.0, 0.0]])).item() == 1.0


# ---------------------------------------------------------------------- vectors
def test_series_use_session_elapsed_and_fall_back_to_global(train_df):
    s = build_series(train_df)
    assert np.isnan(s[1].values[:, 0]).all()  # first entry of each session: no elapsed time
    assert np.nanmean(s[2].values[:, 0]) == pytest.approx(3.0, abs=0.1)
    assert (s[5].values[1:, 0] == 1.0).all()  # sessionless: whole-log elapsed time
    g = build_series(train_df, elapsed="global")
    assert np.isfinite(g[1].values[1:, 0]).all()
    assert split_point(160, 0.25) == 120


# ---------------------------------------------------------------------- fit
def test_fit_records_per_key_status(model):
    status = {k: v["status"] for k, v in model.keys_.items()}
    assert status == {
        1: "skipped: too few entries",  # first of its session, no parameter: no value at all
        2: "trained",
        3: "trained",
        4: "skipped: too few entries",
        5: "skipped: constant",
    }
    report = model.key_report()
    assert report.loc[report["key"] == 4, "detail"].item().startswith("8 usable entries")
    assert np.isnan(report.loc[report["key"] == 4, "threshold_99"].item())
    assert model.history_ and {"epoch", "train_loss", "val_loss"} <= set(model.history_[0])
    assert set(model.thresholds_) == {2, 3}


def test_fit_is_deterministic_for_a_seed(train_df, model):
    again = ParamModel(FAST).fit(train_df, seed=0)
    assert again.thresholds_[2].threshold(0.99) == pytest.approx(
        model.thresholds_[2].threshold(0.99)
    )


def test_threshold_is_fitted_on_validation_mses_only(model, train_df):
    """Recompute the validation MSEs by scoring the training frame: the rule fitted on them matches,
    and scoring other test data (normal or wild) never moves it."""
    before = {k: t.thresholds() for k, t in model.thresholds_.items()}
    own = model.score(train_df)
    rows = build_series(train_df)[2].rows
    val_rows = rows[split_point(len(rows), FAST.validation_fraction) :]
    val_mse = own["mse"].to_numpy()[val_rows]
    pool = model.thresholds_[2].pool
    refit = ConformalThreshold(floor=FAST.min_threshold, offset=FAST.min_threshold, pool=pool)
    refit.fit(val_mse)
    for level, value in refit.thresholds().items():
        assert model.thresholds_[2].threshold(level) == pytest.approx(value, rel=1e-3)
    for seed in (1, 2):
        wild = synthetic_log(seed=seed, slow={s: 10.0 for s in range(0, 160, 3)})
        model.score(wild)
    assert {k: t.thresholds() for k, t in model.thresholds_.items()} == before


# ---------------------------------------------------------------------- score
def test_score_flags_a_slow_transition_and_explains_it(model):
    test = synthetic_log(seed=7, slow={50: 4.0})
    out = model.score(test)
    hit = out[(out["session"] == "vm50") & (out["key"] == 2)].iloc[0]
    assert hit["status"] == "scored"
    assert bool(hit["anomalous_99"]) and bool(hit["anomalous_99.9"])
    assert hit["observed"] > 10 and 2 < hit["predicted"] < 4  # seconds, original units
    assert hit["mse"] > hit["threshold_99.9"] > hit["threshold_99"] > hit["threshold_98"]
    normal = out[(out["status"] == "scored") & (out["session"] != "vm50")]
    assert normal["anomalous_99"].astype(bool).mean() < 0.1


def test_non_negative_dimensions_are_modelled_on_a_log_scale(model, train_df):
    assert model.keys_[2]["logged"] == [True, True]  # elapsed seconds, "took" seconds
    shifted = train_df.copy()
    shifted["params"] = [
        (p[0] - 3.0,) if k == 2 else p
        for k, p in zip(shifted["key"], shifted["params"], strict=True)
    ]
    lin = ParamModel(FAST).fit(shifted, seed=0)
    assert lin.keys_[2]["logged"] == [True, False]  # a dimension with negative values stays linear
    z = normalise(lin.keys_[2], np.array([[3.0, -0.5], [np.nan, 0.5]]))
    assert np.isnan(z[1, 0]) and np.isfinite(z).sum() == 3
    back = denormalise(
        lin.keys_[2], normalise(lin.keys_[2], np.array([[3.0, -0.5], [100.0, -7.0]]))
    )
    np.testing.assert_allclose(back, [[3.0, -0.5], [100.0, -7.0]], rtol=1e-9)
    plain = ParamModel(replace(FAST, value_scale="linear")).fit(train_df, seed=0)
    assert plain.keys_[2]["logged"] == [False, False]
    assert plain.keys_[2]["mean"][1] == pytest.approx(3.0, abs=0.1)  # seconds, not log seconds
    assert model.keys_[2]["log_unit"][1] == pytest.approx(3.0, abs=0.1)  # the median "took"
    assert model.keys_[2]["mean"][1] == pytest.approx(np.log(2.0), abs=0.05)  # log(1 + x / u)
    in_ms = train_df.copy()
    in_ms["params"] = [
        (p[0] * 1000.0,) if k == 2 else p
        for k, p in zip(in_ms["key"], in_ms["params"], strict=True)
    ]
    ms = ParamModel(FAST).fit(in_ms, seed=0)  # the same durations in milliseconds: same input
    np.testing.assert_allclose(
        normalise(ms.keys_[2], np.array([[1.0, 9000.0]])),
        normalise(model.keys_[2], np.array([[1.0, 9.0]])),
        rtol=1e-5,
    )


def test_instance_verdicts_correct_the_level_for_the_entry_count(model):
    test = synthetic_log(seed=7, slow={50: 4.0, 90: 4.0})
    out = model.score(test)
    inst = instance_verdicts(out, FAST.levels)
    assert set(inst.index) == set(out.loc[out["status"] == "scored", "session"].dropna())
    assert inst.loc["vm50", "anomalous_99"] and inst.loc["vm90", "anomalous_99.9"]
    assert inst.loc["vm50", "key"] == 2 and inst.loc["vm50", "observed"] > 10
    assert (inst["entries"] == 2).all()  # keys 2 and 3 (key 1 opens the session: no elapsed time)
    np.testing.assert_allclose(inst["entry_level_99"], 0.99**0.5)
    per_entry = out[out["anomalous_99"].fillna(False).astype(bool)]["session"].dropna().unique()
    assert set(inst.index[inst["anomalous_99"]]) <= set(per_entry)  # never more than any-entry
    assert inst["anomalous_99"].sum() <= 2 + 0.01 * len(inst) * 3


def test_entries_without_a_model_are_reported_not_normal(model):
    test = synthetic_log(seed=3)
    test.loc[0, "parsed"] = False
    test.loc[1, "key"] = 0  # an unknown key
    test.loc[6, "params"] = (1.0, 2.0)  # another parameter count (a key-2 entry)
    out = model.score(test)
    assert out.loc[0, "status"] == "unparsed"
    assert out.loc[1, "status"] == "no model" and out.loc[1, "detail"] == "unknown key"
    assert out.loc[6, "status"] == "parameter count differs"
    rare = out[out["key"] == 4]
    assert (rare["status"] == "no model").all()
    assert rare["detail"].str.contains("too few entries").all()
    assert rare["anomalous_99"].isna().all() and rare["mse"].isna().all()
    first = out[(out["key"] == 1)].iloc[1:]
    assert (first["status"] == "no model").all()
    assert list(out.index) == list(test.index)


def test_only_limits_the_decisions(model, train_df):
    key_normal = train_df["session"] != "vm5"
    out = model.score(train_df, only=key_normal)
    checked = out.loc[~key_normal.to_numpy() & (out["key"] == 2).to_numpy()]
    assert (checked["status"] == "not checked").all() and checked["anomalous_99"].isna().all()
    full = model.score(train_df)
    same = key_normal.to_numpy()
    np.testing.assert_allclose(out["mse"].to_numpy()[same], full["mse"].to_numpy()[same])


# ---------------------------------------------------------------------- update and persistence
def test_partial_fit_learns_the_example_and_only_its_key(model, train_df):
    m = ParamModel.from_state(model.to_state())
    other = {n: p.detach()[m.keys_[3]["slot"]].clone() for n, p in m.module_.named_parameters()}
    s = build_series(train_df)[2]
    history, nxt = s.values[-6:-1], np.array([s.values[-1, 0] * 3, s.values[-1, 1] * 3])
    assert m.score(train_df.iloc[:0]).empty

    def mse_of_example():
        z = normalise(m.keys_[2], np.vstack([history, nxt]))
        pred = predict(m, 2, windows(z.astype(np.float32), FAST.history)[-1:])
        return float(((pred[0] - z[-1]) ** 2).mean())

    before = mse_of_example()
    m.config = m.config.replace(update_steps=20)
    m.partial_fit(2, history, nxt)
    assert mse_of_example() < before
    for n, p in m.module_.named_parameters():
        torch.testing.assert_close(p.detach()[m.keys_[3]["slot"]], other[n])
    assert m.keys_[2]["updates"] == 1
    with pytest.raises(ValueError, match="no parameter model"):
        m.partial_fit(4, [], [1.0])


def test_state_round_trip_gives_the_same_scores(model):
    state = model.to_state()
    json.dumps({k: v for k, v in state.items() if k not in ("module", "replay")})
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = ParamModel.from_state(torch.load(buf, weights_only=True))
    test = synthetic_log(seed=9)
    pd.testing.assert_frame_equal(model.score(test), loaded.score(test))
    with pytest.raises(ValueError, match="format"):
        ParamModel.from_state({"format": "other"})
    broken = dict(state, thresholds={})
    with pytest.raises(ValueError, match="malformed"):
        ParamModel.from_state(broken)


def test_interrupting_training_keeps_a_usable_model(train_df):
    def stop(event):
        if event.kind == "epoch_end" and event.epoch == 2:
            raise KeyboardInterrupt

    m = ParamModel(FAST).fit(train_df, callbacks=[stop], seed=0)
    assert m.interrupted_ and len(m.history_) == 2
    assert m.score(train_df)["status"].eq("scored").any()


def test_training_reports_the_same_events_as_the_key_model(train_df):
    recorder = EventRecorder()
    m = ParamModel(FAST).fit(train_df, callbacks=[recorder], seed=0)
    kinds = [e.kind for e in recorder.events]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    epochs = [e for e in recorder.events if e.kind == "epoch_end"]
    assert [e.record for e in epochs] == list(m.history_)  # each epoch's record, as kept
    assert {"keys_improved", "keys_active", "best_val_loss"} <= set(epochs[0].record)
    batches = [e for e in recorder.events if e.kind == "batch_end" and e.epoch == 1]
    assert len(batches) == batches[0].n_batches and epochs[0].max_epochs == FAST.max_epochs
    assert recorder.events[-1].stopped in ("max_epochs", "early_stopping")


def test_online_update_settings_are_validated_config_fields():
    with pytest.raises(ValueError, match="update_steps"):
        ParamModelConfig(update_steps=0)
    with pytest.raises(ValueError, match="update_learning_rate"):
        ParamModelConfig(update_learning_rate=-1.0)
    assert ParamModelConfig(learning_rate=0.01).update_rate == 0.01
    assert ParamModelConfig(update_learning_rate=0.02).update_rate == 0.02


def test_score_before_fit_is_explained():
    with pytest.raises(RuntimeError, match="not fitted"):
        ParamModel().score(synthetic_log(n_sessions=2))


# ---------------------------------------------------------------------- real data
LABELS = "openstack_deeplog/anomaly_labels.txt"


@pytest.mark.slow
@pytest.mark.data
def test_openstack_14k_spawn_of_50_seconds_is_flagged(shared_data):
    df = LogParser("openstack").parse(shared_data / "openstack_deeplog" / "OpenStack_14k.log.gz")
    labelled = [
        s.strip() for s in (shared_data / LABELS).read_text().splitlines() if len(s.strip()) == 36
    ]
    m = ParamModel().fit(df[~df["session"].isin(labelled)], seed=0)
    out = m.score(df)
    spawn = out[df["template"].str.contains("seconds to spawn").to_numpy()]
    big = spawn[spawn["observed"] > 50]
    assert len(big) == 1 and big["session"].item() in labelled
    assert bool(big["anomalous_99"].item()) and big["dimension"].item() == "param1"


def test_refit_thresholds_switches_the_rule_without_retraining(model):
    m = ParamModel.from_state(model.to_state())
    conformal99 = m.thresholds_[2].threshold(0.99)
    assert isinstance(m.thresholds_[2], ConformalThreshold)
    m.refit_thresholds(scale="linear")
    val = m.validation_mse_[2]
    assert m.config.threshold_rule == "gaussian"
    assert m.thresholds_[2].threshold(0.99) == pytest.approx(val.mean() + 2.5758 * val.std(), 1e-3)
    log99 = m.refit_thresholds(scale="log").thresholds_[2].threshold(0.99)
    assert log99 == pytest.approx(
        GaussianThreshold(scale="log", floor=FAST.min_threshold).fit(val).threshold(0.99)
    )
    back = m.refit_thresholds(rule="conformal").thresholds_[2].threshold(0.99)
    assert back == pytest.approx(conformal99)
    assert len(m.replay_) == len(m.thresholds_)  # every trained key keeps replay windows


def test_a_keys_model_does_not_depend_on_the_other_keys(model, train_df):
    alone = ParamModel(FAST).fit(train_df[train_df["key"] != 3], seed=0)
    assert set(alone.thresholds_) == {2}
    # The network and its validation MSEs are the key's own; only the conformal rule's pooled
    # tail (beyond the key's largest validation MSE) is shared between keys by design.
    np.testing.assert_allclose(alone.validation_mse_[2], model.validation_mse_[2], rtol=1e-5)


def test_partial_fit_with_a_level_steps_until_the_example_is_within_the_threshold(
    model, train_df, monkeypatch
):
    m = ParamModel.from_state(model.to_state())
    s = build_series(train_df)[2]
    history, nxt = s.values[-6:-1], s.values[-1] * 3  # outside what training saw
    level = max(m.config.levels)
    limit = m.thresholds_[2].threshold(level)
    far = ParamModel.from_state(m.to_state()).partial_fit(2, history, nxt, level=level)
    if far.last_update_["mse_before"] > update.FAR * limit:  # that far: kept, and no step taken
        assert far.last_update_["steps"] == 0 and far.last_update_["confirmed"] == 1
    monkeypatch.setattr(update, "FAR", np.inf)  # the steps themselves
    fresh = ParamModel.from_state(m.to_state())
    m.config = m.config.replace(update_steps=1, update_max_steps=1)
    m.partial_fit(2, history, nxt, level=level)
    assert m.last_update_["steps"] == 1 and m.last_update_["mse"] > limit
    # still above after the steps: the value is kept as confirmed normal for the key (scoring
    # expects it beside the prediction), and the key's threshold stays as validation fitted it
    assert m.last_update_["confirmed"] == 1 and m.thresholds_[2].threshold(level) == limit
    z = normalise(m.keys_[2], np.asarray(nxt, float)[None])
    seen = np.isfinite(z)
    assert np.allclose(nearest(m.keys_[2], np.zeros_like(z), z)[seen], z[seen])
    assert "confirmed" not in fresh.keys_[2]  # the key's own record only, of this model only
    fresh.config = fresh.config.replace(update_steps=1, update_max_steps=300)
    fresh.partial_fit(2, history, nxt, level=level)
    u = fresh.last_update_
    assert 1 <= u["steps"] < 300 and u["confirmed"] == 1 and u["confirmed_new"]
