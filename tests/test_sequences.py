"""Readers of key-sequence files, the vocabulary and session framing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import keyids
from workbench.keys.keyfiles import guess_format, read_sessions
from workbench.keys.splits import split_novel
from workbench.keys.vocabulary import END_INDEX, PAD_INDEX, UNKNOWN_INDEX, KeyVocabulary
from workbench.keys.windows import frame_sessions, unique_rows, unique_sessions


def test_keys_format_trailing_space_and_no_final_newline(tmp_path):
    p = tmp_path / "s"
    p.write_text("5 5 22 \n22 5 \n\n5 22")
    assert read_sessions(p).sessions == [(5, 5, 22), (22, 5), (5, 22)]


def test_idkeys_and_csv(tmp_path):
    p = tmp_path / "ids"
    p.write_text("blk_1,5 22 \nblk_2,26\n")
    f = read_sessions(p, "idkeys")
    assert f.ids == ["blk_1", "blk_2"] and f.sessions == [(5, 22), (26,)]
    c = tmp_path / "x.csv"
    c.write_text("Sequence,label\n5 22,1\n5 5 22 11,0\n")
    f = read_sessions(c, "csv")
    assert f.sessions == [(5, 22), (5, 5, 22, 11)] and f.labels.tolist() == [1, 0]
    assert guess_format(c) == "csv" and guess_format(p) == "idkeys"


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("keys", "5 5\n5 x 22\n", ":2: bad log key 'x'"),
        ("keys", "5 -3\n", ":1: bad log key -3"),
        ("idkeys", "blk 5 22\n", ":1: expected 'id,keys'"),
        ("csv", "Sequence,label\n5 22,2\n", ":2: bad label '2'"),
        ("csv", "Seq,lab\n5 22,0\n", ":1: header"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, fmt, text, message):
    p = tmp_path / "bad"
    p.write_text(text)
    with pytest.raises(ValueError, match="bad") as err:
        read_sessions(p, fmt)
    assert str(p) in str(err.value) and message in str(err.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_sessions("/nonexistent/sessions")


def test_vocabulary_reserved_entries_and_unknown():
    v = KeyVocabulary([0, 3, 7])
    assert v.encode([0, 3, 7, 4, 99]).tolist() == [3, 4, 5, UNKNOWN_INDEX, UNKNOWN_INDEX]
    assert v.decode(np.array([END_INDEX, 3])).tolist() == [keyids.END, 0]
    assert v.candidate_mask().tolist() == [False, False, True, True, True, True]


def test_short_session_is_left_padded_and_ends_with_end():
    v = KeyVocabulary([5, 22])
    f = frame_sessions([v.encode((5, 22))], window=10)
    assert len(f) == 3  # predicts 5, 22 and END
    assert f.windows[0].tolist() == [PAD_INDEX] * 10
    assert f.windows[2].tolist() == [PAD_INDEX] * 8 + [3, 4]
    assert f.targets.tolist() == [3, 4, END_INDEX]
    assert f.position.tolist() == [0, 1, 2]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 6), max_size=12), min_size=1, max_size=8),
    st.integers(1, 5),
)
def test_framing_matches_a_direct_loop(sessions, h):
    v = KeyVocabulary(range(7))
    f = frame_sessions([v.encode(s) for s in sessions], h)
    expected = []
    for i, s in enumerate(sessions):
        padded = [PAD_INDEX] * h + list(v.encode(s)) + [END_INDEX]
        for t in range(len(s) + 1):
            expected.append((i, t, padded[t : t + h], padded[t + h]))
    got = [
        (int(a), int(b), list(w), int(t))
        for a, b, w, t in zip(f.session, f.position, f.windows.tolist(), f.targets, strict=True)
    ]
    assert got == expected


def test_unique_sessions_keeps_multiplicity():
    distinct, inverse, counts = unique_sessions([(1,), (2,), (1,), (1,)])
    assert distinct == [(1,), (2,)] and inverse.tolist() == [0, 1, 0, 0]
    assert counts.tolist() == [3, 1]


@pytest.mark.data
def test_hdfs_files(shared_data):
    d = shared_data / "deeplog_hdfs"
    train = read_sessions(d / "hdfs_train")
    assert len(train.sessions) == 4855
    assert len(read_sessions(d / "hdfs_test_abnormal").sessions) == 16838
    ids = read_sessions(shared_data / "ait_log_datasets" / "hdfs_xu" / "hdfs_train", "idkeys")
    assert ids.ids[0].startswith("blk_") and len(ids.ids) == len(ids.sessions)


@given(
    st.lists(st.integers(0, 12), min_size=2, max_size=80),
    st.floats(0.0, 0.95),
    st.integers(0, 5),
)
@settings(max_examples=60, deadline=None)
def test_split_novel_holds_out_whole_rare_sequences(codes, fraction, seed):
    sessions = [(c % 4, c) for c in codes]  # a few distinct sequences, some repeated
    split = split_novel(sessions, fraction, seed)
    assert sorted([*split.fit, *split.validation]) == list(range(len(sessions)))
    fit = {sessions[i] for i in split.fit}
    held = {sessions[i] for i in split.validation}
    assert not fit & held  # no copy of a held-out sequence stays in training
    _, _, counts = unique_sessions(sessions)
    assert all(sum(s == h for s in sessions) == 1 for h in held)  # only sequences seen once
    assert split.novel_share == pytest.approx((counts == 1).sum() / len(sessions))
    assert len(split.fit) >= 1


def test_split_novel_share_and_fallback():
    assert len(split_novel([(1, 2)] * 5 + [(3,)] * 2, 0.5).validation) == 0  # nothing seen once
    split = split_novel([(1, 2)] * 6 + [(i,) for i in range(4)], 0.5, seed=3)
    assert split.novel_share == 0.4 and len(split.validation) == 2
    with pytest.raises(ValueError):
        split_novel([(1,)], 1.0)


@given(
    st.integers(0, 40),
    st.integers(1, 12),
    st.sampled_from([2, 30, 2**40]),
    st.integers(0, 10**6),
)
@settings(max_examples=60, deadline=None)
def test_unique_rows_matches_numpy_unique(n, width, high, seed):
    a = np.random.default_rng(seed).integers(0, high, size=(n, width))
    a[n // 2 :] = a[: n - n // 2]  # repeated rows
    uniq, inverse = unique_rows(a)
    want = np.unique(a.reshape(n, width), axis=0)
    # The same distinct rows (sorted when they pack into an int64, in hash order when wider), and
    # every row maps back to its own.
    assert sorted(map(tuple, uniq.tolist())) == list(map(tuple, want.tolist()))
    assert np.array_equal(uniq[inverse], a.reshape(n, width))
    if width * np.log2(max(high, 2)) < 60:
        assert uniq.tolist() == want.tolist()
