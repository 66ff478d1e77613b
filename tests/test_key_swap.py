"""The back-off's swap (off by default): two confirmed steps in a row also taken in the other order,
as concurrent steps come (a rebooted VM's "started" and "rebooted" messages)."""

from __future__ import annotations

import pytest

from workbench.keys import confirmed
from workbench.keys.model import KeyModel, KeyModelConfig

TRAIN = [(5, 6, 7, 8, 5, 6, 7, 8)] * 6  # steps 5>6, 6>7, 7>8, 8>5 (and the session's ends)
FROZEN = {"update_steps": 0, "update_max_steps": 0}  # the weights stay: only the pairs decide
OTHER_ORDER = [([5, 6], 10), ([6, 10], 9), ([10, 9], 7), ([10, 9], 5)]


@pytest.fixture()
def model():
    m = KeyModel(KeyModelConfig(window=2, hidden_size=4, max_epochs=1, spare_keys=2, **FROZEN))
    m = m.fit(TRAIN, validation_fraction=0.0, device="cpu", seed=0)
    # a new operation, confirmed in one order: 6 > 9 > 10 > 7 (9 and 10 never seen in training)
    m.partial_fit([[5, 6], [6, 9], [9, 10]], [9, 10, 7], replay=TRAIN)
    return m


def _accepted(m: KeyModel, cases: list[tuple[list[int], int]]) -> list[bool]:
    rows = m.input_rows([h for h, _ in cases])
    targets = m.vocab_.encode([k for _, k in cases])
    return confirmed.confirmed_mask(m, rows, targets).tolist()


def test_two_confirmed_steps_in_a_row_come_in_either_order_only_with_swap(model):
    assert _accepted(model, OTHER_ORDER) == [False, False, False, False]
    confirmed.set_swap(model)
    # 6 > 10 (9 skipped), 10 > 9 (the other order), 9 > 7 (10 skipped); 9 > 5 is no step
    assert _accepted(model, OTHER_ORDER) == [True, True, True, False]
    back = KeyModel.from_state(model.to_state())  # saved with the pairs
    assert back.confirmed_["swap"] and _accepted(back, OTHER_ORDER) == [True, True, True, False]
    confirmed.set_swap(model, False)
    assert _accepted(model, OTHER_ORDER) == [False, False, False, False]
