"""Stream detection's parser-backed resolver: learns a confirmed message and re-keys later lines."""

from __future__ import annotations

import numpy as np

from workbench import keyids
from workbench.feedback.stream import learn_unknown_with
from workbench.logs.parser import LogParser


def test_learn_unknown_with_learns_and_rekeys_later_entries():
    parser = LogParser("<Level> <Content>").fit(["INFO job started", "INFO job finished"])
    raw = ["INFO job started", "INFO cache warmed up", "INFO job finished", "INFO cache warmed up"]
    keys = parser.transform(raw, sessions=False)["key"].to_numpy().copy()
    assert keys[1] == keys[3] == keyids.UNKNOWN
    resolve = learn_unknown_with(parser, raw)
    new = resolve(1, keys)
    assert new is not None and new > 0
    assert keys[3] == new  # the later occurrence is matched to the learned template
    assert keys[0] != keyids.UNKNOWN and keys[2] != keyids.UNKNOWN
    assert np.count_nonzero(keys == keyids.UNKNOWN) == 1  # entry 1 itself is re-keyed by the caller


def test_stream_detection_refuses_a_session_count_model():
    import pytest

    from workbench.feedback.stream import stream_detect
    from workbench.keys.model import KeyModel, KeyModelConfig

    cfg = KeyModelConfig(window=2, hidden_size=4, max_epochs=1, session_counts=True)
    model = KeyModel(cfg).fit([(1, 2, 3)] * 5, validation_fraction=0.0, device="cpu")
    with pytest.raises(ValueError, match="stream has no sessions"):
        stream_detect(model, [1, 2, 3, 1, 2, 3])


def test_a_stream_ranks_keys_as_session_scoring_does():
    # The stream and session scoring share one rank rule: with no context, a stream is scored like
    # one session (PAD before its first key), so every entry gets the same rank both ways, a key
    # never seen (9) included.
    from workbench.feedback.stream import stream_detect
    from workbench.keys.model import KeyModel, KeyModelConfig

    cfg = KeyModelConfig(window=2, hidden_size=8, max_epochs=20, top_g=2, spare_keys=0)
    model = KeyModel(cfg).fit([(1, 2, 3, 4)] * 20 + [(1, 3, 2, 4)] * 5, device="cpu")
    stream = [1, 2, 3, 4, 1, 3, 9, 4, 2, 2]
    streamed = stream_detect(model, stream)
    scored = model.score([tuple(stream)])
    assert streamed.rank.tolist() == scored.rank[:-1].tolist()  # the last session entry is END
    assert streamed.unknown.tolist() == scored.unknown[:-1].tolist()
    assert streamed.unknown[6] and streamed.rank[6] == model.vocab_.n_candidates + 1


def test_a_stream_flag_can_teach_the_steps_after_it_in_its_session():
    # A new behaviour (1 2 4 5 3) in four sessions one after another: a flag on 4 teaches 4 alone,
    # and its later steps are flagged in turn; with the sessions given, the steps after it that
    # recur in other sessions (4 -> 5, 5 -> 3) are taught with it, so fewer flags are needed, and
    # the entries so taught are listed.
    from workbench.feedback.stream import StreamFollow, stream_detect
    from workbench.keys.model import KeyModel, KeyModelConfig

    cfg = KeyModelConfig(window=2, hidden_size=8, max_epochs=40, top_g=1, spare_keys=2)
    train = [1, 2, 3] * 40
    stream = np.array([1, 2, 4, 5, 3] * 4)
    sessions = np.repeat(list("abcd"), 5)
    raw = [f"event {k}" for k in stream]

    def run(follow):
        model = KeyModel(cfg).fit([train], seed=0, device="cpu", validation_fraction=0.0)
        return stream_detect(model, stream, context=train, oracle=lambda i: False,
                             resolve_unknown=lambda i, keys: int(keys[i]), follow=follow)  # fmt: skip

    alone = run(None)
    steps = run(StreamFollow(sessions, raw, None))
    assert alone.implied == [] and steps.implied, "the later steps recur in three other sessions"
    assert steps.implied[:2] == [3, 4]  # the flag on entry 2 (session a) teaches a's next steps
    assert set(sessions[steps.implied]) <= set(sessions[np.flatnonzero(steps.updated)])
    assert steps.updates < alone.updates
