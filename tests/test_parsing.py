"""Parser: row-per-line guarantee, unknown keys, bad input, persistence, and loghub accuracy."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workbench import keyids
from workbench.logs.masks import Mask
from workbench.logs.parser import LogParser

OPENSTACK = [
    "nova-compute.log.1 2017-05-16 00:00:04.500 2931 INFO nova.compute.manager "
    "[req-1 - - - - -] [instance: 11111111-2222-3333-4444-555555555555] VM Started (Lifecycle Event)",
    "nova-compute.log.1 2017-05-16 00:00:05.000 2931 INFO nova.compute.manager "
    "[req-1 - - - - -] [instance: 11111111-2222-3333-4444-555555555555] "
    "Took 19.74 seconds to spawn the instance on the hypervisor.",
    "nova-compute.log.1 2017-05-16 00:00:06.250 2931 INFO nova.compute.manager "
    "[req-1 - - - - -] [instance: 66666666-2222-3333-4444-555555555555] VM Paused (Lifecycle Event)",
    "nova-compute.log.1 2017-05-16 00:00:09.250 2931 INFO nova.compute.manager "
    "[req-1 - - - - -] [instance: 11111111-2222-3333-4444-555555555555] "
    "Took 1.50 seconds to destroy the instance on the hypervisor.",
]


def test_schema_timestamps_sessions_params_and_elapsed():
    df = LogParser("openstack").parse(OPENSTACK)
    assert list(df.columns[:13]) == [
        "line", "raw", "timestamp", "session", "key", "template", "params",
        "dt_session", "dt_global", "label", "parsed", "error", "content",
    ]  # fmt: skip
    assert df["line"].tolist() == [1, 2, 3, 4]
    assert df["timestamp"].dt.tz is None
    assert df["timestamp"].iloc[1] == pd.Timestamp("2017-05-16 00:00:05")
    assert df["session"].tolist() == ["11111111-2222-3333-4444-555555555555"] * 2 + [
        "66666666-2222-3333-4444-555555555555",
        "11111111-2222-3333-4444-555555555555",
    ]
    assert df["params"].iloc[1] == (19.74,)
    # spawn and destroy are different keys even though Drain alone would merge them
    assert df["key"].iloc[1] != df["key"].iloc[3]
    assert df["key"].iloc[0] != df["key"].iloc[2]  # VM Started vs VM Paused
    np.testing.assert_allclose(df["dt_global"].to_numpy(), [np.nan, 0.5, 1.25, 3.0])
    np.testing.assert_allclose(df["dt_session"].to_numpy(), [np.nan, 0.5, np.nan, 4.25])


def test_inference_mode_gives_unknown_key_and_never_learns():
    p = LogParser("<Level> <Content>").fit(["INFO open file a1", "INFO open file b2"])
    before = p.n_keys
    df = p.transform(["INFO open file c3", "INFO totally new message here", "INFO open file d4"])
    assert df["key"].tolist()[0] == df["key"].tolist()[2] > 0
    assert df["key"].iloc[1] == keyids.UNKNOWN
    assert df["template"].iloc[1] == "<unknown template>"
    assert p.n_keys == before
    # transform is read-only: asking again gives the same answer
    assert p.transform(["INFO totally new message here"])["key"].iloc[0] == keyids.UNKNOWN


def test_keys_are_stable_across_more_training():
    p = LogParser("<Level> <Content>")
    first = p.parse(["INFO a started", "INFO b stopped"])["key"].tolist()
    again = p.parse(["INFO something else entirely", "INFO a started"])["key"].tolist()
    assert again[1] == first[0]
    assert again[0] not in first


def test_unparsed_lines_are_kept_with_reasons(tmp_path):
    lines = ["INFO ok line", "", "nolevel", "INFO " + "x" * 100]
    p = LogParser("<Level> <Content>", max_line_bytes=50)
    df = p.parse(lines)
    assert len(df) == 4
    assert df["parsed"].tolist() == [True, False, False, False]
    assert (df.loc[~df["parsed"], "key"] == keyids.UNPARSED).all()
    reasons = p.summary(df).unparsed_reasons
    assert reasons == {
        "empty line": 1,
        "does not fit the format": 1,
        "line too long (105 characters)": 1,
    }


def test_bytes_input_binary_invalid_utf8_and_huge_lines(tmp_path):
    data = (
        b"INFO fine\n"
        b"INFO caf\xe9 ok\n"  # invalid UTF-8, repaired and marked
        b"\x00\x01\x02\x03\n"  # binary
        + b"INFO "
        + b"y" * 1_000_000
        + b"\n"  # 1 MB line
        + b"INFO last"  # no trailing newline
    )
    path = tmp_path / "mixed.log"
    path.write_bytes(data)
    p = LogParser("<Level> <Content>")
    df = p.parse(path)
    assert len(df) == 5
    assert df["parsed"].tolist() == [True, True, False, False, True]
    assert df["error"].iloc[1] == "invalid UTF-8 replaced"
    assert df["error"].iloc[2].startswith("binary data")
    assert df["error"].iloc[3].startswith("line too long")
    assert len(df["raw"].iloc[3]) <= 200


def test_gzip_and_crlf(tmp_path):
    path = tmp_path / "x.log.gz"
    path.write_bytes(gzip.compress(b"INFO one\r\nINFO two\r\n"))
    df = LogParser("<Level> <Content>").parse(path)
    assert df["content"].tolist() == ["one", "two"]


def test_empty_file_and_missing_file(tmp_path, caplog):
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    df = LogParser("hdfs").parse(empty)
    assert len(df) == 0
    assert "empty input" in caplog.text
    with pytest.raises(FileNotFoundError, match="log file not found"):
        LogParser("hdfs").parse(tmp_path / "nope.log")


def test_bad_format_messages():
    with pytest.raises(ValueError, match="unknown log format"):
        LogParser("no-such-format")
    with pytest.raises(ValueError, match="Content"):
        LogParser("(?P<Level>\\w+) (?P<Msg>.*)")
    with pytest.raises(ValueError, match="invalid regular expression"):
        Mask("X", "(")


def test_regex_format_and_custom_masks():
    p = LogParser(r"(?P<Level>[A-Z]+): (?P<Content>.*)", masks=[Mask("N", r"\d+")])
    df = p.parse(["WARN: disk 3 full", "WARN: disk 9 full"])
    assert df["key"].nunique() == 1
    assert df["template"].iloc[0] == "disk <N> full"
    assert df["params"].tolist() == [(3.0,), (9.0,)]


def test_bgl_label_and_node_sessions():
    line = (
        "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 "
        "R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected"
    )
    alert = line.replace("- ", "KERNDTLB ", 1)
    df = LogParser("bgl").parse([line, alert])
    assert df["label"].tolist() == ["-", "KERNDTLB"]
    assert df["session"].tolist() == ["R02-M1-N0-C:J12-U11"] * 2
    assert df["timestamp"].iloc[0] == pd.Timestamp("2005-06-03 15:42:50.675872")


def test_state_round_trip_is_json_and_keeps_keys():
    p = LogParser("openstack")
    df = p.parse(OPENSTACK)
    state = json.loads(json.dumps(p.to_state()))
    q = LogParser.from_state(state)
    again = q.transform(OPENSTACK)
    assert again["key"].tolist() == df["key"].tolist()
    assert q.templates_.equals(p.templates_)
    with pytest.raises(ValueError, match="malformed parser state"):
        LogParser.from_state({"format": {}})


def test_a_state_written_by_an_earlier_release_loads_and_matches_the_same():
    # written before the parser was split into modules; loading it must give the same keys,
    # templates, parameters and sessions (window rule and year kept in the state)
    saved = json.loads((Path(__file__).parent / "data" / "parser_state_v2.json").read_text())
    p = LogParser.from_state(saved["state"])
    df = p.transform(saved["lines"])
    got = {
        "key": df["key"].tolist(),
        "template": df["template"].tolist(),
        "params": [list(x) for x in df["params"]],
        "session": df["session"].tolist(),
    }
    assert got == saved["expected"]
    assert p.to_state() == saved["state"]  # and it writes the same state back


def test_partitions_give_the_same_keys_as_one_pass():
    p = LogParser("openstack").fit(OPENSTACK)
    whole = p.transform(OPENSTACK)
    parts = pd.concat(
        [
            p.transform(OPENSTACK[:2], sessions=False),
            p.transform(OPENSTACK[2:], first_line=3, sessions=False),
        ],
        ignore_index=True,
    )
    assert parts["key"].tolist() == whole["key"].tolist()
    assert parts["line"].tolist() == [1, 2, 3, 4]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=25))
def test_property_arbitrary_bytes_one_row_per_line(chunks):
    data = b"\n".join(chunks)
    p = LogParser("<Date> <Time> <Level> <Component>: <Content>", max_line_bytes=200)
    df = p.parse(data)
    expected = 0 if data == b"" else data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    assert len(df) == expected
    assert df["line"].tolist() == list(range(1, expected + 1))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=25))
def test_property_arbitrary_text_lines(lines):
    lines = [ln.replace("\n", " ") for ln in lines]
    p = LogParser("hdfs")
    df = p.parse(lines)
    assert len(df) == len(lines)
    df2 = p.transform(lines)
    assert len(df2) == len(lines)
    assert set(df2["key"]) <= set(p.keys_) | {keyids.UNKNOWN, keyids.UNPARSED}


@pytest.mark.data
@pytest.mark.parametrize("system", ["HDFS", "BGL", "OpenStack"])
def test_grouping_accuracy_on_loghub(shared_data, system):
    from workbench.logs.formats import BUILTIN_FORMATS

    folder = shared_data / "loghub_2k" / system
    truth = pd.read_csv(folder / f"{system}_2k.log_structured.csv")["EventId"]
    df = LogParser(BUILTIN_FORMATS[system.lower()]).parse(
        folder / f"{system}_2k.log", sessions=False
    )
    pairs = pd.DataFrame({"p": df["key"], "t": truth})
    sizes_p = pairs.groupby("p")["t"].transform("size")
    sizes_t = pairs.groupby("t")["p"].transform("size")
    sizes_pt = pairs.groupby(["p", "t"])["p"].transform("size")
    acc = ((sizes_pt == sizes_p) & (sizes_pt == sizes_t)).mean()
    assert acc >= 0.95


def test_key_ids_do_not_depend_on_hash_seed(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "x.log"
    log.write_text(
        "\n".join(f"INFO VM {s} now" for s in ["Paused", "Started", "Stopped", "Resumed"] * 3)
    )
    code = (
        "import sys; from workbench.logs.parser import LogParser; "
        "print(LogParser('<Level> <Content>').parse(sys.argv[1])['key'].tolist())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, str(log)],
            capture_output=True, text=True, check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2, 3)
    }  # fmt: skip
    assert len(outs) == 1


def test_learn_line_never_widens_a_mined_template():
    p = LogParser("<Level> <Content>").fit(
        ["INFO disk sda is full now", "INFO disk sdb is full now"]
    )
    alert = "INFO kernel panic is full now"  # would merge into 'disk <*> is full now' when mining
    assert p.transform([alert])["key"].iloc[0] == keyids.UNKNOWN
    mined = p.templates_["template"].tolist()
    key = p.learn_line("INFO memory bank is full now")
    assert key > 0 and p.transform(["INFO memory bank is full now"])["key"].iloc[0] == key
    assert p.transform([alert])["key"].iloc[0] == keyids.UNKNOWN  # still unknown
    assert p.templates_["template"].tolist()[: len(mined)] == mined  # mined templates unchanged
    # a second confirmed line may widen the template the first confirmation created
    key2 = p.learn_line("INFO memory slot is full now")
    assert key2 == key or p.transform(["INFO memory slot is full now"])["key"].iloc[0] == key2


# ---------------------------------------------------------------------- fast paths change nothing
def _as_raw(items):
    from workbench.logs.reading import RawLine

    return [x if isinstance(x, RawLine) else RawLine(x) for x in items]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(1, 64))
def test_block_reading_gives_the_lines_of_line_by_line_reading(chunks, block):
    from workbench.logs import reading

    data = b"\n".join(c.replace(b"\n", b"\r") for c in chunks) + b"\xc3(\x00\r\n\n"[: block % 7]
    per_line = list(reading.read_lines(data, max_bytes=16))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reading, "_BLOCK", block)  # blocks end in the middle of lines
        assert _as_raw(reading.read_texts(data, max_bytes=16)) == per_line
    assert _as_raw(reading.read_texts(data.split(b"\n"), max_bytes=16))[: len(per_line)] == per_line


def test_block_reading_of_crlf_utf8_long_and_binary_lines():
    from workbench.logs import reading

    clean = "a\r\nb\rc\r\r\n\u00e9t\u00e9\r\n\n0123456789abcdef\r\nend".encode()
    for data in (
        clean,
        clean + b"\n",
        clean + b"\n" + b"x" * 40,
        clean + b"\n\xff\xfe\n",
        b"\x00\n",
    ):
        per_line = list(reading.read_lines(data, max_bytes=16))
        for block in (1, 3, 8, 1 << 22):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(reading, "_BLOCK", block)
                assert _as_raw(reading.read_texts(data, max_bytes=16)) == per_line, (data, block)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="ab019.:-+_/ xf\t", max_size=30), max_size=30))
@example(["12:30 +5 -0.5 1.2.3.4 10.0.0.1:80 0x1f 99999999 1:00 5. .5 - 3a 12.5.1 +-1 1.0e5"])
@example(["ec84bc0d-6772-4e76-9a6f-6d980979bc49 ec84bc0d-6772-4e76-9a6f-6d980979bc49] x:deadbeef"])
@example(["0000000a-0000-0000-0000-00000000000b-1 ec84bc0d-6772-4e76-9a6f-6d980979bc4 a1b2c3d4e5"])
def test_masker_equals_masking_each_token(texts):
    from workbench.logs.masks import DEFAULT_MASKS, Masker

    m = Masker(DEFAULT_MASKS)
    for text in texts + texts:  # the second pass hits the caches
        assert m.mask(text) == " ".join(m.mask_token(t) for t in text.split())


def test_builtin_session_patterns_match_as_the_guarded_regex_does():
    import regex

    from workbench.logs.formats import TRUSTED_SESSION_PATTERNS
    from workbench.logs.sessions import _regex_sessions

    contents = [x.split("] ", 1)[1] for x in OPENSTACK] + ["blk_-12 x blk_3", "none", "blk_"]
    parsed = np.array([True] * (len(contents) - 1) + [False])
    for pattern in TRUSTED_SESSION_PATTERNS:
        rx = regex.compile(pattern)
        expected = [
            (m.group(1 if rx.groups else 0) if (m := rx.search(c)) else None) if ok else None
            for c, ok in zip(contents, parsed, strict=True)
        ]
        assert _regex_sessions(contents, parsed, pattern) == expected


def _equal_frames(parser, path, **kwargs):
    from workbench.logs.reading import raw_lines

    lines = list(raw_lines(path))  # bytes, decoded line by line
    whole = parser.transform(path, **kwargs)
    for other in (lines, [x.decode("utf-8", "replace") for x in lines]):
        again = parser.transform(other, **kwargs)
        if other is lines or not whole["error"].notna().any():
            pd.testing.assert_frame_equal(whole, again, check_exact=True)
            assert whole.attrs == again.attrs
    return whole


@pytest.mark.data
@pytest.mark.parametrize("system", ["BGL", "HDFS", "OpenStack", "Linux", "Apache", "Spark"])
def test_a_file_its_bytes_and_its_lines_parse_to_equal_frames(shared_data, system):
    from workbench.logs.formats import BUILTIN_FORMATS

    path = shared_data / "loghub_2k" / system / f"{system}_2k.log"
    parser = LogParser(BUILTIN_FORMATS[system.lower()]).fit(path)
    df = _equal_frames(parser, path)
    pd.testing.assert_frame_equal(df, parser.transform(path.read_bytes()), check_exact=True)


def test_a_simulated_log_parses_to_equal_frames_however_given(tmp_path):
    from workbench.simulate.engine import simulate

    path = simulate(n_instances=40, seed=5).write(tmp_path / "sim.log")
    parser = LogParser("openstack").fit(path)
    fresh = LogParser.from_state(parser.to_state())
    df = _equal_frames(fresh, path)
    assert df["parsed"].all() and df["session"].notna().any()
    _equal_frames(fresh, path, sessions=False, first_line=9)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="09\u0663\u00b2.,e+-[]x", min_size=1, max_size=8), max_size=8))
def test_numeric_params_equal_reading_each_token_with_the_number_pattern(tokens):
    import math
    import re

    from workbench.logs.template_keys import numeric_params

    number = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
    stripped = [t.strip(",;:()[]{}\"'").rstrip(".") for t in tokens]
    values = [float(t) for t in stripped if number.fullmatch(t)]
    expected = tuple(v for v in values if math.isfinite(v))
    assert numeric_params(" ".join(tokens), tuple(range(len(tokens)))) == expected
