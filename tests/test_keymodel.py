"""The LSTM key model on generated sessions with planted anomalies, and the training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench import keyids
from workbench.keys.model import KeyModel, KeyModelConfig
from workbench.keys.networks import NextKeyLSTM
from workbench.train import EventRecorder, TrainConfig, train_module

SMALL = dict(window=4, hidden_size=24, max_epochs=40, batch_size=8, patience=5)


def tuned(model: KeyModel, **update: object) -> KeyModel:
    """The model with other online-update settings (``update_*`` fields of its config)."""
    model.config = model.config.replace(**update)
    return model


def workflow_sessions(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    """Sessions of a small workflow: 1, then 2 and 3 in either order, a loop of 4 5, then 6."""
    out = []
    for _ in range(n):
        s = [1, *([2, 3] if rng.random() < 0.7 else [3, 2])]
        s += [4, 5] * int(rng.integers(1, 4))
        s.append(6)
        out.append(tuple(s))
    return out


def plant(rng: np.random.Generator, s: tuple[int, ...]) -> tuple[int, ...]:
    """One anomaly: a missing key, a key out of place, or a session cut short."""
    kind = rng.integers(3)
    if kind == 0:
        i = int(rng.integers(len(s)))
        return s[:i] + s[i + 1 :]
    if kind == 1:
        return (*s[:2], 6, *s[2:])
    return s[: int(rng.integers(1, 3))]


@pytest.fixture(scope="module")
def fitted() -> tuple[KeyModel, list]:
    rng = np.random.default_rng(0)
    train = workflow_sessions(rng, 300)
    model = KeyModel(KeyModelConfig(top_g="auto", min_probability="auto", **SMALL))
    return model.fit(train, seed=0, device="cpu"), train


def test_planted_anomalies_accuracy_floor(fitted):
    model, train = fitted
    rng = np.random.default_rng(1)
    normal = workflow_sessions(rng, 200)
    abnormal = [plant(rng, s) for s in workflow_sessions(rng, 200)]
    known = set(train) | set(normal)
    abnormal = [s for s in abnormal if s not in known]
    assert len(abnormal) > 150
    recall = model.detect(abnormal).anomalous.mean()
    fpr = model.detect(normal).anomalous.mean()
    assert recall >= 0.95, recall
    assert fpr <= 0.02, fpr


def test_short_sessions_are_scored_not_flagged(fitted):
    model, _ = fitted
    # Shorter than h = 4 but a normal session start and end: scored, and normal.
    model2 = KeyModel(KeyModelConfig(top_g=2, **SMALL)).fit([(7, 8)] * 50 + [(7, 9)] * 50, seed=0)
    d = model2.detect([(7, 8), (7, 9), (7,)])
    assert d.anomalous.tolist() == [False, False, True]
    assert d.reason[2] == "session ended unexpectedly" and d.first_position[2] == 1
    scores = model.score([(1,)])
    assert scores.rank.shape == (2,) and scores.key.tolist() == [1, keyids.END]


def test_unknown_key(fitted):
    model, _ = fitted
    d = model.detect([(1, 2, 3, 99, 4, 5, 6)])
    assert d.anomalous[0] and d.reason[0] == "unknown key" and d.first_position[0] == 3


def test_g_selection_reported(fitted):
    model, _ = fitted
    sel = model.g_selection_
    assert sel.method == "validation" and sel.g == model.g_ and 1 <= model.g_ <= 7
    assert sel.n_validation_sessions == 60 and "synthetic anomalies" in sel.rule
    assert model.end_g_ == sel.end_g and 1 <= sel.end_g <= len(model.vocab_) + 1
    assert sel.estimated_fpr <= sel.target_fpr + sel.validation_fpr[max(sel.validation_fpr)]
    # The paper's rule when g is given: END judged by g too.
    assert model.detect([(1, 2, 3)], g=7).info["end_g"] is None


def test_deterministic_by_seed_and_state_round_trip(fitted):
    model, train = fitted
    again = KeyModel(model.config).fit(train, seed=0, device="cpu")
    probe = [(1, 2, 3, 4, 5, 6), (1, 3, 2, 4, 5, 4, 5, 6)]
    np.testing.assert_allclose(model.score(probe).probability, again.score(probe).probability)
    state = model.to_state()
    restored = KeyModel.from_state(state, device="cpu")
    assert restored.g_ == model.g_ and restored.vocab_.keys == model.vocab_.keys
    np.testing.assert_allclose(restored.score(probe).probability, model.score(probe).probability)
    with pytest.raises(ValueError, match="not a key-model state"):
        KeyModel.from_state({"kind": "other"})


def test_partial_fit_learns_a_flagged_transition(fitted):
    model, train = fitted
    model = KeyModel.from_state(model.to_state(), device="cpu")
    odd = (1, 2, 3, 7, 4, 5, 6)  # key 7 is new: it takes a spare slot
    assert model.detect([odd]).reason[0] == "unknown key"
    # Every entry the fitted rule flags is taught, the END after the new history included (the END
    # limit chosen on validation may be stricter than g).
    tuned(model, update_steps=10)
    for _ in range(6):
        model.partial_fit([(1, 2, 3), (1, 2, 3, 7), odd], [7, 4, keyids.END], replay=train[:50])
    assert 7 in model.vocab_ and model.updates_ == 18
    assert not model.detect([odd]).anomalous[0]
    assert not model.detect([(1, 2, 3, 4, 5, 6)]).anomalous[0]


def test_config_validation():
    with pytest.raises(ValueError, match="top_g"):
        KeyModelConfig(top_g=0)
    with pytest.raises(ValueError, match="update_learning_rate"):
        KeyModelConfig(update_learning_rate=0.0)
    with pytest.raises(ValueError, match="unknown KeyModelConfig"):
        KeyModelConfig.from_dict({"g": 3})
    assert KeyModelConfig().top_g == 9 and KeyModelConfig().hidden_size == 64


def test_interrupt_keeps_a_usable_model():
    net = NextKeyLSTM(5, hidden_size=8, num_layers=1)
    x = torch.randint(0, 5, (64, 3))
    y = torch.randint(0, 5, (64,))
    calls = []

    def interrupt(event):
        calls.append(event.kind)
        if event.kind == "epoch_end" and event.epoch == 3:
            raise KeyboardInterrupt

    ce = torch.nn.functional.cross_entropy
    result = train_module(
        net,
        x,
        y,
        lambda o, t: ce(o, t, reduction="none"),
        validation=(x, y, None),
        config=TrainConfig(max_epochs=50),
        callbacks=[interrupt],
        device="cpu",
    )
    assert result.stopped == "interrupted" and len(result.history) == 3
    assert calls[-1] == "train_end" and 1 <= result.best_epoch <= 3
    assert net(x).shape == (64, 5)


def test_events_and_history():
    rec = EventRecorder(kinds={"epoch_end"})
    train = workflow_sessions(np.random.default_rng(2), 40)
    cfg = KeyModelConfig(**{**SMALL, "max_epochs": 3})
    m = KeyModel(cfg).fit(train, seed=0, callbacks=[rec], device="cpu")
    assert [e.phase for e in rec.events][:3] == ["split"] * 3
    assert rec.events[0].train_loss > 0 and rec.events[0].val_loss is not None
    frame = m.history_.to_frame()
    assert {"epoch", "phase", "train_loss", "val_loss"} <= set(frame.columns)


def test_fit_holds_out_novel_sequences_when_there_are_some():
    rng = np.random.default_rng(3)
    common = workflow_sessions(rng, 120)
    rare = [(1, 2, 3, *([4, 5] * k), 6) for k in range(4, 12)]  # loops longer than ever seen
    model = KeyModel(KeyModelConfig(top_g="auto", min_probability="auto", **SMALL))
    model.fit(common + rare, seed=0, device="cpu")
    info = model.fit_info_
    assert info["validation_split"] == "novel" and info["n_validation_sessions"] == 4
    assert info["novel_share"] == pytest.approx(8 / 128)
    assert model.g_selection_.method == "validation"
    # Without sequences seen once the split falls back to random sessions.
    plain = KeyModel(KeyModelConfig(top_g="auto", **SMALL)).fit(common, seed=0, device="cpu")
    assert plain.fit_info_["validation_split"] == "sessions"


def count_sessions(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    """Normal sessions whose last key depends on how the session began, far outside any short
    window: ``1`` then a run of ``5`` ends with ``2``; ``3`` then a run of ``5`` ends with ``4``."""
    out = []
    for _ in range(n):
        first = int(rng.integers(2))
        out.append((1 + 2 * first,) + (5,) * int(rng.integers(4, 7)) + (2 + 2 * first,))
    return out


def test_session_counts_see_beyond_the_window():
    rng = np.random.default_rng(3)
    train = count_sessions(rng, 300)
    wrong_end = [(1, 5, 5, 5, 5, 4), (3, 5, 5, 5, 5, 5, 2)]
    normal = [(1, 5, 5, 5, 5, 2), (3, 5, 5, 5, 5, 5, 4)]
    found = {}
    for counts in (False, True):
        cfg = KeyModelConfig(
            window=2, hidden_size=16, max_epochs=60, top_g=2, session_counts=counts
        )
        model = KeyModel(cfg).fit(train, seed=0, device="cpu")
        found[counts] = model.detect(wrong_end).anomalous.tolist()
        if counts:
            assert model.detect(normal).anomalous.tolist() == [False, False]
    # A window of two 5s cannot tell how the session began; the session's key counts can.
    assert found[False] != [True, True]
    assert found[True] == [True, True]


def test_history_rows_match_the_framed_rows():
    from workbench.keys.examples import history_rows
    from workbench.keys.vocabulary import KeyVocabulary
    from workbench.keys.windows import frame_sessions

    rng = np.random.default_rng(0)
    vocab = KeyVocabulary(range(1, 8), spare=2)
    for _ in range(20):
        s = tuple(int(k) for k in rng.integers(1, 10, size=int(rng.integers(0, 12))))
        for h in (1, 3, 5):
            framed = frame_sessions([vocab.encode(s)], h, count_columns=vocab.size)
            rows = history_rows([s[:p] for p in range(len(s) + 1)], vocab, h, vocab.size)
            np.testing.assert_array_equal(rows, framed.windows)


def test_ensemble_with_counts_fits_updates_and_round_trips():
    rng = np.random.default_rng(1)
    train = workflow_sessions(rng, 200)
    cfg = KeyModelConfig(
        window=3, hidden_size=16, max_epochs=20, top_g="auto", session_counts=True, ensemble=2
    )
    model = KeyModel(cfg).fit(train, seed=0, device="cpu")
    assert len(model.module_.members) == 2
    probe = [(1, 2, 3, 4, 5, 6), (1, 3, 2, 4, 5, 4, 5, 6)]
    p = model.predict_proba(model.input_rows([(1, 2)]))[0]
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    restored = KeyModel.from_state(model.to_state(), device="cpu")
    np.testing.assert_allclose(restored.score(probe).probability, model.score(probe).probability)
    before = [m.head.weight.detach().clone() for m in model.module_.members]
    tuned(model, update_steps=3).partial_fit([(1, 2, 3)], [6], replay=train[:20])
    assert all(
        not torch.equal(b, m.head.weight)
        for b, m in zip(before, model.module_.members, strict=True)
    )
    # A key never seen takes a spare slot in every member; the flagged entry is then accepted.
    odd = (1, 2, 3, 9, 4, 5, 6)
    assert model.detect([odd]).reason[0] == "unknown key"
    tuned(model, update_steps=1, update_max_steps=20).partial_fit([odd[:3]], [9], replay=train[:20])
    assert model.last_update_["accepted"]
    entries = model.detect([odd]).entries
    assert not entries.loc[entries["position"] == 3, "anomalous"].any()


def test_cross_fitted_selection_holds_out_every_rare_sequence_once():
    rng = np.random.default_rng(2)
    rare = [(1, 2, 3, *[4, 5] * k, 6) for k in range(4, 10)]  # each seen once
    train = workflow_sessions(rng, 300) + rare
    cfg = KeyModelConfig(window=3, hidden_size=16, max_epochs=10, top_g="auto", validation_folds=2)
    model = KeyModel(cfg).fit(train, seed=0, device="cpu")
    seen_once = sum(1 for s in set(train) if train.count(s) == 1)
    assert model.fit_info_["validation_folds"] == 2 and len(model.fit_info_["fold_epochs"]) == 2
    assert model.fit_info_["n_validation_sessions"] == seen_once
    assert model.g_selection_.n_validation_sessions >= seen_once


def _rank_of(model: KeyModel, session: tuple[int, ...], position: int) -> int:
    return int(model.score([session]).rank[position])


def test_one_partial_fit_makes_the_flagged_example_top_g(fitted):
    model, train = fitted
    model = KeyModel.from_state(model.to_state(), device="cpu")
    odd = (1, 2, 3, 6, 1, 2, 3, 4, 5, 6)  # 1 after (1, 2, 3, 6): a window never seen
    assert _rank_of(model, odd, 4) > model.g_
    tuned(model, update_max_steps=60).partial_fit([odd[:4]], [1], replay=train[:50])
    assert model.last_update_["accepted"] and model.last_update_["steps"] >= 1
    assert _rank_of(model, odd, 4) <= model.g_
    assert model.detect(train[:100]).anomalous.mean() <= 0.02  # replay kept the normal paths


def test_a_new_key_is_imprinted_and_accepted_in_its_context(fitted):
    model, train = fitted
    model = KeyModel.from_state(model.to_state(), device="cpu")
    new = (1, 2, 3, 9, 4, 5, 6)  # key 9 was never seen: it takes a spare slot
    tuned(model, update_steps=1, update_max_steps=1).partial_fit([new[:3]], [9], replay=train[:50])
    assert 9 in model.vocab_ and model.last_update_["steps"] == 1
    assert _rank_of(model, new, 3) <= model.g_
    assert not model.detect([(1, 2, 3, 4, 5, 6)]).anomalous[0]


def test_earlier_feedback_is_kept_and_saved(fitted):
    model, train = fitted
    model = KeyModel.from_state(model.to_state(), device="cpu")
    model.partial_fit([(1, 2, 3, 4)], [6], replay=train[:50])
    model.partial_fit([(1, 2, 3, 4)], [6], replay=train[:50])  # the same example: kept once
    model.partial_fit([(1, 3)], [6], replay=train[:50])
    assert model.feedback_["targets"] == [int(model.vocab_.encode([6])[0])] * 2
    assert model.last_update_["taught"] == 2  # the new example and the remembered one
    back = KeyModel.from_state(model.to_state(), device="cpu")
    assert back.feedback_ == model.feedback_


def test_replay_table_is_cached_and_rebuilt_when_the_vocabulary_grows(fitted):
    model, train = fitted
    model = KeyModel.from_state(model.to_state(), device="cpu")
    replay = [*train[:50], (1, 2, 3, 8, 4, 5, 6)]  # key 8 is unknown to the model so far
    model.partial_fit([(1, 2, 3)], [4], replay=replay)
    model.partial_fit([(1, 2)], [3], replay=replay)
    cache = model._replay_cache
    assert cache.builds == 1
    _, targets, _ = cache.table
    eight = int(model.vocab_.encode([8])[0])  # UNKNOWN: not a target the model can learn
    assert eight not in targets.tolist()
    model.partial_fit([(1, 2, 3)], [8], replay=replay)  # 8 takes a spare slot
    assert cache.builds == 2
    _, targets, _ = cache.table
    assert int(model.vocab_.encode([8])[0]) in targets.tolist()
    import copy

    twin = copy.deepcopy(model)  # a copy (the workbench updates one) shares the cache
    twin.partial_fit([(1, 2)], [3], replay=replay)
    assert twin._replay_cache is cache and cache.builds == 2


def test_auto_weighting_keeps_the_weighting_that_validates_better():
    rng = np.random.default_rng(3)
    common = workflow_sessions(rng, 120)
    rare = [(1, 2, 3, *([4, 5] * k), 6) for k in range(4, 12)]
    cfg = KeyModelConfig(top_g="auto", min_probability="auto", **{**SMALL, "weighting": "auto"})
    model = KeyModel(cfg).fit(common + rare, seed=0, device="cpu")
    info = model.fit_info_
    assert model.config.weighting == info["weighting"] in ("log", "count")
    trials = info["weighting_choice"]
    assert set(trials) == {"log", "count"}
    best = max(trials.values(), key=lambda t: (t["synthetic_recall"], -t["estimated_fpr"]))
    assert trials[info["weighting"]]["synthetic_recall"] == best["synthetic_recall"]
    again = KeyModel.from_state(model.to_state())
    assert again.config.weighting == model.config.weighting


def test_new_branches_do_not_push_old_successors_out_of_the_top_g_elsewhere(fitted):
    model, train = fitted
    assert model.g_ <= 2  # three new successors of (1, 2, 3) cannot all join the old one's top g
    flagged, nxt = [(1, 2, 3)] * 3 + [(1, 2)] * 2, [7, 8, 9, 7, 8]
    elsewhere = [s for s in train if s[1] == 3]  # sessions without the taught contexts
    unguarded = KeyModel.from_state(model.to_state(), device="cpu")
    tuned(unguarded, update_max_steps=20, update_guard_size=0)
    unguarded.partial_fit(flagged, nxt, replay=train[:50])
    assert unguarded.detect(elsewhere).anomalous.any()  # the new keys leak into other contexts
    guarded = KeyModel.from_state(model.to_state(), device="cpu")
    tuned(guarded, update_max_steps=20).partial_fit(flagged, nxt, replay=train[:50])
    assert not guarded.detect(elsewhere).anomalous.any()


def _two_fold_fit(monkeypatch, workers: bool, callbacks=()) -> KeyModel:
    from workbench.keys import parallel

    monkeypatch.setattr(parallel, "MIN_WORK", 0 if workers else 10**12)
    monkeypatch.setattr(parallel, "free_cpus", lambda: 2.0)  # whatever else runs here
    rng = np.random.default_rng(2)
    train = workflow_sessions(rng, 200) + [(1, 2, 3, *[4, 5] * k, 6) for k in range(4, 10)]
    cfg = KeyModelConfig(window=3, hidden_size=16, max_epochs=6, top_g="auto", validation_folds=2)
    return KeyModel(cfg).fit(train, seed=0, device="cpu", callbacks=callbacks)


def _can_fork_two() -> bool:
    import multiprocessing
    import os
    import sys

    fork = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
    return fork and len(os.sched_getaffinity(0)) >= 2


def test_folds_trained_in_worker_processes_give_the_sequential_model(monkeypatch):
    import multiprocessing

    if not _can_fork_two():
        pytest.skip("no fork or fewer than 2 CPUs: the folds always train in sequence here")
    seen = {}
    for workers in (True, False):
        rec = EventRecorder()
        model = _two_fold_fit(monkeypatch, workers, [rec])
        assert model.fit_info_["parallel_folds"] is workers
        seen[workers] = (
            model.to_state(),
            [(e.kind, e.phase, e.epoch, e.batch) for e in rec.events],
        )
    (a, ev_a), (b, ev_b) = seen[True], seen[False]
    assert all(torch.equal(a["module"][k], b["module"][k]) for k in a["module"])
    assert a["g_selection"] == b["g_selection"] and ev_a == ev_b  # the same events, in order
    assert [(r["phase"], r["val_loss"]) for r in a["history"]] == [
        (r["phase"], r["val_loss"]) for r in b["history"]
    ]
    assert not multiprocessing.active_children()


def test_a_stop_during_a_worker_fold_stops_it_and_leaves_no_process(monkeypatch):
    import multiprocessing

    if not _can_fork_two():
        pytest.skip("no fork or fewer than 2 CPUs: the folds always train in sequence here")
    after = []

    def stop_in_fold_2(event):
        if event.phase == "fold 2":
            after.append(event.kind)
            if event.kind == "batch_end":
                raise KeyboardInterrupt

    model = _two_fold_fit(monkeypatch, True, [stop_in_fold_2])
    assert after == ["train_begin", "batch_end"]  # nothing of fold 2 after the stop
    assert model.fit_info_["parallel_folds"] and len(model.fit_info_["fold_epochs"]) == 2
    assert len(model.detect([(1, 2, 3, 4, 5, 6)]).anomalous) == 1
    assert not multiprocessing.active_children()


def test_folds_train_side_by_side_only_where_it_pays(monkeypatch):
    from workbench.keys import parallel

    cpu = torch.device("cpu")
    monkeypatch.setattr(parallel, "free_cpus", lambda: 2.0)
    if _can_fork_two():
        assert parallel.use_workers(2, 2000, 40, cpu)
    assert not parallel.use_workers(2, 100, 40, cpu)  # a short fold: not worth a process
    assert not parallel.use_workers(1, 2000, 40, cpu)
    assert not parallel.use_workers(2, 2000, 40, torch.device("cuda"))  # no fork with CUDA
    monkeypatch.setattr(parallel, "free_cpus", lambda: 0.2)  # the other CPU is busy
    assert not parallel.use_workers(2, 2000, 40, cpu)


def test_folds_train_in_sequence_when_no_worker_can_start(monkeypatch):
    import multiprocessing

    from workbench.keys import parallel

    if not _can_fork_two():
        pytest.skip("no fork or fewer than 2 CPUs: the folds always train in sequence here")

    class NoProcesses:  # as where the system refuses a new process
        Pipe, Event = staticmethod(multiprocessing.Pipe), staticmethod(multiprocessing.Event)

        def Process(self, **kw):  # multiprocessing's name
            raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(parallel.mp, "get_context", lambda method: NoProcesses())
    model = _two_fold_fit(monkeypatch, True)
    assert model.fit_info_["parallel_folds"] is False
    reference = _two_fold_fit(monkeypatch, False).to_state()["module"]
    assert all(torch.equal(v, reference[k]) for k, v in model.to_state()["module"].items())
