"""The confirmed pairs' back-off: in a situation that is new only through what a person confirmed
(a key learned online, a confirmed step the training never held, the window of a confirmed pair),
an entry is accepted when its last key, then its own, is a step of the normal sessions or of a
confirmed pair."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.keys import confirmed
from workbench.keys.model import KeyModel, KeyModelConfig

TRAIN = [(5, 6, 7, 8, 5, 6, 7, 8)] * 6  # steps 5>6, 6>7, 7>8, 8>5 (and the session's ends)
FROZEN = {"update_steps": 0, "update_max_steps": 0}  # the weights stay: only the pairs decide


@pytest.fixture()
def model():
    m = KeyModel(KeyModelConfig(window=2, hidden_size=4, max_epochs=1, spare_keys=2, **FROZEN))
    return m.fit(TRAIN, validation_fraction=0.0, device="cpu", seed=0)


def _accepted(m: KeyModel, cases: list[tuple[list[int], int]]) -> list[bool]:
    rows = m.input_rows([h for h, _ in cases])
    targets = m.vocab_.encode([k for _, k in cases])
    return confirmed.confirmed_mask(m, rows, targets).tolist()


def test_a_key_learned_online_backs_off_to_the_last_key(model):
    model.partial_fit([[5, 6]], [9], replay=TRAIN)  # 9: a message never seen, confirmed after 6
    assert _accepted(model, [
        ([5, 6], 9),  # the confirmed pair itself
        ([7, 6], 9),  # another window, the same last key: 6 > 9 was confirmed
        ([6, 5], 9),  # 5 > 9 was not
        ([6, 9], 7),  # after the new key: 9 > 7 is no step seen or confirmed
        ([9, 7], 8),  # a window holding the new key, then a normal step (7 > 8)
        ([5, 7], 8),  # nothing confirmed in it: the network decides, not the back-off
        ([5, 6], 7),  # the confirmed pair's window: its old successor stays (6 > 7 is a step)
        ([5, 6], 5),  # but not any key (6 > 5 is no step)
    ]) == [True, True, False, False, True, False, True, False]  # fmt: skip


def test_a_confirmed_step_never_seen_in_training_backs_off_too(model):
    model.partial_fit([[5, 6]], [8], replay=TRAIN)  # 6 > 8 skips a step: confirmed normal
    assert _accepted(model, [
        ([6, 8], 5),  # the window holds 6 > 8, then 8 > 5 is a normal step
        ([7, 8], 5),  # a window without it: the network decides
        ([6, 8], 7),  # 8 > 7 is no step
    ]) == [True, False, False]  # fmt: skip


def test_the_back_off_can_be_turned_off_and_is_saved_with_the_pairs(model):
    model.partial_fit([[5, 6]], [9], replay=TRAIN)
    back = KeyModel.from_state(model.to_state())
    assert back.confirmed_ == model.confirmed_
    assert _accepted(back, [([9, 7], 8)]) == [True]
    confirmed.set_match(model, "row")  # the exact situation only: no back-off either
    assert _accepted(model, [([9, 7], 8), ([5, 6], 9)]) == [False, True]
    confirmed.set_match(model, "window")
    confirmed.set_backoff(model, 0)
    assert _accepted(model, [([9, 7], 8), ([5, 6], 9)]) == [False, True]
    with pytest.raises(ValueError, match="backoff must be 0 to the window"):
        confirmed.set_backoff(model, -1)


def test_pairs_saved_before_the_back_off_do_not_back_off(model):
    model.partial_fit([[5, 6]], [9], replay=TRAIN)
    state = confirmed.confirmed_state(model)
    old = {k: state[k] for k in ("windows", "targets", "match")}
    model.confirmed_ = confirmed.from_state(old)
    assert model.confirmed_["backoff"] == 0
    assert _accepted(model, [([9, 7], 8), ([5, 6], 9)]) == [False, True]


def test_without_replayed_sessions_only_confirmed_steps_count(model):
    model.partial_fit([[5, 6]], [9])  # no normal sessions given: no training step is known
    model.partial_fit([[6, 9]], [7])
    assert model.confirmed_["steps"] == []
    assert _accepted(model, [([5, 9], 7), ([9, 7], 8)]) == [True, False]
    assert np.asarray(model.confirmed_["windows"]).shape == (2, 2)


def test_a_crafted_back_off_is_refused_on_load() -> None:
    """A saved state whose back-off is negative, longer than the window, or whose steps do not
    have its length is one error at load, not a wrong slice at detect."""
    import pytest

    from workbench.keys.confirmed import from_state

    base = {"windows": [], "targets": [], "match": "window"}
    assert from_state({**base, "backoff": 1, "steps": [[3, 4]]}, window=5)["backoff"] == 1
    for bad in (
        {"backoff": -1},
        {"backoff": 9},
        {"backoff": 1, "steps": [[3, 4, 5]]},
    ):
        with pytest.raises(ValueError, match="confirmed pairs"):
            from_state({**base, **bad}, window=5)
