"""Template refinement on top of Drain: each rule on small hand-made logs, the parameter vectors DeepLog
reads, the simulator's ground truth, persistence, and transform never creating keys."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import keyids
from workbench.logs.masks import DEFAULT_MASKS, Masker
from workbench.logs.parser import LogParser
from workbench.logs.template_refine import gapped_template, signature, word_shape

FMT = "<Level> <Content>"


def keys(lines: list[str], **kw) -> tuple[LogParser, list[int]]:
    p = LogParser(FMT, **kw)
    return p, p.parse([f"INFO {x}" for x in lines], sessions=False)["key"].tolist()


# ---------------------------------------------------------------------- rule 1: over-split merged
PROXY = [
    "a.example.com:80 close, 0 bytes sent, 0 bytes received, lifetime 00:01",
    "b.example.com:443 close, 403 bytes sent, 426 bytes received, lifetime <1 sec",
    "c.example.com:80 close, 451 bytes sent, 18846 bytes (18.4 KB) received, lifetime <1 sec",
    "d.example.com:80 close, 1190 bytes (1.16 KB) sent, 1671 bytes (1.63 KB) received, lifetime 00:02",
    "e.example.com:80 close, 5 bytes sent, 7 bytes received, lifetime 01:02",
    "f.example.com:80 open through proxy p.example.com:5070 HTTPS",
]


def test_over_split_templates_of_one_kind_are_merged():
    p, ks = keys(PROXY)
    assert len(set(ks[:5])) == 1  # one message kind whatever the token count of its variables
    assert ks[5] != ks[0]
    assert p.n_keys == 2
    assert LogParser(FMT, merge=False).fit([f"INFO {x}" for x in PROXY]).n_keys > 2
    template = p.template_of(ks[0])
    assert template.startswith("<HOST> close,") and "<*>" in template and "lifetime" in template


def test_merged_key_gives_one_parameter_vector_shape():
    p = LogParser(FMT)
    df = p.parse([f"INFO {x}" for x in PROXY[:5]], sessions=False)
    # the bytes sent and received, in that order, whatever the line's shape
    assert df["params"].tolist() == [
        (0.0, 0.0),
        (403.0, 426.0),
        (451.0, 18846.0),
        (1190.0, 1671.0),
        (5.0, 7.0),
    ]


def test_a_new_shape_of_a_merged_kind_is_known_at_transform():
    p = LogParser(FMT).fit([f"INFO {x}" for x in PROXY])
    new = "INFO g.example.com:80 close, 9 bytes (9.1 MB) sent, 1 bytes received, lifetime <1 sec"
    df = p.transform([new], sessions=False)
    assert df["key"].iloc[0] == p.transform([f"INFO {PROXY[0]}"])["key"].iloc[0]
    assert df["params"].iloc[0] == (9.0, 1.0)


# ---------------------------------------------------------------------- rule 2: over-merged split
def test_over_merged_words_that_name_kinds_are_split():
    lines = [f"VM {w} (Lifecycle Event)" for w in ["Paused", "Started", "Stopped", "Resumed"] * 3]
    _, ks = keys(lines)
    assert len(set(ks)) == 4 and ks[:4] == ks[4:8]


def test_names_that_flow_between_templates_stay_variable():
    users = ["cyrus", "news", "test", "root"]
    lines = [f"session opened for user {u} by (uid=0)" for u in users]
    lines += [f"session closed for user {u}" for u in users]
    p, ks = keys(lines)
    assert len(set(ks[:4])) == 1 and len(set(ks[4:])) == 1 and ks[0] != ks[4]
    assert p.template_of(ks[4]) == "session closed for user <*>"


def test_key_value_words_split_when_few_and_keep_the_key_when_many():
    few = [f"auth failure; rhost=10.0.0.{i} user={u}" for i, u in enumerate(["root", "guest"] * 3)]
    p, ks = keys(few)
    assert len(set(ks)) == 2
    many = [f"auth failure; rhost=10.0.0.{i} user=u{i}x" for i in range(12)]
    p, ks = keys(many)
    assert len(set(ks)) == 1
    assert p.template_of(ks[0]).endswith("user=<*>")


def test_numbered_words_and_bracketed_words_stay_variable_interface_names_split():
    _, ks = keys([f"IRQ{i} used by override." for i in (0, 2, 9)])
    assert len(set(ks)) == 1
    _, ks = keys([f"PCI Interrupt Link [LNK{c}] enabled at IRQ 5" for c in "ACDE"])
    assert len(set(ks)) == 1
    _, ks = keys(
        [f"link up on node {n} via interface {i}" for n in range(6) for i in ("eth0", "alt0")]
    )
    assert len(set(ks)) == 2


def test_shown_templates_read_ids_paths_and_glued_values_as_wildcards():
    lines = [
        f"Failed to renew lease for [DFSClient_NONMAPREDUCE_1537864556_1] for {i} seconds"
        for i in range(3)
    ]
    lines += [f"Received connection request /10.10.34.{i}:3888" for i in range(3)]
    lines += ["workerEnv.init() ok /etc/httpd/conf/workers2.properties"] * 2
    p, ks = keys(lines)
    assert p.template_of(ks[0]) == "Failed to renew lease for [<*>] for <NUM> seconds"
    assert p.template_of(ks[3]) == "Received connection request <*>"
    assert p.template_of(ks[6]) == "workerEnv.init() ok <*>"


def test_misaligned_cluster_is_keyed_by_each_message_skeleton():
    # same token count, words shifted by a multi-token value: Drain puts them in one cluster
    lines = [
        "done 10 bytes (1 KB) sent, 20 bytes received",
        "done 11 bytes (2 KB) sent, 21 bytes received",
        "done 12 bytes sent, 22 bytes (3 KB) received",
        "done 13 bytes sent, 23 bytes (4 KB) received",
        "done 14 bytes sent, 24 bytes received",
    ]
    _, ks = keys(lines)
    assert len(set(ks)) == 1
    _, ks = keys([*lines, "done 15 bytes failed, 25 bytes (5 KB) retried"])
    assert ks[-1] != ks[0]


# ---------------------------------------------------------------------- rule 3: multi-word variable
def test_multi_word_quoted_value_is_one_variable():
    lines = [f'acquire lock=1{i}, tag="{t}", ws=null, uid=100{i}' for i, t in enumerate("abcdef")]
    lines.append('acquire lock=99, tag="View Lock", ws=null, uid=1000')
    _, ks = keys(lines)
    assert len(set(ks)) == 1


def test_gapped_template_writes_one_wildcard_per_run():
    members = [
        ["close,", "<NUM>", "bytes", "sent,", "lifetime", "<TIME>"],
        ["close,", "<NUM>", "bytes", "(<NUM>", "KB)", "sent,", "lifetime", "<<NUM>", "sec"],
    ]
    assert gapped_template(members) == "close, <NUM> bytes <*> sent, lifetime <*>"
    assert signature(members[0]) == signature(members[1]) == ("close,", "sent,", "lifetime")
    assert word_shape("LOGIN(uid=<NUM>)") == "LOGIN(uid=<*>)" and word_shape("10.0.0.1") is None


# ---------------------------------------------------------------------- masks
def test_masker_matches_one_by_one_masking_on_real_lines(shared_data):
    from drain3.masking import LogMasker, MaskingInstruction

    from workbench.logs.formats import BUILTIN_FORMATS

    fmt = BUILTIN_FORMATS["bgl"]
    slow = LogMasker([MaskingInstruction(m.pattern, m.name) for m in DEFAULT_MASKS], "<", ">")
    fast = Masker(DEFAULT_MASKS)
    lines = (shared_data / "loghub_2k" / "BGL" / "BGL_2k.log").read_text().splitlines()
    contents = [f["Content"].strip() for f in map(fmt.split, lines) if f]
    assert [fast.mask(c) for c in contents] == [" ".join(slow.mask(c).split()) for c in contents]


def test_masker_with_a_custom_mask_holding_groups():
    m = Masker([DEFAULT_MASKS[-1], DEFAULT_MASKS[0].__class__("PID", r"pid=(\d+)")])
    assert m.mask("pid=12 took 3 s") == "<PID> took <NUM> s"


# ---------------------------------------------------------------------- parameters DeepLog reads
def test_durations_sizes_counts_come_out_of_refined_templates_on_the_simulator():
    from workbench.simulate.engine import simulate

    log = simulate(n_instances=60, seed=4)
    df = LogParser("openstack").parse(log.lines, sessions=False)
    took = df[df["content"].str.contains(r"\] Took [\d.]+ seconds to ", regex=True)]
    assert len(took) > 50
    expected = took["content"].str.extract(r"Took ([\d.]+) seconds")[0].astype(float)
    assert [p[0] for p in took["params"]] == expected.tolist()
    # one parameter-vector length per key
    lengths = df[df["key"] > 0].groupby("key")["params"].agg(lambda s: len(set(map(len, s))))
    assert (lengths == 1).all()


def test_simulator_message_kinds_are_neither_collapsed_nor_split():
    from workbench.simulate import vocabulary as tpl
    from workbench.simulate.engine import simulate

    kinds = {s.event: s.template for steps in tpl.TASKS.values() for s in steps if s.template}
    log = simulate(n_instances=120, seed=3)
    df = LogParser("openstack").parse(log.lines, sessions=False)
    kind = log.labels["event"].map(kinds)
    known = kind.notna().to_numpy()
    pairs = pd.DataFrame({"key": df["key"].to_numpy()[known], "kind": kind[known].to_numpy()})
    assert pairs["kind"].nunique() >= 30
    assert (pairs.groupby("key")["kind"].nunique() == 1).all()  # no key holds two kinds
    assert (pairs.groupby("kind")["key"].nunique() == 1).all()  # no kind split over keys


@pytest.mark.data
def test_openstack_2k_parameters_are_the_numbers_of_the_line(shared_data):
    path = shared_data / "loghub_2k" / "OpenStack" / "OpenStack_2k.log"
    df = LogParser("openstack").parse(path, sessions=False)
    api = df[df["content"].str.contains(r"status: \d+ len: \d+ time: ", regex=True)]
    assert len(api) > 500
    got = api["params"].map(lambda p: p[-3:]).tolist()
    want = (
        api["content"]
        .str.extract(r"status: (\d+) len: (\d+) time: ([\d.]+)")
        .astype(float)
        .itertuples(index=False, name=None)
    )
    assert got == list(want)
    lengths = df[df["key"] > 0].groupby("key")["params"].agg(lambda s: len(set(map(len, s))))
    assert (lengths == 1).all()


# ---------------------------------------------------------------------- persistence, read-only
def test_state_round_trip_keeps_merges_splits_and_prefixes():
    lines = [f"INFO {x}" for x in PROXY]
    lines += [f"INFO auth failure; user={u}" for u in ["root", "guest"] * 2]
    lines += [f"INFO login by user={u}" for u in [f"u{i}x" for i in range(12)]]
    p = LogParser(FMT).fit(lines)
    q = LogParser.from_state(json.loads(json.dumps(p.to_state())))
    probe = [
        *lines,
        "INFO h.example.com:1 close, 2 bytes (2 KB) sent, 3 bytes received, lifetime 1",
    ]
    a, b = p.transform(probe, sessions=False), q.transform(probe, sessions=False)
    assert a["key"].tolist() == b["key"].tolist()
    assert a["params"].tolist() == b["params"].tolist()
    assert q.templates_.equals(p.templates_)
    assert json.loads(json.dumps(p.refine_state())) == q.refine_state()


WORDS = ["close,", "open", "user", "user=root", "bytes", "(1", "KB)", "sent,", "VM", "Paused", "x"]
TOKENS = st.one_of(st.sampled_from(WORDS), st.integers(0, 99999).map(str), st.text(max_size=6))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(TOKENS, min_size=0, max_size=9).map(" ".join), max_size=20))
def test_property_transform_never_creates_keys(lines):
    p = LogParser(FMT).fit([f"INFO {x}" for x in PROXY] + ["INFO VM Paused now", "INFO x"])
    before = (dict(p.keys_), p.templates_.copy(), json.dumps(p.refine_state()))
    lines = ["INFO " + re.sub(r"[\r\n]", " ", x) for x in lines]
    df = p.transform(lines, sessions=False)
    assert set(df["key"]) <= set(p.keys_) | {keyids.UNKNOWN, keyids.UNPARSED}
    assert dict(p.keys_) == before[0]
    assert p.templates_.equals(before[1])
    assert json.dumps(p.refine_state()) == before[2]
    # and asking twice gives the same answer
    assert p.transform(lines, sessions=False)["key"].tolist() == df["key"].tolist()
